//! Loading an OCI layout into containerd's image store through its gRPC
//! API (no `ctr`), with every platform of a multi-platform image.
//!
//! [`Containerd::load`] does what `ctr images import` does, minus its
//! habit of keeping only the host's platform:
//!
//! 1. checks the socket (missing, forbidden, dead: each its own error) and
//!    that the namespace exists. It never creates one: a misspelt `k8s.io`
//!    would hold images that Kubernetes never sees. (`default` is let
//!    through: a fresh containerd lists no namespace until one is used.)
//! 2. takes a lease, so that nothing written is collected before the image
//!    names it; a load dropped mid-way (Ctrl-C) stops and deletes it on a
//!    task of its own ([`crate::store::settle`] waits for that), and it
//!    expires by itself after a day (`containerd.io/gc.expire`) should
//!    kiln die mid-load.
//! 3. writes each blob the image reaches that containerd lacks, children
//!    before parents, the parents labelled with the references containerd's
//!    garbage collector follows (`containerd.io/gc.ref.content.m.<i>`,
//!    `….config`, `….l.<i>`), so the image keeps them alive once the lease
//!    is gone. Layers are streamed from the tarball on a blocking thread,
//!    each checked against its digest by kiln and by containerd.
//! 4. creates the image record, or points an existing one at the new root;
//!    in `k8s.io` it is labelled `io.cri-containerd.image=managed`, so that
//!    the CRI plugin (k3s, kubelet) lists it.
//! 5. deletes the lease.
//!
//! Nothing is unpacked into a snapshotter: `ctr run`, `nerdctl run` and
//! the CRI plugin unpack an image the first time a container uses it. If a
//! step before the image record fails, no image record is created or
//! changed; the blobs written so far are collected with the lease.
//!
//! ```no_run
//! use kiln_image::containerd::Containerd;
//! use kiln_image::layout::Layout;
//! use kiln_image::ImageRef;
//!
//! # async fn load() -> Result<(), Box<dyn std::error::Error>> {
//! // k3s: Containerd::from_env(Some("/run/k3s/containerd/containerd.sock"), Some("k8s.io"))
//! let containerd = Containerd::from_env(None, None)?;
//! let layout = Layout::open("app.tar")?;
//! let loaded = containerd.load(&layout, &ImageRef::parse("app:latest")?).await?;
//! assert_eq!(loaded.name, "docker.io/library/app:latest");
//! # Ok(())
//! # }
//! ```

mod client;
mod plan;
mod proto;

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::mpsc;

pub use crate::error::ContainerdError;
pub use plan::{
    CRI_IMAGE_LABEL, CRI_IMAGE_MANAGED, DEFAULT_NAMESPACE, DEFAULT_SOCKET, ENV_ADDRESS,
    ENV_NAMESPACE, GC_EXPIRE, GC_REF_CONTENT, K3S_SOCKET, K8S_NAMESPACE,
};

use crate::digest::Digest;
use crate::error::LayoutError;
use crate::layout::{blob_path, Layout};
use crate::reference::ImageRef;
use crate::store::Loaded;
use client::{is_already_exists, is_not_found, Conn};
use plan::{Blob, Plan};
use proto::methods;

/// How long the lease outlives a kiln that dies mid-load (containerd's own
/// client uses the same).
const LEASE_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);
/// The size of the chunks a blob is streamed in (containerd accepts up to
/// 16 MiB a message).
const CHUNK: usize = 1024 * 1024;
/// How long to wait for another client that holds a blob's write lock.
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// A containerd to load images into: its gRPC socket and the namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Containerd {
    /// The gRPC socket (`/run/containerd/containerd.sock`).
    pub socket: PathBuf,
    /// The namespace images go into (`default`; `k8s.io` for Kubernetes).
    pub namespace: String,
}

