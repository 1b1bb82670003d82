//! One build on one daemon: attach the session, start a gateway build,
//! pick the Go version and plan every target platform through the daemon,
//! solve each lazily, and return them as one (multi-platform) result.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use kiln_client::gateway::{GatewayBuild, GatewayResult};
use kiln_client::kiln_proto::attrs::result as result_attrs;
use kiln_client::kiln_session::Session;
use kiln_client::progress::StatusEvent;
use kiln_client::{Client, ExporterSpec, SessionTransport, SolveRequest, SolveResponse};
use kiln_go::version::builder_image;

use crate::go_release::{Cache, Resolver, Source};
use kiln_go::GoSpec;
use kiln_image::{ImageRef, Platform};
use tokio::sync::mpsc;

use super::plan::{plan, GoChoice, Plan};
use super::probe::DaemonProbe;
use super::request::Request;
use super::resolve::{to_pb, GatewayResolver};
use crate::error::BuildError;
use crate::spec::{Attestations, CacheKind, CacheSpec};

/// Progress events of a build, as the daemon sends them.
pub type Events = mpsc::UnboundedSender<StatusEvent>;

/// The exec steps' commands by op digest and step name, filled in as
/// graphs are planned: what a failure report shows.
pub type ExecCommands = Arc<Mutex<HashMap<String, Vec<String>>>>;

/// What a build on one endpoint did.
#[derive(Debug)]
pub enum Outcome {
    /// Planned only (nothing solved).
    Planned(Plan),
    /// Built and exported.
    Built(SolveResponse, Plan),
}

/// One build on one daemon.
pub struct Endpoint<'a> {
    pub client: &'a Client,
    pub request: &'a Request,
    pub build_platform: &'a Platform,
    pub targets: &'a [Platform],
    pub session: Session,
    pub exporters: Vec<ExporterSpec>,
    /// Plan only: nothing is solved or exported.
    pub plan_only: bool,
    /// Label every step with its platform even for one target (several
    /// endpoints' steps share one progress view).
    pub label_platforms: bool,
    /// In a fanned-out build, this endpoint's platforms as a name suffix
    /// for its cache refs (`app:cache` → `app:cache-linux-arm64`).
    pub cache_scope: Option<String>,
    pub events: Events,
    pub commands: ExecCommands,
    /// What to attach to each platform's image (fitted to the outputs).
    pub attestations: Attestations,
}

/// The Solve's frontend attributes: the target platforms (the exporters
/// compare the result's platforms with these) and BuildKit's provenance
/// (its controller writes it for any build that asks, gateway builds
/// included).
fn frontend_attrs(targets: &[Platform], attestations: Attestations) -> BTreeMap<String, String> {
    let mut attrs = BTreeMap::from([(
        "platform".to_string(),
        targets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    )]);
    if let Some(mode) = attestations.provenance {
        attrs.insert(
            "attest:provenance".to_string(),
            // SLSA v1 named: Docker 28's BuildKit defaults to v0.2.
            format!("mode={},version=v1", mode.as_str()),
        );
    }
    attrs
}

