//! The Go release a module builds with (`kiln go-version`, `--go auto`):
//! the newest stable patch of go.mod's minor line, looked up where the user
//! says, optionally checked against the builder images the daemon can find.

use std::path::PathBuf;

use kiln_client::Client;
use kiln_go::GoSpec;

use super::{Cache, Resolution, Resolver, Source, SourceKind};

use crate::build::probe::DaemonProbe;
use crate::error::BuildError;

/// A question for [`go_version`].
#[derive(Clone, Debug)]
pub struct GoVersionQuery {
    /// The module directory.
    pub dir: PathBuf,
    /// `auto` or a version.
    pub go: String,
    pub source: SourceKind,
    /// A builder image template whose tag must exist (`{go}`, `{distro}`).
    pub builder_image: Option<String>,
    pub distro: String,
    /// Ignore the cached release list.
    pub refresh: bool,
}

/// Answers `q`; with a builder image template, `client`'s daemon checks
/// which tags exist (falling back to the newest patch that has one).
///
/// # Errors
/// [`BuildError::Go`] when go.mod or the release list cannot be read,
/// [`BuildError::Invalid`] for a bad `--go` or a template without a daemon.
pub async fn go_version(
    q: &GoVersionQuery,
    client: Option<&Client>,
) -> Result<Resolution, BuildError> {
    let spec: GoSpec =
        q.go.parse()
            .map_err(|e| BuildError::invalid("--go", format!("{e} (or auto)")))?;
    if let GoSpec::Pinned(version) = spec {
        // A pin needs no go.mod; one that is there is only reported on.
        return Ok(Resolution::pinned(
            version,
            crate::go_mod::read_dir(&q.dir).ok().as_ref(),
        ));
    }
    let go_mod = crate::go_mod::read_dir(&q.dir)?;
    let resolver = Resolver::new(Source::from_env(q.source)?)?
        .cache(Cache::from_env())
        .refresh(q.refresh);
    let Some(template) = &q.builder_image else {
        return Ok(resolver.resolve(&go_mod).await?);
    };
    let Some(client) = client else {
        return Err(BuildError::invalid(
            "--builder-image",
            "checking image tags needs a BuildKit daemon",
        ));
    };
    let gateway = client
        .gateway(kiln_client::SolveRequest::default(), None)
        .await?;
    let probe = DaemonProbe {
        gateway: &gateway,
        platform: None,
        session_id: None,
    };
    let r = resolver
        .resolve_with_image(&go_mod, template, &q.distro, &probe)
        .await;
    let _ = gateway.fail("kiln go-version: done").await;
    r.map_err(|e| BuildError::invalid("--go auto", e.to_string()))
}
