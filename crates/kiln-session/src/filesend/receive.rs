//! The receiving side of fsutil's packet protocol, for the `local` exporter
//! (fsutil `receive.go`, in the daemon-to-kiln direction).
//!
//! The daemon sends one STAT per entry and an empty STAT; kiln asks for each
//! regular file with REQ{id} (id = the file's index among all STAT packets)
//! and the daemon answers DATA{id} chunks ending with an empty DATA{id}.
//! When everything is written kiln sends FIN, the daemon answers FIN.
//!
//! Paths come from the daemon and are untrusted: absolute paths, `.`/`..`
//! components, entries out of order or below something that is not a
//! directory received earlier are refused, and nothing is ever written
//! through a symlink (symlinks are created as sent but never followed).
//!
//! Memory stays bounded whatever the daemon sends: file contents go straight
//! to disk (never buffered, never preallocated from a declared size), DATA
//! beyond the size a file's STAT declared is refused, paths are at most
//! [`MAX_PATH`] bytes, xattrs are dropped, and what is kept per entry until
//! the end (names for ordering and hardlink checks, directory modes) is
//! capped by [`ReceiveOptions::max_metadata`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::{Stream, StreamExt};
use kiln_proto::fsutil::types::packet::PacketType;
use kiln_proto::fsutil::types::{Packet, Stat};
use tokio::sync::mpsc;
use tonic::Status;

use crate::error::{Error, Result};
use crate::filesync::{can_request_data, unix_perm, MODE_DIR, MODE_SYMLINK};

/// The longest path or symlink target accepted from the daemon, in bytes
/// (Linux's `PATH_MAX`).
pub const MAX_PATH: usize = 4096;

/// What kiln counts for each entry it keeps until the end of a transfer,
/// beyond the bytes of its names (see [`ReceiveOptions::max_metadata`]).
const ENTRY_OVERHEAD: usize = 128;

/// Tuning and policy for [`receive_dir`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReceiveOptions {
    /// Keep setuid/setgid bits on received files (off: a hostile daemon
    /// must not plant setuid binaries).
    pub keep_setid: bool,
    /// Files requested (and open) at once.
    pub max_open: usize,
    /// The most bytes of entry metadata (names, directory modes) kept in
    /// memory during one transfer; a daemon listing more is refused with
    /// [`Error::ExportTooLarge`]. The default, 256 MiB, holds about a million
    /// entries with 60-byte paths.
    pub max_metadata: usize,
}

impl Default for ReceiveOptions {
    fn default() -> Self {
        Self {
            keep_setid: false,
            max_open: 16,
            max_metadata: 256 * 1024 * 1024,
        }
    }
}

/// Receives a directory from the daemon into `dest` (created if missing),
/// merging with what is there.
///
/// # Errors
/// [`Error::UnsafePath`] for a refused path, [`Error::PacketProtocol`] for
/// out-of-order or malformed packets (DATA nobody asked for, or more DATA
/// than the file's STAT declared), [`Error::ExportTooLarge`] when the listing
/// exceeds [`ReceiveOptions::max_metadata`], [`Error::Remote`] when the daemon
/// sends ERR, [`Error::Stream`] when its stream fails, [`Error::Io`] for
/// local file system failures.
pub async fn receive_dir<S>(
    dest: &Path,
    inbound: S,
    outbound: mpsc::Sender<Result<Packet, Status>>,
    options: ReceiveOptions,
) -> Result<()>
where
    S: Stream<Item = Result<Packet, Status>> + Unpin + Send + 'static,
{
    receive_dir_cancellable(dest, inbound, outbound, options, Arc::default()).await
}

