//! Outputs fitted to the daemon: what a user asks for (`-t`, `-o`) becomes
//! the exporters *this* daemon has, plus work kiln does after the solve.
//!
//! A Docker Engine with the classic image store has no `image`, `oci` or
//! `docker` exporter and no multi-platform images: it stores an image with
//! its `moby` exporter, and kiln then pushes it or saves it (the Engine's
//! `GET /images/get` writes a docker-archive that is also an OCI layout) to
//! give the user what they asked for. What cannot be done there is refused
//! before anything is built, naming the image store and the way out.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use kiln_client::{DaemonInfo, Engine, ExporterKind, ExporterSpec, RegistryAuth};
use kiln_image::ImageRef;
use kiln_proto::attrs::exporter as ex;

use super::session_opts::{Output, Target};

/// Work kiln does itself once the solve succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum After {
    /// The Engine pushes `name` (stored by the `moby` exporter).
    Push { name: ImageRef },
    /// Save `temp` from the Engine's store into `dest` (a file or `-`) as a
    /// docker-archive / OCI layout naming the image `name`, then untag `temp`.
    Save {
        temp: String,
        dest: String,
        name: Option<String>,
        kind: &'static str,
    },
}

/// Outputs as the daemon gets them, and what kiln does afterwards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fitted {
    pub outputs: Vec<Output>,
    pub after: Vec<After>,
    /// Things the user should know (printed unless quiet).
    pub notes: Vec<String>,
}

/// Fits `outputs` to `daemon` for a build of `platforms` platforms.
///
/// # Errors
/// What the daemon cannot produce, with the image store and the remedy.
pub fn fit(
    daemon: &DaemonInfo,
    address: &str,
    outputs: Vec<Output>,
    platforms: usize,
) -> anyhow::Result<Fitted> {
    let mut fitted = Fitted::default();
    let classic = daemon.has_image_store() && !daemon.stores_multi_platform();
    for o in outputs {
        let kind = o.exporter.kind.as_str();
        let push = o.exporter.attrs.get(ex::PUSH).is_some_and(|v| v == "true");
        if !daemon.has_image_store() && kind == ex::TYPE_IMAGE && !push {
            fitted.notes.push(format!(
                "{} keeps images in its own store, which `docker run` does not see: use --push, or -o type=docker,dest=FILE and `docker load`",
                daemon.describe()
            ));
        }
        if !classic {
            fitted.outputs.push(o);
            continue;
        }
        let remedy = "build one --platform, use a buildkitd (unix:// or tcp://), or turn on the Docker Engine's containerd image store (daemon.json: \"features\": {\"containerd-snapshotter\": true})";
        match kind {
            ex::TYPE_IMAGE => {
                let Some(name) = o.exporter.attrs.get(ex::NAME).cloned() else {
                    bail!("an image output needs name=REF");
                };
                if platforms > 1 {
                    bail!(
                        "{address} is a {}: it holds one platform per image, so it cannot {} a {platforms}-platform image; {remedy}",
                        daemon.describe(),
                        if push { "push" } else { "store" }
                    );
                }
                for n in name.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    if push {
                        let r = ImageRef::parse(n)
                            .map_err(|e| anyhow::anyhow!("image name {n:?}: {e}"))?;
                        fitted.after.push(After::Push { name: r });
                    }
                }
                fitted.outputs.push(moby(&name));
            }
            ex::TYPE_OCI | ex::TYPE_DOCKER => {
                if platforms > 1 {
                    bail!(
                        "{address} is a {}: it has no `{kind}` exporter and holds one platform per image, so kiln cannot write a {platforms}-platform {kind} tarball there; {remedy}",
                        daemon.describe()
                    );
                }
                let Some(Target::File(dest)) = &o.target else {
                    bail!("a {kind} output needs dest=FILE");
                };
                let temp = format!("kiln-export/{}:latest", uuid_like());
                fitted.after.push(After::Save {
                    temp: temp.clone(),
                    dest: dest.clone(),
                    name: o.exporter.attrs.get(ex::NAME).cloned(),
                    kind: if kind == ex::TYPE_OCI {
                        ex::TYPE_OCI
                    } else {
                        ex::TYPE_DOCKER
                    },
                });
                fitted.outputs.push(moby(&temp));
            }
            _ => fitted.outputs.push(o),
        }
    }
    Ok(fitted)
}