impl Containerd {
    /// The containerd at `address` (`unix:///path` or `/path`), in
    /// `namespace`; `None` for the defaults.
    ///
    /// The address defaults to `$CONTAINERD_ADDRESS`, else
    /// `/run/containerd/containerd.sock` if it exists, else k3s's
    /// `/run/k3s/containerd/containerd.sock` if that exists, else
    /// `/run/containerd/containerd.sock`. The namespace defaults to
    /// `$CONTAINERD_NAMESPACE`, else `k8s.io` on k3s's socket, else
    /// `default`. Nothing is connected to yet.
    ///
    /// # Errors
    /// [`ContainerdError::InvalidAddress`] for an address that is not a
    /// unix socket's absolute path, [`ContainerdError::InvalidNamespace`]
    /// for a name containerd would refuse.
    pub fn from_env(
        address: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Containerd, ContainerdError> {
        let (socket, namespace) = plan::resolve(
            address,
            namespace,
            |k| std::env::var(k).ok(),
            |p| p.exists(),
        )?;
        Ok(Containerd { socket, namespace })
    }

    /// Loads every blob of `layout` that its root reaches (all platforms,
    /// attestations included) and points image `name` at the root
    /// ([`Layout::root`]). The name is stored as containerd spells it:
    /// `docker.io/library/app:latest`.
    ///
    /// # Errors
    /// [`ContainerdError::Layout`] for a layout that lacks a blob its
    /// root reaches or holds one that does not match its digest;
    /// [`ContainerdError::NoSocket`], [`ContainerdError::PermissionDenied`],
    /// [`ContainerdError::Connect`] and [`ContainerdError::Transport`] when
    /// the socket cannot be used; [`ContainerdError::NotContainerd`] when
    /// something else answers on it; [`ContainerdError::NoNamespace`] when the
    /// namespace does not exist; [`ContainerdError::Rpc`],
    /// [`ContainerdError::WriteBlob`] and [`ContainerdError::Locked`] when
    /// containerd refuses a call. With any of them no image record was
    /// created or changed.
    pub async fn load(&self, layout: &Layout, name: &ImageRef) -> Result<Loaded, ContainerdError> {
        let plan = Plan::of(layout).map_err(|source| ContainerdError::Layout { source })?;
        let conn = Conn::connect(&self.socket, &self.namespace).await?;
        self.check_namespace(&conn).await?;
        let lease = create_lease(&conn).await?;
        let (this, layout, name) = (self.clone(), layout.clone(), name.clone());
        // Dropped mid-way (Ctrl-C), the load stops and deletes its lease,
        // so what it wrote goes with containerd's next collection (the
        // image record, written last, is untouched unless it was being
        // written); `kiln_image::store::settle` waits for that.
        crate::store::undoable(
            move |mut cancelled| async move {
                let leased = conn.with_lease(&lease);
                let stopped = || ContainerdError::Interrupted {
                    socket: this.socket.clone(),
                    detail: "the load was cancelled".into(),
                };
                // Writing blobs may stop anywhere: nothing names them. The
                // image record, once asked for, is let finish (an answer
                // dropped would leave containerd's outcome unknown).
                let result = match tokio::select! {
                    r = write_blobs(&leased, &plan, &layout) => r,
                    () = &mut cancelled => Err(stopped()),
                } {
                    Ok(()) if cancelled.now() => Err(stopped()),
                    Ok(()) => this.set_image(&leased, &plan, &name).await,
                    Err(e) => Err(e),
                };
                let deleted = conn
                    .call::<_, proto::Empty>(
                        methods::LEASES_DELETE,
                        proto::DeleteLeaseRequest {
                            id: lease.clone(),
                            sync: false,
                        },
                    )
                    .await;
                if let Err(e) = deleted {
                    // The lease expires by itself; the load's outcome stands.
                    tracing::warn!(lease = %lease, error = %e, "cannot delete containerd lease");
                }
                result?;
                tracing::debug!(name = %name, digest = %plan.root.digest, namespace = %this.namespace, "image loaded into containerd");
                Ok(Loaded {
                    name: name.to_string(),
                    digest: plan.root.digest.clone(),
                    platforms: plan.platforms,
                })
            },
            |detail| {
                Err(ContainerdError::Interrupted {
                    socket: self.socket.clone(),
                    detail,
                })
            },
        )
        .await
    }

    /// Checks, before a build, that a load could start: the socket answers
    /// as containerd and the namespace exists.
    ///
    /// # Errors
    /// The connection and namespace errors of [`Containerd::load`].
    pub async fn check(&self) -> Result<(), ContainerdError> {
        let conn = Conn::connect(&self.socket, &self.namespace).await?;
        self.check_namespace(&conn).await
    }

    /// Fails unless the namespace exists (but lets `default` through).
    async fn check_namespace(&self, conn: &Conn) -> Result<(), ContainerdError> {
        let listed: proto::ListNamespacesResponse = conn
            .unary(
                methods::NAMESPACES_LIST,
                proto::ListNamespacesRequest::default(),
            )
            .await
            .map_err(|s| match s.code() {
                tonic::Code::Unimplemented => ContainerdError::NotContainerd {
                    socket: self.socket.clone(),
                },
                _ => conn.rpc_error(methods::NAMESPACES_LIST, s),
            })?;
        let mut existing: Vec<String> = listed.namespaces.into_iter().map(|n| n.name).collect();
        existing.sort();
        namespace_check(&self.socket, &self.namespace, existing)
    }

    /// Creates the image record, or points the existing one at the root.
    async fn set_image(
        &self,
        conn: &Conn,
        plan: &Plan,
        name: &ImageRef,
    ) -> Result<(), ContainerdError> {
        let labels = image_labels(&self.namespace);
        let image = proto::Image {
            name: name.to_string(),
            labels: labels.clone(),
            target: Some(proto::Descriptor {
                media_type: plan.root.media_type.clone(),
                digest: plan.root.digest.to_string(),
                size: size_i64(plan.root.size),
                annotations: HashMap::new(),
            }),
            created_at: None,
            updated_at: None,
        };
        let created = conn
            .unary::<_, proto::CreateImageResponse>(
                methods::IMAGES_CREATE,
                proto::CreateImageRequest {
                    image: Some(image.clone()),
                },
            )
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(s) if is_already_exists(&s) => {
                // Keep the record's other labels: change the target and ours.
                let mut paths = vec!["target".to_string()];
                paths.extend(labels.keys().map(|k| format!("labels.{k}")));
                conn.call::<_, proto::UpdateImageResponse>(
                    methods::IMAGES_UPDATE,
                    proto::UpdateImageRequest {
                        image: Some(image),
                        update_mask: Some(proto::FieldMask { paths }),
                    },
                )
                .await
                .map(|_| ())
            }
            Err(s) => Err(conn.rpc_error(methods::IMAGES_CREATE, s)),
        }
    }
}

