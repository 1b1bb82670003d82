//! The sending side of fsutil's packet protocol (fsutil `send.go`).
//!
//! kiln sends one STAT per entry and an empty STAT to end the listing; the
//! receiver asks for file contents with REQ{id} (id = index among all STAT
//! packets); each answer is DATA{id} chunks of at most 32 KiB and an empty
//! DATA{id}. The receiver sends FIN when it has everything, kiln answers
//! FIN and the call ends. ERR carries an error's text either way.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::{Stream, StreamExt};
use kiln_proto::fsutil::types::packet::PacketType;
use kiln_proto::fsutil::types::{Packet, Stat};
use tokio::sync::mpsc;
use tonic::Status;

use super::filter::Filter;
use super::stat::can_request_data;
use super::walk::walk;
use crate::error::{Error, Result};

/// Largest DATA payload, as fsutil's 32 KiB copy buffer.
pub const CHUNK_SIZE: usize = 32 * 1024;

/// How many requested files are read at once (fsutil uses 4 workers).
const SEND_WORKERS: usize = 4;

/// Live counters of what file sync has sent.
#[derive(Debug, Default)]
pub(crate) struct SyncCounters {
    calls: AtomicU64,
    entries: AtomicU64,
    files: AtomicU64,
    bytes: AtomicU64,
}

