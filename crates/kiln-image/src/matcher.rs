//! Choosing a platform out of an index, like containerd's
//! `platforms.Only` (the matcher BuildKit uses to pick a base image).

use crate::platform::Platform;

/// An ordered list of platforms that can run on a wanted platform, best
/// first: containerd's `platforms.Only`.
///
/// - `amd64/vN` also accepts `amd64/vN-1` … `amd64` and then `386`;
/// - `arm/vN` also accepts `arm/vN-1` … `arm/v5`;
/// - `arm64` (= `arm64/v8`) accepts `arm64` and then `arm/v8` … `arm/v5`;
///   `arm64/v8.x` and `arm64/v9.x` also accept the older arm64 revisions
///   containerd lists for them.
///
/// Candidates are normalised before comparing, so an index entry that says
/// `arm64/v8` matches a wanted `linux/arm64`, and `arm` (no variant) is `arm/v7`.
///
/// ```
/// use kiln_image::{Platform, PlatformMatcher};
/// let m = PlatformMatcher::only(&Platform::parse("linux/arm/v7")?);
/// assert!(m.matches(&Platform::parse("linux/arm/v6")?));
/// assert!(!m.matches(&Platform::parse("linux/arm64")?));
/// assert_eq!(m.rank(&Platform::parse("linux/arm/v7")?), Some(0));
/// # Ok::<(), kiln_image::PlatformError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformMatcher {
    vector: Vec<Platform>,
}

impl PlatformMatcher {
    /// containerd's `platforms.Only(platform)`.
    pub fn only(platform: &Platform) -> Self {
        PlatformMatcher {
            vector: platform_vector(platform.clone().normalize()),
        }
    }

    /// containerd's `platforms.OnlyStrict(platform)`: the platform itself,
    /// normalised, and nothing it could fall back to.
    pub fn only_strict(platform: &Platform) -> Self {
        PlatformMatcher {
            vector: vec![platform.clone().normalize()],
        }
    }

    /// Whether `candidate` can be used.
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.rank(candidate).is_some()
    }

    /// The preference of `candidate` (0 is best), or `None` if it does not
    /// match at all.
    pub fn rank(&self, candidate: &Platform) -> Option<usize> {
        let normalized = candidate.clone().normalize();
        self.vector
            .iter()
            .position(|want| platform_equal(want, &normalized))
    }

    /// The platforms accepted, best first.
    pub fn platforms(&self) -> &[Platform] {
        &self.vector
    }
}

/// containerd's `matcher.Match` on normalised values: OS, architecture and
/// variant equal; an OS version only counts when both sides state one.
fn platform_equal(want: &Platform, candidate: &Platform) -> bool {
    want.os == candidate.os
        && want.architecture == candidate.architecture
        && want.variant == candidate.variant
        && match (&want.os_version, &candidate.os_version) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
}

fn sibling(base: &Platform, architecture: &str, variant: Option<String>) -> Platform {
    Platform {
        architecture: architecture.to_string(),
        variant,
        ..base.clone()
    }
    .normalize()
}

fn numeric_variant(variant: Option<&str>) -> Option<u32> {
    variant?.strip_prefix('v')?.parse().ok()
}

/// containerd's `platformVector`.
fn platform_vector(platform: Platform) -> Vec<Platform> {
    let mut vector = vec![platform.clone()];
    match platform.architecture.as_str() {
        "amd64" => {
            if let Some(v) = numeric_variant(platform.variant.as_deref()).filter(|v| *v > 1) {
                for lower in (1..v).rev() {
                    vector.push(sibling(&platform, "amd64", Some(format!("v{lower}"))));
                }
            }
            vector.push(sibling(&platform, "386", None));
        }
        "arm" => {
            if let Some(v) = numeric_variant(platform.variant.as_deref()).filter(|v| *v > 5) {
                for lower in (5..v).rev() {
                    vector.push(sibling(&platform, "arm", Some(format!("v{lower}"))));
                }
            }
        }
        "arm64" => {
            let variant = platform.variant.clone().unwrap_or_else(|| "v8".to_string());
            vector.clear();
            let Some(versions) = arm64_versions(&variant) else {
                return vec![platform];
            };
            for (major, top_minor) in versions {
                for minor in (0..=top_minor).rev() {
                    let v = if minor == 0 {
                        format!("v{major}")
                    } else {
                        format!("v{major}.{minor}")
                    };
                    vector.push(sibling(&platform, "arm64", Some(v)));
                }
            }
            // Every arm64 CPU runs 32-bit arm up to v8.
            let arm = sibling(&platform, "arm", Some("v8".to_string()));
            vector.extend(platform_vector(arm));
        }
        _ => {}
    }
    vector
}

