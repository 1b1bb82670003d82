//! Content digests (`sha256:<hex>`), validated like `opencontainers/go-digest`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256, Sha384, Sha512};

use crate::error::DigestError;

/// A validated content digest such as `sha256:e3b0c442…`.
///
/// The algorithms go-digest registers by default are accepted: `sha256`
/// (64 hex characters), `sha384` (96) and `sha512` (128). The encoded part
/// must be lowercase hex, as go-digest requires.
///
/// ```
/// use kiln_image::Digest;
/// let d = Digest::sha256_of(b"");
/// assert_eq!(
///     d.to_string(),
///     "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// assert_eq!(d.algorithm(), "sha256");
/// assert_eq!("sha256:abc".parse::<Digest>().is_err(), true);
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    // The full "algorithm:hex" string; `split` is the index of the colon.
    value: String,
    split: usize,
}

impl Digest {
    /// Parses and validates `algorithm:hex`.
    ///
    /// # Errors
    /// [`DigestError::Format`] without a colon-separated algorithm,
    /// [`DigestError::UnsupportedAlgorithm`], [`DigestError::InvalidLength`]
    /// or [`DigestError::InvalidEncoding`] for a bad hex part.
    pub fn parse(input: &str) -> Result<Self, DigestError> {
        let format = || DigestError::Format {
            input: input.to_string(),
        };
        let split = input.find(':').ok_or_else(format)?;
        let (algorithm, encoded) = (&input[..split], &input[split + 1..]);
        if split == 0 || encoded.is_empty() || !valid_algorithm_syntax(algorithm) {
            return Err(format());
        }
        let expected = match algorithm {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => {
                return Err(DigestError::UnsupportedAlgorithm {
                    input: input.to_string(),
                    algorithm: algorithm.to_string(),
                })
            }
        };
        if encoded.len() != expected {
            return Err(DigestError::InvalidLength {
                input: input.to_string(),
                algorithm: algorithm.to_string(),
                expected,
                actual: encoded.len(),
            });
        }
        if !encoded
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(DigestError::InvalidEncoding {
                input: input.to_string(),
            });
        }
        Ok(Digest {
            value: input.to_string(),
            split,
        })
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        let hex = hex::encode(Sha256::digest(bytes));
        Digest {
            value: format!("sha256:{hex}"),
            split: 6,
        }
    }

    /// The digest of `content` with this digest's algorithm: what `content`
    /// must hash to if it is the content this digest names.
    ///
    /// ```
    /// use kiln_image::Digest;
    /// let d = Digest::sha256_of(b"hello");
    /// assert_eq!(d.recompute(b"hello"), d);
    /// assert!(!d.verifies(b"hullo"));
    /// ```
    pub fn recompute(&self, content: &[u8]) -> Digest {
        let hex = match self.algorithm() {
            "sha384" => hex::encode(Sha384::digest(content)),
            "sha512" => hex::encode(Sha512::digest(content)),
            // `parse` admits only sha256, sha384 and sha512.
            _ => hex::encode(Sha256::digest(content)),
        };
        Digest {
            value: format!("{}:{hex}", self.algorithm()),
            split: self.split,
        }
    }

    /// A hasher with this digest's algorithm, for content read in pieces
    /// (layers too large to hold in memory).
    pub(crate) fn hasher(&self) -> Hasher {
        let state = match self.algorithm() {
            "sha384" => HasherState::Sha384(Sha384::new()),
            "sha512" => HasherState::Sha512(Sha512::new()),
            // `parse` admits only sha256, sha384 and sha512.
            _ => HasherState::Sha256(Sha256::new()),
        };
        Hasher {
            state,
            algorithm: self.algorithm().to_string(),
            split: self.split,
        }
    }

    /// Whether `content` hashes to this digest.
    pub fn verifies(&self, content: &[u8]) -> bool {
        self.recompute(content) == *self
    }

    /// The algorithm, e.g. `sha256`.
    pub fn algorithm(&self) -> &str {
        &self.value[..self.split]
    }

    /// The encoded (hex) part.
    pub fn hex(&self) -> &str {
        &self.value[self.split + 1..]
    }

    /// The full `algorithm:hex` form.
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

/// Hashes content fed in pieces; [`Hasher::finish`] gives its digest.
pub(crate) struct Hasher {
    state: HasherState,
    algorithm: String,
    split: usize,
}