/// The namespace check: `namespace` must be among `existing`, except
/// `default`, which containerd makes on first use.
fn namespace_check(
    socket: &std::path::Path,
    namespace: &str,
    existing: Vec<String>,
) -> Result<(), ContainerdError> {
    if namespace == DEFAULT_NAMESPACE || existing.iter().any(|n| n == namespace) {
        return Ok(());
    }
    Err(ContainerdError::NoNamespace {
        socket: socket.to_path_buf(),
        namespace: namespace.to_string(),
        existing,
    })
}

/// The labels of the image record: in `k8s.io`, the one that makes the CRI
/// plugin count the image as its own.
fn image_labels(namespace: &str) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    if namespace == K8S_NAMESPACE {
        labels.insert(CRI_IMAGE_LABEL.to_string(), CRI_IMAGE_MANAGED.to_string());
    }
    labels
}

fn size_i64(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// Creates a lease that expires by itself after [`LEASE_EXPIRY`].
async fn create_lease(conn: &Conn) -> Result<String, ContainerdError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let id = format!("kiln-load-{}-{}", std::process::id(), now.as_nanos());
    let labels = HashMap::from([(
        GC_EXPIRE.to_string(),
        plan::rfc3339((now + LEASE_EXPIRY).as_secs()),
    )]);
    conn.call::<_, proto::CreateLeaseResponse>(
        methods::LEASES_CREATE,
        proto::CreateLeaseRequest {
            id: id.clone(),
            labels,
        },
    )
    .await?;
    Ok(id)
}

