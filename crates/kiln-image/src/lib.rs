//! Image references, platforms, digests, OCI configs and manifests, OCI
//! layout tarballs, and a registry client for kiln.
//!
//! This crate parses the strings users type into validated types, exactly as
//! the Go tools that Docker and BuildKit use do:
//!
//! - [`ImageRef`] follows `github.com/distribution/reference`
//!   (`ParseNormalizedNamed`): `golang` is `docker.io/library/golang:latest`.
//! - [`Platform`] follows containerd's `platforms.Parse` and `Normalize`
//!   (`linux/aarch64` is `linux/arm64`), but never fills a missing part in
//!   from the host: kiln's output must not depend on where it runs.
//!   [`PlatformMatcher`] picks from an index like containerd's `platforms.Only`.
//! - [`Digest`] is a validated `algorithm:hex` content digest.
//!
//! On top of `oci-spec`'s types it reads image configs, manifests and indexes
//! (OCI and Docker schema 2, [`manifest::Manifest`]), builds the config of
//! kiln's images deterministically ([`config::ImageConfigBuilder`]) and talks
//! to registries ([`registry::RegistryClient`]). With the `podman` feature it
//! loads layouts into podman through its API socket, every platform
//! ([`podman::Podman`]). It depends on no other kiln crate.
//!
//! ```
//! use kiln_image::{Digest, ImageRef, Platform};
//!
//! let image = ImageRef::parse("127.0.0.1:5000/kiln-fixtures/golang:1.24-trixie")?;
//! assert_eq!(image.domain(), "127.0.0.1:5000");
//!
//! let pinned = image.with_digest(Digest::sha256_of(b"manifest bytes"));
//! assert!(pinned.to_string().starts_with("127.0.0.1:5000/kiln-fixtures/golang:1.24-trixie@sha256:"));
//!
//! let platform: Platform = "linux/arm64/v8".parse()?;
//! assert_eq!(platform.to_string(), "linux/arm64");
//! # Ok::<(), kiln_image::Error>(())
//! ```
//!
//! # OCI layouts
//!
//! [`layout`] reads OCI image layout tarballs (what BuildKit's `oci`
//! exporter and `docker save` write), joins layouts built for different
//! platforms into one multi-platform layout, and renames the image in a
//! docker-archive. The merge is deterministic, checks every blob against
//! its digest while streaming it, and keeps only the blobs the joined index
//! reaches; its errors ([`LayoutError`]) name the tarball, entry, digest
//! or platform involved. It is blocking I/O: run it on a blocking thread
//! from async code.
//!
//! ```
//! use kiln_image::layout::{self, Layout, Part};
//! use kiln_image::{ImageRef, Platform};
//! # use std::path::{Path, PathBuf};
//! # /// A single-platform layout tarball, as BuildKit's `oci` exporter writes one.
//! # fn oci_export(dir: &Path, arch: &str) -> Result<PathBuf, Box<dyn std::error::Error>> {
//! #     use kiln_image::{media_type as mt, Digest};
//! #     let path = dir.join(format!("{arch}.tar"));
//! #     let mut tar = tar::Builder::new(std::fs::File::create(&path)?);
//! #     let mut add = |name: String, data: &[u8]| {
//! #         let mut h = tar::Header::new_ustar();
//! #         h.set_size(data.len() as u64);
//! #         h.set_mode(0o644);
//! #         tar.append_data(&mut h, name, data)
//! #     };
//! #     let layer = format!("{arch} layer").into_bytes();
//! #     let l = Digest::sha256_of(&layer);
//! #     let config = format!(r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{l}"]}}}}"#);
//! #     let c = Digest::sha256_of(config.as_bytes());
//! #     let manifest = format!(
//! #         r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{c}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{l}","size":{}}}]}}"#,
//! #         mt::OCI_MANIFEST, mt::OCI_CONFIG, config.len(), mt::OCI_LAYER_TAR, layer.len());
//! #     let m = Digest::sha256_of(manifest.as_bytes());
//! #     let index = format!(r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{m}","size":{}}}]}}"#,
//! #         mt::OCI_MANIFEST, manifest.len());
//! #     add(layout::blob_path(&l), &layer)?;
//! #     add(layout::blob_path(&c), config.as_bytes())?;
//! #     add(layout::blob_path(&m), manifest.as_bytes())?;
//! #     add("index.json".into(), index.as_bytes())?;
//! #     tar.finish()?;
//! #     Ok(path)
//! # }
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path();
//! // Two single-platform exports, built on different daemons.
//! let parts = [
//!     Part { tar: oci_export(dir, "arm64")?, platforms: vec![Platform::linux_arm64()] },
//!     Part { tar: oci_export(dir, "amd64")?, platforms: vec![Platform::linux_amd64()] },
//! ];
//! let order = [Platform::linux_amd64(), Platform::linux_arm64()];
//! let name = ImageRef::parse("registry.example/app:v1")?;
//! let dest = dir.join("app.tar");
//!
//! let merged = layout::merge(&parts, &order, Some(&name), &dest)?;
//! let digest = merged.digest().clone();
//! merged.commit()?;
//!
//! // The same inputs give the same index, whatever order the parts come in.
//! let again = layout::merge(&[parts[1].clone(), parts[0].clone()], &order, Some(&name), &dir.join("again.tar"))?;
//! assert_eq!(again.digest(), &digest);
//!
//! // Read back: one index, amd64 first; each platform's manifest and config.
//! let app = Layout::open(&dest)?;
//! let platforms: Vec<String> = app.images()?.iter()
//!     .filter_map(|d| Some(d.platform.as_ref()?.to_string()))
//!     .collect();
//! assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
//! let arm = app.image(&Platform::linux_arm64())?;
//! assert_eq!(arm.config.architecture().to_string(), "arm64");
//! assert!(app.contains(&arm.manifest.layers()[0].digest));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Loading into containerd
//!
//! With the `containerd` feature (on by default), [`containerd::Containerd`]
//! loads a layout, every platform of it, into containerd's image store
//! through its gRPC API: what `ctr images import` does, but keeping all
//! platforms, under a lease and with containerd's garbage-collection
//! labels, so that a failed load names nothing and a finished one keeps
//! every blob. It needs no `protoc`: the few messages are written by hand.

pub mod config;
#[cfg(feature = "containerd")]
pub mod containerd;
pub mod digest;
pub mod error;
pub mod layout;
pub mod manifest;
pub mod matcher;
pub mod media_type;
pub mod platform;
#[cfg(feature = "podman")]
pub mod podman;
pub mod reference;
#[cfg(feature = "registry")]
pub mod registry;
pub mod store;

/// The `oci-spec` crate whose types [`config`] and [`manifest`] use.
pub use oci_spec;

pub use config::ImageConfigBuilder;
pub use digest::Digest;
#[cfg(feature = "containerd")]
pub use error::ContainerdError;
#[cfg(feature = "podman")]
pub use error::PodmanError;
pub use error::{
    ArchiveError, ConfigError, DigestError, EntryProblem, Error, LayoutError, ManifestError,
    PlatformError, ProtocolError, ReferenceError,
};
#[cfg(feature = "registry")]
pub use error::{RegistryError, TransportError};
pub use manifest::{Descriptor, Manifest};
pub use matcher::PlatformMatcher;
pub use platform::Platform;
pub use reference::ImageRef;
#[cfg(feature = "registry")]
pub use registry::{Credentials, RegistryClient};
