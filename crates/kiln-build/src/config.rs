//! `kiln.toml`: every build option in the module's repository, so a
//! platform team standardises builds across repos. Flags override it.

use std::path::Path;

use kiln_go::recipe::GoBuildOptions;
use serde::{Deserialize, Serialize};

use crate::error::BuildError;

/// The file's name, in the module root.
pub const FILE: &str = "kiln.toml";

/// The defaults kiln builds with.
pub const DEFAULT_BUILDER_IMAGE: &str = "docker.io/library/golang:{go}-{distro}";
pub const DEFAULT_DISTRO: &str = "bookworm";
pub const DEFAULT_BASE_IMAGE: &str = "gcr.io/distroless/static-debian12";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct KilnToml {
    /// Target platforms (default: the daemon's).
    pub platforms: Vec<String>,
    /// `auto` or a version.
    pub go: Option<String>,
    /// `proxy`, `godev` or `git`.
    pub go_source: Option<String>,
    pub builder_image: Option<String>,
    pub distro: Option<String>,
    pub base_image: Option<String>,
    /// Image names for the image exporter.
    pub images: Vec<String>,
    /// The Go build itself.
    pub build: Option<GoBuildOptions>,
    /// Layer cache sources and destinations (`--cache-from`/`--cache-to`).
    pub cache: Option<CacheConfig>,
    /// Go build cache sources and destinations (`--go-cache-from`/`--go-cache-to`).
    pub go_cache: Option<CacheConfig>,
    /// SLSA provenance as `--provenance` takes it: "mode=min", "mode=max"
    /// or "false" (default: mode=min when pushing).
    pub provenance: Option<String>,
    /// Attach kiln's SPDX SBOM to every platform's image (`--sbom`).
    pub sbom: Option<bool>,
}

/// `[cache]`: `from = ["type=registry,ref=…"]`, `to = [...]`, as the flags.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    pub from: Vec<String>,
    pub to: Vec<String>,
}

impl KilnToml {
    /// Reads `DIR/kiln.toml`, or the defaults when there is none.
    ///
    /// # Errors
    /// [`BuildError::Config`] for a file that does not parse (unknown keys
    /// included), [`BuildError::File`] for one that cannot be read.
    pub fn load(dir: &Path) -> Result<KilnToml, BuildError> {
        let path = dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => KilnToml::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KilnToml::default()),
            Err(e) => Err(BuildError::file("read", path, e)),
        }
    }

    /// Parses the text of a kiln.toml; `path` is only used in errors.
    ///
    /// # Errors
    /// [`BuildError::Config`] for text that does not parse (unknown keys
    /// included).
    pub fn parse(text: &str, path: &Path) -> Result<KilnToml, BuildError> {
        toml::from_str(text).map_err(|e| BuildError::Config {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }
}

/// What `kiln init` writes.
pub const TEMPLATE: &str = r#"# kiln.toml: how `kiln build` builds this Go module. Flags override it.

# Target platforms; Go cross-compiles for each on the daemon's own platform.
# platforms = ["linux/amd64", "linux/arm64"]

# Go release: "auto" = the newest patch of go.mod's minor line, or e.g. "1.24.7".
go = "auto"
# Where "auto" looks: "proxy" ($GOPROXY), "godev" (go.dev/dl) or "git".
# go-source = "proxy"

# Builder image ({go} and {distro} are replaced) and its Debian release.
# builder-image = "docker.io/library/golang:{go}-{distro}"
# distro = "bookworm"

# Final-stage base; pinned by its multi-platform index digest at build time.
# base-image = "gcr.io/distroless/static-debian12"

# Image names (`kiln build --push` pushes them).
# images = ["registry.example.com/team/app:latest"]

[build]
# Main packages; one binary each (/app/bin for one, /app/<name> for several).
mains = ["."]
# ldflags = "-s -w"
# tags = ["netgo"]
# cgo = false
# apt-packages = ["git-lfs"]
# Private modules over ssh (use with `kiln build --ssh default`):
# goprivate = "git.example.com/*"
# ssh = ["default"]
# git-ssh-hosts = ["git.example.com"]
# Secrets (ids provided with --goenv / --netrc / --proxy-from-env / --ca-bundle):
# cmd = ["--listen", ":8080"]
# user = "65532"
# [build.labels]
# "org.opencontainers.image.vendor" = "Example Corp"
"#;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_and_unknown_keys_are_refused() {
        let t: KilnToml = toml::from_str(TEMPLATE).unwrap();
        assert_eq!(t.go.as_deref(), Some("auto"));
        assert_eq!(t.build.unwrap().mains, vec!["."]);
        let e = toml::from_str::<KilnToml>("platfroms = []")
            .unwrap_err()
            .to_string();
        assert!(e.contains("platfroms"), "{e}");
        let e = toml::from_str::<KilnToml>("[build]\nldflag = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ldflag"), "{e}");
    }
}