/// Writes the blobs containerd lacks: the streamed ones (layers) first, in
/// the tarball's order, then the documents children first. Blobs it has are
/// added to the lease and given the labels they lack.
async fn write_blobs(conn: &Conn, plan: &Plan, layout: &Layout) -> Result<(), ContainerdError> {
    let mut missing = BTreeSet::new();
    for blob in &plan.blobs {
        match info(conn, &blob.digest).await? {
            Some(info) => {
                tracing::debug!(digest = %blob.digest, "containerd has the blob");
                keep_existing(conn, blob, Some(info)).await?;
            }
            None => {
                missing.insert(blob.digest.clone());
            }
        }
    }
    let streamed: BTreeSet<Digest> = plan
        .blobs
        .iter()
        .filter(|b| !b.in_memory && missing.contains(&b.digest))
        .map(|b| b.digest.clone())
        .collect();
    if !streamed.is_empty() {
        stream_blobs(conn, plan, layout, streamed).await?;
    }
    for blob in plan
        .blobs
        .iter()
        .filter(|b| b.in_memory && missing.contains(&b.digest))
    {
        let Some(doc) = layout.document(&blob.digest) else {
            continue;
        };
        let (tx, mut rx) = mpsc::channel(1);
        // The receiver is right here: the send cannot fail.
        let _ = tx.send(Bytes::copy_from_slice(doc)).await;
        drop(tx);
        write_blob(conn, blob, &mut rx).await?;
    }
    Ok(())
}

/// A blob containerd already has: holds it with the lease (so it is not
/// collected before the image names it) and adds the labels it lacks.
async fn keep_existing(
    conn: &Conn,
    blob: &Blob,
    info: Option<proto::Info>,
) -> Result<(), ContainerdError> {
    if let Some(lease) = conn.lease() {
        conn.call::<_, proto::Empty>(
            methods::LEASES_ADD_RESOURCE,
            proto::AddResourceRequest {
                id: lease.to_string(),
                resource: Some(proto::Resource {
                    id: blob.digest.to_string(),
                    r#type: "content".to_string(),
                }),
            },
        )
        .await?;
    }
    let has = info.map(|i| i.labels).unwrap_or_default();
    let lacking: Vec<(&String, &String)> = blob
        .labels
        .iter()
        .filter(|(k, v)| has.get(*k) != Some(*v))
        .collect();
    if lacking.is_empty() {
        return Ok(());
    }
    let paths = lacking.iter().map(|(k, _)| format!("labels.{k}")).collect();
    let labels = lacking
        .into_iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    conn.call::<_, proto::UpdateResponse>(
        methods::CONTENT_UPDATE,
        proto::UpdateRequest {
            info: Some(proto::Info {
                digest: blob.digest.to_string(),
                labels,
                ..Default::default()
            }),
            update_mask: Some(proto::FieldMask { paths }),
        },
    )
    .await?;
    Ok(())
}