impl Endpoint<'_> {
    /// Runs the build.
    ///
    /// # Errors
    /// [`BuildError::Daemon`] when the daemon fails a call or a step,
    /// others from planning.
    pub async fn run(self) -> Result<Outcome, BuildError> {
        let liveness = self.session.liveness();
        let limit = self.request.stall_timeout;
        let address = self.client.address().to_string();
        crate::stall::watched(self.run_unwatched(), &liveness, limit, &address).await
    }

    async fn run_unwatched(self) -> Result<Outcome, BuildError> {
        let session_id = self.session.id().to_string();
        let outputs = self.session.outputs();
        let exports = self.session.clone();
        let attached = self
            .client
            .attach(self.session, SessionTransport::Auto)
            .await?;
        // Planning alone imports and exports nothing.
        let caches = |specs: &[CacheSpec]| -> Vec<kiln_client::CacheSpec> {
            if self.plan_only {
                return Vec::new();
            }
            let scope = self.cache_scope.as_deref();
            specs.iter().map(|c| wire_cache(c, scope)).collect()
        };
        let gw = self
            .client
            .gateway(
                SolveRequest {
                    session_id: Some(session_id.clone()),
                    exporters: if self.plan_only {
                        vec![]
                    } else {
                        self.exporters
                    },
                    cache_imports: caches(&self.request.cache_from),
                    cache_exports: caches(&self.request.cache_to),
                    entitlements: if self.request.options.host_network {
                        vec!["network.host".to_string()]
                    } else {
                        vec![]
                    },
                    frontend_attrs: frontend_attrs(self.targets, self.attestations),
                    ..Default::default()
                },
                Some(self.events),
            )
            .await?;
        let planned = plan_through(
            &gw,
            self.request,
            self.build_platform,
            self.targets,
            &session_id,
            self.label_platforms,
        )
        .await;
        let plan = match planned {
            Ok(p) => p,
            Err(err) => {
                let _ = gw.fail("kiln: planning failed").await;
                attached.close().await;
                return Err(err);
            }
        };
        if self.plan_only {
            let _ = gw.fail("kiln: plan only").await;
            attached.close().await;
            return Ok(Outcome::Planned(plan));
        }
        let mut result = GatewayResult::default();
        let single = plan.platforms.len() == 1;
        for p in &plan.platforms {
            if let Ok(mut m) = self.commands.lock() {
                m.extend(p.definition.exec_commands());
            }
            let r = gw.solve(p.definition.as_pb().clone(), false).await?;
            let pid = p.target.to_string();
            let key = if single {
                result_attrs::IMAGE_CONFIG.to_string()
            } else {
                format!("{}/{pid}", result_attrs::IMAGE_CONFIG)
            };
            result.image_configs.insert(key, p.image_config.clone());
            if self.attestations.sbom {
                let base = plan
                    .base
                    .1
                    .as_ref()
                    .map(|d| (plan.base.0.to_string(), d.to_string()));
                let sbom = crate::attest::sbom(
                    &gw,
                    &r,
                    &p.image_config,
                    &self.request.sbom_name(),
                    base.as_ref().map(|(n, d)| (n.as_str(), d.as_str())),
                    &self.request.created_rfc3339(),
                    &p.target,
                )
                .await;
                match sbom {
                    Ok(a) => {
                        result.attestations.insert(pid.clone(), vec![a]);
                    }
                    Err(e) => {
                        let _ = gw.fail("kiln: the SBOM could not be made").await;
                        attached.close().await;
                        return Err(e);
                    }
                }
            }
            result.refs.push((pid, r, to_pb(&p.target)));
        }
        let resp = gw.finish(result).await;
        // The exports' last packets may trail the daemon's answer.
        let settled = match &resp {
            Ok(_) => outputs.settle().await,
            Err(_) => Ok(()),
        };
        attached.close().await;
        let resp = resp?;
        settled?;
        if let Some(e) = exports.take_export_failure() {
            return Err(BuildError::Export(Box::new(e)));
        }
        // Files the daemon sent go into place only now the build
        // succeeded (a cancelled export ends its stream too).
        outputs.commit().await?;
        Ok(Outcome::Built(resp, plan))
    }
}

