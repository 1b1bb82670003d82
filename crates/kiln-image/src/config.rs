//! Image configs: reading the one BuildKit resolves for a base image, and
//! building the one kiln's Go image ships with.
//!
//! The typed config is `oci-spec`'s [`ImageConfiguration`]. It keeps some
//! maps in `HashMap`s, so kiln never serialises it with plain `serde_json`:
//! [`to_canonical_json`] sorts every object's keys, and the same config gives
//! the same bytes (and so the same digest) on every run and every host.
//!
//! ```
//! use kiln_image::config::{parse_config, ImageConfigBuilder};
//! use kiln_image::Platform;
//!
//! let base = parse_config(br#"{
//!     "architecture": "amd64", "os": "linux",
//!     "config": {"Env": ["PATH=/usr/bin:/bin"], "User": "65532", "WorkingDir": "/home/nonroot",
//!                "Volumes": {"/data": {}}, "Cmd": ["/bin/sh"]},
//!     "rootfs": {"type": "layers", "diff_ids": []}
//! }"#)?;
//! let bytes = ImageConfigBuilder::new(Platform::linux_arm64())
//!     .base(&base)
//!     .entrypoint(["/app"])
//!     .label("org.opencontainers.image.source", "https://example.invalid/app")
//!     .source_date_epoch(1_700_000_000)
//!     .to_canonical_json()?;
//! let json: serde_json::Value = serde_json::from_slice(&bytes)?;
//! assert_eq!(json["architecture"], "arm64");
//! assert_eq!(json["created"], "2023-11-14T22:13:20Z");
//! assert_eq!(json["config"]["User"], "65532");
//! assert_eq!(json["config"]["Entrypoint"][0], "/app");
//! assert!(json["config"].get("Cmd").is_none());
//! assert!(json["config"].get("Volumes").is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use oci_spec::image::{Arch, Config, History, ImageConfiguration, Os, RootFs};

use crate::error::ConfigError;
use crate::platform::Platform;

/// Parses an image config (OCI or Docker) as BuildKit's `ResolveImageConfig`
/// or a registry returns it.
///
/// Docker-only fields that the OCI spec does not model (`Healthcheck`,
/// `OnBuild`, `Shell`, `ArgsEscaped`, `container_config`, …) are ignored.
///
/// # Errors
/// [`ConfigError::Json`] when the bytes are not a config (`rootfs`,
/// `architecture` and `os` are required).
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfiguration, ConfigError> {
    serde_json::from_slice(bytes).map_err(|e| ConfigError::Json {
        source: Arc::new(e),
    })
}

/// The platform a config says its image runs on, normalised.
pub fn config_platform(config: &ImageConfiguration) -> Platform {
    Platform {
        architecture: config.architecture().to_string(),
        os: config.os().to_string(),
        os_version: config.os_version().clone(),
        os_features: config.os_features().clone().unwrap_or_default(),
        variant: config.variant().clone(),
    }
    .normalize()
}

/// Serialises any value (a config, manifest or index) as compact JSON with
/// the keys of every object sorted, so equal values give equal bytes.
///
/// # Errors
/// [`ConfigError::Encode`] if the value cannot be represented as JSON.
pub fn to_canonical_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ConfigError> {
    let encode = |e| ConfigError::Encode {
        source: Arc::new(e),
    };
    let value = serde_json::to_value(value).map_err(encode)?;
    serde_json::to_vec(&sorted(value)).map_err(encode)
}

/// Rebuilds every object with its keys in order. Without serde_json's
/// `preserve_order` feature objects are already sorted; with it (another
/// crate in the build may enable it) they keep insertion order, which for a
/// `HashMap` is random.
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let entries: BTreeMap<String, serde_json::Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            serde_json::Value::Object(entries.into_iter().collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

/// Parses a `SOURCE_DATE_EPOCH` value (seconds since 1970-01-01 UTC), as
/// the reproducible-builds spec defines it.
///
/// # Errors
/// [`ConfigError::SourceDateEpoch`] for anything but a non-negative integer.
pub fn parse_source_date_epoch(value: &str) -> Result<u64, ConfigError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::SourceDateEpoch {
            value: value.to_string(),
        });
    }
    trimmed.parse().map_err(|_| ConfigError::SourceDateEpoch {
        value: value.to_string(),
    })
}

/// `secs` since the epoch as RFC 3339 in UTC (`2023-11-14T22:13:20Z`), the
/// form Go's `time.Time` marshals to.
pub fn rfc3339_utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// Builds the config of the image kiln ships: a base image's runtime
/// settings with kiln's binary as the entrypoint.
///
/// From the base config it keeps `Env`, `User`, `WorkingDir`, `Labels`,
/// `ExposedPorts`, `StopSignal`, the layer list (`rootfs`) and `history`
/// (BuildKit's exporter lines history up with the layers). It drops the
/// base's `Cmd` (setting an entrypoint resets it, as in a Dockerfile),
/// `Volumes` and `author`. The platform comes from [`Platform`], never from
/// the base or the host; `created` and new history entries get the
/// `SOURCE_DATE_EPOCH` time (default: 0, i.e. 1970-01-01).
///
/// The builder is a value: each setter returns the updated builder.
#[derive(Clone, Debug)]
#[must_use]
pub struct ImageConfigBuilder {
    platform: Platform,
    base: Option<ImageConfiguration>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Vec<(String, String)>,
    labels: BTreeMap<String, String>,
    user: Option<String>,
    working_dir: Option<String>,
    epoch: u64,
    history: Vec<(String, Option<String>)>,
}