/// A `moby` exporter storing the image under `name` (comma-separated names).
fn moby(name: &str) -> Output {
    Output {
        exporter: ExporterSpec {
            kind: ExporterKind::Moby.name().to_string(),
            attrs: [(ex::NAME.to_string(), name.to_string())].into(),
        },
        target: None,
    }
}

/// A random name part for a temporary tag.
fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}{:x}", std::process::id(), nanos)
}

/// Does `after`, in order, against the Engine at `engine`. Returns the
/// digest an Engine push reported (the last one), if any.
///
/// # Errors
/// A failed push or save, naming the image and the file.
pub async fn run_after(engine: &Engine, after: &[After]) -> anyhow::Result<Option<String>> {
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
                let saved = save(engine, temp, dest, name.as_deref(), kind).await;
                // The temporary tag goes either way.
                let untag = engine.remove_image(temp).await;
                saved?;
                untag.with_context(|| format!("cannot remove the temporary image {temp}"))?;
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
async fn registry_auth(host: &str) -> anyhow::Result<RegistryAuth> {
    let c = kiln_session::DockerAuth::from_env()
        .credentials(host)
        .await
        .with_context(|| format!("cannot read the registry credentials for {host}"))?;
    let Some(secret) = c.secret.filter(|s| !s.is_empty()) else {
        return Ok(RegistryAuth::anonymous());
    };
    let secret = String::from_utf8(secret.expose().to_vec())
        .map_err(|_| anyhow::anyhow!("the registry secret for {host} is not UTF-8"))?;
    Ok(if c.username.is_empty() {
        RegistryAuth::identity_token(host, &secret)
    } else {
        RegistryAuth::basic(host, &c.username, &secret)
    })
}

/// Saves `temp` into `dest` (temp file, then rename; `-` is stdout) with
/// the image named `name` (or unnamed).
async fn save(
    engine: &Engine,
    temp: &str,
    dest: &str,
    name: Option<&str>,
    kind: &str,
) -> anyhow::Result<()> {
    let dir = if dest == "-" {
        std::env::temp_dir()
    } else {
        Path::new(dest)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    };
    let raw = tempfile::Builder::new()
        .prefix(".kiln-save-")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    {
        let mut f = tokio::fs::File::from_std(
            raw.reopen()
                .with_context(|| format!("cannot open {}", raw.path().display()))?,
        );
        engine
            .save_image(temp, &mut f)
            .await
            .with_context(|| format!("cannot save the image for -o type={kind},dest={dest}"))?;
    }
    let dest = dest.to_string();
    let name = name.map(str::to_string);
    let raw_path = raw.path().to_path_buf();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let input = std::fs::File::open(&raw_path)
            .with_context(|| format!("cannot read {}", raw_path.display()))?;
        if dest == "-" {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            rename_archive(input, &mut lock, name.as_deref())?;
            lock.flush().context("cannot write to stdout")?;
            return Ok(());
        }
        let out = tempfile::Builder::new()
            .prefix(".kiln-out-")
            .tempfile_in(Path::new(&raw_path).parent().unwrap_or(Path::new(".")))
            .context("cannot create a temporary file")?;
        let mut w =
            std::io::BufWriter::new(out.reopen().context("cannot open the temporary file")?);
        rename_archive(input, &mut w, name.as_deref())?;
        w.flush().context("cannot write the output")?;
        drop(w);
        set_mode_0644(out.path());
        out.persist(&dest)
            .map_err(|e| anyhow::anyhow!("cannot move the output into {dest}: {}", e.error))?;
        Ok(())
    })
    .await
    .context("the save task failed")??;
    drop(raw);
    Ok(())
}

fn set_mode_0644(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644));
}