enum HasherState {
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    /// Feeds the next piece of content.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match &mut self.state {
            HasherState::Sha256(h) => h.update(bytes),
            HasherState::Sha384(h) => h.update(bytes),
            HasherState::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed.
    pub(crate) fn finish(self) -> Digest {
        let hex = match self.state {
            HasherState::Sha256(h) => hex::encode(h.finalize()),
            HasherState::Sha384(h) => hex::encode(h.finalize()),
            HasherState::Sha512(h) => hex::encode(h.finalize()),
        };
        Digest {
            value: format!("{}:{hex}", self.algorithm),
            split: self.split,
        }
    }
}

/// go-digest's algorithm grammar: `[a-z0-9]+(?:[.+_-][a-z0-9]+)*`.
fn valid_algorithm_syntax(s: &str) -> bool {
    s.split(['.', '+', '_', '-']).all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.value)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.value
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.value)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn hasher_fed_in_pieces_agrees_with_recompute() {
        for algorithm in ["sha256", "sha384", "sha512"] {
            let len = match algorithm {
                "sha256" => 64,
                "sha384" => 96,
                _ => 128,
            };
            let d = Digest::parse(&format!("{algorithm}:{}", "0".repeat(len))).expect("digest");
            let mut h = d.hasher();
            h.update(b"hel");
            h.update(b"lo");
            assert_eq!(h.finish(), d.recompute(b"hello"), "{algorithm}");
        }
    }

    #[test]
    fn sha256_of_matches_known_value() {
        assert_eq!(Digest::sha256_of(b"").as_str(), EMPTY);
        let d = Digest::sha256_of(b"hello");
        assert_eq!(
            d.hex(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(d.algorithm(), "sha256");
    }

    #[test]
    fn parse_round_trips() {
        let d: Digest = EMPTY.parse().expect("valid");
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d, Digest::sha256_of(b""));
        let long = format!("sha512:{}", "a".repeat(128));
        assert_eq!(Digest::parse(&long).expect("sha512").algorithm(), "sha512");
        let mid = format!("sha384:{}", "0".repeat(96));
        assert!(Digest::parse(&mid).is_ok());
    }

    #[test]
    fn parse_rejects_bad_input() {
        assert!(matches!(Digest::parse(""), Err(DigestError::Format { .. })));
        assert!(matches!(
            Digest::parse("sha256"),
            Err(DigestError::Format { .. })
        ));
        assert!(matches!(
            Digest::parse(":abc"),
            Err(DigestError::Format { .. })
        ));
        assert!(matches!(
            Digest::parse("sha256:"),
            Err(DigestError::Format { .. })
        ));
        assert!(matches!(
            Digest::parse("SHA256:abc"),
            Err(DigestError::Format { .. })
        ));
        assert!(matches!(
            Digest::parse(&format!("md5:{}", "a".repeat(32))),
            Err(DigestError::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            Digest::parse("sha256:abcd"),
            Err(DigestError::InvalidLength {
                expected: 64,
                actual: 4,
                ..
            })
        ));
        let upper = format!("sha256:{}", "A".repeat(64));
        assert!(matches!(
            Digest::parse(&upper),
            Err(DigestError::InvalidEncoding { .. })
        ));
        let nonhex = format!("sha256:{}", "g".repeat(64));
        assert!(matches!(
            Digest::parse(&nonhex),
            Err(DigestError::InvalidEncoding { .. })
        ));
    }

    #[test]
    fn recompute_uses_the_same_algorithm() {
        let d = Digest::parse(&format!("sha512:{}", "0".repeat(128))).expect("valid");
        let r = d.recompute(b"");
        assert_eq!(r.algorithm(), "sha512");
        assert!(r.hex().starts_with("cf83e1357eefb8bd"));
        assert!(r.verifies(b""));
        assert!(!d.verifies(b""));
        let d384 = Digest::parse(&format!("sha384:{}", "0".repeat(96))).expect("valid");
        assert_eq!(d384.recompute(b"").hex().len(), 96);
    }

    #[test]
    fn serde_is_a_plain_string() {
        let d = Digest::sha256_of(b"");
        let json = serde_json::to_string(&d).expect("serialize");
        assert_eq!(json, format!("\"{EMPTY}\""));
        let back: Digest = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Digest>("\"sha256:nope\"").is_err());
    }
}
