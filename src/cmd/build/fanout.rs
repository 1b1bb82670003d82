//! Builds fanned out to several BuildKit endpoints (`--builder
//! PLATFORM=ADDR`).
//!
//! Each endpoint plans and builds its own platforms against its own daemon
//! (its own build platform: a native arm64 builder compiles arm64 natively,
//! an amd64 one cross-compiles), in parallel, with its own session, and
//! pushes the result to the registry by digest only. kiln then reads each
//! pushed manifest (or index) back, joins the per-platform manifests into
//! one OCI image index in `--platform` order, and pushes that index under
//! every `-t` name. Nothing is tagged until every platform is built.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use kiln_image::manifest::{oci_index, Descriptor};
use kiln_image::registry::RegistryClient;
use kiln_image::{media_type, Digest, ImageRef, Platform};
use kiln_proto::attrs::{exporter as ex, response};

use super::inputs::Inputs;
use super::oci_merge;
use super::{build_on, context_session, daemon_platform, BuildArgs, Endpoint, Outcome};
use crate::cli::Global;
use crate::cmd::run::with_progress;
use crate::cmd::session_opts::{Output, Target};

/// One daemon and the platforms it builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The address (`None`: the default, `--addr`).
    pub addr: Option<String>,
    pub platforms: Vec<Platform>,
}

/// Assigns every target platform to an endpoint: `--builder PLATFORM=ADDR`
/// values first, the default address for the rest. Without `--platform`,
/// the targets are the `--builder` platforms.
pub fn plan_groups(builders: &[String], platforms: &[String]) -> anyhow::Result<Vec<Group>> {
    let mut mapped: Vec<(Platform, String)> = Vec::new();
    for b in builders {
        let (p, addr) = b
            .split_once('=')
            .filter(|(p, a)| !p.trim().is_empty() && !a.trim().is_empty())
            .with_context(|| {
                format!(
                    "--builder {b:?} is not PLATFORM=ADDR (e.g. linux/arm64=tcp://arm-host:1234)"
                )
            })?;
        let platform = Platform::parse(p.trim())
            .map_err(|e| anyhow::anyhow!("--builder {b:?}: {e} (e.g. linux/arm64)"))?
            .normalize();
        if platform.os != "linux" {
            bail!("--builder {b:?}: kiln builds Linux images only");
        }
        if let Some((_, other)) = mapped.iter().find(|(q, _)| *q == platform) {
            bail!(
                "--builder: {platform} is given twice ({other} and {})",
                addr.trim()
            );
        }
        mapped.push((platform, addr.trim().to_string()));
    }
    let targets: Vec<Platform> = if platforms.is_empty() {
        mapped.iter().map(|(p, _)| p.clone()).collect()
    } else {
        let mut t: Vec<Platform> = Vec::new();
        for p in platforms {
            let parsed = Platform::parse(p)
                .map_err(|e| anyhow::anyhow!("--platform {p:?}: {e}"))?
                .normalize();
            if !t.contains(&parsed) {
                t.push(parsed);
            }
        }
        for (p, addr) in &mapped {
            if !t.contains(p) {
                bail!("--builder {p}={addr}: {p} is not in --platform; add it there or drop the --builder");
            }
        }
        t
    };
    let mut groups: Vec<Group> = Vec::new();
    for target in targets {
        let addr = mapped
            .iter()
            .find(|(p, _)| *p == target)
            .map(|(_, a)| a.clone());
        match groups.iter_mut().find(|g| g.addr == addr) {
            Some(g) => g.platforms.push(target),
            None => groups.push(Group {
                addr,
                platforms: vec![target],
            }),
        }
    }
    Ok(groups)
}

/// The repositories (`-t` names without tag) an endpoint pushes by digest to.
fn repositories(tags: &[ImageRef]) -> Vec<String> {
    let mut repos: Vec<String> = Vec::new();
    for t in tags {
        let r = t.name();
        if !repos.contains(&r) {
            repos.push(r);
        }
    }
    repos
}

