//! Image references, platforms and digests for kiln.
//!
//! This crate parses the strings users type into validated types, exactly as
//! the Go tools that Docker and BuildKit use do:
//!
//! - [`ImageRef`] follows `github.com/distribution/reference`
//!   (`ParseNormalizedNamed`): `golang` is `docker.io/library/golang:latest`.
//! - [`Platform`] follows containerd's `platforms.Parse` and `Normalize`
//!   (`linux/aarch64` is `linux/arm64`), but never fills a missing part in
//!   from the host: kiln's output must not depend on where it runs.
//! - [`Digest`] is a validated `algorithm:hex` content digest.
//!
//! It depends on no other kiln crate; OCI config/manifest types and the
//! registry client will join it later.
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

pub mod digest;
pub mod error;
pub mod platform;
pub mod reference;

pub use digest::Digest;
pub use error::{DigestError, Error, PlatformError, ReferenceError};
pub use platform::Platform;
pub use reference::ImageRef;
