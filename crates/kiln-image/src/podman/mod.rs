//! Loading an OCI layout into podman through its REST API socket, every
//! platform of it.
//!
//! `podman load` keeps only the host's platform of a multi-platform archive
//! (containers/podman#22882). [`Podman::load`] instead loads each platform's
//! image on its own, as a single-image OCI archive streamed to libpod's
//! `POST /images/load` (podman keeps the manifest as it is, so each image
//! keeps its digest), then builds a manifest list from those local images
//! (`POST /manifests/{name}`, `PUT /manifests/{name}` with
//! `containers-storage:` references) and gives it the name. So:
//!
//! - one platform: an image named `NAME` (`docker.io/library/app:latest`
//!   for `-t app`, which podman's short-name lookup finds as `app`);
//! - several: a manifest list named `NAME` listing each platform
//!   (`podman manifest inspect app` shows them, `podman run --platform
//!   linux/arm64 app` picks one), and each platform's image named
//!   `NAME-OS-ARCH[-VARIANT]` (`app:latest-linux-arm64`). The images need a
//!   name: `podman image prune` removes images that have none even when a
//!   list refers to them (containers/podman#25525), which would leave `app`
//!   a list of nothing.
//!
//! While it loads, the images and the list carry temporary names
//! (`localhost/kiln-load-<random>:linux-amd64`, `…:list`): an image is never
//! unnamed (a concurrent prune would take it), and a failed load removes
//! what it added by these names, so an image another load shares keeps its
//! own. A load dropped mid-way (Ctrl-C drops a build's future) goes on, on
//! a task of its own, to its next step and then undoes itself;
//! [`crate::store::settle`] waits for it. Only a killed process leaves them
//! behind, for `podman rmi`.
//!
//! A name given to the new image is taken from whichever image had it (an
//! earlier build: it stays, unnamed, until `podman image prune`). Nothing is
//! half-loaded: when any step fails, the names moved go back to the images
//! that had them, the temporary list and the images this load added are
//! removed, and the error says what failed ([`PodmanError`]); only if that
//! undoing fails too does [`PodmanError::Leftovers`] list what is left.
//!
//! Podman 4.0 and later (the `v4.0.0` API); tried on 4.3.
//!
//! ```no_run
//! use kiln_image::layout::Layout;
//! use kiln_image::podman::Podman;
//! use kiln_image::ImageRef;
//! # async fn load() -> Result<(), Box<dyn std::error::Error>> {
//! // `$CONTAINER_HOST`, else root's or the user's socket.
//! let podman = Podman::from_env(None)?;
//! // Reading a layout is blocking I/O.
//! let layout = tokio::task::spawn_blocking(|| Layout::open("app.tar")).await??;
//! let loaded = podman.load(&layout, &ImageRef::parse("app")?).await?;
//! assert_eq!(loaded.name, "docker.io/library/app:latest");
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::Method;
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::digest::Digest;
use crate::error::LayoutError;
pub use crate::error::PodmanError;
use crate::layout::Layout;
use crate::platform::Platform;
use crate::reference::ImageRef;
use crate::store::Loaded;

mod api;
mod archive;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use api::{Api, ChannelBody, ListedImage};
use archive::{ChannelWriter, PlatformImage};

/// The environment variable podman's remote client reads its address from.
pub const CONTAINER_HOST: &str = "CONTAINER_HOST";
/// How often a platform's image is sent before podman's refusal is
/// reported.
const LOAD_ATTEMPTS: u64 = 3;
/// The socket of root's podman service.
pub const ROOT_SOCKET: &str = "/run/podman/podman.sock";
/// The user's podman socket, under `$XDG_RUNTIME_DIR`.
pub const ROOTLESS_SOCKET: &str = "podman/podman.sock";

/// A podman API service, reached on its unix socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Podman {
    /// The socket's path.
    pub socket: PathBuf,
}