/// Where a fanned-out build goes: registry names (pushed by digest, then
/// joined) and OCI tarballs (exported per endpoint, then merged), with the
/// exporter options the user gave, carried to every endpoint.
#[derive(Debug, Default)]
struct Destinations {
    tags: Vec<ImageRef>,
    /// Options of the image outputs besides name and push
    /// (`compression`, `registry.insecure`, `annotation.*`, …).
    image_attrs: BTreeMap<String, String>,
    /// `(dest, name)` of each `-o type=oci` output.
    oci: Vec<(PathBuf, Option<ImageRef>)>,
    /// Options of the `oci` outputs besides name.
    oci_attrs: BTreeMap<String, String>,
}

impl Destinations {
    /// Registries kiln itself must talk plain HTTP to (`registry.insecure=true`).
    fn insecure_registries(&self) -> Vec<String> {
        if self
            .image_attrs
            .get(ex::REGISTRY_INSECURE)
            .map(String::as_str)
            != Some("true")
        {
            return Vec::new();
        }
        self.tags.iter().map(|t| t.domain().to_string()).collect()
    }
}

/// Adds `attrs` (without `skip`) to `into`; the same option with two
/// values is an error.
fn merge_attrs(
    into: &mut BTreeMap<String, String>,
    attrs: &BTreeMap<String, String>,
    skip: &[&str],
) -> anyhow::Result<()> {
    for (k, v) in attrs.iter().filter(|(k, _)| !skip.contains(&k.as_str())) {
        if let Some(old) = into.insert(k.clone(), v.clone()) {
            if old != *v {
                bail!("--builder: the outputs give {k} twice ({old} and {v}); every endpoint gets the same options");
            }
        }
    }
    Ok(())
}

fn destinations(args: &BuildArgs, inputs: &Inputs) -> anyhow::Result<Destinations> {
    let refuse = || {
        anyhow::anyhow!(
            "--builder builds on several daemons, whose results kiln joins: use it with -t REGISTRY/REPO:TAG --push and/or -o type=oci,dest=FILE (not -o -, other output types or -t without --push)"
        )
    };
    let mut d = Destinations::default();
    for o in &inputs.outputs {
        let name = o
            .exporter
            .attrs
            .get(ex::NAME)
            .map(|n| ImageRef::parse(n).map_err(|e| anyhow::anyhow!("image name {n:?}: {e}")))
            .transpose()?;
        match (o.exporter.kind.as_str(), &o.target) {
            (ex::TYPE_IMAGE, None) if args.push => {
                d.tags.push(name.ok_or_else(refuse)?);
                merge_attrs(&mut d.image_attrs, &o.exporter.attrs, &[ex::NAME, ex::PUSH])?;
            }
            (ex::TYPE_OCI, Some(Target::File(f))) if f != "-" => {
                let dest = PathBuf::from(f);
                oci_merge::check_dest(&dest)?;
                d.oci.push((dest, name));
                merge_attrs(&mut d.oci_attrs, &o.exporter.attrs, &[ex::NAME])?;
            }
            _ => return Err(refuse()),
        }
    }
    if d.tags.is_empty() && d.oci.is_empty() {
        return Err(refuse());
    }
    Ok(d)
}