/// [`receive_dir`] that stops at its next packet once `cancel` is
/// cancelled (the receiving thread is blocking: dropping the future does
/// not stop it), and says when it has stopped.
pub(crate) async fn receive_dir_cancellable<S>(
    dest: &Path,
    inbound: S,
    outbound: mpsc::Sender<Result<Packet, Status>>,
    options: ReceiveOptions,
    cancel: Arc<Cancel>,
) -> Result<()>
where
    S: Stream<Item = Result<Packet, Status>> + Unpin + Send + 'static,
{
    let dest = dest.to_path_buf();
    let handle = tokio::runtime::Handle::current();
    // File system work is blocking: run the whole state machine on a
    // blocking thread, waiting for packets through the runtime handle.
    tokio::task::spawn_blocking(move || {
        let _running = cancel.start()?;
        std::fs::create_dir_all(&dest).map_err(|e| Error::io("create", &dest, e))?;
        let root = std::fs::canonicalize(&dest).map_err(|e| Error::io("resolve", &dest, e))?;
        let mut rx = Receiver::new(root, options);
        rx.run(&handle, inbound, &outbound, &cancel)
    })
    .await
    .map_err(|e| Error::protocol(format!("receive task failed: {e}")))?
}

/// Stops a blocking receiver from outside, and waits for it to stop.
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    cancelled: std::sync::atomic::AtomicBool,
    /// Wakes a receiver waiting for its next packet.
    wake: tokio::sync::Notify,
    running: std::sync::Mutex<bool>,
    changed: std::sync::Condvar,
}

impl Cancel {
    /// Asks the receiver to stop, and waits for it at most `limit`; a
    /// receiver that has not started yet never will.
    pub(crate) fn cancel_and_wait(&self, limit: Duration) {
        self.cancelled
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
        let Ok(running) = self.running.lock() else {
            return;
        };
        let _ = self.changed.wait_timeout_while(running, limit, |r| *r);
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Marks the receiver running, unless it was cancelled already.
    fn start(&self) -> Result<Running<'_>> {
        let mut running = self
            .running
            .lock()
            .map_err(|_| Error::protocol("receiver state poisoned"))?;
        if self.is_cancelled() {
            return Err(Error::protocol("the export was cancelled"));
        }
        *running = true;
        Ok(Running(self))
    }
}

/// Marks the receiver stopped when its thread leaves.
struct Running<'a>(&'a Cancel);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Ok(mut r) = self.0.running.lock() {
            *r = false;
        }
        self.0.changed.notify_all();
    }
}

struct Pending {
    id: u32,
    rel: String,
    stat: Stat,
}

struct Open {
    rel: String,
    /// Bytes written so far; never more than `stat.size`.
    written: u64,
    file: File,
    temp: PathBuf,
    target: PathBuf,
    stat: Stat,
}

struct Receiver {
    root: PathBuf,
    options: ReceiveOptions,
    next_index: u32,
    last: Option<String>,
    dirs: HashSet<String>,
    regular: HashSet<String>,
    queue: VecDeque<Pending>,
    open: HashMap<u32, Open>,
    hardlinks: Vec<(String, String)>,
    dir_meta: Vec<(String, Stat)>,
    /// Bytes of metadata kept so far (see [`ReceiveOptions::max_metadata`]).
    kept: usize,
    listing_done: bool,
    fin_sent: bool,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        for open in self.open.values() {
            let _ = std::fs::remove_file(&open.temp);
        }
    }
}

fn packet(kind: PacketType, id: u32) -> Packet {
    Packet {
        r#type: kind as i32,
        id,
        ..Packet::default()
    }
}

impl Receiver {
    fn new(root: PathBuf, options: ReceiveOptions) -> Self {
        Self {
            root,
            options,
            next_index: 0,
            last: None,
            dirs: HashSet::new(),
            regular: HashSet::new(),
            queue: VecDeque::new(),
            open: HashMap::new(),
            hardlinks: Vec::new(),
            dir_meta: Vec::new(),
            kept: 0,
            listing_done: false,
            fin_sent: false,
        }
    }

