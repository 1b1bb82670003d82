//! Image references, platforms, digests, OCI configs and manifests, and a
//! registry client for kiln.
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
//! to registries ([`registry::RegistryClient`]). It depends on no other kiln
//! crate.
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

pub mod config;
pub mod digest;
pub mod error;
pub mod layout;
pub mod manifest;
pub mod matcher;
pub mod media_type;
pub mod platform;
pub mod reference;
#[cfg(feature = "registry")]
pub mod registry;

/// The `oci-spec` crate whose types [`config`] and [`manifest`] use.
pub use oci_spec;

pub use config::ImageConfigBuilder;
pub use digest::Digest;
pub use error::{
    ConfigError, DigestError, Error, ManifestError, PlatformError, ProtocolError, ReferenceError,
};
#[cfg(feature = "registry")]
pub use error::{RegistryError, TransportError};
pub use manifest::{Descriptor, Manifest};
pub use matcher::PlatformMatcher;
pub use platform::Platform;
pub use reference::ImageRef;
#[cfg(feature = "registry")]
pub use registry::{Credentials, RegistryClient};
