//! Outputs fitted to the daemon: what a user asks for (`-t`, `-o`) becomes
//! the exporters *this* daemon has, plus work kiln does after the solve.
//!
//! A Docker Engine with the classic image store has no `image`, `oci` or
//! `docker` exporter and no multi-platform images: it stores an image with
//! its `moby` exporter, and kiln then pushes it or saves it (the Engine's
//! `GET /images/get` writes a docker-archive that is also an OCI layout) to
//! give the user what they asked for. What cannot be done there is refused
//! before anything is built, naming the image store and the way out.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_client::kiln_proto::attrs::exporter as ex;
use kiln_client::kiln_session::ExposeSecret;
use kiln_client::{DaemonInfo, Engine, ExporterKind, ExporterSpec, RegistryAuth};
use kiln_image::ImageRef;

use crate::error::BuildError;
use crate::session::{storeless, DaemonOutput, Target};
use crate::spec::{Dest, OutputSpec};

/// Work kiln does itself once the solve succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum After {
    /// The Engine pushes `name` (stored by the `moby` exporter).
    Push { name: ImageRef },
    /// Save `temp` from the Engine's store into `dest` as a docker-archive /
    /// OCI layout naming the image `name`, then untag `temp`.
    Save {
        temp: String,
        dest: Dest,
        name: Option<ImageRef>,
        kind: &'static str,
    },
    /// Compress `from` (a temporary tarball beside `to`) into `to` with
    /// gzip, then remove `from`.
    Gzip { from: PathBuf, to: PathBuf },
    /// Load the OCI layout tarball `tar` (temporary) into `store` as
    /// `name`, then remove it.
    Load {
        tar: PathBuf,
        store: Store,
        name: ImageRef,
    },
}

/// An image store kiln loads a build into after the solve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Store {
    /// podman's API socket.
    Podman { socket: PathBuf },
    /// A containerd socket and namespace.
    Containerd { socket: PathBuf, namespace: String },
}

impl Store {
    /// `podman` or `containerd`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Podman { .. } => "podman",
            Store::Containerd { .. } => "containerd",
        }
    }

    fn socket(&self) -> &Path {
        match self {
            Store::Podman { socket } | Store::Containerd { socket, .. } => socket,
        }
    }

    /// Where, for messages: `podman (unix:///run/podman/podman.sock)`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Store::Podman { socket } => format!("podman (unix://{})", socket.display()),
            Store::Containerd { socket, namespace } => format!(
                "containerd (unix://{}, namespace {namespace})",
                socket.display()
            ),
        }
    }

    /// Resolves a `type=podman`/`type=containerd` output's socket.
    fn resolve(spec: &OutputSpec) -> Result<Option<Store>, BuildError> {
        Ok(match spec {
            OutputSpec::Podman { address, .. } => {
                let p = kiln_image::podman::Podman::from_env(address.as_deref())
                    .map_err(|e| BuildError::invalid("-o type=podman", e.to_string()))?;
                Some(Store::Podman { socket: p.socket })
            }
            OutputSpec::Containerd {
                address, namespace, ..
            } => {
                let c = kiln_image::containerd::Containerd::from_env(
                    address.as_deref(),
                    namespace.as_deref(),
                )
                .map_err(|e| BuildError::invalid("-o type=containerd", e.to_string()))?;
                Some(Store::Containerd {
                    socket: c.socket,
                    namespace: c.namespace,
                })
            }
            _ => None,
        })
    }
}

/// Outputs as the daemon gets them, and what kiln does afterwards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fitted {
    pub outputs: Vec<DaemonOutput>,
    pub after: Vec<After>,
    /// Things the user should know.
    pub notes: Vec<String>,
}

/// The daemon output for `spec` as BuildKit's own exporter writes it.
#[must_use]
pub fn daemon_output(spec: &OutputSpec) -> DaemonOutput {
    let target = match spec {
        OutputSpec::Tar { dest }
        | OutputSpec::Oci { dest, .. }
        | OutputSpec::Docker { dest, .. } => Some(Target::File(dest.clone())),
        OutputSpec::Local { dir } => Some(Target::Dir(dir.clone())),
        // Never reached for these: `fit` turns them into an `oci` export
        // to a temporary file.
        OutputSpec::Image { .. } | OutputSpec::Podman { .. } | OutputSpec::Containerd { .. } => {
            None
        }
    };
    DaemonOutput {
        exporter: ExporterSpec {
            kind: spec.exporter_type().to_string(),
            attrs: spec.exporter_attrs(),
        },
        target,
    }
}

const REMEDY: &str = "build one --platform, use a buildkitd (unix:// or tcp://), or turn on the Docker Engine's containerd image store (daemon.json: \"features\": {\"containerd-snapshotter\": true})";