    fn run<S>(
        &mut self,
        handle: &tokio::runtime::Handle,
        mut inbound: S,
        outbound: &mpsc::Sender<Result<Packet, Status>>,
        cancel: &Cancel,
    ) -> Result<()>
    where
        S: Stream<Item = Result<Packet, Status>> + Unpin,
    {
        let send = |p: Packet| {
            outbound
                .blocking_send(Ok(p))
                .map_err(|_| Error::protocol("the daemon closed the stream"))
        };
        loop {
            if cancel.is_cancelled() {
                return Err(Error::protocol("the export was cancelled"));
            }
            while self.open.len() < self.options.max_open.max(1) {
                let Some(p) = self.queue.pop_front() else {
                    break;
                };
                let id = p.id;
                self.open_file(p)?;
                send(packet(PacketType::PacketReq, id))?;
            }
            if self.listing_done && self.queue.is_empty() && self.open.is_empty() && !self.fin_sent
            {
                self.finish()?;
                send(packet(PacketType::PacketFin, 0))?;
                self.fin_sent = true;
            }
            // A daemon that stopped sending (its build was cancelled) must
            // not keep this thread: the cancel wakes it.
            let next = handle.block_on(async {
                tokio::select! {
                    biased;
                    () = cancel.wake.notified() => None,
                    p = inbound.next() => Some(p),
                }
            });
            let Some(next) = next else {
                return Err(Error::protocol("the export was cancelled"));
            };
            let p = match next {
                None if self.fin_sent => return Ok(()),
                None => return Err(Error::protocol("stream ended before FIN")),
                Some(Err(status)) => return Err(Error::Stream(status)),
                Some(Ok(p)) => p,
            };
            match PacketType::try_from(p.r#type) {
                Ok(PacketType::PacketStat) => match p.stat {
                    None => self.listing_done = true,
                    Some(_) if self.listing_done => {
                        return Err(Error::protocol("STAT after the end of the listing"))
                    }
                    Some(stat) => self.stat(stat)?,
                },
                Ok(PacketType::PacketData) => self.data(p.id, &p.data)?,
                Ok(PacketType::PacketFin) if self.fin_sent => return Ok(()),
                Ok(PacketType::PacketFin) => {
                    return Err(Error::protocol("the daemon ended the transfer early"))
                }
                Ok(PacketType::PacketErr) => {
                    return Err(Error::Remote {
                        message: String::from_utf8_lossy(&p.data).into_owned(),
                    })
                }
                // A sender never sends REQ; fsutil ignores unknown packets.
                _ => {}
            }
        }
    }

    /// Counts `bytes` of metadata kept until the end of the transfer.
    fn keep(&mut self, bytes: usize) -> Result<()> {
        self.kept = self.kept.saturating_add(bytes);
        if self.kept > self.options.max_metadata {
            return Err(Error::ExportTooLarge {
                limit: self.options.max_metadata,
                what: "bytes of file names and modes",
            });
        }
        Ok(())
    }