impl ImageConfigBuilder {
    /// A builder for an image that runs on `platform`, with no base.
    pub fn new(platform: Platform) -> Self {
        ImageConfigBuilder {
            platform: platform.normalize(),
            base: None,
            entrypoint: None,
            cmd: None,
            env: Vec::new(),
            labels: BTreeMap::new(),
            user: None,
            working_dir: None,
            epoch: 0,
            history: Vec::new(),
        }
    }

    /// Starts from `base`'s settings (see the type's docs for what is kept).
    pub fn base(mut self, base: &ImageConfiguration) -> Self {
        self.base = Some(base.clone());
        self
    }

    /// The entrypoint (`ENTRYPOINT ["/app"]`).
    pub fn entrypoint<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entrypoint = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Default arguments to the entrypoint (`CMD [...]`).
    pub fn cmd<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cmd = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Sets `key=value`, replacing the base's value for `key` in place (as
    /// Dockerfile `ENV` does) or appending it.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
        self
    }

    /// Adds a label (overriding a base label with the same key).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Overrides the base's user.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Overrides the base's working directory.
    pub fn working_dir(mut self, dir: impl Into<String>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// The image's creation time, in seconds since the epoch: the
    /// `SOURCE_DATE_EPOCH` of the build.
    pub fn source_date_epoch(mut self, secs: u64) -> Self {
        self.epoch = secs;
        self
    }

    /// Appends a history entry for a layer kiln adds, e.g.
    /// `created_by = "kiln build ./cmd/app"`.
    pub fn history(mut self, created_by: impl Into<String>, comment: Option<&str>) -> Self {
        self.history
            .push((created_by.into(), comment.map(str::to_string)));
        self
    }

    /// The config.
    pub fn build(&self) -> ImageConfiguration {
        let base = self.base.clone().unwrap_or_default();
        let base_config = base.config().clone().unwrap_or_default();
        let created = rfc3339_utc(self.epoch);

        let mut env = base_config.env().clone().unwrap_or_default();
        for (key, value) in &self.env {
            let entry = format!("{key}={value}");
            let prefix = format!("{key}=");
            match env
                .iter_mut()
                .find(|e| e.starts_with(&prefix) || **e == *key)
            {
                Some(existing) => *existing = entry,
                None => env.push(entry),
            }
        }

        let mut labels: BTreeMap<String, String> = base_config
            .labels()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        labels.extend(self.labels.clone());

        let mut ports = base_config.exposed_ports().clone().unwrap_or_default();
        ports.sort();
        ports.dedup();

        let mut config = Config::default();
        config
            .set_user(self.user.clone().or_else(|| base_config.user().clone()))
            .set_working_dir(
                self.working_dir
                    .clone()
                    .or_else(|| base_config.working_dir().clone()),
            )
            .set_env((!env.is_empty()).then_some(env))
            .set_entrypoint(self.entrypoint.clone())
            .set_cmd(self.cmd.clone())
            .set_labels((!labels.is_empty()).then(|| labels.into_iter().collect::<HashMap<_, _>>()))
            .set_exposed_ports((!ports.is_empty()).then_some(ports))
            .set_stop_signal(base_config.stop_signal().clone())
            .set_volumes(None);

        let mut history = base.history().clone().unwrap_or_default();
        for (created_by, comment) in &self.history {
            let mut entry = History::default();
            entry
                .set_created(Some(created.clone()))
                .set_created_by(Some(created_by.clone()))
                .set_comment(comment.clone());
            history.push(entry);
        }

        let platform = &self.platform;
        let mut image = ImageConfiguration::default();
        image
            .set_created(Some(created))
            .set_author(None)
            .set_architecture(Arch::from(platform.architecture.as_str()))
            .set_os(Os::from(platform.os.as_str()))
            .set_os_version(platform.os_version.clone())
            .set_os_features(
                (!platform.os_features.is_empty()).then(|| platform.os_features.clone()),
            )
            .set_variant(platform.variant.clone())
            .set_config(Some(config))
            .set_rootfs(if self.base.is_some() {
                base.rootfs().clone()
            } else {
                RootFs::default()
            })
            .set_history((!history.is_empty()).then_some(history));
        image
    }

    /// The config as canonical JSON: the bytes kiln hands to BuildKit's
    /// exporter.
    ///
    /// # Errors
    /// [`ConfigError::Encode`], which a well-formed config never gives.
    pub fn to_canonical_json(&self) -> Result<Vec<u8>, ConfigError> {
        to_canonical_json(&self.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"{
        "architecture": "amd64",
        "os": "linux",
        "author": "someone",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "User": "65532",
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/home/nonroot",
            "Volumes": {"/var/lib/data": {}},
            "ExposedPorts": {"8080/tcp": {}, "443/tcp": {}, "9090/udp": {}},
            "Labels": {"z": "1", "a": "2", "m": "3", "b": "4", "y": "5"},
            "Healthcheck": {"Test": ["NONE"]}
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "bazel build"}],
        "container_config": {"Hostname": ""}
    }"#;

    fn builder() -> ImageConfigBuilder {
        let base = parse_config(BASE.as_bytes()).expect("base config parses");
        ImageConfigBuilder::new(Platform::parse("linux/arm/v7").expect("platform"))
            .base(&base)
            .entrypoint(["/ko-app/app"])
            .env("PATH", "/ko-app:/usr/bin")
            .env("GODEBUG", "x=1")
            .label("org.opencontainers.image.revision", "abc")
            .label("a", "override")
            .source_date_epoch(1_700_000_000)
            .history("kiln build ./cmd/app", None)
    }

    #[test]
    fn keeps_runtime_settings_and_sets_ours() {
        let bytes = builder().to_canonical_json().expect("encode");
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        let config = &json["config"];
        assert_eq!(json["architecture"], "arm");
        assert_eq!(json["variant"], "v7");
        assert_eq!(json["os"], "linux");
        assert_eq!(json["created"], "2023-11-14T22:13:20Z");
        assert!(json.get("author").is_none());
        assert_eq!(config["User"], "65532");
        assert_eq!(config["WorkingDir"], "/home/nonroot");
        assert_eq!(
            config["Env"],
            serde_json::json!([
                "PATH=/ko-app:/usr/bin",
                "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
                "GODEBUG=x=1"
            ])
        );
        assert_eq!(config["Entrypoint"], serde_json::json!(["/ko-app/app"]));
        assert!(
            config.get("Cmd").is_none(),
            "entrypoint resets the base Cmd"
        );
        assert!(config.get("Volumes").is_none());
        assert!(config.get("Healthcheck").is_none());
        assert_eq!(config["Labels"]["a"], "override");
        assert_eq!(config["Labels"]["org.opencontainers.image.revision"], "abc");
        assert_eq!(
            config["ExposedPorts"],
            serde_json::json!({"443/tcp": {}, "8080/tcp": {}, "9090/udp": {}})
        );
        assert_eq!(json["rootfs"]["diff_ids"].as_array().map(Vec::len), Some(1));
        assert_eq!(json["history"][1]["created_by"], "kiln build ./cmd/app");
        assert_eq!(json["history"][1]["created"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn serialisation_is_deterministic() {
        // HashMaps inside oci-spec iterate in a different order per instance,
        // so build many times (each build makes fresh maps) and compare.
        let first = builder().to_canonical_json().expect("encode");
        for _ in 0..50 {
            assert_eq!(builder().to_canonical_json().expect("encode"), first);
        }
        let text = String::from_utf8(first).expect("utf-8");
        let labels = text.find("\"Labels\"").expect("labels");
        let order: Vec<usize> = ["\"a\"", "\"b\"", "\"m\"", "\"y\"", "\"z\""]
            .iter()
            .map(|k| text[labels..].find(k).expect("label key"))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(!text.contains('\n') && !text.contains(": "));
    }

    #[test]
    fn without_a_base() {
        let config = ImageConfigBuilder::new(Platform::linux_amd64())
            .entrypoint(["/app"])
            .cmd(["--serve"])
            .build();
        assert_eq!(config.created().as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(config.rootfs().typ(), "layers");
        assert_eq!(config_platform(&config), Platform::linux_amd64());
        let inner = config.config().clone().expect("config");
        assert_eq!(inner.cmd().clone(), Some(vec!["--serve".to_string()]));
        assert_eq!(inner.env().clone(), None);
        assert_eq!(config.history().clone(), None);
    }

    #[test]
    fn parse_config_errors_are_typed() {
        assert!(matches!(
            parse_config(b"{\"os\": \"linux\"}"),
            Err(ConfigError::Json { .. })
        ));
        assert!(matches!(
            parse_config(b"nope"),
            Err(ConfigError::Json { .. })
        ));
    }

    #[test]
    fn source_date_epoch_and_rfc3339() {
        assert_eq!(
            parse_source_date_epoch("1700000000").ok(),
            Some(1_700_000_000)
        );
        assert_eq!(parse_source_date_epoch(" 0\n").ok(), Some(0));
        for bad in ["", "-1", "1.5", "abc", "99999999999999999999999"] {
            assert!(parse_source_date_epoch(bad).is_err(), "{bad}");
        }
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339_utc(4_102_444_800), "2100-01-01T00:00:00Z");
    }
}