/// Picks the Go version (through the daemon: the builder image must exist)
/// and plans every target with the gateway as the image resolver.
pub(crate) async fn plan_through(
    gw: &GatewayBuild,
    request: &Request,
    build_platform: &Platform,
    targets: &[Platform],
    session_id: &str,
    label_platforms: bool,
) -> Result<Plan, BuildError> {
    let mut notes = Vec::new();
    let go = match &request.locked {
        Some(lock) => GoChoice {
            version: lock.go.clone(),
            builder: ImageRef::parse(&lock.builder.name).map_err(|e| BuildError::Lock {
                path: request.dir.join(crate::lock::FILE),
                reason: format!(
                    "its builder {} is not an image reference: {e}",
                    lock.builder.name
                ),
            })?,
        },
        None => resolve_go(request, gw, build_platform, session_id, &mut notes).await?,
    };
    let resolver = GatewayResolver {
        gateway: gw,
        session_id,
    };
    let mut p = plan(
        request,
        &resolver,
        go,
        build_platform,
        targets,
        label_platforms,
    )
    .await?;
    p.notes = notes;
    Ok(p)
}

/// Resolves `--go auto` (checking the builder image exists through the
/// daemon) or takes a pinned version.
async fn resolve_go(
    request: &Request,
    gw: &GatewayBuild,
    build_platform: &Platform,
    session_id: &str,
    notes: &mut Vec<String>,
) -> Result<GoChoice, BuildError> {
    let image_err = |e: kiln_go::Error| BuildError::invalid("--builder-image", e.to_string());
    if !request.builder_template.contains("{go}") {
        return literal_builder(request, gw, build_platform, session_id).await;
    }
    match &request.go {
        GoSpec::Pinned(v) => Ok(GoChoice {
            version: v.to_string(),
            builder: builder_image(&request.builder_template, v, &request.distro)
                .map_err(image_err)?,
        }),
        GoSpec::Auto => {
            let source = Source::from_env(request.go_source)?;
            let resolver = Resolver::new(source)?.cache(Cache::from_env());
            let probe = DaemonProbe {
                gateway: gw,
                platform: Some(to_pb(build_platform)),
                session_id: Some(session_id.to_string()),
            };
            let r = resolver
                .resolve_with_image(
                    &request.go_mod,
                    &request.builder_template,
                    &request.distro,
                    &probe,
                )
                .await
                .map_err(|e| {
                    BuildError::invalid("--go auto", format!("cannot pick the Go version: {e}"))
                })?;
            notes.extend(r.notes.iter().cloned());
            notes.extend(r.warnings.iter().map(|w| format!("warning: {w}")));
            let builder = match &r.image {
                Some(i) => ImageRef::parse(i).map_err(|e| {
                    BuildError::invalid(format!("the builder image {i}"), e.to_string())
                })?,
                None => builder_image(&request.builder_template, &r.version, &request.distro)
                    .map_err(image_err)?,
            };
            Ok(GoChoice {
                version: r.version.to_string(),
                builder,
            })
        }
    }
}

/// The environment variable official golang images name their Go release in.
const GOLANG_VERSION_ENV: &str = "GOLANG_VERSION";

/// A builder image named literally (no `{go}`): its Go release is the one
/// its config's `GOLANG_VERSION` names; `--go` and go.mod's `toolchain`
/// must agree with it.
async fn literal_builder(
    request: &Request,
    gw: &GatewayBuild,
    build_platform: &Platform,
    session_id: &str,
) -> Result<GoChoice, BuildError> {
    use super::resolve::ImageResolver;
    let reference = request
        .builder_template
        .replace("{distro}", &request.distro);
    let builder = ImageRef::parse(&reference).map_err(|e| {
        BuildError::invalid(format!("--builder-image {reference:?}"), e.to_string())
    })?;
    let resolver = GatewayResolver {
        gateway: gw,
        session_id,
    };
    let resolved = resolver.resolve(&builder, build_platform).await?;
    let version = golang_version(&resolved.config).ok_or_else(|| {
        BuildError::invalid(
            format!("--builder-image {builder}"),
            format!("its config names no Go release ({GOLANG_VERSION_ENV} is not set): use a template with {{go}}, or an image that sets it"),
        )
    })?;
    let go: kiln_go::GoVersion = version.parse().map_err(|e| {
        BuildError::invalid(
            format!("--builder-image {builder}"),
            format!("its {GOLANG_VERSION_ENV}={version:?} is not a Go version: {e}"),
        )
    })?;
    if let GoSpec::Pinned(v) = &request.go {
        if *v != go {
            return Err(BuildError::invalid(
                format!("--go {v}"),
                format!("the builder image {builder} has Go {go} ({GOLANG_VERSION_ENV}); drop --go or pick an image with Go {v}"),
            ));
        }
    }
    if let Some(t) = &request.go_mod.toolchain {
        if *t != go {
            return Err(BuildError::invalid(
                format!("go.mod's toolchain go{t}"),
                format!("the builder image {builder} has Go {go} ({GOLANG_VERSION_ENV}); change the toolchain line or pick an image with Go {t}"),
            ));
        }
    }
    Ok(GoChoice {
        version: go.to_string(),
        builder,
    })
}