impl Podman {
    /// Podman at `address` (`unix:///path` or `/path`), or where podman's
    /// own remote client would look: `$CONTAINER_HOST` (a `unix://` one),
    /// else [`ROOT_SOCKET`] for root (effective user id 0), else
    /// `$XDG_RUNTIME_DIR/podman/podman.sock`.
    ///
    /// # Errors
    /// [`PodmanError::UnsupportedAddress`] for an address (given or from
    /// `CONTAINER_HOST`) that is not a unix socket path, and
    /// [`PodmanError::NoRuntimeDir`] when a non-root user has no
    /// `XDG_RUNTIME_DIR`.
    pub fn from_env(address: Option<&str>) -> Result<Podman, PodmanError> {
        let container_host = std::env::var(CONTAINER_HOST).ok();
        let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
        let euid = rustix::process::geteuid().as_raw();
        let socket = socket_for(
            address,
            container_host.as_deref(),
            euid,
            runtime_dir.as_deref(),
        )?;
        Ok(Podman { socket })
    }

    /// Loads `layout`'s image (its root, [`Layout::root`]: an index of
    /// platform images or a single manifest) into podman as `name`; see the
    /// [module docs](self) for what podman then holds. Blobs are streamed
    /// from the layout tarball, each checked against its digest.
    ///
    /// [`Loaded::digest`] is podman's: for one platform the manifest's (the
    /// one kiln built: podman keeps it), for several the list podman made
    /// (podman writes its own list, so not the layout's index digest;
    /// `podman manifest inspect NAME@DIGEST` finds it).
    ///
    /// # Errors
    /// [`PodmanError::NameHasDigest`] for a name pinned to a digest,
    /// [`PodmanError::InstanceTag`] when a platform's name would not be a
    /// tag, [`PodmanError::NoImages`] and [`PodmanError::Layout`] for a
    /// layout without images or with missing or damaged blobs (found before
    /// or while loading), [`PodmanError::Connect`] when nothing answers on
    /// the socket, [`PodmanError::Refused`], [`PodmanError::Http`] and
    /// [`PodmanError::Unexpected`] for what podman answers,
    /// [`PodmanError::ListMismatch`] when its list does not list what was
    /// loaded, and [`PodmanError::Leftovers`] when undoing a failed load
    /// failed too.
    pub async fn load(&self, layout: &Layout, name: &ImageRef) -> Result<Loaded, PodmanError> {
        let target = Target::new(name)?;
        let descriptors = layout.images()?;
        if descriptors.is_empty() {
            return Err(PodmanError::NoImages {
                tar: layout.path().to_path_buf(),
            });
        }
        let images = descriptors
            .iter()
            .map(|d| PlatformImage::read(layout, d))
            .collect::<Result<Vec<_>, LayoutError>>()?;
        let instance_tags = if images.len() > 1 {
            images
                .iter()
                .map(|i| target.instance_tag(&i.platform))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };

        let api = Api::new(&self.socket);
        api.ping().await?;
        let before = api.images().await?;
        let layout = layout.clone();
        // Dropped mid-way (Ctrl-C), the load goes on only to undo itself:
        // `kiln_image::store::settle` waits for that.
        crate::store::undoable(
            move |mut cancelled: crate::store::Cancelled| async move {
                let stop = Stop::default();
                let mut undo = Undo::default();
                let result = {
                    let work = load_all(
                        &api,
                        &layout,
                        &target,
                        &images,
                        &instance_tags,
                        &before,
                        &mut undo,
                        &stop,
                    );
                    tokio::pin!(work);
                    loop {
                        tokio::select! {
                            r = &mut work => break r,
                            () = &mut cancelled, if !stop.is_set() => stop.set(),
                        }
                    }
                };
                match result {
                    Ok(loaded) => Ok(loaded),
                    Err(e) => {
                        tracing::debug!(error = %e, "podman load failed; undoing it");
                        let (leftovers, lists, problems) = undo.run(&api).await;
                        if leftovers.is_empty() && lists.is_empty() {
                            Err(e)
                        } else {
                            Err(PodmanError::Leftovers {
                                source: Box::new(e),
                                leftovers,
                                lists,
                                problems,
                            })
                        }
                    }
                }
            },
            |detail| {
                Err(PodmanError::Unexpected {
                    action: "load the image".into(),
                    detail,
                })
            },
        )
        .await
    }
}

/// Set when a load's caller went away (Ctrl-C): the load stops at its
/// next step. An archive being sent is cut off; a call podman is answering
/// is let finish, so that what podman did is known and can be undone.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stop(Arc<AtomicBool>);

