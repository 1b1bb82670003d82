//! The harness's addresses.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// What the harness provides.
#[derive(Clone, Debug)]
pub struct Harness {
    /// The Docker Engine's socket (its BuildKit answers on `POST /grpc`).
    pub docker_sock: PathBuf,
    /// `host:port` of the local registry.
    pub registry: String,
    /// The Go builder fixture image.
    pub go_image: String,
    /// The static (distroless stand-in) fixture image.
    pub static_image: String,
    /// The harness's state folder.
    pub dir: PathBuf,
    /// Every `KILN_TEST_*` value the harness wrote.
    vars: BTreeMap<String, String>,
}

impl Harness {
    /// A non-empty `KILN_TEST_*` value from the environment or the env file.
    #[must_use]
    pub fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

const HOW: &str =
    "start the test harness first: `./scripts/harness.sh up` (as root; it installs and \
starts dockerd and a registry), then run `./scripts/test.sh` or `source /var/lib/kiln-harness/env`";

/// The harness, from `KILN_TEST_*` variables or `$KILN_HARNESS_DIR/env`.
///
/// # Panics
/// When no harness is configured: a daemon test never passes without a
/// daemon, in CI or by hand. The message says how to start it. Which daemon
/// a test talks to is [`crate::daemon()`]'s business.
pub fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| match load() {
        Ok(h) => h,
        Err(why) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            panic!(
                "kiln daemon tests need the harness, but {why}.\n{}{HOW}",
                if ci {
                    "CI=true: a missing daemon is a failure. "
                } else {
                    ""
                }
            )
        }
    })
}

fn load() -> Result<Harness, String> {
    let mut vars: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("KILN_TEST_") || k == "KILN_HARNESS_DIR")
        .collect();
    if !vars.contains_key("KILN_TEST_DOCKER_SOCK") {
        let dir = vars
            .get("KILN_HARNESS_DIR")
            .cloned()
            .unwrap_or_else(|| "/var/lib/kiln-harness".into());
        let file = PathBuf::from(&dir).join("env");
        let text = std::fs::read_to_string(&file).map_err(|e| {
            format!(
                "KILN_TEST_DOCKER_SOCK is not set and {} cannot be read ({e})",
                file.display()
            )
        })?;
        for line in text.lines() {
            let line = line.trim().trim_start_matches("export ").trim();
            if let Some((k, v)) = line.split_once('=') {
                let v = v.trim().trim_matches('"').trim_matches('\'');
                vars.entry(k.trim().to_string())
                    .or_insert_with(|| v.to_string());
            }
        }
    }
    let get = |k: &str| {
        vars.get(k)
            .cloned()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{k} is not set"))
    };
    let h = Harness {
        docker_sock: PathBuf::from(get("KILN_TEST_DOCKER_SOCK")?),
        registry: get("KILN_TEST_REGISTRY")?,
        go_image: get("KILN_TEST_GO_IMAGE")?,
        static_image: get("KILN_TEST_STATIC_IMAGE")?,
        dir: PathBuf::from(
            get("KILN_HARNESS_DIR").unwrap_or_else(|_| "/var/lib/kiln-harness".into()),
        ),
        vars: vars.clone(),
    };
    Ok(h)
}