    fn stat(&mut self, mut stat: Stat) -> Result<()> {
        let id = self.next_index;
        self.next_index = id
            .checked_add(1)
            .ok_or_else(|| Error::protocol("too many entries"))?;
        let rel = validate_rel(&stat.path)?.to_owned();
        if stat.linkname.len() > MAX_PATH {
            return Err(Error::UnsafePath {
                path: rel,
                reason: "link target longer than 4096 bytes",
            });
        }
        // Never applied, so never kept (a STAT may carry megabytes of them).
        stat.xattrs.clear();
        if let Some(last) = &self.last {
            if compare_paths(last, &rel) != std::cmp::Ordering::Less {
                return Err(Error::protocol(format!(
                    "changes out of order: {rel:?} after {last:?}"
                )));
            }
        }
        if let Some((parent, _)) = rel.rsplit_once('/') {
            if !self.dirs.contains(parent) {
                return Err(Error::UnsafePath {
                    path: rel,
                    reason: "its parent directory was not sent before it",
                });
            }
        }
        self.last = Some(rel.clone());
        let target = self.checked_target(&rel)?;
        let existing = std::fs::symlink_metadata(&target).ok();
        if stat.mode & MODE_DIR != 0 {
            match existing {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    remove(&target)?;
                    create_dir(&target)?;
                }
                None => create_dir(&target)?,
            }
            self.keep(2 * rel.len() + ENTRY_OVERHEAD)?;
            self.dirs.insert(rel.clone());
            self.dir_meta.push((rel, stat));
            return Ok(());
        }
        if existing.is_some_and(|m| m.is_dir()) {
            return Err(Error::UnsafePath {
                path: rel,
                reason: "a directory is in the way",
            });
        }
        if stat.mode & MODE_SYMLINK != 0 {
            let temp = self.temp_path(&target);
            std::os::unix::fs::symlink(&stat.linkname, &temp)
                .map_err(|e| Error::io("symlink", &temp, e))?;
            if let Err(e) = std::fs::rename(&temp, &target) {
                let _ = std::fs::remove_file(&temp);
                return Err(Error::io("rename into", &target, e));
            }
        } else if can_request_data(stat.mode) {
            self.keep(2 * rel.len() + stat.linkname.len() + ENTRY_OVERHEAD)?;
            if stat.linkname.is_empty() {
                self.regular.insert(rel.clone());
                self.queue.push_back(Pending { id, rel, stat });
            } else {
                let link = validate_rel(&stat.linkname)?.to_owned();
                if !self.regular.contains(&link) {
                    return Err(Error::UnsafePath {
                        path: rel,
                        reason: "hardlink to a file not received before it",
                    });
                }
                self.hardlinks.push((rel, link));
            }
        } else {
            tracing::debug!(path = %rel, mode = stat.mode, "skipping special file in export");
        }
        Ok(())
    }

    /// `root/rel`, after checking that every directory on the way is a real
    /// directory (never a symlink).
    fn checked_target(&self, rel: &str) -> Result<PathBuf> {
        let mut path = self.root.clone();
        let mut parts = rel.split('/').peekable();
        while let Some(part) = parts.next() {
            path.push(part);
            if parts.peek().is_some() {
                match std::fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    _ => {
                        return Err(Error::UnsafePath {
                            path: rel.to_owned(),
                            reason: "a parent is not a real directory (symlink?)",
                        })
                    }
                }
            }
        }
        Ok(path)
    }

    fn temp_path(&self, target: &Path) -> PathBuf {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        target.with_file_name(format!(".{name}.kiln-{}.tmp", &suffix[..12]))
    }

    fn open_file(&mut self, p: Pending) -> Result<()> {
        let target = self.checked_target(&p.rel)?;
        let temp = self.temp_path(&target);
        // create_new: O_EXCL never follows a symlink planted at the name.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| Error::io("create", &temp, e))?;
        self.open.insert(
            p.id,
            Open {
                rel: p.rel,
                written: 0,
                file,
                temp,
                target,
                stat: p.stat,
            },
        );
        Ok(())
    }

    fn data(&mut self, id: u32, data: &[u8]) -> Result<()> {
        let Some(open) = self.open.get_mut(&id) else {
            return Err(Error::protocol(format!(
                "DATA for entry {id}, which is not a file kiln requested"
            )));
        };
        if !data.is_empty() {
            // The STAT's size bounds what is written: a daemon cannot fill
            // the disk through a file it declared small (a negative size
            // declares nothing).
            let declared = u64::try_from(open.stat.size).unwrap_or(0);
            let total = open.written.saturating_add(data.len() as u64);
            if total > declared {
                return Err(Error::protocol(format!(
                    "DATA for {:?} exceeds the {declared} bytes its STAT declared",
                    open.rel
                )));
            }
            open.written = total;
            return open
                .file
                .write_all(data)
                .map_err(|e| Error::io("write", &open.temp, e));
        }
        let Some(open) = self.open.remove(&id) else {
            return Ok(());
        };
        let perm = unix_perm(open.stat.mode, self.options.keep_setid);
        open.file
            .set_permissions(std::fs::Permissions::from_mode(perm))
            .map_err(|e| Error::io("chmod", &open.temp, e))?;
        if let Some(t) = mod_time(&open.stat) {
            open.file
                .set_modified(t)
                .map_err(|e| Error::io("set mtime", &open.temp, e))?;
        }
        drop(open.file);
        if let Err(e) = std::fs::rename(&open.temp, &open.target) {
            let _ = std::fs::remove_file(&open.temp);
            return Err(Error::io("rename into", &open.target, e));
        }
        Ok(())
    }

    /// Hardlinks (now that their targets are written), then directory
    /// modes and times, deepest first.
    fn finish(&mut self) -> Result<()> {
        for (rel, link) in std::mem::take(&mut self.hardlinks) {
            let src = self.checked_target(&link)?;
            match std::fs::symlink_metadata(&src) {
                Ok(m) if m.is_file() => {}
                _ => {
                    return Err(Error::UnsafePath {
                        path: rel,
                        reason: "hardlink target is not a regular file",
                    })
                }
            }
            let dst = self.checked_target(&rel)?;
            if std::fs::symlink_metadata(&dst).is_ok() {
                remove(&dst)?;
            }
            std::fs::hard_link(&src, &dst).map_err(|e| Error::io("link", &dst, e))?;
        }
        for (rel, stat) in std::mem::take(&mut self.dir_meta).into_iter().rev() {
            let path = self.checked_target(&rel)?;
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {}
                _ => continue,
            }
            let dir = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
            if let Some(t) = mod_time(&stat) {
                dir.set_modified(t)
                    .map_err(|e| Error::io("set mtime", &path, e))?;
            }
            let perm = unix_perm(stat.mode, self.options.keep_setid);
            dir.set_permissions(std::fs::Permissions::from_mode(perm))
                .map_err(|e| Error::io("chmod", &path, e))?;
        }
        Ok(())
    }
}