impl Stop {
    fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// An error once set, to end the load there.
    fn check(&self) -> Result<(), PodmanError> {
        if self.is_set() {
            Err(PodmanError::Unexpected {
                action: "load the image".into(),
                detail: "the load was cancelled".into(),
            })
        } else {
            Ok(())
        }
    }
}

/// Where [`Podman::from_env`] finds the socket, given what it read from
/// the environment.
fn socket_for(
    address: Option<&str>,
    container_host: Option<&str>,
    euid: u32,
    runtime_dir: Option<&Path>,
) -> Result<PathBuf, PodmanError> {
    if let Some(a) = address {
        return unix_path(a, false);
    }
    if let Some(a) = container_host.filter(|a| !a.is_empty()) {
        return unix_path(a, true);
    }
    if euid == 0 {
        return Ok(PathBuf::from(ROOT_SOCKET));
    }
    match runtime_dir.filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => Ok(dir.join(ROOTLESS_SOCKET)),
        None => Err(PodmanError::NoRuntimeDir),
    }
}

/// The socket path of `unix:///path` or `/path`.
fn unix_path(address: &str, from_env: bool) -> Result<PathBuf, PodmanError> {
    let path = address.strip_prefix("unix://").unwrap_or(address);
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err(PodmanError::UnsupportedAddress {
            address: address.to_string(),
            from_env,
        })
    }
}

/// The name to give: `repo:tag`, as podman spells names.
#[derive(Debug)]
struct Target {
    name: ImageRef,
    repo: String,
    tag: String,
}

impl Target {
    fn new(name: &ImageRef) -> Result<Target, PodmanError> {
        if name.digest().is_some() {
            let without = name.trim();
            let without = match name.tag() {
                Some(t) => without.with_tag(t).unwrap_or_else(|_| without.clone()),
                None => without,
            };
            return Err(PodmanError::NameHasDigest {
                name: name.to_string(),
                without: without.familiar(),
            });
        }
        let tag = name.tag().unwrap_or("latest").to_string();
        Ok(Target {
            name: name.clone(),
            repo: name.name(),
            tag,
        })
    }

    fn full(&self) -> String {
        format!("{}:{}", self.repo, self.tag)
    }

    /// The tag of `platform`'s image: `TAG-OS-ARCH[-VARIANT]`.
    fn instance_tag(&self, platform: &Platform) -> Result<String, PodmanError> {
        let mut tag = format!("{}-{}-{}", self.tag, platform.os, platform.architecture);
        if let Some(v) = &platform.variant {
            tag.push('-');
            tag.push_str(v);
        }
        match self.name.with_tag(&tag) {
            Ok(_) => Ok(tag),
            Err(_) => Err(PodmanError::InstanceTag {
                name: self.full(),
                platform: Box::new(platform.clone()),
                tag,
            }),
        }
    }
}

/// What a load changed, to undo it when a later step fails or the load
/// is cancelled.
#[derive(Debug, Default)]
struct Undo {
    /// The images loaded, in order.
    loaded: Vec<LoadedImage>,
    /// The manifest list made under a temporary name: (the name it goes
    /// by, ID); its ID once the temporary name is gone.
    list: Option<(String, String)>,
    /// Names given to the new images, in order.
    moved: Vec<Moved>,
}

/// An image loaded under a temporary name.
#[derive(Debug)]
struct LoadedImage {
    id: String,
    /// Its temporary name (`repo`, `tag`) while it has it.
    temporary: Option<(String, String)>,
    /// Whether this load added it (it was not in the store before).
    created: bool,
}

/// A name given to a new image, and the image that had it.
#[derive(Debug)]
struct Moved {
    repo: String,
    tag: String,
    to: String,
    from: Option<String>,
    list: bool,
}

