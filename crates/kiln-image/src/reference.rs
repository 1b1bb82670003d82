//! Docker image references, parsed and normalised exactly like
//! `github.com/distribution/reference`'s `ParseNormalizedNamed`.
//!
//! Grammar (from that package):
//! ```text
//! reference    := name [ ":" tag ] [ "@" digest ]
//! name         := [domain '/'] remote-name
//! domain       := host [':' port-number]
//! host         := domain-name | '[' IPv6address ']'
//! remote-name  := path-component ['/' path-component]*
//! path-component := [a-z0-9]+ (separator [a-z0-9]+)*   separator := [_.] | __ | -+
//! tag          := [\w][\w.-]{0,127}
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::Digest;
use crate::error::ReferenceError;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A normalised image reference: `domain/path[:tag][@digest]`.
///
/// ```
/// use kiln_image::ImageRef;
/// let r = ImageRef::parse("golang")?;
/// assert_eq!(r.to_string(), "docker.io/library/golang:latest");
/// assert_eq!(r.familiar(), "golang:latest");
///
/// let r = ImageRef::parse("127.0.0.1:5000/kiln-fixtures/golang:1.24-trixie")?;
/// assert_eq!(r.domain(), "127.0.0.1:5000");
/// assert_eq!(r.path(), "kiln-fixtures/golang");
/// assert_eq!(r.tag(), Some("1.24-trixie"));
/// # Ok::<(), kiln_image::ReferenceError>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageRef {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ImageRef {
    /// Parses and normalises a reference the way `docker pull` and BuildKit's
    /// `llb.Image` see it: `ParseNormalizedNamed` followed by `TagNameOnly`,
    /// so a reference with neither tag nor digest gets `:latest`.
    ///
    /// # Errors
    /// A [`ReferenceError`] describing why the input is not a reference.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        Ok(Self::parse_normalized_named(input)?.tag_name_only())
    }

    /// Exactly Go's `reference.ParseNormalizedNamed`: fills in the
    /// `docker.io` domain and `library/` prefix, but adds no default tag.
    ///
    /// # Errors
    /// A [`ReferenceError`] describing why the input is not a reference.
    pub fn parse_normalized_named(input: &str) -> Result<Self, ReferenceError> {
        if input.len() == 64 && input.bytes().all(is_lower_hex) {
            return Err(ReferenceError::IdentifierOnly {
                input: input.to_string(),
            });
        }
        let (domain, remainder) = split_docker_domain(input);
        let remote = remainder.split(':').next().unwrap_or_default();
        if remote.to_lowercase() != remote {
            return Err(ReferenceError::Uppercase {
                input: remote.to_string(),
            });
        }
        parse_reference(&format!("{domain}/{remainder}"), input)
    }

    /// The registry host (and port), e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry, e.g. `library/golang`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `domain/path`, without tag or digest.
    pub fn name(&self) -> String {
        if self.domain.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference is pinned.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// Go's `TagNameOnly`: adds `:latest` when there is neither tag nor digest.
    pub fn tag_name_only(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_string());
        }
        self
    }

    /// A copy pinned to `digest` (the tag, if any, is kept: `name:tag@digest`).
    pub fn with_digest(&self, digest: Digest) -> Self {
        ImageRef {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// A copy with `tag` (the digest, if any, is kept).
    ///
    /// # Errors
    /// [`ReferenceError::InvalidTag`] when `tag` is not `[\w][\w.-]{0,127}`.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !is_tag(tag) {
            return Err(ReferenceError::InvalidTag {
                tag: tag.to_string(),
            });
        }
        Ok(ImageRef {
            tag: Some(tag.to_string()),
            ..self.clone()
        })
    }

    /// A copy without tag and digest (Go's `TrimNamed`).
    pub fn trim(&self) -> Self {
        ImageRef {
            tag: None,
            digest: None,
            ..self.clone()
        }
    }

    /// The short name Docker shows: `docker.io` and `library/` removed.
    ///
    /// Unlike Go's `FamiliarName`, a Docker Hub path whose first component
    /// would be read as a registry host (`docker.io/evil.example/app`)
    /// keeps its domain: the short form is parsed again (a Docker Engine
    /// push, `docker load`'s tags) and must not name another registry.
    pub fn familiar_name(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.name();
        }
        let short = match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
            Some(rest) if !rest.contains('/') => rest,
            _ => &self.path,
        };
        match short.split_once('/') {
            Some((first, _)) if looks_like_domain(first) => self.name(),
            _ => short.to_string(),
        }
    }

    /// The short form with tag and digest (Go's `FamiliarString`), e.g.
    /// `golang:1.24` or `kiln/app@sha256:…`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(digest.as_str());
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageRef({self})")
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

