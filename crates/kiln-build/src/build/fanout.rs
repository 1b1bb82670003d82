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

use kiln_client::kiln_proto::attrs::{exporter as ex, response};
use kiln_client::{Client, ExporterSpec};
use kiln_image::layout::{check_destination, merge, Part};
use kiln_image::manifest::{oci_index, Descriptor};
use kiln_image::registry::RegistryClient;
use kiln_image::{media_type, Digest, ImageRef, Platform};

use super::endpoint::{Endpoint, Events, ExecCommands, Outcome};
use super::request::Request;
use super::{connect, context_session, daemon_platform, Connect};
use crate::error::BuildError;
use crate::outputs::After;
use crate::session::{DaemonOutput, Target};
use crate::spec::{Dest, OutputSpec};

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
pub fn plan_groups(builders: &[String], platforms: &[String]) -> Result<Vec<Group>, BuildError> {
    let mut mapped: Vec<(Platform, String)> = Vec::new();
    for b in builders {
        let (p, addr) = b
            .split_once('=')
            .filter(|(p, a)| !p.trim().is_empty() && !a.trim().is_empty())
            .ok_or_else(|| {
                BuildError::invalid(
                    format!("--builder {b:?}"),
                    "it is not PLATFORM=ADDR (e.g. linux/arm64=tcp://arm-host:1234)",
                )
            })?;
        let platform = Platform::parse(p.trim())
            .map_err(|e| {
                BuildError::invalid(
                    format!("--builder {b:?}"),
                    format!("{e} (e.g. linux/arm64)"),
                )
            })?
            .normalize();
        if platform.os != "linux" {
            return Err(BuildError::invalid(
                format!("--builder {b:?}"),
                "kiln builds Linux images only",
            ));
        }
        if let Some((_, other)) = mapped.iter().find(|(q, _)| *q == platform) {
            return Err(BuildError::invalid(
                "--builder",
                format!("{platform} is given twice ({other} and {})", addr.trim()),
            ));
        }
        mapped.push((platform, addr.trim().to_string()));
    }
    let targets: Vec<Platform> = if platforms.is_empty() {
        mapped.iter().map(|(p, _)| p.clone()).collect()
    } else {
        let mut t: Vec<Platform> = Vec::new();
        for p in platforms {
            let parsed = Platform::parse(p)
                .map_err(|e| BuildError::invalid(format!("--platform {p:?}"), e.to_string()))?
                .normalize();
            if !t.contains(&parsed) {
                t.push(parsed);
            }
        }
        for (p, addr) in &mapped {
            if !t.contains(p) {
                return Err(BuildError::invalid(
                    format!("--builder {p}={addr}"),
                    format!("{p} is not in --platform; add it there or drop the --builder"),
                ));
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
    /// What kiln does with merged layouts afterwards: gzip a `.tar.gz`,
    /// load into podman or containerd (their layouts are temporary files
    /// among `oci`).
    after: Vec<After>,
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
) -> Result<(), BuildError> {
    for (k, v) in attrs {
        if let Some(old) = into.insert(k.clone(), v.clone()) {
            if old != *v {
                return Err(BuildError::invalid(
                    "--builder",
                    format!("the outputs give {k} twice ({old} and {v}); every endpoint gets the same options"),
                ));
            }
        }
    }
    Ok(())
}

fn destinations(request: &Request) -> Result<Destinations, BuildError> {
    let refuse = || {
        BuildError::invalid(
            "--builder",
            "it builds on several daemons, whose results kiln joins: use it with -t REGISTRY/REPO:TAG --push, -o type=oci,dest=FILE, -o type=podman or -o type=containerd (not -o -, other output types or -t without --push)",
        )
    };
    let mut d = Destinations::default();
    for o in &request.outputs {
        match o {
            OutputSpec::Image {
                names,
                push: true,
                attrs,
            } => {
                d.tags.extend(names.iter().cloned());
                merge_attrs(&mut d.image_attrs, attrs)?;
            }
            OutputSpec::Oci {
                dest: Dest::File(dest),
                name,
                attrs,
            } => {
                check_destination(dest).map_err(|e| {
                    BuildError::invalid(
                        format!("-o type=oci,dest={}", dest.display()),
                        e.to_string(),
                    )
                })?;
                merge_attrs(&mut d.oci_attrs, attrs)?;
                // A .tar.gz: merged into a temporary tarball, then gzipped.
                match crate::outputs::gzip_target(o) {
                    Some((to, from)) => {
                        d.oci.push((from.clone(), name.clone()));
                        d.after.push(After::Gzip { from, to });
                    }
                    None => d.oci.push((dest.clone(), name.clone())),
                }
            }
            OutputSpec::Podman { .. } | OutputSpec::Containerd { .. } => {
                // Merged into a temporary layout, then loaded.
                if let Some(load) = crate::outputs::load_target(o)? {
                    if let After::Load { tar, name, .. } = &load {
                        d.oci.push((tar.clone(), Some(name.clone())));
                    }
                    d.after.push(load);
                }
            }
            _ => return Err(refuse()),
        }
    }
    if d.tags.is_empty() && d.oci.is_empty() {
        return Err(refuse());
    }
    Ok(d)
}

/// What a fanned-out build did.
#[derive(Debug)]
pub struct Joined {
    /// The index digest (printed on stdout).
    pub digest: Option<Digest>,
    /// One line per endpoint: its platforms, where, its build platform and Go.
    pub summary: Vec<String>,
    pub targets: Vec<Platform>,
    /// The names and files written.
    pub wrote: Vec<String>,
    /// Things the user should know (kiln.lock updated, …).
    pub notes: Vec<String>,
    /// The joined index as the registry has it (pushed builds).
    pub descriptor: Option<Descriptor>,
    /// The `-t` names the index was pushed under.
    pub names: Vec<String>,
    /// Each platform's manifest digest, in `--platform` order (pushed builds).
    pub platform_digests: Vec<(Platform, Digest)>,
    /// One endpoint's plan (the Go release and the pinned images are the
    /// same on every endpoint).
    pub plan: Option<super::Plan>,
    /// One line per image loaded into podman or containerd.
    pub loaded: Vec<String>,
}

/// A fanned-out build, connected and checked: nothing built yet.
pub struct FanOut {
    request: Request,
    dest: Destinations,
    registry: Option<RegistryClient>,
    targets: Vec<Platform>,
    endpoints: Vec<(Group, Client, Platform)>,
    warnings: Vec<String>,
}

impl FanOut {
    /// Reads the credentials, connects to every endpoint (the default one
    /// with `connect`, the others with its TLS options) and checks each can
    /// take part, before anything is built.
    ///
    /// # Errors
    /// Bad `--builder`/output combinations, an unreachable endpoint, a
    /// classic-store Docker endpoint.
    pub async fn prepare(mut request: Request, default: &Connect) -> Result<FanOut, BuildError> {
        let dest = destinations(&request)?;
        crate::outputs::preflight(&dest.after).await?;
        // Credentials are read before anything is built: a broken helper or
        // config fails now, not after every platform has been pushed.
        let registry = if dest.tags.is_empty() {
            None
        } else {
            Some(crate::registry::client_for(&dest.tags, &dest.insecure_registries()).await?)
        };
        let groups = plan_groups(&request.builders, &request.platforms)?;
        let targets: Vec<Platform> = groups.iter().flat_map(|g| g.platforms.clone()).collect();
        // Connect to every endpoint first: a typo in an address fails
        // before anything is built.
        let mut endpoints = Vec::new();
        let mut warnings = Vec::new();
        for g in &groups {
            let plats = g
                .platforms
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let c = Connect {
                addr: g.addr.clone().or_else(|| default.addr.clone()),
                tls: default.tls.clone(),
            };
            let client = connect(&c).await.map_err(|e| BuildError::Unreachable {
                platforms: plats.clone(),
                source: Box::new(e),
            })?;
            // Connecting sent nothing of the build yet.
            if let Some(w) = client.address().plaintext_warning(c.tls.is_set()) {
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
            let info = client.daemon_info().await?;
            if info.has_image_store() && !info.stores_multi_platform() {
                return Err(BuildError::Unsupported {
                    address: client.address().to_string(),
                    daemon: info.describe(),
                    reason: format!("it cannot build {plats} in a fanned-out build, which pushes each platform by digest or joins OCI layouts; point --builder at a buildkitd or at a Docker Engine with the containerd image store"),
                });
            }
            let build_platform = daemon_platform(&client).await?;
            // Each platform's Go cache: imported and exported by the
            // endpoint that builds it.
            super::prepare_go_cache(
                &mut request,
                &g.platforms,
                &info,
                &client.address().to_string(),
            )
            .await?;
            endpoints.push((g.clone(), client, build_platform));
        }
        Ok(FanOut {
            request,
            dest,
            registry,
            targets,
            endpoints,
            warnings,
        })
    }

    /// What the user must hear before anything is built: an endpoint
    /// reached over plain TCP on another machine (one line each, starting
    /// with `warning:`).
    #[must_use]
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Builds on every endpoint at once (the first failure cancels the
    /// others), then joins the results: OCI tarballs merged into temporary
    /// files, the index pushed under every name, the tarballs moved into
    /// place. A failure anywhere leaves neither a moved tag nor a partial file.
    ///
    /// # Errors
    /// The first endpoint's failure, or the join's.
    pub async fn run(&self, events: Events, commands: ExecCommands) -> Result<Joined, BuildError> {
        let joined = self.run_all(events, commands).await;
        if joined.is_err() {
            crate::outputs::discard_files(&self.dest.after);
        }
        joined
    }

    async fn run_all(&self, events: Events, commands: ExecCommands) -> Result<Joined, BuildError> {
        let repos = repositories(&self.dest.tags);
        let parts_dir = tempfile::tempdir().map_err(|e| {
            BuildError::file("create a temporary directory in", std::env::temp_dir(), e)
        })?;
        let mut per_endpoint: Vec<Vec<DaemonOutput>> = Vec::new();
        for i in 0..self.endpoints.len() {
            let mut outs = Vec::new();
            if !repos.is_empty() {
                let attrs = self
                    .dest
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
                    .collect();
                outs.push(DaemonOutput {
                    exporter: ExporterSpec {
                        kind: ex::TYPE_IMAGE.into(),
                        attrs,
                    },
                    target: None,
                });
            }
            if !self.dest.oci.is_empty() {
                let part = parts_dir.path().join(format!("endpoint-{i}.tar"));
                outs.push(DaemonOutput {
                    exporter: ExporterSpec {
                        kind: ex::TYPE_OCI.into(),
                        attrs: self.dest.oci_attrs.clone(),
                    },
                    target: Some(Target::File(Dest::File(part))),
                });
            }
            // The pushed image's exporter last: with attestations the two
            // exporters' indexes differ, and the response's
            // containerimage.digest is the last exporter's.
            outs.reverse();
            for o in &mut outs {
                self.request.decorate_exporter(&mut o.exporter);
            }
            per_endpoint.push(outs);
        }
        // The Go cache exports after the join report on the same view.
        let go_cache_events = events.clone();
        let builds = self.endpoints.iter().zip(&per_endpoint).map(
            |((g, client, build_platform), outputs)| {
                let events = events.clone();
                let commands = commands.clone();
                async move {
                    let failed = |e: BuildError| BuildError::Endpoint {
                        platforms: g
                            .platforms
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                        address: client.address().to_string(),
                        source: Box::new(e),
                    };
                    let session = context_session(&self.request, outputs).map_err(failed)?;
                    Endpoint {
                        client,
                        request: &self.request,
                        build_platform,
                        targets: &g.platforms,
                        session,
                        exporters: outputs.iter().map(|o| o.exporter.clone()).collect(),
                        plan_only: false,
                        label_platforms: true,
                        // Each endpoint its own cache: one ref shared by
                        // endpoints would be overwritten by the last one.
                        cache_scope: Some(
                            g.platforms
                                .iter()
                                .map(|p| p.to_string().replace('/', "-"))
                                .collect::<Vec<_>>()
                                .join("_"),
                        ),
                        events,
                        commands,
                        attestations: self.request.attestations,
                    }
                    .run()
                    .await
                    .map_err(failed)
                }
            },
        );
        // The first failure cancels the other endpoints' builds (dropping a
        // build cancels its Solve on that daemon).
        let outcomes = futures::future::try_join_all(builds).await?;
        drop(events);

        let mut summary = Vec::new();
        let mut pushed_digests = Vec::new();
        for ((g, _, build_platform), outcome) in self.endpoints.iter().zip(&outcomes) {
            let Outcome::Built(resp, plan) = outcome else {
                return Err(BuildError::invalid(
                    "--builder",
                    "an endpoint planned instead of building",
                ));
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

        let parts: Vec<Part> = self
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, (g, _, _))| Part {
                tar: parts_dir.path().join(format!("endpoint-{i}.tar")),
                platforms: g.platforms.clone(),
            })
            .collect();
        let mut merged = Vec::new();
        for (file, name) in &self.dest.oci {
            let parts = parts.clone();
            let (targets, name, file2) = (self.targets.clone(), name.clone(), file.clone());
            let m =
                tokio::task::spawn_blocking(move || merge(&parts, &targets, name.as_ref(), &file2))
                    .await
                    .map_err(|e| {
                        BuildError::invalid(
                            format!("-o type=oci,dest={}", file.display()),
                            e.to_string(),
                        )
                    })?
                    .map_err(|e| {
                        BuildError::invalid(
                            format!("-o type=oci,dest={}", file.display()),
                            e.to_string(),
                        )
                    })?;
            merged.push(m);
        }
        let mut printed = merged.first().map(|m| m.digest().clone());
        let (mut descriptor, mut platform_digests) = (None, Vec::new());
        if let Some(registry) = &self.registry {
            let (index, entries) = join_in_registry(
                registry,
                &self.endpoints,
                &pushed_digests,
                &repos,
                &self.targets,
                &self.dest.tags,
            )
            .await?;
            printed = Some(index.digest.clone());
            descriptor = Some(index);
            platform_digests = entries
                .into_iter()
                .filter_map(|d| Some((d.platform?, d.digest)))
                .collect();
        }
        for m in merged {
            m.commit()
                .map_err(|e| BuildError::invalid("-o type=oci", e.to_string()))?;
        }
        let loaded = crate::outputs::finish(&self.dest.after, &go_cache_events).await?;
        // Every platform built and joined: each endpoint exports the Go
        // caches of its platforms (one per platform, never overwritten by
        // another endpoint's).
        let mut go_cache_notes = Vec::new();
        for ((_, client, _), outcome) in self.endpoints.iter().zip(&outcomes) {
            if let Outcome::Built(_, plan) = outcome {
                go_cache_notes.extend(
                    super::export_go_cache(client, &self.request, plan, go_cache_events.clone())
                        .await?,
                );
            }
        }
        let mut wrote: Vec<String> = self.dest.tags.iter().map(ToString::to_string).collect();
        let temporary: Vec<&PathBuf> = self
            .dest
            .after
            .iter()
            .filter_map(|a| match a {
                After::Gzip { from, .. } => Some(from),
                After::Load { tar, .. } => Some(tar),
                _ => None,
            })
            .collect();
        wrote.extend(
            self.dest
                .oci
                .iter()
                .filter(|(f, _)| !temporary.contains(&f))
                .map(|(f, _)| f.display().to_string()),
        );
        wrote.extend(self.dest.after.iter().filter_map(|a| match a {
            After::Gzip { to, .. } => Some(to.display().to_string()),
            After::Load { store, name, .. } => Some(format!("{name} in {}", store.describe())),
            _ => None,
        }));
        // One endpoint's plan speaks for the lock: the builder and base
        // are resolved by name, the same on every endpoint.
        let plan = match outcomes.into_iter().next() {
            Some(Outcome::Built(_, plan)) => Some(plan),
            _ => None,
        };
        let mut notes = match &plan {
            Some(plan) => super::relock(&self.request, plan).await,
            None => Vec::new(),
        };
        notes.extend(self.request.go_cache_notes.iter().cloned());
        notes.extend(go_cache_notes);
        Ok(Joined {
            digest: printed,
            summary,
            targets: self.targets.clone(),
            wrote,
            notes,
            descriptor,
            names: self.dest.tags.iter().map(ToString::to_string).collect(),
            platform_digests,
            plan,
            loaded,
        })
    }
}

/// Reads back what each endpoint pushed, joins the platform manifests in
/// target order into one OCI index and pushes it under every tag; returns
/// the index's descriptor and its entries.
async fn join_in_registry(
    registry: &RegistryClient,
    endpoints: &[(Group, Client, Platform)],
    pushed: &[Option<String>],
    repos: &[String],
    targets: &[Platform],
    tags: &[ImageRef],
) -> Result<(Descriptor, Vec<Descriptor>), BuildError> {
    let repo = ImageRef::parse(&repos[0])
        .map_err(|e| BuildError::invalid(format!("-t {}", repos[0]), e.to_string()))?;
    let mut found: Vec<Descriptor> = Vec::new();
    let mut attestations: Vec<serde_json::Value> = Vec::new();
    for ((g, _, _), digest) in endpoints.iter().zip(pushed) {
        let at = g.addr.as_deref().unwrap_or("--addr");
        let digest: Digest = digest
            .as_deref()
            .ok_or_else(|| {
                BuildError::invalid(format!("the builder at {at}"), "it pushed no image digest")
            })?
            .parse()
            .map_err(|e| {
                BuildError::invalid(
                    format!("the builder at {at}"),
                    format!("it returned a bad image digest: {e}"),
                )
            })?;
        let got = registry
            .get_manifest(&repo.with_digest(digest.clone()))
            .await?;
        if got.manifest.is_index() {
            for (p, d) in got.manifest.platforms() {
                found.push(Descriptor {
                    platform: Some(p),
                    ..d
                });
            }
            attestations.extend(attestation_entries(&got.bytes));
        } else {
            let [only] = g.platforms.as_slice() else {
                return Err(BuildError::invalid(
                    format!("the builder at {at}"),
                    "it pushed one manifest for several platforms",
                ));
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
            .ok_or_else(|| {
                BuildError::invalid(
                    "--builder",
                    format!("no manifest for {t} among what the builders pushed"),
                )
            })?;
        entries.push(d.clone());
    }
    let index = oci_index(&entries)
        .map_err(|e| BuildError::invalid("the joined image index", e.to_string()))?;
    let index = with_attestations(index, &entries, attestations)?;
    let mut index_digest = Digest::sha256_of(&index);
    for t in tags {
        index_digest = registry
            .put_manifest(t, media_type::OCI_INDEX, index.clone())
            .await?;
    }
    let descriptor = Descriptor {
        media_type: media_type::OCI_INDEX.to_string(),
        digest: index_digest,
        size: index.len() as u64,
        platform: None,
    };
    Ok((descriptor, entries))
}

/// The attestation manifests of an index (BuildKit's provenance and
/// SBOM), as written there.
fn attestation_entries(index: &[u8]) -> Vec<serde_json::Value> {
    use crate::imagetools::{raw_entries, ATTESTATION_MANIFEST, REFERENCE_TYPE};
    raw_entries(index)
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d["annotations"][REFERENCE_TYPE] == ATTESTATION_MANIFEST)
        .collect()
}

/// `index` with the attestation manifests of the joined entries appended
/// (each after all platforms, as BuildKit orders them).
fn with_attestations(
    index: Vec<u8>,
    entries: &[Descriptor],
    attestations: Vec<serde_json::Value>,
) -> Result<Vec<u8>, BuildError> {
    use crate::imagetools::REFERENCE_DIGEST;
    let kept: Vec<serde_json::Value> = attestations
        .into_iter()
        .filter(|a| {
            entries
                .iter()
                .any(|e| a["annotations"][REFERENCE_DIGEST] == e.digest.as_str())
        })
        .collect();
    if kept.is_empty() {
        return Ok(index);
    }
    let bad = |e: serde_json::Error| BuildError::invalid("the joined image index", e.to_string());
    let mut doc: serde_json::Value = serde_json::from_slice(&index).map_err(bad)?;
    if let Some(list) = doc["manifests"].as_array_mut() {
        list.extend(kept);
    }
    serde_json::to_vec(&doc).map_err(bad)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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
        // Names are not options: the specs hold them apart.
        let a = BTreeMap::from([("compression".to_string(), "zstd".to_string())]);
        let b = BTreeMap::from([
            ("compression".to_string(), "zstd".to_string()),
            ("registry.insecure".to_string(), "true".to_string()),
        ]);
        let mut into = BTreeMap::new();
        merge_attrs(&mut into, &a).expect("a");
        merge_attrs(&mut into, &b).expect("b");
        assert_eq!(
            into.keys().collect::<Vec<_>>(),
            ["compression", "registry.insecure"]
        );
        let c = BTreeMap::from([("compression".to_string(), "gzip".to_string())]);
        let e = merge_attrs(&mut into, &c)
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

    #[test]
    fn attestations_of_joined_entries_are_kept() {
        let d = |b: &[u8]| Digest::sha256_of(b);
        let (amd, arm, other) = (d(b"amd64"), d(b"arm64"), d(b"gone"));
        let pushed = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": media_type::OCI_MANIFEST, "digest": amd.to_string(), "size": 1,
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": media_type::OCI_MANIFEST, "digest": d(b"att-amd").to_string(), "size": 2,
                 "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                 "vnd.docker.reference.digest": amd.to_string()}},
                {"mediaType": media_type::OCI_MANIFEST, "digest": d(b"att-gone").to_string(), "size": 3,
                 "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                 "vnd.docker.reference.digest": other.to_string()}}
            ]
        });
        let found = attestation_entries(&serde_json::to_vec(&pushed).unwrap());
        assert_eq!(found.len(), 2);
        let entry = |digest: &Digest, arch: &str| Descriptor {
            media_type: media_type::OCI_MANIFEST.into(),
            digest: digest.clone(),
            size: 1,
            platform: Some(p(&format!("linux/{arch}"))),
        };
        let entries = [entry(&amd, "amd64"), entry(&arm, "arm64")];
        let index = oci_index(&entries).unwrap();
        let joined = with_attestations(index.clone(), &entries, found).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&joined).unwrap();
        let list = doc["manifests"].as_array().unwrap();
        // Both platforms, then only the attestation of a joined entry.
        assert_eq!(list.len(), 3, "{doc:#}");
        assert_eq!(
            list[2]["annotations"]["vnd.docker.reference.digest"],
            amd.as_str()
        );
        // Nothing to attach: the index as it was.
        assert_eq!(
            with_attestations(index.clone(), &entries, Vec::new()).unwrap(),
            index
        );
    }
}