impl Undo {
    /// Gives each moved name back, removes the list, and takes the
    /// temporary names off the images loaded, removing those this load
    /// added. A cancelled load stops only between podman's calls (see
    /// [`Stop`]), so this knows all it did. Returns what could not be
    /// undone (for `podman rmi`, for `podman manifest rm`) and why.
    async fn run(self, api: &Api) -> (Vec<String>, Vec<String>, Vec<String>) {
        let mut leftovers = Vec::new();
        let mut lists = Vec::new();
        let mut problems = Vec::new();
        for m in self.moved.iter().rev() {
            let r = match (&m.from, m.list) {
                (Some(from), _) => api.tag(from, &m.repo, &m.tag).await,
                (None, true) => api.remove_list_name(&format!("{}:{}", m.repo, m.tag)).await,
                (None, false) => api.untag(&m.to, &m.repo, &m.tag).await,
            };
            if let Err(e) = r {
                leftovers.push(format!("{}:{}", m.repo, m.tag));
                problems.push(e.to_string());
            }
        }
        if let Some((name, _)) = &self.list {
            if let Err(e) = api.remove_list_name(name).await {
                lists.push(name.clone());
                problems.push(e.to_string());
            }
        }
        for image in self.loaded.iter().rev() {
            let r = match (&image.temporary, image.created) {
                // By its name: podman removes the image with its last name,
                // and only takes the name off one that has others (another
                // load's, meanwhile).
                (Some((repo, tag)), true) => api.remove_image(&format!("{repo}:{tag}")).await,
                (Some((repo, tag)), false) => api.untag(&image.id, repo, tag).await,
                (None, true) => api.remove_image(&image.id).await,
                (None, false) => Ok(()),
            };
            if let Err(e) = r {
                let what = match &image.temporary {
                    Some((repo, tag)) => format!("{repo}:{tag}"),
                    None => api::short(&image.id).to_string(),
                };
                leftovers.push(what);
                problems.push(e.to_string());
            }
        }
        (leftovers, lists, problems)
    }
}