impl Serialize for ImageRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ImageRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ImageRef::parse_normalized_named(&s).map_err(serde::de::Error::custom)
    }
}

/// distribution/reference's `splitDockerDomain`.
fn split_docker_domain(name: &str) -> (&str, String) {
    let Some((maybe_domain, maybe_remote)) = name.split_once('/') else {
        return (DEFAULT_DOMAIN, format!("{OFFICIAL_REPO_PREFIX}{name}"));
    };
    let (domain, remote) = if maybe_domain == LEGACY_DEFAULT_DOMAIN {
        (DEFAULT_DOMAIN, maybe_remote)
    } else if looks_like_domain(maybe_domain) {
        (maybe_domain, maybe_remote)
    } else {
        (DEFAULT_DOMAIN, name)
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        return (domain, format!("{OFFICIAL_REPO_PREFIX}{remote}"));
    }
    (domain, remote.to_string())
}

/// Whether `splitDockerDomain` takes `first`, the part before the first
/// `/`, for a registry host: `localhost`, or anything with a dot or colon
/// (host name, IP address, port); an uppercase first element cannot be a
/// namespace, so it must be a host too.
fn looks_like_domain(first: &str) -> bool {
    first == "localhost" || first.contains(['.', ':']) || first.to_lowercase() != first
}

/// distribution/reference's `Parse`, for a string that must be named.
/// `original` is the user's input, used in error messages.
fn parse_reference(s: &str, original: &str) -> Result<ImageRef, ReferenceError> {
    if s.is_empty() {
        return Err(ReferenceError::Empty);
    }
    let Some((name, tag, digest)) = match_reference(s) else {
        let lower = s.to_lowercase();
        if lower != s && match_reference(&lower).is_some() {
            return Err(ReferenceError::Uppercase {
                input: original.to_string(),
            });
        }
        return Err(ReferenceError::InvalidFormat {
            input: original.to_string(),
        });
    };
    let (domain, path) = split_name(name);
    if path.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong {
            input: original.to_string(),
            len: path.len(),
        });
    }
    let digest =
        digest
            .map(Digest::parse)
            .transpose()
            .map_err(|source| ReferenceError::Digest {
                input: original.to_string(),
                source,
            })?;
    Ok(ImageRef {
        domain: domain.to_string(),
        path: path.to_string(),
        tag: tag.map(str::to_string),
        digest,
    })
}

/// Matches the anchored reference grammar; returns (name, tag, digest).
fn match_reference(s: &str) -> Option<(&str, Option<&str>, Option<&str>)> {
    let (left, digest) = match s.split_once('@') {
        Some((left, digest)) => (left, Some(digest)),
        None => (s, None),
    };
    if let Some(d) = digest {
        if !is_digest_pattern(d) {
            return None;
        }
    }
    // A tag follows the last ':' that comes after the last '/': only the
    // domain part of a name may contain ':' (its port).
    let (name, tag) = match (left.rfind(':'), left.rfind('/')) {
        (Some(c), slash) if slash.is_none_or(|sl| c > sl) => (&left[..c], Some(&left[c + 1..])),
        _ => (left, None),
    };
    if let Some(t) = tag {
        if !is_tag(t) {
            return None;
        }
    }
    if !is_name(name) {
        return None;
    }
    Some((name, tag, digest))
}

/// Splits a valid name into (domain, path) with the regexp's preference for
/// a domain when the first element can be one.
fn split_name(name: &str) -> (&str, &str) {
    if let Some((first, rest)) = name.split_once('/') {
        if is_domain_and_port(first) && is_remote_name(rest) {
            return (first, rest);
        }
    }
    ("", name)
}

fn is_name(name: &str) -> bool {
    if let Some((first, rest)) = name.split_once('/') {
        if is_domain_and_port(first) && is_remote_name(rest) {
            return true;
        }
    }
    is_remote_name(name)
}

fn is_lower_hex(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'f')
}

fn is_remote_name(s: &str) -> bool {
    s.split('/').all(is_path_component)
}

/// `[a-z0-9]+ ( ( [._] | __ | -+ ) [a-z0-9]+ )*`
fn is_path_component(s: &str) -> bool {
    let bytes = s.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    let mut expect_alnum = true;
    while i < bytes.len() {
        if expect_alnum {
            let start = i;
            while i < bytes.len() && alnum(bytes[i]) {
                i += 1;
            }
            if i == start {
                return false;
            }
            expect_alnum = false;
        } else {
            let start = i;
            while i < bytes.len() && !alnum(bytes[i]) {
                i += 1;
            }
            let sep = &s[start..i];
            let ok = matches!(sep, "." | "_" | "__")
                || (!sep.is_empty() && sep.bytes().all(|b| b == b'-'));
            if !ok {
                return false;
            }
            expect_alnum = true;
        }
    }
    // Must not be empty and must not end on a separator.
    !bytes.is_empty() && !expect_alnum
}