/// Copies a docker-archive (which the Engine writes as an OCI layout plus
/// `manifest.json`) naming its one image `name`: `RepoTags` in
/// `manifest.json`, the name annotations in `index.json`, and `repositories`.
/// Without a name the image is left unnamed.
///
/// # Errors
/// A malformed archive or a failed write.
pub fn rename_archive<R: Read, W: Write>(
    input: R,
    output: W,
    name: Option<&str>,
) -> anyhow::Result<()> {
    let mut archive = tar::Archive::new(input);
    let mut builder = tar::Builder::new(output);
    builder.mode(tar::HeaderMode::Complete);
    for entry in archive
        .entries()
        .context("the saved image is not a tar archive")?
    {
        let mut entry = entry.context("the saved image is not a tar archive")?;
        let path = entry
            .path()
            .context("a saved entry has a bad path")?
            .to_string_lossy()
            .to_string();
        let mut header = entry.header().clone();
        let rewritten = match path.trim_start_matches("./") {
            "manifest.json" | "index.json" | "repositories" => {
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .with_context(|| format!("cannot read {path}"))?;
                Some(rewrite_json(&path, &data, name)?)
            }
            _ => None,
        };
        match rewritten {
            Some(Some(data)) => {
                header.set_size(data.len() as u64);
                header.set_cksum();
                builder.append(&header, data.as_slice())
            }
            Some(None) => continue, // dropped (`repositories` without a name)
            None => builder.append(&header, &mut entry),
        }
        .with_context(|| format!("cannot write {path}"))?;
    }
    builder.finish().context("cannot finish the archive")?;
    Ok(())
}

/// The new contents of a naming file; `None` drops it.
fn rewrite_json(path: &str, data: &[u8], name: Option<&str>) -> anyhow::Result<Option<Vec<u8>>> {
    let bad = || format!("the saved image has a malformed {path}");
    let name = match name {
        Some(n) => Some(ImageRef::parse(n).map_err(|e| anyhow::anyhow!("image name {n:?}: {e}"))?),
        None => None,
    };
    let full = name
        .as_ref()
        .map(|n| format!("{}:{}", n.familiar_name(), n.tag().unwrap_or("latest")));
    match path.trim_start_matches("./") {
        "manifest.json" => {
            let mut v: serde_json::Value = serde_json::from_slice(data).with_context(bad)?;
            for m in v.as_array_mut().with_context(bad)? {
                m["RepoTags"] = match &full {
                    Some(f) => serde_json::json!([f]),
                    None => serde_json::Value::Null,
                };
            }
            Ok(Some(serde_json::to_vec(&v)?))
        }
        "index.json" => {
            let mut v: serde_json::Value = serde_json::from_slice(data).with_context(bad)?;
            let manifests = v["manifests"].as_array_mut().with_context(bad)?;
            for m in manifests {
                let ann = m
                    .as_object_mut()
                    .with_context(bad)?
                    .entry("annotations")
                    .or_insert_with(|| serde_json::json!({}));
                let Some(ann) = ann.as_object_mut() else {
                    bail!(bad());
                };
                ann.remove("io.containerd.image.name");
                ann.remove("org.opencontainers.image.ref.name");
                if let (Some(f), Some(n)) = (&full, &name) {
                    ann.insert("io.containerd.image.name".into(), f.clone().into());
                    ann.insert(
                        "org.opencontainers.image.ref.name".into(),
                        n.tag().unwrap_or("latest").into(),
                    );
                }
                if ann.is_empty() {
                    m.as_object_mut().with_context(bad)?.remove("annotations");
                }
            }
            Ok(Some(serde_json::to_vec(&v)?))
        }
        _ => {
            // `repositories`: {"repo": {"tag": "<image id>"}}
            let (Some(n), Ok(v)) = (&name, serde_json::from_slice::<serde_json::Value>(data))
            else {
                return Ok(None);
            };
            let id = v
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(|t| t.as_object())
                .and_then(|t| t.values().next())
                .cloned();
            let Some(id) = id else { return Ok(None) };
            let mut tags = serde_json::Map::new();
            tags.insert(n.tag().unwrap_or("latest").to_string(), id);
            let mut repos = serde_json::Map::new();
            repos.insert(n.familiar_name(), serde_json::Value::Object(tags));
            Ok(Some(serde_json::to_vec(&serde_json::Value::Object(repos))?))
        }
    }
}

