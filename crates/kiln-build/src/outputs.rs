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
        OutputSpec::Image { .. } => None,
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
    format!("{:x}{:x}", std::process::id(), nanos)
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
