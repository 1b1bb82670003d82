//! Directory exports staged inside their destination until the build
//! succeeds, then merged into it.
//!
//! The daemon's files are received into `DEST/.kiln-export-XXXX.tmp/`
//! (same file system, so the merge is renames); [`StagedDir::commit`] moves
//! every entry into `DEST`, merging with directories already there and
//! replacing files and symlinks, never following a symlink of `DEST`. A
//! staged directory that is dropped uncommitted (the build failed or was
//! cancelled) is removed, so `DEST` only ever gets a whole export.

use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::time::Duration;

use super::receive::Cancel;
use crate::error::{Error, Result};

/// How long dropping a staged export waits for its receiving thread to
/// stop before removing what it wrote.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// Staged exports of this process not yet committed or removed: what
/// [`abandon_exports`] stops and removes.
static STAGED: std::sync::Mutex<Vec<(PathBuf, Arc<Cancel>)>> = std::sync::Mutex::new(Vec::new());

/// Stops every directory export still being received and removes what
/// it wrote (its staging directory), waiting at most a few seconds for the
/// receivers. For a process that is about to exit after cancelling its
/// builds (Ctrl-C): the tasks holding the exports may never be dropped.
pub fn abandon_exports() {
    let staged = STAGED
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    for (_, cancel) in &staged {
        cancel.cancel_and_wait(STOP_WAIT);
    }
    for (path, _) in staged {
        remove_staging(&path);
    }
}

/// Removes a staging directory; a receiver that did not stop in time may
/// still add an entry while it goes, so a few tries.
fn remove_staging(path: &Path) {
    for attempt in 0..10 {
        match std::fs::remove_dir_all(path) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if attempt == 9 => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a staged export");
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn unregister(path: &Path) {
    if let Ok(mut v) = STAGED.lock() {
        v.retain(|(p, _)| p != path);
    }
}

/// A directory export being received, or received whole.
pub(crate) struct StagedDir {
    staging: PathBuf,
    dest: PathBuf,
    done: bool,
    /// Stops the blocking receiver writing into `staging`.
    cancel: Arc<Cancel>,
}

impl StagedDir {
    /// Creates `dest` (if missing) and an empty staging directory in it.
    pub(crate) fn create(dest: &Path) -> Result<StagedDir> {
        std::fs::create_dir_all(dest).map_err(|e| Error::io("create", dest, e))?;
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let staging = dest.join(format!(".kiln-export-{}.tmp", &suffix[..12]));
        std::fs::create_dir(&staging).map_err(|e| Error::io("create", &staging, e))?;
        let cancel: Arc<Cancel> = Arc::default();
        if let Ok(mut v) = STAGED.lock() {
            v.push((staging.clone(), cancel.clone()));
        }
        Ok(StagedDir {
            staging,
            dest: dest.to_path_buf(),
            done: false,
            cancel,
        })
    }

    /// The receiver's stop switch: dropping this staged export stops the
    /// receiver and waits for it before removing the staging directory.
    pub(crate) fn cancel(&self) -> Arc<Cancel> {
        self.cancel.clone()
    }

    /// Where the daemon's files are received.
    pub(crate) fn staging(&self) -> &Path {
        &self.staging
    }

    /// Merges the received tree into the destination.
    pub(crate) fn commit(mut self) -> Result<PathBuf> {
        unregister(&self.staging);
        merge(&self.staging, &self.dest)?;
        // What is left are the emptied directories that were merged.
        std::fs::remove_dir_all(&self.staging)
            .map_err(|e| Error::io("remove", &self.staging, e))?;
        self.done = true;
        Ok(std::mem::take(&mut self.dest))
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.done {
            // The receiving thread first (a cancelled build drops this
            // while the thread may still write into the staging directory).
            unregister(&self.staging);
            self.cancel.cancel_and_wait(STOP_WAIT);
            remove_staging(&self.staging);
        }
    }
}

/// Moves every entry of `from` into `into`: a directory onto a directory
/// merges, anything else replaces what is there (a directory in the way is
/// removed first). `symlink_metadata` throughout: a symlink in `into` is
/// replaced, never followed.
fn merge(from: &Path, into: &Path) -> Result<()> {
    let entries = std::fs::read_dir(from).map_err(|e| Error::io("read", from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read", from, e))?;
        let src = entry.path();
        let dst = into.join(entry.file_name());
        let src_is_dir = entry
            .file_type()
            .map_err(|e| Error::io("inspect", &src, e))?
            .is_dir();
        match std::fs::symlink_metadata(&dst) {
            Ok(m) if m.is_dir() && src_is_dir => {
                merge(&src, &dst)?;
                // The export's mode for the directory.
                if let Ok(sm) = std::fs::symlink_metadata(&src) {
                    let _ = std::fs::set_permissions(&dst, sm.permissions());
                }
                continue;
            }
            Ok(m) if m.is_dir() => {
                std::fs::remove_dir_all(&dst).map_err(|e| Error::io("replace", &dst, e))?;
            }
            Ok(_) if src_is_dir => {
                std::fs::remove_file(&dst).map_err(|e| Error::io("replace", &dst, e))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("inspect", &dst, e)),
        }
        std::fs::rename(&src, &dst).map_err(|e| Error::io("move into", &dst, e))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Merged into what is there: directories merge, files and symlinks
    /// are replaced (a symlink of the destination is never followed), a
    /// file in the way of a directory and a directory in the way of a file
    /// are replaced; the staging directory is gone.
    #[test]
    fn commit_merges_into_the_destination() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("out");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(dest.join("keep/sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(dest.join("keep/old.txt"), "old").unwrap();
        std::fs::write(dest.join("keep/sub/same.txt"), "before").unwrap();
        std::os::unix::fs::symlink(&outside, dest.join("link")).unwrap();
        std::fs::write(dest.join("was-file"), "f").unwrap();
        std::fs::create_dir_all(dest.join("was-dir/deep")).unwrap();

        let staged = StagedDir::create(&dest).unwrap();
        let s = staged.staging().to_path_buf();
        std::fs::create_dir_all(s.join("keep/sub")).unwrap();
        std::fs::write(s.join("keep/new.txt"), "new").unwrap();
        std::fs::write(s.join("keep/sub/same.txt"), "after").unwrap();
        std::fs::create_dir_all(s.join("link")).unwrap();
        std::fs::write(s.join("link/x"), "x").unwrap();
        std::fs::create_dir_all(s.join("was-file")).unwrap();
        std::fs::write(s.join("was-dir"), "now a file").unwrap();
        staged.commit().unwrap();

        assert_eq!(names(&dest), ["keep", "link", "was-dir", "was-file"]);
        assert_eq!(names(&dest.join("keep")), ["new.txt", "old.txt", "sub"]);
        assert_eq!(
            std::fs::read_to_string(dest.join("keep/sub/same.txt")).unwrap(),
            "after"
        );
        assert!(std::fs::symlink_metadata(dest.join("link"))
            .unwrap()
            .is_dir());
        assert!(names(&outside).is_empty(), "wrote through the symlink");
        assert!(dest.join("was-file").is_dir());
        assert_eq!(
            std::fs::read_to_string(dest.join("was-dir")).unwrap(),
            "now a file"
        );
    }

    /// Dropped uncommitted (a failed or cancelled build): the destination
    /// is as it was.
    #[test]
    fn dropped_uncommitted_leaves_the_destination_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("out");
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(dest.join("mine"), "mine").unwrap();
        let staged = StagedDir::create(&dest).unwrap();
        std::fs::write(staged.staging().join("half"), "half").unwrap();
        drop(staged);
        assert_eq!(names(&dest), ["mine"]);
    }
}