/// Docker's classic image store: one platform per image, the `moby`
/// exporter, BuildKit's inline cache exporter only.
pub(crate) fn classic_store(daemon: &DaemonInfo) -> bool {
    daemon.has_image_store() && !daemon.stores_multi_platform()
}

/// Checks `cache_to` against what `daemon` can export before building.
///
/// # Errors
/// [`BuildError::Unsupported`] for a cache exporter the daemon lacks (the
/// classic image store has `inline` only: "unknown cache exporter").
pub fn fit_caches(
    daemon: &DaemonInfo,
    address: &str,
    cache_to: &[crate::spec::CacheSpec],
) -> Result<(), BuildError> {
    let lacking = cache_to
        .iter()
        .find(|c| c.kind != crate::spec::CacheKind::Inline);
    match lacking {
        Some(c) if classic_store(daemon) => Err(BuildError::Unsupported {
            address: address.to_string(),
            daemon: daemon.describe(),
            reason: format!(
                "--cache-to type={} needs a cache exporter its classic image store does not have; use type=inline (with -t NAME --push), a buildkitd, or the containerd image store",
                c.kind.as_str()
            ),
        }),
        _ => Ok(()),
    }
}

/// Refuses attestations asked for explicitly where the daemon's image
/// store cannot keep them (Docker's classic store). Provenance on by
/// default (a push) is dropped there without a word, as buildx does.
///
/// # Errors
/// [`BuildError::Unsupported`] naming the remedy.
pub fn fit_attestations(
    daemon: &DaemonInfo,
    address: &str,
    attestations: &crate::spec::Attestations,
) -> Result<(), BuildError> {
    if attestations.explicit && attestations.any() && classic_store(daemon) {
        return Err(BuildError::Unsupported {
            address: address.to_string(),
            daemon: daemon.describe(),
            reason: "its classic image store cannot keep attestations (--provenance, --sbom, --attest); use a buildkitd or the containerd image store, or drop them with --provenance=false --sbom=false".into(),
        });
    }
    Ok(())
}

/// Fits `outputs` to `daemon` for a build of `platforms` platforms.
///
/// # Errors
/// [`BuildError::Unsupported`]: what the daemon cannot produce, with the
/// image store and the remedy.
pub fn fit(
    daemon: &DaemonInfo,
    address: &str,
    outputs: &[OutputSpec],
    platforms: usize,
) -> Result<Fitted, BuildError> {
    let mut fitted = Fitted::default();
    let classic = classic_store(daemon);
    let unsupported = |reason: String| BuildError::Unsupported {
        address: address.to_string(),
        daemon: daemon.describe(),
        reason,
    };
    for o in outputs {
        if let Some(After::Load { tar, store, name }) = load_target(o)? {
            if classic && platforms > 1 {
                return Err(unsupported(format!(
                    "it holds one platform per image, so kiln cannot load a {platforms}-platform image from it into {}; {REMEDY}",
                    store.kind()
                )));
            }
            let layout = OutputSpec::Oci {
                dest: Dest::File(tar.clone()),
                name: Some(name.clone()),
                attrs: BTreeMap::new(),
            };
            let mut sub = fit(daemon, address, &[layout], platforms)?;
            fitted.outputs.append(&mut sub.outputs);
            fitted.after.append(&mut sub.after);
            fitted.after.push(After::Load { tar, store, name });
            continue;
        }
        if let Some((dest, gz)) = gzip_target(o) {
            let mut plain = o.clone();
            set_dest(&mut plain, Dest::File(gz.clone()));
            let mut sub = fit(daemon, address, &[plain], platforms)?;
            fitted.outputs.append(&mut sub.outputs);
            fitted.after.append(&mut sub.after);
            fitted.notes.append(&mut sub.notes);
            fitted.after.push(After::Gzip { from: gz, to: dest });
            continue;
        }
        if let OutputSpec::Image { push: false, .. } = o {
            if !daemon.has_image_store() {
                fitted.notes.push(format!(
                    "{} keeps images in its own store, which `docker run` does not see: use --push, or -o type=docker,dest=FILE and `docker load`",
                    daemon.describe()
                ));
            }
        }
        if !classic {
            fitted.outputs.push(daemon_output(o));
            continue;
        }
        match o {
            OutputSpec::Image { attrs, .. }
                if attrs.get(ex::PUSH_BY_DIGEST).is_some_and(|v| v == "true") =>
            {
                return Err(unsupported(
                    "it cannot push by digest (push-by-digest=true) from its classic image store; use a buildkitd (unix:// or tcp://) or the Docker Engine's containerd image store".to_string(),
                ));
            }
            OutputSpec::Image { names, push, .. } => {
                if platforms > 1 {
                    return Err(unsupported(format!(
                        "it holds one platform per image, so it cannot {} a {platforms}-platform image; {REMEDY}",
                        if *push { "push" } else { "store" }
                    )));
                }
                if *push {
                    fitted
                        .after
                        .extend(names.iter().map(|n| After::Push { name: n.clone() }));
                }
                let joined = names
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                fitted.outputs.push(moby(&joined));
            }
            OutputSpec::Oci { dest, name, .. } | OutputSpec::Docker { dest, name, .. } => {
                let kind = o.exporter_type();
                if platforms > 1 {
                    return Err(unsupported(format!(
                        "it has no `{kind}` exporter and holds one platform per image, so kiln cannot write a {platforms}-platform {kind} tarball there; {REMEDY}"
                    )));
                }
                let temp = format!("kiln-export/{}:latest", temp_name());
                fitted.after.push(After::Save {
                    temp: temp.clone(),
                    dest: dest.clone(),
                    name: name.clone(),
                    kind,
                });
                fitted.outputs.push(moby(&temp));
            }
            other => fitted.outputs.push(daemon_output(other)),
        }
    }
    Ok(fitted)
}

