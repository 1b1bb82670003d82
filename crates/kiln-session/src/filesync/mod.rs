//! `moby.filesync.v1.FileSync`: kiln sends local directories (the build
//! context, the Dockerfile's directory, named contexts) to the daemon.
//!
//! The daemon calls `DiffCopy` with the directory's name in the `dir-name`
//! metadata and its include/exclude/follow patterns; kiln walks the
//! directory and answers with the fsutil packet protocol (see `send.rs`).

mod filter;
mod pattern;
mod send;
mod stat;
mod walk;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt as _;
use kiln_proto::fsutil::types::Packet;
use kiln_proto::headers::{
    FILESYNC_DIR_NAME, FILESYNC_EXCLUDE_PATTERNS, FILESYNC_FOLLOW_PATHS, FILESYNC_INCLUDE_PATTERNS,
};
use kiln_proto::moby::filesync::v1::file_sync_server::{FileSync, FileSyncServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

pub use filter::{parse_ignore_file, Filter};
pub use pattern::{clean_path, Pattern, PatternMatcher};
pub use send::{SyncStats, CHUNK_SIZE};
pub use stat::{
    go_mode, MODE_CHAR_DEVICE, MODE_DEVICE, MODE_DIR, MODE_NAMED_PIPE, MODE_PERM, MODE_SETGID,
    MODE_SETUID, MODE_SOCKET, MODE_STICKY, MODE_SYMLINK, MODE_TYPE,
};
pub use walk::{walk, Visitor};

pub(crate) use send::SyncCounters;
pub(crate) use stat::{can_request_data, unix_perm};

use crate::error::{Error, Result};
use crate::metadata;

/// The packets of one DiffCopy call (the sender queues them in batches).
pub type PacketStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<Packet, Status>> + Send + 'static>>;

/// How one registered directory is sent.
#[derive(Debug, Clone, Default)]
pub struct SyncDirOptions {
    dockerignore: bool,
    excludes: Vec<String>,
}

impl SyncDirOptions {
    /// Also apply the directory's own `.dockerignore` (its patterns are added
    /// after the daemon's exclude patterns). BuildKit's Dockerfile frontend
    /// reads `.dockerignore` itself and sends the patterns, so this is for
    /// builds without that frontend, such as kiln's own.
    #[must_use]
    pub fn dockerignore(mut self, apply: bool) -> Self {
        self.dockerignore = apply;
        self
    }

    /// Exclude these patterns on every call, after the daemon's own.
    #[must_use]
    pub fn exclude<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.excludes.extend(patterns.into_iter().map(Into::into));
        self
    }
}

#[derive(Debug, Clone)]
struct SyncDir {
    path: PathBuf,
    options: SyncDirOptions,
}

/// The local directories a session exposes, by name.
#[derive(Debug, Clone, Default)]
pub struct FileSyncProvider {
    dirs: BTreeMap<String, SyncDir>,
    counters: Arc<SyncCounters>,
}

impl FileSyncProvider {
    /// Registers `path` under `name` (`context`, `dockerfile`, or the name
    /// of a local source in the LLB).
    ///
    /// # Errors
    /// [`Error::Duplicate`] when `name` is taken, [`Error::Io`] when `path`
    /// cannot be resolved, [`Error::NotADirectory`] when it is no directory.
    pub fn add_dir(
        &mut self,
        name: impl Into<String>,
        path: impl Into<PathBuf>,
        options: SyncDirOptions,
    ) -> Result<()> {
        let name = name.into();
        let path = path.into();
        resolve_root(&name, &path)?;
        if self.dirs.contains_key(&name) {
            return Err(Error::Duplicate {
                kind: "sync dir",
                name,
            });
        }
        self.dirs.insert(name, SyncDir { path, options });
        Ok(())
    }

    /// Whether no directory is registered.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// The registered names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.dirs.keys().map(String::as_str)
    }

    /// What has been sent so far.
    pub fn stats(&self) -> SyncStats {
        self.counters.snapshot()
    }

    pub(crate) fn into_server(self) -> FileSyncServer<Self> {
        FileSyncServer::new(self)
            .max_decoding_message_size(kiln_proto::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(kiln_proto::MAX_MESSAGE_SIZE)
    }
}

/// fsutil's `NewFS`: the root is used with its symlinks resolved.
fn resolve_root(name: &str, path: &Path) -> Result<PathBuf> {
    let root = std::fs::canonicalize(path).map_err(|e| Error::io("resolve", path, e))?;
    if !root.is_dir() {
        return Err(Error::NotADirectory {
            name: name.to_owned(),
            path: path.to_path_buf(),
        });
    }
    Ok(root)
}

/// Builds the filter for one call; blocking (reads `.dockerignore`, follows
/// links).
fn call_filter(
    name: &str,
    dir: &SyncDir,
    includes: &[String],
    mut excludes: Vec<String>,
    follow: &[String],
) -> Result<(PathBuf, Filter)> {
    let root = resolve_root(name, &dir.path)?;
    excludes.extend(dir.options.excludes.iter().cloned());
    if dir.options.dockerignore {
        excludes.extend(filter::read_dockerignore(&root)?);
    }
    let filter = Filter::new(&root, includes, &excludes, follow)?;
    Ok((root, filter))
}

#[tonic::async_trait]
impl FileSync for FileSyncProvider {
    type DiffCopyStream = PacketStream;
    type TarStreamStream = PacketStream;

    async fn diff_copy(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::DiffCopyStream>, Status> {
        let md = request.metadata();
        let name = metadata::first(md, FILESYNC_DIR_NAME).unwrap_or_default();
        let includes = metadata::values(md, FILESYNC_INCLUDE_PATTERNS);
        let excludes = metadata::values(md, FILESYNC_EXCLUDE_PATTERNS);
        let follow = metadata::values(md, FILESYNC_FOLLOW_PATHS);
        let Some(dir) = self.dirs.get(&name).cloned() else {
            return Err(Status::not_found(format!(
                "no access allowed to dir {name:?}"
            )));
        };
        tracing::debug!(
            dir = %name,
            includes = includes.len(),
            excludes = excludes.len(),
            follow = follow.len(),
            "file sync requested"
        );
        let (root, filter) = {
            let name = name.clone();
            tokio::task::spawn_blocking(move || {
                call_filter(&name, &dir, &includes, excludes, &follow)
            })
            .await
            .map_err(|e| Status::internal(format!("filter task failed: {e}")))?
            .map_err(|e| e.to_status())?
        };
        let (tx, rx) = mpsc::channel(16);
        let inbound = request.into_inner();
        let counters = self.counters.clone();
        tokio::spawn(async move {
            let before = counters.snapshot();
            match send::send(root, filter, inbound, tx.clone(), counters.clone()).await {
                Ok(()) => {
                    let sent = counters.snapshot() - before;
                    tracing::debug!(dir = %name, files = sent.files, bytes = sent.bytes, "file sync done");
                }
                Err(err) => {
                    tracing::warn!(dir = %name, error = %err, "file sync failed");
                    let _ = tx.send(vec![Err(err.to_status())]).await;
                }
            }
        });
        Ok(Response::new(Box::pin(
            ReceiverStream::new(rx).flat_map(futures::stream::iter),
        )))
    }

    async fn tar_stream(
        &self,
        _request: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::TarStreamStream>, Status> {
        Err(Status::unimplemented("kiln serves FileSync/DiffCopy only"))
    }
}