pub async fn run(global: &Global, args: &BuildArgs, inputs: &Inputs) -> anyhow::Result<ExitCode> {
    let dest = destinations(args, inputs)?;
    // Credentials are read before anything is built: a broken helper or
    // config fails now, not after every platform has been pushed.
    let registry = if dest.tags.is_empty() {
        None
    } else {
        Some(crate::cmd::registry::client_for(&dest.tags, &dest.insecure_registries()).await?)
    };
    let groups = plan_groups(&args.builders, &inputs.platforms)?;
    let targets: Vec<Platform> = groups.iter().flat_map(|g| g.platforms.clone()).collect();

    // Connect to every endpoint first: a typo in an address fails before
    // anything is built.
    let mut endpoints = Vec::new();
    for g in &groups {
        let mut gl = global.clone();
        if g.addr.is_some() {
            gl.addr.clone_from(&g.addr);
        }
        let (client, _) = super::super::connect(&gl).await.with_context(|| {
            format!(
                "cannot reach the builder for {}",
                g.platforms
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let info = client.daemon_info().await?;
        if info.has_image_store() && !info.stores_multi_platform() {
            anyhow::bail!(
                "the builder for {} ({}) is a {}: a fanned-out build pushes each platform by digest or joins OCI layouts, which that image store cannot produce; point --builder at a buildkitd or at a Docker Engine with the containerd image store",
                g.platforms
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                client.address(),
                info.describe()
            );
        }
        let build_platform = daemon_platform(&client).await?;
        endpoints.push((g.clone(), client, build_platform));
    }

    // Each endpoint's outputs: a push by digest to every repository, and
    // one OCI tarball in a private temporary directory.
    let repos = repositories(&dest.tags);
    let parts_dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let mut per_endpoint: Vec<Vec<Output>> = Vec::new();
    for i in 0..endpoints.len() {
        let mut outs = Vec::new();
        if !repos.is_empty() {
            outs.push(Output {
                exporter: kiln_client::ExporterSpec {
                    kind: ex::TYPE_IMAGE.into(),
                    attrs: dest
                        .image_attrs
                        .clone()
                        .into_iter()
                        .chain([
                            (ex::NAME.to_string(), repos.join(",")),
                            (ex::PUSH.to_string(), "true".to_string()),
                            (ex::PUSH_BY_DIGEST.to_string(), "true".to_string()),
                            // Only the registry holds the per-platform images:
                            // no untagged leftovers in each daemon's store.
                            (ex::STORE.to_string(), "false".to_string()),
                        ])
                        .collect(),
                },
                target: None,
            });
        }
        if !dest.oci.is_empty() {
            let part = parts_dir.path().join(format!("endpoint-{i}.tar"));
            outs.push(Output {
                exporter: kiln_client::ExporterSpec {
                    kind: ex::TYPE_OCI.into(),
                    attrs: dest.oci_attrs.clone(),
                },
                target: Some(Target::File(part.display().to_string())),
            });
        }
        for o in &mut outs {
            inputs.decorate_exporter(&mut o.exporter);
        }
        per_endpoint.push(outs);
    }

    let commands = Arc::new(Mutex::new(Default::default()));
    let cmds = commands.clone();
    let endpoints_ref = &endpoints;
    let per_endpoint_ref = &per_endpoint;
    let (outcomes, _state) =
        with_progress(args.progress, commands, global.debug, |tx| async move {
            let builds = endpoints_ref.iter().zip(per_endpoint_ref).map(
                |((g, client, build_platform), outputs)| {
                    let tx = tx.clone();
                    let cmds = cmds.clone();
                    async move {
                        let session = context_session(inputs, outputs)?;
                        build_on(Endpoint {
                            client,
                            inputs,
                            build_platform,
                            targets: &g.platforms,
                            session,
                            exporters: outputs.iter().map(|o| o.exporter.clone()).collect(),
                            print_llb: None,
                            label_platforms: true,
                            tx,
                            commands: cmds,
                        })
                        .await
                    }
                },
            );
            // The first failure cancels the other endpoints' builds (dropping
            // a build cancels its Solve on that daemon).
            futures::future::try_join_all(builds).await
        })
        .await?;

    let mut summary = Vec::new();
    let mut pushed_digests = Vec::new();
    for ((g, _, build_platform), outcome) in endpoints.iter().zip(&outcomes) {
        let Outcome::Built(resp, plan) = outcome else {
            bail!("internal: a fanned-out build printed instead of building");
        };
        pushed_digests.push(resp.exporter_response.get(response::IMAGE_DIGEST).cloned());
        summary.push(format!(
            "{} on {} ({build_platform}, Go {})",
            g.platforms
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            g.addr.as_deref().unwrap_or("the default builder"),
            plan.go_version
        ));
    }

    // Tarballs first (into temporary files), then the registry tags, then
    // the tarballs into place: a failure anywhere leaves neither a moved
    // tag nor a partial file.
    let parts: Vec<oci_merge::Part> = endpoints
        .iter()
        .enumerate()
        .map(|(i, (g, _, _))| oci_merge::Part {
            tar: parts_dir.path().join(format!("endpoint-{i}.tar")),
            platforms: g.platforms.clone(),
        })
        .collect();
    let mut merged = Vec::new();
    for (file, name) in &dest.oci {
        merged.push(
            oci_merge::merge(&parts, &targets, name.as_ref(), file)
                .with_context(|| format!("cannot write {}", file.display()))?,
        );
    }
    let mut printed = merged.first().map(|m| m.digest.clone());
    if let Some(registry) = &registry {
        printed = Some(
            join_in_registry(
                registry,
                &endpoints,
                &pushed_digests,
                &repos,
                &targets,
                &dest.tags,
            )
            .await?,
        );
    }
    for m in merged {
        m.commit()?;
    }

    let quiet = args.progress == crate::progress::Mode::Quiet;
    if !quiet {
        for s in &summary {
            eprintln!("built {s}");
        }
        let mut wrote: Vec<String> = dest.tags.iter().map(ToString::to_string).collect();
        wrote.extend(dest.oci.iter().map(|(f, _)| f.display().to_string()));
        eprintln!(
            "joined {} into one index: {}",
            targets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            wrote.join(", ")
        );
    }
    if let Some(d) = printed {
        outln!("{d}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads back what each endpoint pushed, joins the platform manifests in
/// target order into one OCI index and pushes it under every tag.
async fn join_in_registry(
    registry: &RegistryClient,
    endpoints: &[(Group, kiln_client::Client, Platform)],
    pushed: &[Option<String>],
    repos: &[String],
    targets: &[Platform],
    tags: &[ImageRef],
) -> anyhow::Result<Digest> {
    let repo = ImageRef::parse(&repos[0]).map_err(|e| anyhow::anyhow!("{}: {e}", repos[0]))?;
    let mut found: Vec<Descriptor> = Vec::new();
    for ((g, _, _), digest) in endpoints.iter().zip(pushed) {
        let digest: Digest = digest
            .as_deref()
            .with_context(|| {
                format!(
                    "the builder at {} pushed no image digest",
                    g.addr.as_deref().unwrap_or("--addr")
                )
            })?
            .parse()
            .context("the builder returned a bad image digest")?;
        let got = registry
            .get_manifest(&repo.with_digest(digest.clone()))
            .await
            .with_context(|| format!("cannot read back {}@{digest}", repo.name()))?;
        if got.manifest.is_index() {
            for (p, d) in got.manifest.platforms() {
                found.push(Descriptor {
                    platform: Some(p),
                    ..d
                });
            }
        } else {
            let [only] = g.platforms.as_slice() else {
                bail!("the builder for {:?} pushed a single manifest", g.platforms);
            };
            let mut d = got.descriptor();
            d.platform = Some(only.clone());
            found.push(d);
        }
    }
    let mut entries = Vec::new();
    for t in targets {
        let d = found
            .iter()
            .find(|d| d.platform.as_ref() == Some(t))
            .with_context(|| format!("no manifest for {t} among what the builders pushed"))?;
        entries.push(d.clone());
    }
    let index = oci_index(&entries).context("cannot write the image index")?;
    let mut index_digest = Digest::sha256_of(&index);
    for t in tags {
        index_digest = registry
            .put_manifest(t, media_type::OCI_INDEX, index.clone())
            .await
            .with_context(|| format!("cannot push the image index to {t}"))?;
    }
    Ok(index_digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().expect("platform")
    }

    #[test]
    fn groups_follow_platform_order_and_default_the_rest() {
        let g = plan_groups(
            &["linux/arm64=tcp://arm:1234".into()],
            &[
                "linux/amd64".into(),
                "linux/arm64".into(),
                "linux/arm/v7".into(),
            ],
        )
        .expect("groups");
        assert_eq!(
            g,
            vec![
                Group {
                    addr: None,
                    platforms: vec![p("linux/amd64"), p("linux/arm/v7")]
                },
                Group {
                    addr: Some("tcp://arm:1234".into()),
                    platforms: vec![p("linux/arm64")]
                },
            ]
        );
        // Without --platform: the --builder platforms.
        let g = plan_groups(
            &[
                "linux/amd64=unix:///a.sock".into(),
                "linux/arm64=unix:///b.sock".into(),
            ],
            &[],
        )
        .expect("groups");
        assert_eq!(g.len(), 2);
        assert_eq!(g[1].platforms, vec![p("linux/arm64")]);
    }

    #[test]
    fn bad_builder_values_are_named() {
        for (b, want) in [
            ("linux/arm64", "is not PLATFORM=ADDR"),
            ("=tcp://x:1", "is not PLATFORM=ADDR"),
            ("linux/arm64=", "is not PLATFORM=ADDR"),
            ("windows/amd64=tcp://x:1", "Linux images only"),
            ("nonsense/=tcp://x:1", "--builder"),
        ] {
            let e = plan_groups(&[b.into()], &[]).expect_err(b).to_string();
            assert!(e.contains(want), "{b}: {e}");
        }
        let e = plan_groups(
            &[
                "linux/arm64=tcp://a:1".into(),
                "linux/arm64=tcp://b:1".into(),
            ],
            &[],
        )
        .expect_err("twice")
        .to_string();
        assert!(e.contains("given twice"), "{e}");
        let e = plan_groups(&["linux/arm64=tcp://a:1".into()], &["linux/amd64".into()])
            .expect_err("not a target")
            .to_string();
        assert!(e.contains("not in --platform"), "{e}");
    }

    #[test]
    fn repositories_are_deduplicated_in_order() {
        let tags: Vec<ImageRef> = ["r.example/a:1", "r.example/a:2", "r.example/b:1"]
            .iter()
            .map(|t| ImageRef::parse(t).expect("ref"))
            .collect();
        assert_eq!(repositories(&tags), ["r.example/a", "r.example/b"]);
    }

    #[test]
    fn output_options_reach_every_endpoint_once() {
        let a = BTreeMap::from([
            ("name".to_string(), "r/a:1".to_string()),
            ("compression".to_string(), "zstd".to_string()),
        ]);
        let b = BTreeMap::from([
            ("name".to_string(), "r/b:1".to_string()),
            ("compression".to_string(), "zstd".to_string()),
            ("registry.insecure".to_string(), "true".to_string()),
        ]);
        let mut into = BTreeMap::new();
        merge_attrs(&mut into, &a, &["name"]).expect("a");
        merge_attrs(&mut into, &b, &["name"]).expect("b");
        assert_eq!(
            into.keys().collect::<Vec<_>>(),
            ["compression", "registry.insecure"]
        );
        let c = BTreeMap::from([("compression".to_string(), "gzip".to_string())]);
        let e = merge_attrs(&mut into, &c, &[])
            .expect_err("conflict")
            .to_string();
        assert!(e.contains("compression twice"), "{e}");

        let d = Destinations {
            tags: vec![ImageRef::parse("myreg.corp:5000/app:1").expect("ref")],
            image_attrs: into,
            ..Default::default()
        };
        assert_eq!(d.insecure_registries(), ["myreg.corp:5000"]);
    }
}