/// Streams the blobs `wanted` from the tarball into containerd: a blocking
/// thread reads the tarball ([`Layout::for_each_blob`], digest-checked) and
/// hands each blob's chunks over a channel.
async fn stream_blobs(
    conn: &Conn,
    plan: &Plan,
    layout: &Layout,
    wanted: BTreeSet<Digest>,
) -> Result<(), ContainerdError> {
    let (blob_tx, mut blob_rx) = mpsc::channel::<(Digest, mpsc::Receiver<Bytes>)>(1);
    let reader_layout = layout.clone();
    let reader_wanted = wanted.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let mut stopped = false;
        let tar = reader_layout.path().to_path_buf();
        let result = reader_layout.for_each_blob(|digest, _size, bytes| {
            if !reader_wanted.contains(digest) {
                return Ok(());
            }
            let stop = || LayoutError::ReadEntry {
                tar: tar.clone(),
                entry: blob_path(digest),
                source: std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "the load into containerd stopped",
                ),
            };
            let (tx, rx) = mpsc::channel(4);
            if blob_tx.blocking_send((digest.clone(), rx)).is_err() {
                stopped = true;
                return Err(stop());
            }
            loop {
                let chunk = read_chunk(bytes).map_err(|source| LayoutError::ReadEntry {
                    tar: tar.clone(),
                    entry: blob_path(digest),
                    source,
                })?;
                if chunk.is_empty() {
                    return Ok(());
                }
                if tx.blocking_send(chunk).is_err() {
                    stopped = true;
                    return Err(stop());
                }
            }
        });
        (result, stopped)
    });

    let consumed = async {
        let mut written = BTreeSet::new();
        while let Some((digest, mut chunks)) = blob_rx.recv().await {
            if let Some(blob) = plan.blobs.iter().find(|b| b.digest == digest) {
                write_blob(conn, blob, &mut chunks).await?;
                written.insert(digest);
            }
        }
        Ok::<_, ContainerdError>(written)
    }
    .await;
    // A reader still sending must find the channel closed, not wait.
    drop(blob_rx);
    let tar = layout.path().to_path_buf();
    match consumed {
        Ok(written) => {
            let (result, _) = reader
                .await
                .map_err(|_| ContainerdError::Reader { tar: tar.clone() })?;
            result.map_err(|source| ContainerdError::Layout { source })?;
            // The plan found every blob in the tarball's listing.
            if let Some(digest) = wanted.difference(&written).next() {
                return Err(ContainerdError::Layout {
                    source: LayoutError::MissingBlob {
                        tar,
                        digest: digest.clone(),
                    },
                });
            }
            Ok(())
        }
        Err(e @ ContainerdError::WriteBlob { .. }) => {
            // A blob containerd refused may be one the reader has just
            // found corrupt (it checks once the blob is read): its error
            // says more.
            if let Ok(Ok((Err(source), false))) =
                tokio::time::timeout(Duration::from_secs(10), reader).await
            {
                return Err(ContainerdError::Layout { source });
            }
            Err(e)
        }
        // The reader stops at its next send.
        Err(e) => Err(e),
    }
}