/// `host [':' port]` where host is a domain name or a bracketed IPv6 address.
fn is_domain_and_port(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return false;
        };
        let inner = &rest[..end];
        if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        (None, &rest[end + 1..])
    } else {
        match s.find(':') {
            Some(i) => (Some(&s[..i]), &s[i..]),
            None => (Some(s), ""),
        }
    };
    if let Some(host) = host {
        let component_ok = |c: &str| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        };
        if !host.split('.').all(component_ok) {
            return false;
        }
    }
    match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// `[\w][\w.-]{0,127}`
fn is_tag(s: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}`
fn is_digest_pattern(s: &str) -> bool {
    let Some((alg, hex)) = s.split_once(':') else {
        return false;
    };
    let alg_ok = alg.split(['-', '_', '+', '.']).all(|part| {
        let b = part.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    });
    alg_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn full(s: &str) -> String {
        ImageRef::parse(s).expect(s).to_string()
    }

    #[test]
    fn normalises_familiar_names() {
        assert_eq!(full("golang"), "docker.io/library/golang:latest");
        assert_eq!(full("golang:1.24"), "docker.io/library/golang:1.24");
        assert_eq!(full("a/b"), "docker.io/a/b:latest");
        assert_eq!(full("docker.io/golang"), "docker.io/library/golang:latest");
        assert_eq!(
            full("index.docker.io/golang"),
            "docker.io/library/golang:latest"
        );
        assert_eq!(
            full("docker.io/library/alpine:latest"),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(full("a/b/c"), "docker.io/a/b/c:latest");
    }

    #[test]
    fn detects_domains() {
        let r = ImageRef::parse("localhost:5000/x").expect("valid");
        assert_eq!(
            (r.domain(), r.path(), r.tag()),
            ("localhost:5000", "x", Some("latest"))
        );
        let r = ImageRef::parse("localhost/x").expect("valid");
        assert_eq!(r.domain(), "localhost");
        let r = ImageRef::parse("127.0.0.1:5000/kiln-fixtures/golang:1.24-trixie").expect("valid");
        assert_eq!(
            r.to_string(),
            "127.0.0.1:5000/kiln-fixtures/golang:1.24-trixie"
        );
        assert_eq!(
            r.familiar(),
            "127.0.0.1:5000/kiln-fixtures/golang:1.24-trixie"
        );
        let r = ImageRef::parse("ghcr.io/org/app").expect("valid");
        assert_eq!(r.domain(), "ghcr.io");
        let r = ImageRef::parse("example:5000/app").expect("valid");
        assert_eq!(r.domain(), "example:5000");
        let r = ImageRef::parse("[::1]:5000/app:v1").expect("valid");
        assert_eq!((r.domain(), r.tag()), ("[::1]:5000", Some("v1")));
        // An uppercase first element is a host, not a namespace.
        let r = ImageRef::parse("Registry/app").expect("valid");
        assert_eq!((r.domain(), r.path()), ("Registry", "app"));
        // Not a domain: no dot, colon or localhost.
        let r = ImageRef::parse("myorg/app").expect("valid");
        assert_eq!(r.domain(), "docker.io");
    }

    #[test]
    fn digests_and_tags() {
        let r = ImageRef::parse(&format!("alpine@{D}")).expect("valid");
        assert_eq!(r.to_string(), format!("docker.io/library/alpine@{D}"));
        assert_eq!(r.tag(), None, "a pinned reference gets no default tag");
        assert_eq!(r.digest().map(Digest::as_str), Some(D));
        let r = ImageRef::parse(&format!("alpine:3.20@{D}")).expect("valid");
        assert_eq!(r.to_string(), format!("docker.io/library/alpine:3.20@{D}"));
        assert_eq!(r.familiar(), format!("alpine:3.20@{D}"));
        let r = ImageRef::parse("localhost:5000/x:v1@".to_string().as_str());
        assert!(r.is_err());
    }

    #[test]
    fn parse_normalized_named_adds_no_tag() {
        let r = ImageRef::parse_normalized_named("golang").expect("valid");
        assert_eq!(r.to_string(), "docker.io/library/golang");
        assert_eq!(r.familiar(), "golang");
        assert_eq!(
            r.tag_name_only().to_string(),
            "docker.io/library/golang:latest"
        );
    }

    #[test]
    fn with_digest_and_with_tag() {
        let d = Digest::parse(D).expect("digest");
        let r = ImageRef::parse("golang:1.24").expect("valid");
        assert_eq!(
            r.with_digest(d.clone()).to_string(),
            format!("docker.io/library/golang:1.24@{D}")
        );
        assert_eq!(
            r.with_tag("1.25").expect("tag").to_string(),
            "docker.io/library/golang:1.25"
        );
        assert!(matches!(
            r.with_tag("-bad"),
            Err(ReferenceError::InvalidTag { .. })
        ));
        assert!(matches!(
            r.with_tag(""),
            Err(ReferenceError::InvalidTag { .. })
        ));
        assert_eq!(r.trim().to_string(), "docker.io/library/golang");
        assert_eq!(r.name(), "docker.io/library/golang");
    }

    #[test]
    fn familiar_forms() {
        assert_eq!(
            ImageRef::parse("docker.io/library/redis")
                .expect("v")
                .familiar(),
            "redis:latest"
        );
        assert_eq!(
            ImageRef::parse("dmcgowan/myapp:v1").expect("v").familiar(),
            "dmcgowan/myapp:v1"
        );
        // Nested paths under library/ stay as they are.
        assert_eq!(
            ImageRef::parse("library/a/b").expect("v").familiar_name(),
            "library/a/b"
        );
    }

    /// Found by the `image_ref` fuzz target: `docker.io/ler.io/…` came out
    /// as `ler.io/…`, a name on another registry.
    #[test]
    fn familiar_name_never_names_another_registry() {
        for (input, familiar) in [
            (
                "docker.io/ler.io/libbrary/alt",
                "docker.io/ler.io/libbrary/alt:latest",
            ),
            ("docker.io/localhost/app:1", "docker.io/localhost/app:1"),
            (
                "docker.io/index.docker.io/app",
                "docker.io/index.docker.io/app:latest",
            ),
            ("docker.io/library/ler.io", "ler.io:latest"),
            ("docker.io/team/app", "team/app:latest"),
        ] {
            let r = ImageRef::parse(input).expect(input);
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(
                ImageRef::parse(&r.familiar()).expect(familiar),
                r,
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_bad_references() {
        assert!(matches!(
            ImageRef::parse(""),
            Err(ReferenceError::InvalidFormat { .. })
        ));
        let id = "a".repeat(64);
        assert!(matches!(
            ImageRef::parse(&id),
            Err(ReferenceError::IdentifierOnly { .. })
        ));
        assert!(matches!(
            ImageRef::parse("Golang"),
            Err(ReferenceError::Uppercase { .. })
        ));
        assert!(matches!(
            ImageRef::parse("docker.io/Foo/bar"),
            Err(ReferenceError::Uppercase { .. })
        ));
        assert!(matches!(
            ImageRef::parse("a//b"),
            Err(ReferenceError::InvalidFormat { .. })
        ));
        assert!(matches!(
            ImageRef::parse("a/b:"),
            Err(ReferenceError::InvalidFormat { .. })
        ));
        assert!(matches!(
            ImageRef::parse("a:-tag"),
            Err(ReferenceError::InvalidFormat { .. })
        ));
        assert!(matches!(
            ImageRef::parse("a_/b"),
            Err(ReferenceError::InvalidFormat { .. })
        ));
        assert!(matches!(
            ImageRef::parse("a---b/c..d"),
            Err(ReferenceError::InvalidFormat { .. })
        ));
        assert!(matches!(
            ImageRef::parse("a b"),
            Err(ReferenceError::InvalidFormat { .. })
        ));
        assert!(matches!(
            ImageRef::parse("alpine@sha256:abc"),
            Err(ReferenceError::InvalidFormat { .. })
        ));
        let long_tag = format!("a:{}", "t".repeat(129));
        assert!(matches!(
            ImageRef::parse(&long_tag),
            Err(ReferenceError::InvalidFormat { .. })
        ));
        let long_name = "a".repeat(300);
        assert!(matches!(
            ImageRef::parse(&long_name),
            Err(ReferenceError::NameTooLong { .. })
        ));
        // Well-formed digest pattern but unsupported algorithm / bad hex case.
        let md5 = format!("a@md5:{}", "0".repeat(32));
        assert!(matches!(
            ImageRef::parse(&md5),
            Err(ReferenceError::Digest { .. })
        ));
        let upper = format!("a@sha256:{}", "A".repeat(64));
        assert!(matches!(
            ImageRef::parse(&upper),
            Err(ReferenceError::Digest { .. })
        ));
    }

    #[test]
    fn path_component_separators() {
        for ok in ["a", "a.b", "a_b", "a__b", "a-b", "a---b", "a1.b2_c3__d4-e5"] {
            assert!(is_path_component(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a._b", "a___b", "A", "a..b", ".a"] {
            assert!(!is_path_component(bad), "{bad}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let r = ImageRef::parse("golang:1.24").expect("valid");
        let json = serde_json::to_string(&r).expect("ser");
        assert_eq!(json, "\"docker.io/library/golang:1.24\"");
        let back: ImageRef = serde_json::from_str(&json).expect("de");
        assert_eq!(back, r);
    }
}