impl SyncCounters {
    pub(crate) fn snapshot(&self) -> SyncStats {
        SyncStats {
            calls: self.calls.load(Ordering::Relaxed),
            entries: self.entries.load(Ordering::Relaxed),
            files: self.files.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// What file sync has sent so far, summed over every DiffCopy call of the
/// session. Subtract two snapshots to see what one build sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// DiffCopy calls served.
    pub calls: u64,
    /// STAT packets sent (entries listed).
    pub entries: u64,
    /// Files whose content the daemon requested.
    pub files: u64,
    /// File content bytes sent in DATA packets.
    pub bytes: u64,
}

impl std::ops::Sub for SyncStats {
    type Output = Self;
    fn sub(self, earlier: Self) -> Self {
        Self {
            calls: self.calls.saturating_sub(earlier.calls),
            entries: self.entries.saturating_sub(earlier.entries),
            files: self.files.saturating_sub(earlier.files),
            bytes: self.bytes.saturating_sub(earlier.bytes),
        }
    }
}

/// Packets for the response stream, a few at a time: the listing goes in
/// batches of [`LISTING_BATCH`] STATs, so the stream's encoder finds many
/// packets ready and writes big HTTP/2 frames. One packet per message made
/// an unchanged 20,000-file re-sync cost 13,000 socket writes, each a
/// message the daemon's side of the session tunnel had to unwrap.
pub(crate) type Outbound = mpsc::Sender<Vec<Result<Packet, Status>>>;

/// STAT packets per listing batch (about 20 KiB of a typical listing).
const LISTING_BATCH: usize = 256;
/// Listed regular files by id: path and size when listed.
type FileTable = Arc<Mutex<HashMap<u32, (PathBuf, u64)>>>;

/// Runs the sender for one DiffCopy call until FIN or an error.
///
/// # Errors
/// [`Error::Remote`] when the daemon sends ERR, [`Error::PacketProtocol`]
/// for an unknown REQ id or a stream that ends without FIN,
/// [`Error::Stream`] when the stream fails, and walk errors (also sent to
/// the daemon as ERR).
pub(crate) async fn send<S>(
    root: PathBuf,
    filter: Filter,
    mut inbound: S,
    tx: Outbound,
    counters: Arc<SyncCounters>,
) -> Result<()>
where
    S: Stream<Item = Result<Packet, Status>> + Unpin + Send,
{
    counters.calls.fetch_add(1, Ordering::Relaxed);
    let files: FileTable = Arc::default();
    let mut walker = AbortOnDrop(tokio::task::spawn_blocking({
        let (files, tx, counters) = (files.clone(), tx.clone(), counters.clone());
        move || send_listing(&root, &filter, &files, &tx, &counters)
    }));
    // Unbounded on purpose: the daemon sends every REQ at once, and h2 closes
    // the connection (GOAWAY ENHANCE_YOUR_CALM "too_many_data_frames") when
    // too many small DATA frames sit unread. Reading them at once keeps the
    // stream drained; the queue holds at most one entry per listed file.
    let (req_tx, req_rx) = mpsc::unbounded_channel::<(u32, (PathBuf, u64))>();
    let mut workers = AbortOnDrop(tokio::spawn(send_files(req_rx, tx.clone(), counters)));
    let mut walking = true;
    let mut req_tx = Some(req_tx);
    loop {
        tokio::select! {
            done = &mut walker.0, if walking => {
                walking = false;
                done.map_err(|e| Error::protocol(format!("walk task failed: {e}")))??;
            }
            done = &mut workers.0, if req_tx.is_some() => {
                done.map_err(|e| Error::protocol(format!("send task failed: {e}")))??;
                return Err(Error::protocol("file sender stopped early"));
            }
            packet = inbound.next() => {
                let packet = match packet {
                    None => return Err(Error::protocol("stream ended before FIN")),
                    Some(Err(status)) => return Err(Error::Stream(status)),
                    Some(Ok(packet)) => packet,
                };
                match PacketType::try_from(packet.r#type) {
                    Ok(PacketType::PacketReq) => {
                        let file = files
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .remove(&packet.id)
                            .ok_or_else(|| Error::protocol(format!("invalid file id {}", packet.id)))?;
                        let queue = req_tx.as_ref().ok_or_else(|| Error::protocol("REQ after FIN"))?;
                        if queue.send((packet.id, file)).is_err() {
                            return Err(Error::protocol("file sender stopped early"));
                        }
                    }
                    Ok(PacketType::PacketFin) => {
                        // Every requested file has arrived: finish the queue,
                        // then answer FIN.
                        drop(req_tx.take());
                        (&mut workers.0)
                            .await
                            .map_err(|e| Error::protocol(format!("send task failed: {e}")))??;
                        if walking {
                            (&mut walker.0)
                                .await
                                .map_err(|e| Error::protocol(format!("walk task failed: {e}")))??;
                        }
                        let fin = Packet { r#type: PacketType::PacketFin as i32, ..Packet::default() };
                        tx.send(vec![Ok(fin)]).await.map_err(|_| receiver_gone())?;
                        return Ok(());
                    }
                    Ok(PacketType::PacketErr) => {
                        return Err(Error::Remote {
                            message: String::from_utf8_lossy(&packet.data).into_owned(),
                        });
                    }
                    // STAT/DATA are never sent to a sender; fsutil ignores them.
                    _ => {}
                }
            }
        }
    }
}

/// Walks the tree and sends the STAT packets, then the empty STAT.
fn send_listing(
    root: &Path,
    filter: &Filter,
    files: &FileTable,
    tx: &Outbound,
    counters: &SyncCounters,
) -> Result<()> {
    let mut next_id: u32 = 0;
    let mut batch = Vec::with_capacity(LISTING_BATCH);
    let result = walk(root, filter, &mut |stat: Stat, abs: &Path| {
        if can_request_data(stat.mode) {
            files.lock().unwrap_or_else(PoisonError::into_inner).insert(
                next_id,
                (abs.to_path_buf(), u64::try_from(stat.size).unwrap_or(0)),
            );
        }
        next_id = next_id
            .checked_add(1)
            .ok_or_else(|| Error::protocol("more than 2^32 entries"))?;
        counters.entries.fetch_add(1, Ordering::Relaxed);
        batch.push(Ok(Packet {
            r#type: PacketType::PacketStat as i32,
            stat: Some(stat),
            ..Packet::default()
        }));
        if batch.len() == LISTING_BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(LISTING_BATCH));
            tx.blocking_send(full).map_err(|_| receiver_gone())?;
        }
        Ok(())
    });
    match result {
        Ok(()) => {
            tracing::debug!(entries = next_id, "file listing sent");
            batch.push(Ok(Packet {
                r#type: PacketType::PacketStat as i32,
                ..Packet::default()
            }));
            tx.blocking_send(batch).map_err(|_| receiver_gone())
        }
        Err(err) => {
            // What was listed, then the error.
            batch.push(Ok(Packet {
                r#type: PacketType::PacketErr as i32,
                data: err.to_string().into_bytes(),
                ..Packet::default()
            }));
            // The stream may already be gone; the walk error is what matters.
            let _ = tx.blocking_send(batch);
            Err(err)
        }
    }
}

/// Streams requested files, [`SEND_WORKERS`] at a time, each worker a
/// blocking thread reading with plain `std::fs` (tokio's file API hands
/// every read to the blocking pool: a 200 MiB context cost tens of
/// thousands of thread handoffs).
async fn send_files(
    requests: mpsc::UnboundedReceiver<(u32, (PathBuf, u64))>,
    tx: Outbound,
    counters: Arc<SyncCounters>,
) -> Result<()> {
    let requests = Arc::new(Mutex::new(requests));
    let workers: Vec<_> = (0..SEND_WORKERS)
        .map(|_| {
            let (requests, tx, counters) = (requests.clone(), tx.clone(), counters.clone());
            tokio::task::spawn_blocking(move || loop {
                let next = requests
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .blocking_recv();
                match next {
                    Some((id, (path, listed))) => send_file(id, &path, listed, &tx, &counters)?,
                    None => return Ok(()),
                }
            })
        })
        .collect();
    // The first failure ends the sync at once: the other readers wait
    // for requests that will never come (they stop when the queue closes).
    futures::future::try_join_all(workers.into_iter().map(|w| async move {
        w.await
            .map_err(|e| Error::protocol(format!("file reader failed: {e}")))?
    }))
    .await?;
    Ok(())
}

/// Sends one file as DATA packets of at most [`CHUNK_SIZE`] and an empty
/// DATA; a file smaller than a chunk goes in one batch with its end.
///
/// A file whose size differs from its listing (`listed`) fails the sync
/// ([`Error::FileChanged`]) rather than give the daemon a mixture of two
/// versions; one that can no longer be opened is sent empty, as fsutil
/// does.
fn send_file(
    id: u32,
    path: &Path,
    listed: u64,
    tx: &Outbound,
    counters: &SyncCounters,
) -> Result<()> {
    use std::io::Read as _;
    counters.files.fetch_add(1, Ordering::Relaxed);
    let data_packet = |data: Vec<u8>| {
        Ok(Packet {
            r#type: PacketType::PacketData as i32,
            id,
            data,
            ..Packet::default()
        })
    };
    let mut batch = Vec::with_capacity(2);
    // Like fsutil, a file that can no longer be opened is sent empty.
    match std::fs::File::open(path) {
        Ok(file) => {
            let mut file = file.take(0);
            let mut read = 0u64;
            loop {
                let mut data = Vec::with_capacity(CHUNK_SIZE);
                file.set_limit(CHUNK_SIZE as u64);
                let n = file
                    .read_to_end(&mut data)
                    .map_err(|e| Error::io("read", path, e))?;
                read += n as u64;
                if read > listed {
                    return Err(changed(path, listed, read));
                }
                if n == 0 {
                    break;
                }
                counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
                if n < CHUNK_SIZE {
                    // The last piece: sent with the end below.
                    batch.push(data_packet(data));
                    break;
                }
                // A bounded channel: waits while the HTTP/2 stream is full.
                tx.blocking_send(vec![data_packet(data)])
                    .map_err(|_| receiver_gone())?;
            }
            if read != listed {
                return Err(changed(path, listed, read));
            }
        }
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "requested file vanished"),
    }
    batch.push(data_packet(Vec::new()));
    tx.blocking_send(batch).map_err(|_| receiver_gone())
}

