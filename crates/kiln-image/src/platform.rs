//! OCI platforms (`linux/amd64`, `linux/arm/v7`), parsed and normalised like
//! containerd's `platforms.Parse` + `platforms.Normalize`, without ever
//! falling back to the host's platform.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::PlatformError;

/// An OCI platform, in the JSON shape of the image spec
/// (`architecture`, `os`, `os.version`, `os.features`, `variant`).
///
/// Values built by [`Platform::parse`] or [`Platform::new`] are normalised
/// (`aarch64` → `arm64`, `x86_64` → `amd64`, `arm` → `arm/v7`, `arm64/v8` →
/// `arm64`, …). A value built field by field can be normalised with
/// [`Platform::normalize`].
///
/// ```
/// use kiln_image::Platform;
/// let p = Platform::parse("linux/aarch64/v8")?;
/// assert_eq!(p.to_string(), "linux/arm64");
/// assert_eq!(Platform::parse("linux/arm")?.to_string(), "linux/arm/v7");
/// assert_eq!(
///     p.go_env(),
///     vec![("GOOS", "linux".to_string()), ("GOARCH", "arm64".to_string())]
/// );
/// # Ok::<(), kiln_image::PlatformError>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, `arm`, …), Go's GOARCH values.
    pub architecture: String,
    /// Operating system (`linux`, `windows`, …), Go's GOOS values.
    pub os: String,
    /// OS version, used by Windows images.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features, used by Windows images.
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v7` for arm, `v2` for amd64, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// A normalised platform from an OS and architecture.
    pub fn new(os: &str, architecture: &str) -> Self {
        Platform {
            architecture: architecture.to_string(),
            os: os.to_string(),
            os_version: None,
            os_features: Vec::new(),
            variant: None,
        }
        .normalize()
    }

    /// A copy with `variant`, normalised.
    pub fn with_variant(&self, variant: &str) -> Self {
        Platform {
            variant: Some(variant.to_string()),
            ..self.clone()
        }
        .normalize()
    }

    /// `linux/amd64`.
    pub fn linux_amd64() -> Self {
        Platform::new("linux", "amd64")
    }

    /// `linux/arm64`.
    pub fn linux_arm64() -> Self {
        Platform::new("linux", "arm64")
    }

    /// Parses `os[(version[+feature]*)]/arch[/variant]` and normalises it.
    ///
    /// Unlike containerd, a lone OS or architecture is refused instead of
    /// being completed with the host's values.
    ///
    /// # Errors
    /// A [`PlatformError`] naming the bad component.
    pub fn parse(input: &str) -> Result<Self, PlatformError> {
        if input.is_empty() {
            return Err(PlatformError::Empty);
        }
        if input.contains('*') {
            return Err(PlatformError::Wildcard {
                input: input.to_string(),
            });
        }
        let parts: Vec<&str> = input.split('/').collect();
        if parts.len() > 3 {
            return Err(PlatformError::TooManyComponents {
                input: input.to_string(),
            });
        }
        let (os, os_version, os_features) =
            parse_os_component(parts[0]).ok_or_else(|| PlatformError::InvalidOs {
                input: input.to_string(),
                component: parts[0].to_string(),
            })?;
        for part in &parts[1..] {
            let ok = !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !ok {
                return Err(PlatformError::InvalidComponent {
                    input: input.to_string(),
                    component: part.to_string(),
                });
            }
        }
        if parts.len() == 1 {
            return Err(PlatformError::Incomplete {
                input: input.to_string(),
            });
        }
        let platform = Platform {
            architecture: parts[1].to_string(),
            os,
            os_version,
            os_features,
            variant: parts.get(2).map(|v| v.to_string()),
        };
        Ok(platform.normalize())
    }

    /// containerd's `platforms.Normalize`: lowercases OS and architecture,
    /// maps aliases, sets or drops the default variant and sorts features.
    pub fn normalize(mut self) -> Self {
        self.os = self.os.to_lowercase();
        if self.os == "macos" {
            self.os = "darwin".to_string();
        }
        let arch = self.architecture.to_lowercase();
        let variant = self
            .variant
            .take()
            .map(|v| v.to_lowercase())
            .unwrap_or_default();
        let (arch, variant) = normalize_arch(&arch, &variant);
        self.architecture = arch;
        self.variant = (!variant.is_empty()).then_some(variant);
        if self.os_version.as_deref() == Some("") {
            self.os_version = None;
        }
        self.os_features.sort();
        self.os_features.dedup();
        self
    }

    /// The OS version and features in containerd's `FormatAll` form, e.g.
    /// `windows(10.0.17763+win32k)/amd64`.
    pub fn format_all(&self) -> String {
        let mut opts = String::new();
        if let Some(v) = &self.os_version {
            opts.push_str(&encode_os_option(v));
        }
        let mut features = self.os_features.clone();
        features.sort();
        for f in &features {
            opts.push('+');
            opts.push_str(&encode_os_option(f));
        }
        if opts.is_empty() {
            return self.to_string();
        }
        join_components(
            &format!("{}({opts})", self.os),
            &self.architecture,
            self.variant.as_deref(),
        )
    }

    /// The Go toolchain environment that cross-compiles for this platform:
    /// `GOOS`, `GOARCH` and, when the variant says so, `GOARM`, `GOAMD64`,
    /// `GOARM64` or `GORISCV64`.
    pub fn go_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("GOOS", self.os.clone()),
            ("GOARCH", self.architecture.clone()),
        ];
        let Some(variant) = self.variant.as_deref() else {
            return env;
        };
        match self.architecture.as_str() {
            // Go wants GOARM=5|6|7 without the "v".
            "arm" => env.push(("GOARM", variant.trim_start_matches('v').to_string())),
            "amd64" => env.push(("GOAMD64", variant.to_string())),
            // GOARM64 takes v8.0 … v9.5; a bare "v9" means v9.0.
            "arm64" => {
                let v = variant.strip_prefix('v').unwrap_or(variant);
                let v = if v.contains('.') {
                    format!("v{v}")
                } else {
                    format!("v{v}.0")
                };
                env.push(("GOARM64", v));
            }
            "riscv64" => env.push(("GORISCV64", variant.to_string())),
            _ => {}
        }
        env
    }
}

/// containerd's `normalizeArch` on lowercased input.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let (a, v) = match arch {
        "i386" => ("386", ""),
        "x86_64" | "x86-64" | "amd64" => ("amd64", if variant == "v1" { "" } else { variant }),
        "aarch64" | "arm64" => (
            "arm64",
            match variant {
                "8" | "v8" => "",
                v => v,
            },
        ),
        "armhf" => ("arm", "v7"),
        "armel" => ("arm", "v6"),
        "arm" => match variant {
            "" | "7" => ("arm", "v7"),
            "5" => ("arm", "v5"),
            "6" => ("arm", "v6"),
            "8" => ("arm", "v8"),
            v => ("arm", v),
        },
        other => (other, variant),
    };
    (a.to_string(), v.to_string())
}

/// `<os>[(<version>[+<feature>]*)]` as containerd's `osRe` accepts it.
fn parse_os_component(s: &str) -> Option<(String, Option<String>, Vec<String>)> {
    let (os, options) = match s.find('(') {
        Some(i) => {
            let inner = s[i + 1..].strip_suffix(')')?;
            (&s[..i], Some(inner))
        }
        None => (s, None),
    };
    let os_ok = !os.is_empty()
        && os
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !os_ok {
        return None;
    }
    let mut version = None;
    let mut features = Vec::new();
    if let Some(inner) = options {
        let option_ok = |v: &str| {
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'%' | b'-'))
        };
        let mut pieces = inner.split('+');
        let v = pieces.next().unwrap_or_default();
        if !option_ok(v) {
            return None;
        }
        if !v.is_empty() {
            version = Some(decode_os_option(v)?);
        }
        for f in pieces {
            if f.is_empty() || !option_ok(f) {
                return None;
            }
            features.push(decode_os_option(f)?);
        }
    }
    Some((os.to_string(), version, features))
}

fn encode_os_option(v: &str) -> String {
    v.replace('%', "%25")
        .replace('+', "%2B")
        .replace('(', "%28")
        .replace(')', "%29")
        .replace('/', "%2F")
}

/// Percent-decoding as Go's `url.PathUnescape` does it (invalid escapes fail).
fn decode_os_option(v: &str) -> Option<String> {
    if !v.contains('%') {
        return Some(v.to_string());
    }
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = v.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn join_components(os: &str, arch: &str, variant: Option<&str>) -> String {
    let mut s = os.to_string();
    for part in [Some(arch), variant].into_iter().flatten() {
        if !part.is_empty() {
            s.push('/');
            s.push_str(part);
        }
    }
    s
}

impl fmt::Display for Platform {
    /// containerd's `Format`: `os/arch[/variant]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.os.is_empty() {
            return f.write_str("unknown");
        }
        f.write_str(&join_components(
            &self.os,
            &self.architecture,
            self.variant.as_deref(),
        ))
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Platform({})", self.format_all())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        Platform::parse(s).expect(s).to_string()
    }

    #[test]
    fn parses_and_normalises() {
        assert_eq!(p("linux/amd64"), "linux/amd64");
        assert_eq!(p("linux/x86_64"), "linux/amd64");
        assert_eq!(p("linux/x86-64/v1"), "linux/amd64");
        assert_eq!(p("linux/amd64/v3"), "linux/amd64/v3");
        assert_eq!(p("linux/aarch64"), "linux/arm64");
        assert_eq!(p("linux/arm64/v8"), "linux/arm64");
        assert_eq!(p("linux/arm64/8"), "linux/arm64");
        assert_eq!(p("linux/arm64/v9"), "linux/arm64/v9");
        assert_eq!(p("linux/arm"), "linux/arm/v7");
        assert_eq!(p("linux/arm/7"), "linux/arm/v7");
        assert_eq!(p("linux/arm/v6"), "linux/arm/v6");
        assert_eq!(p("linux/arm/5"), "linux/arm/v5");
        assert_eq!(p("linux/armhf"), "linux/arm/v7");
        assert_eq!(p("linux/armel"), "linux/arm/v6");
        assert_eq!(p("linux/i386"), "linux/386");
        assert_eq!(p("Linux/AMD64"), "linux/amd64");
        assert_eq!(p("macos/arm64"), "darwin/arm64");
        assert_eq!(p("linux/riscv64"), "linux/riscv64");
        assert_eq!(p("linux/s390x"), "linux/s390x");
    }

    #[test]
    fn os_version_and_features() {
        let w = Platform::parse("windows(10.0.17763+win32k+a)/amd64").expect("valid");
        assert_eq!(w.os_version.as_deref(), Some("10.0.17763"));
        assert_eq!(w.os_features, vec!["a".to_string(), "win32k".to_string()]);
        assert_eq!(w.to_string(), "windows/amd64");
        assert_eq!(w.format_all(), "windows(10.0.17763+a+win32k)/amd64");
        let enc = Platform::parse("windows(1%2B2)/amd64").expect("valid");
        assert_eq!(enc.os_version.as_deref(), Some("1+2"));
        assert_eq!(enc.format_all(), "windows(1%2B2)/amd64");
    }

    #[test]
    fn rejects_bad_specifiers() {
        assert!(matches!(Platform::parse(""), Err(PlatformError::Empty)));
        assert!(matches!(
            Platform::parse("linux"),
            Err(PlatformError::Incomplete { .. })
        ));
        assert!(matches!(
            Platform::parse("amd64"),
            Err(PlatformError::Incomplete { .. })
        ));
        assert!(matches!(
            Platform::parse("linux/*"),
            Err(PlatformError::Wildcard { .. })
        ));
        assert!(matches!(
            Platform::parse("linux/arm/v7/x"),
            Err(PlatformError::TooManyComponents { .. })
        ));
        assert!(matches!(
            Platform::parse("linux/"),
            Err(PlatformError::InvalidComponent { .. })
        ));
        assert!(matches!(
            Platform::parse("linux/am d64"),
            Err(PlatformError::InvalidComponent { .. })
        ));
        assert!(matches!(
            Platform::parse("/amd64"),
            Err(PlatformError::InvalidOs { .. })
        ));
        assert!(matches!(
            Platform::parse("lin.ux/amd64"),
            Err(PlatformError::InvalidOs { .. })
        ));
        assert!(matches!(
            Platform::parse("windows(10/amd64"),
            Err(PlatformError::InvalidOs { .. })
        ));
        assert!(matches!(
            Platform::parse("windows(%zz)/amd64"),
            Err(PlatformError::InvalidOs { .. })
        ));
    }

    #[test]
    fn oci_json_shape() {
        let p = Platform::parse("linux/arm/v7").expect("valid");
        let json = serde_json::to_value(&p).expect("ser");
        assert_eq!(
            json,
            serde_json::json!({"architecture": "arm", "os": "linux", "variant": "v7"})
        );
        let back: Platform = serde_json::from_value(json).expect("de");
        assert_eq!(back, p);
        let w: Platform = serde_json::from_str(
            r#"{"architecture":"amd64","os":"windows","os.version":"10.0","os.features":["win32k"]}"#,
        )
        .expect("de");
        assert_eq!(w.os_version.as_deref(), Some("10.0"));
        assert_eq!(w.os_features, vec!["win32k".to_string()]);
    }

    #[test]
    fn normalize_a_hand_built_value() {
        let raw = Platform {
            architecture: "AArch64".into(),
            os: "Linux".into(),
            os_version: Some(String::new()),
            os_features: vec!["b".into(), "a".into(), "b".into()],
            variant: Some("V8".into()),
        };
        let n = raw.normalize();
        assert_eq!(n.to_string(), "linux/arm64");
        assert_eq!(n.os_version, None);
        assert_eq!(n.os_features, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(Platform::new("linux", "arm").to_string(), "linux/arm/v7");
        assert_eq!(
            Platform::linux_amd64().with_variant("v2").to_string(),
            "linux/amd64/v2"
        );
    }

    #[test]
    fn go_env_mapping() {
        let env = |s: &str| Platform::parse(s).expect(s).go_env();
        assert_eq!(
            env("linux/amd64"),
            vec![("GOOS", "linux".into()), ("GOARCH", "amd64".into())]
        );
        assert_eq!(env("linux/arm/v6")[2], ("GOARM", "6".to_string()));
        assert_eq!(env("linux/arm")[2], ("GOARM", "7".to_string()));
        assert_eq!(env("linux/amd64/v3")[2], ("GOAMD64", "v3".to_string()));
        assert_eq!(env("linux/arm64/v9")[2], ("GOARM64", "v9.0".to_string()));
        assert_eq!(env("linux/arm64/v8.2")[2], ("GOARM64", "v8.2".to_string()));
        assert_eq!(env("linux/arm64").len(), 2);
        assert_eq!(env("linux/ppc64le").len(), 2);
    }
}
