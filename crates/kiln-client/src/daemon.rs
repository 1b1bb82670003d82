//! What kind of daemon is on the other end, and so which exporters it has.
//!
//! BuildKit cannot be asked for its exporters; an unknown one fails the
//! Solve with "exporter X could not be found" after the build started. The
//! set follows from the daemon kind, and for a Docker Engine from its image
//! store (`GET /info`), so kiln can pick the right one (`moby` or `image`)
//! and refuse what cannot work before anything is built.

use std::fmt;

use serde::Serialize;

use crate::address::Address;
use crate::client::{BuildkitVersion, Client};
use crate::engine::{Engine, EngineInfo, ImageStore};
use crate::error::Error;

/// A BuildKit exporter kiln may ask for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExporterKind {
    /// An image in the store and/or a registry (standalone, containerd store).
    Image,
    /// An image in the Docker Engine's classic store (and/or a registry).
    Moby,
    /// An OCI image layout tarball.
    Oci,
    /// A docker-archive tarball (`docker load`).
    Docker,
    /// The result's files as a tarball.
    Tar,
    /// The result's files into a directory.
    Local,
}

impl ExporterKind {
    /// The name BuildKit registers it under.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ExporterKind::Image => "image",
            ExporterKind::Moby => "moby",
            ExporterKind::Oci => "oci",
            ExporterKind::Docker => "docker",
            ExporterKind::Tar => "tar",
            ExporterKind::Local => "local",
        }
    }

    /// Parses an exporter name.
    #[must_use]
    pub fn parse(s: &str) -> Option<ExporterKind> {
        [
            ExporterKind::Image,
            ExporterKind::Moby,
            ExporterKind::Oci,
            ExporterKind::Docker,
            ExporterKind::Tar,
            ExporterKind::Local,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }
}

impl fmt::Display for ExporterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kind of daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DaemonKind {
    /// A Docker Engine's embedded BuildKit.
    DockerEngine(EngineInfo),
    /// A standalone buildkitd (unix, tcp, or a stdio helper in a container).
    Buildkitd,
}

/// What kiln knows about the daemon before building.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DaemonInfo {
    #[serde(flatten)]
    pub kind: DaemonKind,
    /// `Control.Info`'s version (Docker's own builds report `v0.0.0+unknown`).
    pub buildkit: Option<BuildkitVersion>,
}

const STANDALONE_EXPORTERS: &[ExporterKind] = &[
    ExporterKind::Image,
    ExporterKind::Oci,
    ExporterKind::Docker,
    ExporterKind::Tar,
    ExporterKind::Local,
];
const CONTAINERD_STORE_EXPORTERS: &[ExporterKind] = &[
    ExporterKind::Image,
    ExporterKind::Moby,
    ExporterKind::Oci,
    ExporterKind::Docker,
    ExporterKind::Tar,
    ExporterKind::Local,
];
const CLASSIC_STORE_EXPORTERS: &[ExporterKind] =
    &[ExporterKind::Moby, ExporterKind::Tar, ExporterKind::Local];