#[cfg(test)]
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

    fn out(spec: &str) -> Output {
        crate::cmd::session_opts::parse_output(spec).unwrap()
    }

    #[test]
    fn other_daemons_get_the_outputs_unchanged() {
        let outs = vec![out("type=oci,dest=a.tar"), out("type=image,name=x/y:z")];
        let f = fit(
            &docker(ImageStore::Containerd),
            "docker://",
            outs.clone(),
            2,
        )
        .unwrap();
        assert_eq!(f.outputs, outs);
        assert!(f.after.is_empty() && f.notes.is_empty());
        let f = fit(&buildkitd(), "unix:///s", outs.clone(), 2).unwrap();
        assert_eq!(f.outputs, outs);
        assert_eq!(
            f.notes.len(),
            1,
            "an image kept in buildkitd's own store is worth a note"
        );
        let pushed = vec![out("type=image,name=r:5000/y:z,push=true")];
        assert!(fit(&buildkitd(), "unix:///s", pushed, 1)
            .unwrap()
            .notes
            .is_empty());
    }

    #[test]
    fn classic_store_gets_moby_exports_and_kiln_does_the_rest() {
        let classic = docker(ImageStore::Classic);
        let f = fit(
            &classic,
            "docker://",
            vec![
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
        assert_eq!(f.outputs[2].target, Some(Target::File("t.tar".into())));
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
        assert_eq!(
            (dest.as_str(), name.as_deref(), *kind),
            ("d.tar", Some("app:2"), "docker")
        );
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
                vec![out(spec)],
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
            vec![out("type=tar,dest=x")],
            2
        )
        .is_ok());
    }

    /// A docker-archive like the Engine's `docker save` (OCI layout + manifest.json).
    fn saved(name: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, data).unwrap();
        };
        add("blobs/sha256/aa", b"layer");
        add(
            "index.json",
            format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"sha256:bb","size":1,"annotations":{{"io.containerd.image.name":"docker.io/{name}","org.opencontainers.image.ref.name":"latest"}}}}]}}"#).as_bytes(),
        );
        add(
            "manifest.json",
            format!(r#"[{{"Config":"blobs/sha256/cc","RepoTags":["{name}"],"Layers":["blobs/sha256/aa"]}}]"#).as_bytes(),
        );
        add(
            "repositories",
            format!(r#"{{"{name}":{{"latest":"cc"}}}}"#).as_bytes(),
        );
        b.into_inner().unwrap()
    }

    fn entries(tar_bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let p = e.path().unwrap().to_string_lossy().to_string();
                let mut s = String::new();
                e.read_to_string(&mut s).unwrap();
                (p, s)
            })
            .collect()
    }

    #[test]
    fn saved_archives_are_renamed_or_unnamed() {
        let input = saved("kiln-export/tmp");
        let mut named = Vec::new();
        rename_archive(input.as_slice(), &mut named, Some("127.0.0.1:5000/app:v1")).unwrap();
        let e = entries(&named);
        assert_eq!(
            e["blobs/sha256/aa"], "layer",
            "blobs are copied as they are"
        );
        assert!(
            e["manifest.json"].contains(r#""RepoTags":["127.0.0.1:5000/app:v1"]"#),
            "{}",
            e["manifest.json"]
        );
        assert!(e["index.json"].contains(r#""io.containerd.image.name":"127.0.0.1:5000/app:v1""#));
        assert!(e["index.json"].contains(r#""org.opencontainers.image.ref.name":"v1""#));
        assert_eq!(e["repositories"], r#"{"127.0.0.1:5000/app":{"v1":"cc"}}"#);
        assert!(!e.values().any(|v| v.contains("kiln-export")));

        let mut unnamed = Vec::new();
        rename_archive(input.as_slice(), &mut unnamed, None).unwrap();
        let e = entries(&unnamed);
        assert!(!e.contains_key("repositories"));
        assert!(e["manifest.json"].contains(r#""RepoTags":null"#));
        assert!(
            !e["index.json"].contains("annotations"),
            "{}",
            e["index.json"]
        );
    }

    #[test]
    fn a_broken_archive_is_an_error() {
        let mut out = Vec::new();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_cksum();
        b.append_data(&mut h, "manifest.json", &b"{{{"[..]).unwrap();
        let bad = b.into_inner().unwrap();
        let e = rename_archive(bad.as_slice(), &mut out, Some("a:b")).unwrap_err();
        assert!(e.to_string().contains("malformed manifest.json"), "{e}");
    }
}