/// Up to [`CHUNK`] bytes; empty at the end.
fn read_chunk(bytes: &mut dyn Read) -> std::io::Result<Bytes> {
    let mut buf = vec![0u8; CHUNK];
    let mut filled = 0;
    while filled < CHUNK {
        match bytes.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(Bytes::from(buf))
}

/// Writes one blob from `chunks` (a `Content.Write` stream: WRITE
/// messages, then COMMIT with the expected digest, size and labels). A
/// blob that appeared meanwhile counts as written; one another client is
/// writing is waited for.
async fn write_blob(
    conn: &Conn,
    blob: &Blob,
    chunks: &mut mpsc::Receiver<Bytes>,
) -> Result<(), ContainerdError> {
    let reference = format!("kiln-load-{}", blob.digest);
    let written = write_stream(conn, blob, &reference, chunks).await;
    let status = match written {
        Ok(()) => {
            tracing::debug!(digest = %blob.digest, size = blob.size, "blob written to containerd");
            return Ok(());
        }
        Err(s) => s,
    };
    // Whatever happens next, the reader must not block on this blob.
    while chunks.recv().await.is_some() {}
    if is_already_exists(&status) {
        // Written meanwhile by another client.
        let info = info(conn, &blob.digest).await?;
        return keep_existing(conn, blob, info).await;
    }
    if status.code() == tonic::Code::Unavailable {
        // containerd's answer to a ref another writer holds.
        tracing::debug!(digest = %blob.digest, "another client is writing the blob; waiting");
        let info = wait_for(conn, blob, reference).await?;
        return keep_existing(conn, blob, Some(info)).await;
    }
    Err(ContainerdError::WriteBlob {
        socket: conn.socket.clone(),
        digest: blob.digest.clone(),
        source: Box::new(status),
    })
}

async fn write_stream(
    conn: &Conn,
    blob: &Blob,
    reference: &str,
    chunks: &mut mpsc::Receiver<Bytes>,
) -> Result<(), tonic::Status> {
    let (req_tx, req_rx) = mpsc::channel::<proto::WriteContentRequest>(2);
    let requests =
        futures::stream::unfold(
            req_rx,
            |mut rx| async move { rx.recv().await.map(|m| (m, rx)) },
        );
    let message =
        |action: proto::WriteAction, offset: u64, data: Bytes| proto::WriteContentRequest {
            action: action as i32,
            r#ref: reference.to_string(),
            total: size_i64(blob.size),
            expected: blob.digest.to_string(),
            offset: size_i64(offset),
            data,
            labels: HashMap::new(),
        };
    let feed = async {
        // Offset 0 first: containerd truncates what an earlier, broken
        // write under the same ref left.
        let mut offset = 0u64;
        while let Some(chunk) = chunks.recv().await {
            let len = chunk.len() as u64;
            if req_tx
                .send(message(proto::WriteAction::Write, offset, chunk))
                .await
                .is_err()
            {
                return;
            }
            offset += len;
        }
        let mut commit = message(proto::WriteAction::Commit, offset, Bytes::new());
        commit.labels = blob
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let _ = req_tx.send(commit).await;
    };
    let call = async {
        let mut responses = conn
            .streaming::<_, proto::WriteContentResponse, _>(methods::CONTENT_WRITE, requests)
            .await?;
        let mut committed = false;
        while let Some(r) = responses.message().await? {
            committed = r.action == proto::WriteAction::Commit as i32;
        }
        if committed {
            Ok(())
        } else {
            Err(tonic::Status::data_loss(
                "the write stream ended before containerd committed the blob",
            ))
        }
    };
    tokio::pin!(feed, call);
    let mut fed = false;
    loop {
        tokio::select! {
            () = &mut feed, if !fed => fed = true,
            r = &mut call => return r,
        }
    }
}

/// What containerd knows of `digest`; `None` if it does not have it.
async fn info(conn: &Conn, digest: &Digest) -> Result<Option<proto::Info>, ContainerdError> {
    let info = conn
        .unary::<_, proto::InfoResponse>(
            methods::CONTENT_INFO,
            proto::InfoRequest {
                digest: digest.to_string(),
            },
        )
        .await;
    match info {
        Ok(r) => Ok(Some(r.info.unwrap_or_default())),
        Err(s) if is_not_found(&s) => Ok(None),
        Err(s) => Err(conn.rpc_error(methods::CONTENT_INFO, s)),
    }
}

/// Waits for another client to finish writing `blob`.
async fn wait_for(
    conn: &Conn,
    blob: &Blob,
    reference: String,
) -> Result<proto::Info, ContainerdError> {
    let start = tokio::time::Instant::now();
    while start.elapsed() < LOCK_WAIT {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(info) = info(conn, &blob.digest).await? {
            return Ok(info);
        }
    }
    Err(ContainerdError::Locked {
        socket: conn.socket.clone(),
        digest: blob.digest.clone(),
        reference,
        seconds: LOCK_WAIT.as_secs(),
    })
}

#[cfg(test)]
mod tests;