fn changed(path: &Path, listed: u64, read: u64) -> Error {
    Error::FileChanged {
        path: path.to_path_buf(),
        listed,
        read,
    }
}

fn receiver_gone() -> Error {
    Error::protocol("the daemon closed the stream")
}

/// Aborts a spawned task when the call ends early.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(mut rx: mpsc::Receiver<Vec<Result<Packet, Status>>>) -> Vec<(u32, usize)> {
        let mut out = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            for p in batch {
                let p = p.expect("a packet");
                assert_eq!(p.r#type, PacketType::PacketData as i32);
                out.push((p.id, p.data.len()));
            }
        }
        out
    }

    /// A file is sent in chunks of at most 32 KiB and ends with an empty
    /// DATA; a file that vanished after it was listed is sent empty, as
    /// fsutil does, rather than failing the build.
    #[test]
    fn files_in_chunks_and_vanished_files_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![1u8; CHUNK_SIZE * 2 + 5]).expect("write");
        let counters = SyncCounters::default();
        let (tx, rx) = mpsc::channel(64);
        let size = (CHUNK_SIZE * 2 + 5) as u64;
        send_file(7, &big, size, &tx, &counters).expect("send");
        send_file(8, &dir.path().join("gone"), 3, &tx, &counters)
            .expect("a vanished file is no error");
        drop(tx);
        assert_eq!(
            drain(rx),
            [(7, CHUNK_SIZE), (7, CHUNK_SIZE), (7, 5), (7, 0), (8, 0)]
        );
        assert_eq!(counters.snapshot().bytes, (CHUNK_SIZE * 2 + 5) as u64);
    }

    /// A file that grew or shrank after it was listed fails the sync with
    /// an error naming it and both sizes, whether the change falls inside
    /// a chunk or at a chunk boundary; one of the listed size is sent.
    #[test]
    fn a_file_that_changed_size_since_its_listing_fails_the_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("app.log");
        let counters = SyncCounters::default();
        for (listed, now) in [
            (10, 12),
            (12, 10),
            (CHUNK_SIZE as u64, CHUNK_SIZE + 1),
            (CHUNK_SIZE as u64 + 1, CHUNK_SIZE),
            (0, 1),
        ] {
            std::fs::write(&f, vec![7u8; now]).expect("write");
            let (tx, _rx) = mpsc::channel(64);
            let err = send_file(1, &f, listed, &tx, &counters)
                .expect_err(&format!("listed {listed}, now {now}"));
            let msg = err.to_string();
            assert!(
                matches!(err, Error::FileChanged { .. }) && msg.contains("app.log"),
                "{msg}"
            );
            assert!(
                msg.contains(&format!("listed with {listed} bytes")),
                "{msg}"
            );
        }
        std::fs::write(&f, vec![7u8; CHUNK_SIZE]).expect("write");
        let (tx, rx) = mpsc::channel(64);
        send_file(2, &f, CHUNK_SIZE as u64, &tx, &counters).expect("unchanged");
        drop(tx);
        assert_eq!(drain(rx), [(2, CHUNK_SIZE), (2, 0)]);
    }
}