/// `GOLANG_VERSION` from an image config's `config.Env`.
fn golang_version(config: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(config).ok()?;
    v.pointer("/config/Env")?
        .as_array()?
        .iter()
        .filter_map(|e| e.as_str())
        .find_map(|e| e.strip_prefix(GOLANG_VERSION_ENV)?.strip_prefix('='))
        .map(str::to_string)
}

/// A cache spec as BuildKit takes it, scoped to one fanned-out endpoint:
/// a registry ref's tag (or `gha`'s scope) gets the endpoint's platforms.
fn wire_cache(c: &CacheSpec, scope: Option<&str>) -> kiln_client::CacheSpec {
    let mut attrs = c.attrs.clone();
    if let Some(scope) = scope {
        match c.kind {
            CacheKind::Registry => {
                if let Some(r) = attrs.get_mut("ref") {
                    let name_end = r.rfind('/').map_or(0, |i| i + 1);
                    *r = if r[name_end..].contains(':') {
                        format!("{r}-{scope}")
                    } else {
                        format!("{r}:{scope}")
                    };
                }
            }
            CacheKind::Gha => {
                let base = attrs.remove("scope").unwrap_or_else(|| "buildkit".into());
                attrs.insert("scope".into(), format!("{base}-{scope}"));
            }
            _ => {}
        }
    }
    kiln_client::CacheSpec {
        kind: c.kind.as_str().to_string(),
        attrs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_go_release_of_an_image_config() {
        let c = br#"{"config":{"Env":["PATH=/usr/bin","GOLANG_VERSION=1.24.4","GOPATH=/go"]}}"#;
        assert_eq!(golang_version(c).as_deref(), Some("1.24.4"));
        assert_eq!(
            golang_version(br#"{"config":{"Env":["GOLANG_VERSIONX=1"]}}"#),
            None
        );
        assert_eq!(golang_version(br#"{"config":{}}"#), None);
        assert_eq!(golang_version(b"not json"), None);
    }

    #[test]
    fn fanned_out_endpoints_get_their_own_cache_refs() {
        let c = CacheSpec::export("type=registry,ref=r.example:5000/app:cache,mode=max").unwrap();
        assert_eq!(
            wire_cache(&c, None).attrs["ref"],
            "r.example:5000/app:cache"
        );
        let w = wire_cache(&c, Some("linux-arm64"));
        assert_eq!(w.attrs["ref"], "r.example:5000/app:cache-linux-arm64");
        assert_eq!(w.attrs["mode"], "max");
        assert_eq!(w.kind, "registry");
        let untagged = CacheSpec::import("r.example:5000/app").unwrap();
        assert_eq!(
            wire_cache(&untagged, Some("linux-amd64")).attrs["ref"],
            "r.example:5000/app:linux-amd64"
        );
        let gha = CacheSpec::export("type=gha,scope=main").unwrap();
        assert_eq!(
            wire_cache(&gha, Some("linux-amd64")).attrs["scope"],
            "main-linux-amd64"
        );
    }
}