/// containerd's `arm64variantToVersion`: the (major, highest minor) pairs an
/// arm64 variant can run, newest first.
fn arm64_versions(variant: &str) -> Option<Vec<(u32, u32)>> {
    let rest = variant.strip_prefix('v')?;
    let (major, minor) = match rest.split_once('.') {
        Some((major, minor)) => (major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?),
        None => (rest.parse::<u32>().ok()?, 0),
    };
    match (major, minor) {
        (8, 0..=9) => Some(vec![(8, minor)]),
        // v9.x implies v8.(x+5), capped at v8.9.
        (9, 0..=7) => Some(vec![(9, minor), (8, (minor + 5).min(9))]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).expect(s)
    }

    fn names(m: &PlatformMatcher) -> Vec<String> {
        m.platforms().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn vectors_follow_containerd() {
        assert_eq!(
            names(&PlatformMatcher::only(&p("linux/amd64"))),
            ["linux/amd64", "linux/386"]
        );
        assert_eq!(
            names(&PlatformMatcher::only(&p("linux/amd64/v3"))),
            [
                "linux/amd64/v3",
                "linux/amd64/v2",
                "linux/amd64",
                "linux/386"
            ]
        );
        assert_eq!(
            names(&PlatformMatcher::only(&p("linux/arm"))),
            ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
        );
        assert_eq!(
            names(&PlatformMatcher::only(&p("linux/arm64"))),
            [
                "linux/arm64",
                "linux/arm/v8",
                "linux/arm/v7",
                "linux/arm/v6",
                "linux/arm/v5"
            ]
        );
        let v9 = names(&PlatformMatcher::only(&p("linux/arm64/v9.1")));
        assert_eq!(
            &v9[..3],
            ["linux/arm64/v9.1", "linux/arm64/v9", "linux/arm64/v8.6"]
        );
        assert!(v9.contains(&"linux/arm64".to_string()));
        assert_eq!(
            names(&PlatformMatcher::only_strict(&p("linux/arm64/v8"))),
            ["linux/arm64"]
        );
    }

    #[test]
    fn matching_normalises_candidates() {
        let arm64 = PlatformMatcher::only(&p("linux/arm64"));
        let raw = Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            os_version: None,
            os_features: vec![],
            variant: Some("v8".into()),
        };
        assert_eq!(arm64.rank(&raw), Some(0));
        assert_eq!(arm64.rank(&p("linux/arm/v7")), Some(2));
        assert!(!arm64.matches(&p("linux/amd64")));
        assert!(!arm64.matches(&p("windows/arm64")));
        let arm7 = PlatformMatcher::only(&p("linux/arm/v7"));
        assert!(!arm7.matches(&p("linux/arm/v8")));
        assert!(arm7.matches(&Platform::new("linux", "arm")));
        let amd64 = PlatformMatcher::only(&p("linux/amd64"));
        assert!(amd64.matches(&p("linux/386")));
        assert!(!amd64.matches(&p("linux/amd64/v2")));
    }

    #[test]
    fn os_version_only_counts_when_both_have_one() {
        let want = p("windows(10.0.17763)/amd64");
        let m = PlatformMatcher::only(&want);
        assert!(m.matches(&p("windows/amd64")));
        assert!(m.matches(&p("windows(10.0.17763)/amd64")));
        assert!(!m.matches(&p("windows(10.0.20348)/amd64")));
    }
}