/// Checks a daemon-sent path: relative, `/`-separated, no empty, `.` or
/// `..` components, no NUL.
fn validate_rel(path: &str) -> Result<&str> {
    let refuse = |reason| {
        Err(Error::UnsafePath {
            path: path.to_owned(),
            reason,
        })
    };
    if path.is_empty() {
        return refuse("empty path");
    }
    if path.len() > MAX_PATH {
        return refuse("longer than 4096 bytes");
    }
    if path.starts_with('/') {
        return refuse("absolute path");
    }
    if path.contains('\0') {
        return refuse("NUL in path");
    }
    for part in path.split('/') {
        match part {
            "" => return refuse("empty path component"),
            "." => return refuse("'.' component"),
            ".." => return refuse("'..' component"),
            _ => {}
        }
    }
    Ok(path)
}

/// Orders paths component by component, byte-wise (the walk order).
fn compare_paths(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/')
        .map(str::as_bytes)
        .cmp(b.split('/').map(str::as_bytes))
}

fn mod_time(stat: &Stat) -> Option<SystemTime> {
    let nanos = u64::try_from(stat.mod_time).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(nanos))
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir(path).map_err(|e| Error::io("mkdir", path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io("chmod", path, e))
}

/// Removes a non-directory entry (a symlink itself, never its target).
fn remove(path: &Path) -> Result<()> {
    std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e))
}

/// Crafted packet streams from a hostile daemon.
#[cfg(test)]
mod hostile;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_hostile_paths() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/.",
            "a\0b",
        ] {
            assert!(validate_rel(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(validate_rel("a/b c/ü").is_ok());
    }

    #[test]
    fn orders_like_the_walk() {
        use std::cmp::Ordering::Less;
        assert_eq!(compare_paths("a", "a/b"), Less);
        assert_eq!(compare_paths("a/b", "a.txt"), Less);
        assert_eq!(compare_paths("a.txt", "b"), Less);
    }
}