/// Loads every platform's image, names them and makes the list. Between
/// steps it ends if `stop` is set; what it did is in `undo`.
#[allow(clippy::too_many_arguments)]
async fn load_all(
    api: &Api,
    layout: &Layout,
    target: &Target,
    images: &[PlatformImage],
    instance_tags: &[String],
    before: &[ListedImage],
    undo: &mut Undo,
    stop: &Stop,
) -> Result<Loaded, PodmanError> {
    // Each image is loaded under a temporary name, so that it is never an
    // unnamed image that `podman image prune` may take, and can be removed
    // by name; the list too.
    let temporary = format!("localhost/kiln-load-{}", uuid::Uuid::new_v4().simple());
    let mut ids = Vec::with_capacity(images.len());
    for image in images {
        let tag = platform_tag(&image.platform);
        let mut attempt = 0;
        let id = loop {
            attempt += 1;
            stop.check()?;
            let recorded = undo.loaded.len();
            match load_one(api, layout, image, &temporary, &tag, before, undo, stop).await {
                // Podman 4 loses a layer it is reusing when an image that
                // had it is removed meanwhile ("layer not known"): a
                // refused load that added nothing is tried again.
                Err(e @ PodmanError::Refused { .. })
                    if attempt < LOAD_ATTEMPTS && undo.loaded.len() == recorded =>
                {
                    tracing::debug!(error = %e, attempt, "podman refused a load; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                }
                other => break other?,
            }
        };
        ids.push(id);
    }
    let platforms: Vec<Platform> = images.iter().map(|i| i.platform.clone()).collect();

    stop.check()?;
    let (loaded, list_name) = if images.len() == 1 {
        let id = &ids[0];
        give_name(api, before, undo, id, &target.repo, &target.tag, false).await?;
        let listed = listed(api, id).await?;
        let digest = parse_digest(&listed.digest, "list its images")?;
        let loaded = Loaded {
            name: target.full(),
            digest,
            platforms,
        };
        (loaded, None)
    } else {
        let list_name = format!("{temporary}:list");
        let list_id = api.create_list(&list_name).await?;
        undo.list = Some((list_name.clone(), list_id.clone()));
        stop.check()?;
        api.add_to_list(&list_name, &ids).await?;
        let doc = api.inspect_list(&list_name).await?;
        check_list(&doc, images, &target.full())?;
        for (id, tag) in ids.iter().zip(instance_tags) {
            stop.check()?;
            give_name(api, before, undo, id, &target.repo, tag, false).await?;
        }
        stop.check()?;
        give_name(api, before, undo, &list_id, &target.repo, &target.tag, true).await?;
        let listed = listed(api, &list_id).await?;
        let digest = list_digest(&listed, &target.repo)?;
        let loaded = Loaded {
            name: target.full(),
            digest,
            platforms,
        };
        (loaded, Some(list_name))
    };
    // Last, the temporary names: until they go, a failure can remove what
    // this load added by them.
    stop.check()?;
    for image in &mut undo.loaded {
        if let Some((repo, tag)) = &image.temporary {
            api.untag(&image.id, repo, tag).await?;
            image.temporary = None;
        }
    }
    if let Some(list_name) = list_name {
        api.remove_list_name(&list_name).await?;
        // Cancelled after this, the list goes by its ID.
        if let Some(list) = &mut undo.list {
            list.0 = list.1.clone();
        }
    }
    // Cancelled at the very end, it is still undone: a cancel leaves
    // nothing.
    stop.check()?;
    Ok(loaded)
}

/// The tag of a platform's temporary name: `linux-arm64`.
fn platform_tag(p: &Platform) -> String {
    let mut tag = format!("{}-{}", p.os, p.architecture);
    if let Some(v) = &p.variant {
        tag.push('-');
        tag.push_str(v);
    }
    tag
}

/// Streams `image`'s archive, named `repo:tag`, to `POST /images/load`,
/// records the image in `undo`, and returns its ID. Once `stop` is set the
/// archive is cut off.
#[allow(clippy::too_many_arguments)]
async fn load_one(
    api: &Api,
    layout: &Layout,
    image: &PlatformImage,
    repo: &str,
    tag: &str,
    before: &[ListedImage],
    undo: &mut Undo,
    stop: &Stop,
) -> Result<String, PodmanError> {
    let platform = image.platform.to_string();
    let action = format!("load the {platform} image");
    let name = format!("{repo}:{tag}");
    let (tx, rx) = mpsc::channel(4);
    let (layout2, image2, name2) = (layout.clone(), image.clone(), name.clone());
    let stop = stop.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter::new(tx, stop);
        let r = image2.write(&layout2, &name2, &mut w);
        if r.is_err() {
            w.abort();
        }
        r
    });
    let answer = api
        .call(
            Method::POST,
            "/images/load",
            Some("application/x-tar"),
            ChannelBody(rx).boxed(),
            &action,
        )
        .await;
    let written = writer.await.map_err(|e| PodmanError::Unexpected {
        action: action.clone(),
        detail: format!("the archive writer stopped: {e}"),
    });
    // What podman loaded is recorded before any error is returned.
    let id = match answer {
        Ok(bytes) => Some(
            loaded_id(api, &bytes, &name, &action)
                .await
                .map(|(id, named)| {
                    let created = !before.iter().any(|i| i.id == id);
                    let temporary = named.then(|| (repo.to_string(), tag.to_string()));
                    undo.loaded.push(LoadedImage {
                        id: id.clone(),
                        temporary,
                        created,
                    });
                    id
                }),
        ),
        Err(a) => match &written {
            Ok(Err(e)) if !stopped_reading(e) => None,
            _ => return Err(a),
        },
    };
    match written? {
        Err(e) => Err(e.into()),
        Ok(()) => match id {
            Some(r) => {
                let id = r?;
                tracing::debug!(%platform, id, "loaded into podman");
                Ok(id)
            }
            None => Err(PodmanError::Unexpected {
                action,
                detail: "it answered nothing".into(),
            }),
        },
    }
}

/// The ID of the image `POST /images/load` loaded as `name` (its answer
/// `bytes`), and whether podman gave it the name (a podman that reads no
/// name from the archive loads it as `sha256:<ID>`).
async fn loaded_id(
    api: &Api,
    bytes: &[u8],
    name: &str,
    action: &str,
) -> Result<(String, bool), PodmanError> {
    #[derive(Deserialize)]
    struct LoadAnswer {
        #[serde(rename = "Names", default)]
        names: Vec<String>,
    }
    let answer: LoadAnswer =
        serde_json::from_slice(bytes).map_err(|e| PodmanError::Unexpected {
            action: action.to_string(),
            detail: format!("{e}: {}", String::from_utf8_lossy(bytes)),
        })?;
    match answer.names.as_slice() {
        [one] if one == name => Ok((api.image_id(name).await?, true)),
        [one] if as_id(one).is_some() => Ok((as_id(one).unwrap_or_default().to_string(), false)),
        other => Err(PodmanError::Unexpected {
            action: action.to_string(),
            detail: format!("it loaded {other:?}, not one image named {name}"),
        }),
    }
}