impl DaemonInfo {
    /// The exporters this daemon has.
    #[must_use]
    pub fn exporters(&self) -> &'static [ExporterKind] {
        match self.image_store() {
            None => STANDALONE_EXPORTERS,
            Some(ImageStore::Containerd) => CONTAINERD_STORE_EXPORTERS,
            Some(ImageStore::Classic) => CLASSIC_STORE_EXPORTERS,
        }
    }

    /// Whether the daemon has `exporter`.
    #[must_use]
    pub fn has(&self, exporter: ExporterKind) -> bool {
        self.exporters().contains(&exporter)
    }

    /// The Docker Engine's image store; `None` for a standalone buildkitd.
    #[must_use]
    pub fn image_store(&self) -> Option<ImageStore> {
        match &self.kind {
            DaemonKind::DockerEngine(e) => Some(e.image_store),
            DaemonKind::Buildkitd => None,
        }
    }

    /// The exporter that puts an image into this daemon's store, or pushes
    /// it: `moby` on the classic store, `image` everywhere else.
    #[must_use]
    pub fn image_exporter(&self) -> ExporterKind {
        if self.image_store() == Some(ImageStore::Classic) {
            ExporterKind::Moby
        } else {
            ExporterKind::Image
        }
    }

    /// Whether images built here can be loaded into the daemon's own store.
    #[must_use]
    pub fn has_image_store(&self) -> bool {
        self.image_store().is_some()
    }

    /// Whether the store keeps multi-platform images under one name.
    #[must_use]
    pub fn stores_multi_platform(&self) -> bool {
        self.image_store() == Some(ImageStore::Containerd)
    }

    /// One line: `Docker Engine 28.5.2 (classic image store)`, `buildkitd v0.29.0`.
    #[must_use]
    pub fn describe(&self) -> String {
        let version = self
            .buildkit
            .as_ref()
            .map(|v| v.version.as_str())
            .filter(|v| !v.is_empty() && !v.starts_with("v0.0.0"));
        match &self.kind {
            DaemonKind::DockerEngine(e) => format!(
                "Docker Engine {} ({})",
                e.server_version,
                e.image_store.describe()
            ),
            DaemonKind::Buildkitd => match version {
                Some(v) => format!("buildkitd {v}"),
                None => "buildkitd".into(),
            },
        }
    }
}

impl Client {
    /// Finds out what kind of daemon this is: `Control.Info`, plus the
    /// Engine API's `GET /info` for a `docker://` address.
    ///
    /// # Errors
    /// [`Error::Rpc`] when `Control.Info` fails, [`Error::Engine`] when the
    /// Docker Engine's API does.
    pub async fn daemon_info(&self) -> Result<DaemonInfo, Error> {
        let buildkit = self.info().await?;
        let kind = match self.address() {
            Address::Docker(host) => {
                DaemonKind::DockerEngine(Engine::new(host.clone()).info().await?)
            }
            _ => DaemonKind::Buildkitd,
        };
        Ok(DaemonInfo { kind, buildkit })
    }

    /// The Docker Engine behind a `docker://` address.
    #[must_use]
    pub fn engine(&self) -> Option<Engine> {
        match self.address() {
            Address::Docker(host) => Some(Engine::new(host.clone())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn exporters_follow_the_image_store() {
        let classic = docker(ImageStore::Classic);
        assert_eq!(classic.image_exporter(), ExporterKind::Moby);
        assert!(!classic.has(ExporterKind::Oci) && !classic.has(ExporterKind::Image));
        assert!(classic.has(ExporterKind::Tar) && classic.has(ExporterKind::Local));
        assert!(!classic.stores_multi_platform());
        let ctr = docker(ImageStore::Containerd);
        assert_eq!(ctr.image_exporter(), ExporterKind::Image);
        assert!(ctr.has(ExporterKind::Oci) && ctr.stores_multi_platform());
        let bk = DaemonInfo {
            kind: DaemonKind::Buildkitd,
            buildkit: Some(BuildkitVersion {
                package: "github.com/moby/buildkit".into(),
                version: "v0.29.0".into(),
                revision: "8543ce44".into(),
            }),
        };
        assert!(!bk.has_image_store() && !bk.has(ExporterKind::Moby));
        assert_eq!(bk.image_exporter(), ExporterKind::Image);
        assert_eq!(bk.describe(), "buildkitd v0.29.0");
        assert_eq!(
            classic.describe(),
            "Docker Engine 28.5.2 (classic image store)"
        );
    }

    #[test]
    fn exporter_names_round_trip() {
        for k in CONTAINERD_STORE_EXPORTERS {
            assert_eq!(ExporterKind::parse(k.name()), Some(*k));
        }
        assert_eq!(ExporterKind::parse("zip"), None);
    }
}
