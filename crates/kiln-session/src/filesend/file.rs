//! Single-file exports: `BytesMessage` frames until the daemon half-closes.

use std::path::{Path, PathBuf};

use futures::{Stream, StreamExt};
use kiln_proto::moby::filesync::v1::BytesMessage;
use tokio::io::AsyncWriteExt;
use tonic::Status;

use super::SharedWriter;
use crate::error::{Error, Result};

/// A temporary file removed on drop unless persisted.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = std::fs::remove_file(&self.path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot remove temporary file");
                }
            }
        }
    }
}

/// A file received whole into its temporary file, not yet in place.
pub(crate) struct Received {
    temp: TempFile,
    dest: PathBuf,
}

impl Received {
    /// Renames the file over its destination.
    pub(crate) fn commit(mut self) -> Result<PathBuf> {
        std::fs::rename(&self.temp.path, &self.dest)
            .map_err(|e| Error::io("rename into", &self.dest, e))?;
        self.temp.keep = true;
        Ok(std::mem::take(&mut self.dest))
    }
}

/// Streams the frames into a temporary file beside `dest` and syncs it
/// once the daemon has sent everything; the caller renames it over `dest`
/// ([`Received::commit`]) when the build succeeded. On any failure, or if
/// the call or the result is dropped, the temporary file is removed and
/// `dest` is untouched.
///
/// # Errors
/// [`Error::Io`] for file system failures, [`Error::Stream`] when the
/// daemon's stream fails before its end.
pub(crate) async fn receive_file<S>(dest: &Path, mut inbound: S) -> Result<Received>
where
    S: Stream<Item = Result<BytesMessage, Status>> + Unpin,
{
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base = dest
        .file_name()
        .ok_or_else(|| Error::io("export to", dest, std::io::ErrorKind::InvalidInput.into()))?
        .to_string_lossy()
        .into_owned();
    let (mut file, temp) = create_temp(&dir, &base).await?;
    let mut written: u64 = 0;
    while let Some(msg) = inbound.next().await {
        let msg = msg.map_err(Error::Stream)?;
        file.write_all(&msg.data)
            .await
            .map_err(|e| Error::io("write", &temp.path, e))?;
        written += msg.data.len() as u64;
    }
    file.flush()
        .await
        .map_err(|e| Error::io("write", &temp.path, e))?;
    file.sync_all()
        .await
        .map_err(|e| Error::io("sync", &temp.path, e))?;
    drop(file);
    tracing::debug!(dest = %dest.display(), bytes = written, "export received");
    Ok(Received {
        temp,
        dest: dest.to_path_buf(),
    })
}

async fn create_temp(dir: &Path, base: &str) -> Result<(tokio::fs::File, TempFile)> {
    for _ in 0..16 {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let path = dir.join(format!(".{base}.kiln-{}.tmp", &suffix[..12]));
        match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
        {
            Ok(file) => return Ok((file, TempFile { path, keep: false })),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("create", path, e)),
        }
    }
    Err(Error::io(
        "create temporary file in",
        dir,
        std::io::ErrorKind::AlreadyExists.into(),
    ))
}

/// Streams the frames into a writer (standard output), which is then
/// flushed. The writer serves one export; a second gets `AlreadyExists`.
///
/// # Errors
/// [`Error::Stream`] when the writer was used already or the stream fails,
/// [`Error::Io`] when writing fails.
pub(crate) async fn receive_writer<S>(writer: &SharedWriter, mut inbound: S) -> Result<()>
where
    S: Stream<Item = Result<BytesMessage, Status>> + Unpin,
{
    let taken = writer.take().await;
    let Some(mut w) = taken else {
        return Err(Error::Stream(Status::already_exists(
            "target already exists",
        )));
    };
    while let Some(msg) = inbound.next().await {
        let msg = msg.map_err(Error::Stream)?;
        w.write_all(&msg.data)
            .await
            .map_err(|e| Error::io("write", "<writer>", e))?;
    }
    w.flush()
        .await
        .map_err(|e| Error::io("flush", "<writer>", e))?;
    Ok(())
}

/// A hostile or failing daemon's byte streams.
#[cfg(test)]
mod tests {
    use futures::stream;

    use super::*;

    fn frame(bytes: &[u8]) -> Result<BytesMessage, Status> {
        Ok(BytesMessage {
            data: bytes.to_vec(),
        })
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(dir)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }

    #[tokio::test]
    async fn a_failed_stream_leaves_no_partial_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dest = tmp.path().join("out.tar");
        let frames = stream::iter([
            frame(b"partial tar"),
            Err(Status::unavailable("connection reset")),
        ]);
        let r = receive_file(&dest, frames).await.map(|_| ());
        assert!(matches!(r, Err(Error::Stream(_))), "{r:?}");
        assert_eq!(names(tmp.path()), Vec::<String>::new(), "no partial file");
    }

    #[tokio::test]
    async fn a_failed_stream_keeps_the_previous_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dest = tmp.path().join("out.tar");
        std::fs::write(&dest, b"previous export").expect("write");
        let frames = stream::iter([frame(b"new"), Err(Status::internal("export failed"))]);
        assert!(receive_file(&dest, frames).await.is_err());
        assert_eq!(names(tmp.path()), ["out.tar"]);
        assert_eq!(std::fs::read(&dest).expect("read"), b"previous export");
    }

    #[tokio::test]
    async fn a_symlink_at_dest_is_replaced_not_written_through() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        let out = tmp.path().join("out");
        std::fs::create_dir(&out).expect("mkdir");
        let dest = out.join("x.tar");
        std::os::unix::fs::symlink(outside.join("victim"), &dest).expect("symlink");
        let received = receive_file(&dest, stream::iter([frame(b"tar")]))
            .await
            .expect("export");
        // Received, not yet in place: the destination is untouched.
        assert!(std::fs::symlink_metadata(&dest).expect("dest").is_symlink());
        received.commit().expect("commit");
        assert_eq!(names(&outside), Vec::<String>::new());
        assert!(std::fs::symlink_metadata(&dest).expect("dest").is_file());
        assert_eq!(std::fs::read(&dest).expect("read"), b"tar");
    }

    /// A stream that ends cleanly is not a finished build: dropped without
    /// a commit (the build failed or was cancelled), the received file
    /// goes away and the previous one stays.
    #[tokio::test]
    async fn a_received_file_not_committed_leaves_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dest = tmp.path().join("out.tar");
        std::fs::write(&dest, b"previous export").expect("write");
        let received = receive_file(&dest, stream::iter([frame(b"truncat")]))
            .await
            .expect("received");
        assert_eq!(names(tmp.path()).len(), 2, "the temporary file waits");
        drop(received);
        assert_eq!(names(tmp.path()), ["out.tar"]);
        assert_eq!(std::fs::read(&dest).expect("read"), b"previous export");
    }
}
