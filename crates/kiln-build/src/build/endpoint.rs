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
    pub events: Events,
    pub commands: ExecCommands,
}

impl Endpoint<'_> {
    /// Runs the build.
    ///
    /// # Errors
    /// [`BuildError::Daemon`] when the daemon fails a call or a step,
    /// others from planning.
    pub async fn run(self) -> Result<Outcome, BuildError> {
        let session_id = self.session.id().to_string();
        let attached = self
            .client
            .attach(self.session, SessionTransport::Auto)
            .await?;
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
                    entitlements: if self.request.options.host_network {
                        vec!["network.host".to_string()]
                    } else {
                        vec![]
                    },
                    // The exporters compare the result's platforms with these.
                    frontend_attrs: BTreeMap::from([(
                        "platform".to_string(),
                        self.targets
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                    )]),
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
            result.refs.push((pid, r, to_pb(&p.target)));
        }
        let resp = gw.finish(result).await;
        attached.close().await;
        Ok(Outcome::Built(resp?, plan))
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