/// Temporary files of [`After::Gzip`] and [`After::Load`] not yet removed,
/// for [`abandon_temporary_files`].
static TEMPORARY: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn temporary(path: PathBuf) -> PathBuf {
    if let Ok(mut t) = TEMPORARY.lock() {
        t.push(path.clone());
    }
    path
}

/// Removes every temporary tarball kiln made for a gzip or a load (a
/// process about to exit on Ctrl-C, whose tasks may never be dropped).
pub fn abandon_temporary_files() {
    let paths = TEMPORARY
        .lock()
        .map(|mut t| std::mem::take(&mut *t))
        .unwrap_or_default();
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

/// Waits up to `timeout` for loads into podman or containerd that a
/// cancel dropped to undo themselves; `false` if some were still at it.
pub async fn settle_loads(timeout: std::time::Duration) -> bool {
    kiln_image::store::settle(timeout).await
}

fn remove_temporary(path: &Path) {
    let _ = std::fs::remove_file(path);
    if let Ok(mut t) = TEMPORARY.lock() {
        t.retain(|p| p != path);
    }
}

/// For a `type=podman`/`type=containerd` output: the load, from a
/// temporary layout tarball the daemon (or, fanned out, the merge) writes.
///
/// # Errors
/// [`BuildError::Invalid`] for an address that does not resolve or a
/// missing name.
pub(crate) fn load_target(o: &OutputSpec) -> Result<Option<After>, BuildError> {
    let Some(store) = Store::resolve(o)? else {
        return Ok(None);
    };
    let (OutputSpec::Podman {
        name: Some(name), ..
    }
    | OutputSpec::Containerd {
        name: Some(name), ..
    }) = o
    else {
        return Err(BuildError::invalid(
            format!("-o type={}", store.kind()),
            "it needs the image's name: -t NAME or name=NAME",
        ));
    };
    let tar = temporary(std::env::temp_dir().join(format!(".kiln-load-{}.tar", temp_name())));
    Ok(Some(After::Load {
        tar,
        store,
        name: name.clone(),
    }))
}

/// For a tarball output whose name asks for gzip: its destination and the
/// temporary uncompressed tarball beside it the daemon writes.
pub(crate) fn gzip_target(o: &OutputSpec) -> Option<(PathBuf, PathBuf)> {
    let (OutputSpec::Tar { dest } | OutputSpec::Oci { dest, .. } | OutputSpec::Docker { dest, .. }) =
        o
    else {
        return None;
    };
    let Dest::File(path) = dest else {
        return None;
    };
    if !dest.gzip() {
        return None;
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    Some((
        path.clone(),
        temporary(dir.join(format!(".kiln-gzip-{}.tar", temp_name()))),
    ))
}

fn set_dest(o: &mut OutputSpec, to: Dest) {
    if let OutputSpec::Tar { dest }
    | OutputSpec::Oci { dest, .. }
    | OutputSpec::Docker { dest, .. } = o
    {
        *dest = to;
    }
}

/// Refuses, before anything is built, a file to write whose directory does
/// not exist or that is a directory itself: the daemon would build
/// everything first and fail only when it sends the file. `what` names the
/// flag (`-o type=oci,dest=x.tar`, `--metadata-file x.json`).
///
/// # Errors
/// [`BuildError::Invalid`] naming the flag, the path and what to do.
pub fn check_file_destination(what: &str, path: &Path) -> Result<(), BuildError> {
    if path.is_dir() {
        return Err(BuildError::invalid(
            what,
            format!(
                "{} is a directory: name a file in it (e.g. {})",
                path.display(),
                path.join("image.tar").display()
            ),
        ));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        let why = if dir.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        return Err(BuildError::invalid(
            what,
            format!(
                "{} {why}: create the directory first (mkdir -p {}) or write somewhere else",
                dir.display(),
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// [`check_file_destination`] for every tarball among `outputs`.
///
/// # Errors
/// As [`check_file_destination`].
pub fn check_destinations(outputs: &[OutputSpec]) -> Result<(), BuildError> {
    for o in outputs {
        let (kind, dest) = match o {
            OutputSpec::Tar { dest } => ("tar", dest),
            OutputSpec::Oci { dest, .. } => ("oci", dest),
            OutputSpec::Docker { dest, .. } => ("docker", dest),
            _ => continue,
        };
        if let Dest::File(path) = dest {
            check_file_destination(&format!("-o type={kind},dest={}", path.display()), path)?;
        }
    }
    Ok(())
}

/// Checks, before anything is built, that every store kiln loads into
/// answers at its socket path.
///
/// # Errors
/// [`BuildError::Invalid`] naming the socket and how to start the store.
pub async fn preflight(after: &[After]) -> Result<(), BuildError> {
    for a in after {
        let After::Load { store, .. } = a else {
            continue;
        };
        let socket = store.socket();
        if socket.exists() {
            if let Store::Containerd { socket, namespace } = store {
                kiln_image::containerd::Containerd {
                    socket: socket.clone(),
                    namespace: namespace.clone(),
                }
                .check()
                .await
                .map_err(|e| BuildError::invalid("-o type=containerd", e.to_string()))?;
            }
            continue;
        }
        let how = match store {
            Store::Podman { .. } => format!(
                "start podman's API service (`systemctl start podman.socket`, rootless `systemctl --user start podman.socket`, or `podman system service --time=0 unix://{}`), or pass -o type=podman,address=unix://SOCKET",
                socket.display()
            ),
            Store::Containerd { .. } => "start containerd, or pass -o type=containerd,address=SOCKET (k3s: address=/run/k3s/containerd/containerd.sock,namespace=k8s.io)".to_string(),
        };
        return Err(BuildError::invalid(
            format!("-o type={}", store.kind()),
            format!(
                "there is no {} socket at {}: {how}",
                store.kind(),
                socket.display()
            ),
        ));
    }
    Ok(())
}

/// Does what kiln does itself on every daemon once the solve (and
/// [`run_after`]) succeeded: compresses tarballs and loads images into
/// podman and containerd, each shown as a step of its own in `events`
/// (the build's progress). Returns a line per image loaded. Temporary
/// files go whatever happens.
///
/// # Errors
/// [`BuildError::Load`] naming the store, and file errors of the gzip.
pub async fn finish(
    after: &[After],
    events: &tokio::sync::mpsc::UnboundedSender<kiln_client::progress::StatusEvent>,
) -> Result<Vec<String>, BuildError> {
    let mut lines = Vec::new();
    let mut result = Ok(());
    for a in after {
        if result.is_err() {
            break;
        }
        match a {
            After::Gzip { from, to } => {
                let step = Step::start(events, format!("compressing {}", to.display()));
                let (from, to) = (from.clone(), to.clone());
                result = tokio::task::spawn_blocking(move || gzip(&from, &to))
                    .await
                    .unwrap_or_else(|e| {
                        Err(BuildError::invalid("gzip", format!("the task failed: {e}")))
                    });
                step.end(result.as_ref().err());
            }
            After::Load { tar, store, name } => {
                let step = Step::start(events, format!("loading {name} into {}", store.describe()));
                let loaded = load(tar, store, name).await;
                step.end(loaded.as_ref().err());
                match loaded {
                    Ok(line) => lines.push(line),
                    Err(e) => result = Err(e),
                }
            }
            After::Push { .. } | After::Save { .. } => {}
        }
    }
    discard_files(after);
    result.map(|()| lines)
}

/// A step kiln runs itself after the daemon's, in the build's progress as
/// a vertex of its own (`kiln:` and a random id instead of an op digest).
struct Step<'a> {
    events: &'a tokio::sync::mpsc::UnboundedSender<kiln_client::progress::StatusEvent>,
    vertex: kiln_client::progress::Vertex,
}

impl<'a> Step<'a> {
    fn start(
        events: &'a tokio::sync::mpsc::UnboundedSender<kiln_client::progress::StatusEvent>,
        name: String,
    ) -> Step<'a> {
        let vertex = kiln_client::progress::Vertex {
            digest: format!("kiln:{}", temp_name()),
            name,
            started: Some(now_nanos()),
            ..Default::default()
        };
        let step = Step { events, vertex };
        step.send();
        step
    }

    fn end(mut self, error: Option<&BuildError>) {
        self.vertex.completed = Some(now_nanos());
        if let Some(e) = error {
            self.vertex.error = e.to_string();
        }
        self.send();
    }

    fn send(&self) {
        // No one drawing progress any more is no reason to stop.
        let _ = self.events.send(kiln_client::progress::StatusEvent {
            vertexes: vec![self.vertex.clone()],
            ..Default::default()
        });
    }
}

fn now_nanos() -> i128 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(0))
}

/// Removes the temporary files of `after` (after a failed build, or once
/// used).
pub fn discard_files(after: &[After]) {
    for a in after {
        match a {
            After::Gzip { from, .. } => remove_temporary(from),
            After::Load { tar, .. } => remove_temporary(tar),
            After::Push { .. } | After::Save { .. } => {}
        }
    }
}

/// `from` into `to`, gzip-compressed, through a temporary file beside `to`.
fn gzip(from: &Path, to: &Path) -> Result<(), BuildError> {
    let input = std::fs::File::open(from).map_err(|e| BuildError::file("read", from, e))?;
    let dir = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let out = tempfile::Builder::new()
        .prefix(".kiln-out-")
        .tempfile_in(&dir)
        .map_err(|e| BuildError::file("create a temporary file in", &dir, e))?;
    let file = out
        .reopen()
        .map_err(|e| BuildError::file("open", out.path(), e))?;
    let mut enc = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(file),
        flate2::Compression::default(),
    );
    std::io::copy(&mut std::io::BufReader::new(input), &mut enc)
        .map_err(|e| BuildError::file("compress into", out.path(), e))?;
    let mut w = enc
        .finish()
        .map_err(|e| BuildError::file("compress into", out.path(), e))?;
    w.flush()
        .map_err(|e| BuildError::file("write", out.path(), e))?;
    drop(w);
    set_mode_0644(out.path());
    out.persist(to)
        .map_err(|e| BuildError::file("move the output into", to, e.error))?;
    Ok(())
}

/// Loads the layout tarball `tar` into `store` as `name`.
async fn load(tar: &Path, store: &Store, name: &ImageRef) -> Result<String, BuildError> {
    let path = tar.to_path_buf();
    let layout = tokio::task::spawn_blocking(move || kiln_image::layout::Layout::open(&path))
        .await
        .map_err(|e| BuildError::invalid("the image layout", format!("the task failed: {e}")))?
        .map_err(|e| BuildError::Load {
            store: store.describe(),
            reason: e.to_string(),
        })?;
    let loaded = match store {
        Store::Podman { socket } => kiln_image::podman::Podman {
            socket: socket.clone(),
        }
        .load(&layout, name)
        .await
        .map_err(|e| e.to_string()),
        Store::Containerd { socket, namespace } => kiln_image::containerd::Containerd {
            socket: socket.clone(),
            namespace: namespace.clone(),
        }
        .load(&layout, name)
        .await
        .map_err(|e| e.to_string()),
    }
    .map_err(|reason| BuildError::Load {
        store: store.describe(),
        reason,
    })?;
    Ok(format!(
        "loaded {} into {}: {} ({})",
        loaded.name,
        store.describe(),
        loaded.digest,
        loaded
            .platforms
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// A `moby` exporter storing the image under `name` (comma-separated names).
fn moby(name: &str) -> DaemonOutput {
    storeless(
        ExporterKind::Moby.name(),
        BTreeMap::from([(ex::NAME.to_string(), name.to_string())]),
    )
}

/// A name part for a temporary tag, unique on this host.
fn temp_name() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:x}{:x}{n:x}", std::process::id(), nanos)
}

/// Does `after`, in order, against the Engine. Returns the digest an Engine
/// push reported (the last one), if any.
///
/// # Errors
/// A failed push or save ([`BuildError::Engine`], [`BuildError::File`]).
pub async fn run_after(engine: &Engine, after: &[After]) -> Result<Option<String>, BuildError> {
    let mut digest = None;
    for a in after {
        match a {
            After::Push { name } => {
                let auth = registry_auth(name.domain()).await?;
                let d = engine
                    .push_image(&name.familiar_name(), name.tag().unwrap_or("latest"), &auth)
                    .await?;
                if d.is_some() {
                    digest = d;
                }
            }
            After::Gzip { .. } | After::Load { .. } => {}
            After::Save {
                temp,
                dest,
                name,
                kind,
            } => {
                let saved = save(engine, temp, dest, name.as_ref(), kind).await;
                // The temporary tag goes either way.
                let untag = engine.remove_image(temp).await;
                saved?;
                untag?;
            }
        }
    }
    Ok(digest)
}

/// Removes the temporary tags of `after` (after a failed build).
pub async fn discard(engine: &Engine, after: &[After]) {
    for a in after {
        if let After::Save { temp, .. } = a {
            let _ = engine.remove_image(temp).await;
        }
    }
}

/// The Docker config credentials for `host`, as the Engine wants them.
async fn registry_auth(host: &str) -> Result<RegistryAuth, BuildError> {
    let c = kiln_client::kiln_session::DockerAuth::from_env()
        .credentials(host)
        .await
        .map_err(|e| {
            BuildError::invalid(
                format!("the registry credentials for {host}"),
                e.to_string(),
            )
        })?;
    let Some(secret) = c.secret.filter(|s| !s.expose_secret().is_empty()) else {
        return Ok(RegistryAuth::anonymous());
    };
    let secret = String::from_utf8(secret.expose_secret().to_vec()).map_err(|_| {
        BuildError::invalid(format!("the registry secret for {host}"), "it is not UTF-8")
    })?;
    Ok(if c.username.is_empty() {
        RegistryAuth::identity_token(host, &secret)
    } else {
        RegistryAuth::basic(host, &c.username, &secret)
    })
}

/// Saves `temp` into `dest` (a temporary file, then renamed; or stdout)
/// with the image named `name` (or unnamed).
async fn save(
    engine: &Engine,
    temp: &str,
    dest: &Dest,
    name: Option<&ImageRef>,
    kind: &str,
) -> Result<(), BuildError> {
    let dir = match dest {
        Dest::Stdout => std::env::temp_dir(),
        Dest::File(f) => f
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
    };
    let raw = tempfile::Builder::new()
        .prefix(".kiln-save-")
        .tempfile_in(&dir)
        .map_err(|e| BuildError::file("create a temporary file in", &dir, e))?;
    {
        let file = raw
            .reopen()
            .map_err(|e| BuildError::file("open", raw.path(), e))?;
        let mut f = tokio::fs::File::from_std(file);
        engine.save_image(temp, &mut f).await?;
    }
    let dest = dest.clone();
    let name = name.cloned();
    let raw_path = raw.path().to_path_buf();
    let what = format!("-o type={kind},dest={dest}");
    tokio::task::spawn_blocking(move || -> Result<(), BuildError> {
        let layout = |e: kiln_image::ArchiveError| BuildError::invalid(what.clone(), e.to_string());
        let input =
            std::fs::File::open(&raw_path).map_err(|e| BuildError::file("read", &raw_path, e))?;
        match &dest {
            Dest::Stdout => {
                let stdout = std::io::stdout();
                let mut lock = stdout.lock();
                kiln_image::layout::rename_docker_archive(input, &mut lock, name.as_ref())
                    .map_err(layout)?;
                lock.flush()
                    .map_err(|e| BuildError::file("write", "stdout", e))
            }
            Dest::File(path) => {
                let parent = raw_path.parent().unwrap_or(Path::new("."));
                let out = tempfile::Builder::new()
                    .prefix(".kiln-out-")
                    .tempfile_in(parent)
                    .map_err(|e| BuildError::file("create a temporary file in", parent, e))?;
                let file = out
                    .reopen()
                    .map_err(|e| BuildError::file("open", out.path(), e))?;
                let mut w = std::io::BufWriter::new(file);
                kiln_image::layout::rename_docker_archive(input, &mut w, name.as_ref())
                    .map_err(layout)?;
                w.flush()
                    .map_err(|e| BuildError::file("write", out.path(), e))?;
                drop(w);
                set_mode_0644(out.path());
                out.persist(path)
                    .map_err(|e| BuildError::file("move the output into", path, e.error))?;
                Ok(())
            }
        }
    })
    .await
    .map_err(|e| {
        BuildError::invalid(
            format!("-o type={kind}"),
            format!("the save task failed: {e}"),
        )
    })??;
    drop(raw);
    Ok(())
}

fn set_mode_0644(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kiln_client::{DaemonKind, EngineInfo, ImageStore};

    #[test]
    fn file_destinations_are_checked_before_building() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ok = |p: PathBuf| check_file_destination("-o dest", &p);
        assert!(ok(tmp.path().join("a.tar")).is_ok());
        assert!(
            ok(PathBuf::from("relative.tar")).is_ok(),
            "in the current directory"
        );
        let e = ok(tmp.path().join("missing/a.tar")).expect_err("no directory");
        let text = e.to_string();
        assert!(text.contains("-o dest"), "{text}");
        assert!(
            text.contains("missing does not exist: create the directory first (mkdir -p "),
            "{text}"
        );
        let e = ok(tmp.path().to_path_buf()).expect_err("a directory");
        assert!(
            e.to_string().contains("is a directory: name a file in it"),
            "{e}"
        );
        let file = tmp.path().join("f");
        std::fs::write(&file, "x").expect("write");
        let e = ok(file.join("a.tar")).expect_err("under a file");
        assert!(e.to_string().contains("is not a directory"), "{e}");

        let specs = |s: &str| vec![OutputSpec::parse(s).expect("spec")];
        let bad = format!("type=docker,dest={}", tmp.path().join("x/y.tar").display());
        let e = check_destinations(&specs(&bad)).expect_err("docker");
        assert!(e.to_string().contains(&bad), "{e}");
        assert!(
            check_destinations(&specs("type=oci,dest=-")).is_ok(),
            "stdout"
        );
        let local = format!("type=local,dest={}", tmp.path().join("new/dir").display());
        assert!(
            check_destinations(&specs(&local)).is_ok(),
            "directories are made"
        );
    }

    fn docker(store: ImageStore) -> DaemonInfo {
        DaemonInfo {
            kind: DaemonKind::DockerEngine(EngineInfo {
                server_version: "28.5.2".into(),
                driver: "overlay2".into(),
                image_store: store,
            }),
            buildkit: None,
        }
    }

    fn buildkitd() -> DaemonInfo {
        DaemonInfo {
            kind: DaemonKind::Buildkitd,
            buildkit: None,
        }
    }

    fn out(spec: &str) -> OutputSpec {
        spec.parse().unwrap()
    }

    #[test]
    fn other_daemons_get_the_outputs_unchanged() {
        let outs = vec![out("type=oci,dest=a.tar"), out("type=image,name=x/y:z")];
        let want: Vec<DaemonOutput> = outs.iter().map(daemon_output).collect();
        let f = fit(&docker(ImageStore::Containerd), "docker://", &outs, 2).unwrap();
        assert_eq!(f.outputs, want);
        assert!(f.after.is_empty() && f.notes.is_empty());
        let f = fit(&buildkitd(), "unix:///s", &outs, 2).unwrap();
        assert_eq!(f.outputs, want);
        assert_eq!(
            f.notes.len(),
            1,
            "an image kept in buildkitd's own store is worth a note"
        );
        let pushed = vec![out("type=image,name=r:5000/y:z,push=true")];
        assert!(fit(&buildkitd(), "unix:///s", &pushed, 1)
            .unwrap()
            .notes
            .is_empty());
    }

    #[test]
    fn classic_store_gets_moby_exports_and_kiln_does_the_rest() {
        let f = fit(
            &docker(ImageStore::Classic),
            "docker://",
            &[
                out("type=image,name=r:5000/app:1,push=true"),
                out("type=docker,dest=d.tar,name=app:2"),
                out("type=tar,dest=t.tar"),
            ],
            1,
        )
        .unwrap();
        let kinds: Vec<&str> = f.outputs.iter().map(|o| o.exporter.kind.as_str()).collect();
        assert_eq!(kinds, ["moby", "moby", "tar"]);
        assert_eq!(f.outputs[0].exporter.attrs["name"], "r:5000/app:1");
        assert!(f.outputs[1].target.is_none(), "moby writes no file");
        assert_eq!(
            f.outputs[2].target,
            Some(Target::File(Dest::File("t.tar".into())))
        );
        assert_eq!(
            f.after[0],
            After::Push {
                name: ImageRef::parse("r:5000/app:1").unwrap()
            }
        );
        let After::Save {
            temp,
            dest,
            name,
            kind,
        } = &f.after[1]
        else {
            panic!("{:?}", f.after);
        };
        assert!(temp.starts_with("kiln-export/"));
        assert_eq!(f.outputs[1].exporter.attrs["name"], *temp);
        assert_eq!(*dest, Dest::File("d.tar".into()));
        assert_eq!(
            name.as_ref().map(ToString::to_string).as_deref(),
            Some("docker.io/library/app:2")
        );
        assert_eq!(*kind, "docker");
    }

    #[test]
    fn a_tar_gz_is_written_uncompressed_beside_it_then_gzipped() {
        let f = fit(
            &buildkitd(),
            "unix:///s",
            &[out("type=oci,dest=d/app.tar.gz")],
            2,
        )
        .unwrap();
        let Some(Target::File(Dest::File(tmp))) = &f.outputs[0].target else {
            panic!("{:?}", f.outputs);
        };
        assert_eq!(tmp.parent(), Some(Path::new("d")));
        assert!(tmp
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".kiln-gzip-"));
        assert_eq!(
            f.after,
            [After::Gzip {
                from: tmp.clone(),
                to: "d/app.tar.gz".into()
            }]
        );
        // On the classic store: saved into the temporary file, then gzipped.
        let f = fit(
            &docker(ImageStore::Classic),
            "d",
            &[out("type=docker,dest=x.tgz")],
            1,
        )
        .unwrap();
        assert!(matches!(f.after[0], After::Save { .. }));
        assert!(matches!(&f.after[1], After::Gzip { to, .. } if to == Path::new("x.tgz")));
    }

    #[tokio::test]
    async fn finish_gzips_and_removes_the_temporary_tarball() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join(".kiln-gzip-x.tar");
        let to = dir.path().join("app.tar.gz");
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        std::fs::write(&from, &data).unwrap();
        let (events, mut progress) = tokio::sync::mpsc::unbounded_channel();
        let lines = finish(
            &[After::Gzip {
                from: from.clone(),
                to: to.clone(),
            }],
            &events,
        )
        .await
        .unwrap();
        assert!(lines.is_empty());
        // A step of its own in the progress: started, then completed.
        let started = progress.try_recv().unwrap().vertexes.remove(0);
        let ended = progress.try_recv().unwrap().vertexes.remove(0);
        assert_eq!(started.name, format!("compressing {}", to.display()));
        assert!(started.digest.starts_with("kiln:"), "{}", started.digest);
        assert!(started.started.is_some() && started.completed.is_none());
        assert_eq!(ended.digest, started.digest);
        assert!(ended.completed.is_some() && ended.error.is_empty());
        assert!(!from.exists(), "the temporary tarball is gone");
        let mut back = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(std::fs::File::open(&to).unwrap()),
            &mut back,
        )
        .unwrap();
        assert!(back == data);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "nothing else is left: {names:?}");
    }

    #[test]
    fn loads_export_an_oci_layout_to_a_temporary_file() {
        let f = fit(
            &buildkitd(),
            "unix:///s",
            &[out("type=podman,name=app,address=unix:///run/p.sock")],
            2,
        )
        .unwrap();
        assert_eq!(f.outputs[0].exporter.kind, "oci");
        assert_eq!(
            f.outputs[0].exporter.attrs["name"],
            "docker.io/library/app:latest"
        );
        let Some(Target::File(Dest::File(tar))) = &f.outputs[0].target else {
            panic!("{:?}", f.outputs);
        };
        assert_eq!(
            f.after,
            [After::Load {
                tar: tar.clone(),
                store: Store::Podman {
                    socket: "/run/p.sock".into()
                },
                name: ImageRef::parse("app").unwrap(),
            }]
        );
        // The classic store: one platform, saved then loaded; two refused.
        let c = out("type=containerd,name=app,address=/run/c.sock,namespace=k8s.io");
        let f = fit(
            &docker(ImageStore::Classic),
            "d",
            std::slice::from_ref(&c),
            1,
        )
        .unwrap();
        assert_eq!(f.outputs[0].exporter.kind, "moby");
        assert!(matches!(f.after[0], After::Save { .. }));
        assert!(matches!(
            &f.after[1],
            After::Load { store: Store::Containerd { namespace, .. }, .. } if namespace == "k8s.io"
        ));
        let e = fit(&docker(ImageStore::Classic), "d", &[c], 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2-platform") && e.contains("containerd"), "{e}");
    }

    #[tokio::test]
    async fn a_missing_socket_is_refused_before_building() {
        let e = preflight(&[After::Load {
            tar: "/tmp/x.tar".into(),
            store: Store::Podman {
                socket: "/nonexistent/podman.sock".into(),
            },
            name: ImageRef::parse("app").unwrap(),
        }])
        .await
        .unwrap_err()
        .to_string();
        for want in [
            "/nonexistent/podman.sock",
            "podman system service",
            "address=",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn classic_store_refuses_multi_platform_naming_the_store_and_remedies() {
        for spec in [
            "type=image,name=app",
            "type=image,name=r/app,push=true",
            "type=oci,dest=x.tar",
        ] {
            let e = fit(
                &docker(ImageStore::Classic),
                "docker:///d.sock",
                &[out(spec)],
                2,
            )
            .unwrap_err()
            .to_string();
            for want in [
                "docker:///d.sock",
                "classic image store",
                "2-platform",
                "containerd-snapshotter",
                "--platform",
            ] {
                assert!(e.contains(want), "{spec}: {want}: {e}");
            }
        }
        // tar and local work with several platforms (a folder per platform).
        assert!(fit(
            &docker(ImageStore::Classic),
            "d",
            &[out("type=tar,dest=x")],
            2
        )
        .is_ok());
    }
}
