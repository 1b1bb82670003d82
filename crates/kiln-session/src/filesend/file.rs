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