/// The image ID in `sha256:<ID>`.
fn as_id(s: &str) -> Option<&str> {
    let id = s.strip_prefix("sha256:")?;
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Whether writing the archive failed only because podman stopped reading
/// it (its answer then says why).
fn stopped_reading(e: &LayoutError) -> bool {
    matches!(e, LayoutError::ReadEntry { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Names image `id` `repo:tag`, recording the image that had the name.
async fn give_name(
    api: &Api,
    before: &[ListedImage],
    undo: &mut Undo,
    id: &str,
    repo: &str,
    tag: &str,
    list: bool,
) -> Result<(), PodmanError> {
    let full = format!("{repo}:{tag}");
    let from = before
        .iter()
        .find(|i| i.names().contains(&full))
        .map(|i| i.id.clone());
    api.tag(id, repo, tag).await?;
    if from.as_deref() != Some(id) {
        undo.moved.push(Moved {
            repo: repo.to_string(),
            tag: tag.to_string(),
            to: id.to_string(),
            from,
            list,
        });
    }
    Ok(())
}

/// Image `id` as podman lists it.
async fn listed(api: &Api, id: &str) -> Result<ListedImage, PodmanError> {
    api.images()
        .await?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(|| PodmanError::Unexpected {
            action: "list its images".into(),
            detail: format!("image {} is not listed", api::short(id)),
        })
}

fn parse_digest(s: &str, action: &str) -> Result<Digest, PodmanError> {
    Digest::parse(s).map_err(|e| PodmanError::Unexpected {
        action: action.to_string(),
        detail: format!("digest {s:?}: {e}"),
    })
}

/// The digest a manifest list is stored under. Podman 4 keeps the digest
/// of the list as first created (empty) in `Digest` and adds the stored
/// list's digest to `RepoDigests`; both resolve, the latter is the list.
fn list_digest(listed: &ListedImage, repo: &str) -> Result<Digest, PodmanError> {
    let prefix = format!("{repo}@");
    let digests: Vec<&str> = listed
        .repo_digests
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter_map(|d| d.strip_prefix(prefix.as_str()))
        .collect();
    let pick = digests
        .iter()
        .find(|d| **d != listed.digest)
        .or(digests.first())
        .copied()
        .unwrap_or(listed.digest.as_str());
    parse_digest(pick, "list its images")
}

/// Checks that podman's list `doc` lists each of `images` (by digest) with
/// its platform, and nothing else.
fn check_list(doc: &[u8], images: &[PlatformImage], name: &str) -> Result<(), PodmanError> {
    #[derive(Deserialize)]
    struct List {
        #[serde(default)]
        manifests: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        digest: String,
        platform: Option<Platform>,
    }
    let mismatch = |detail: String| PodmanError::ListMismatch {
        name: name.to_string(),
        detail,
    };
    let list: List = serde_json::from_slice(doc).map_err(|e| {
        mismatch(format!(
            "it is not a manifest list ({e}): {}",
            String::from_utf8_lossy(doc)
        ))
    })?;
    if list.manifests.len() != images.len() {
        return Err(mismatch(format!(
            "it lists {} images, kiln loaded {}",
            list.manifests.len(),
            images.len()
        )));
    }
    for image in images {
        let want = &image.platform;
        let digest = image.descriptor.digest.to_string();
        let entry = list
            .manifests
            .iter()
            .find(|e| e.digest == digest)
            .ok_or_else(|| mismatch(format!("no {want} image {digest}")))?;
        let got = entry.platform.clone().map(Platform::normalize);
        if got.as_ref() != Some(&want.clone().normalize()) {
            let got = got.map_or_else(|| "no platform".to_string(), |p| p.to_string());
            return Err(mismatch(format!(
                "the {want} image {digest} is listed for {got}"
            )));
        }
    }
    Ok(())
}
