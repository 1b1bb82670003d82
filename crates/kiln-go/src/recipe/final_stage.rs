//! The final stage (the base image plus the binaries under `/app`) and the
//! image config and annotations that go with it.

use std::collections::BTreeMap;

use kiln_image::config::{rfc3339_utc, ImageConfigBuilder};
use kiln_image::oci_spec::image::ImageConfiguration;
use kiln_llb::{image_ref, Chown, Copy, CopyMode, FileAction, FileOptions, ImageOptions, State};

use super::builder::Steps;
use super::error::RecipeError;
use super::{Checked, RecipeInput, APP_DIR};

/// OCI label and annotation keys kiln sets.
pub mod keys {
    /// Where the source lives.
    pub const SOURCE: &str = "org.opencontainers.image.source";
    /// The VCS revision.
    pub const REVISION: &str = "org.opencontainers.image.revision";
    /// The creation time (RFC 3339).
    pub const CREATED: &str = "org.opencontainers.image.created";
    /// The base image reference, without digest.
    pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
    /// The base image's (index) digest.
    pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
}

/// Where a binary lands in the image: `/app/bin` for a single main,
/// `/app/<name>` for several.
pub(crate) fn image_path(checked: &Checked, name: &str) -> String {
    if checked.mains.len() == 1 {
        format!("{APP_DIR}/bin")
    } else {
        format!("{APP_DIR}/{name}")
    }
}

/// The base image for the target, plus one file op that adds `/app` with
/// every binary in it (0755, root-owned, stamped with `SOURCE_DATE_EPOCH`
/// when given).
///
/// The op first lays `/app` out on scratch (each binary copied to its image
/// name), then copies that directory into the base as a whole. A directory
/// copy stamps the directory it creates *after* filling it; a `mkdir /app`
/// followed by copies into it leaves `/app` with the time the last file
/// landed (the build's wall clock), so two builds of the same source made
/// different layers whenever the op ran again.
pub(crate) fn final_state(input: &RecipeInput, checked: &Checked, binaries: &State) -> State {
    let mut steps = Steps::new("final", 2, input.options.step_label.as_deref());
    let base_ref = &input.base.reference;
    let base = image_ref(
        base_ref,
        ImageOptions::new()
            .platform(input.target.clone())
            .custom_name(steps.next(format_args!("FROM {base_ref}"))),
    );
    let stamp = |copy: Copy| {
        let copy = copy.mode(CopyMode::Bits(0o755)).owner(Chown::ids(0, 0));
        match checked.epoch_nanos {
            Some(t) => copy.created_time(t),
            None => copy,
        }
    };
    let mut laid_out: Option<FileAction> = None;
    let mut copied = Vec::new();
    for main in &checked.mains {
        let dest = image_path(checked, &main.name);
        let copy =
            stamp(Copy::new(binaries, format!("/{}", main.name), dest.clone()).create_dest_path());
        laid_out = Some(match laid_out {
            None => FileAction::from(copy),
            Some(chain) => chain.copy(copy),
        });
        copied.push(dest);
    }
    let app = match laid_out {
        Some(chain) => Copy::new(chain.with_state(&kiln_llb::scratch()), APP_DIR, APP_DIR),
        // `mains` is never empty (checked); an empty /app otherwise.
        None => Copy::new(kiln_llb::scratch(), "/", APP_DIR),
    };
    let mut options =
        FileOptions::new().custom_name(steps.next(format_args!("COPY {}", copied.join(" "))));
    if input.options.no_cache {
        options = options.ignore_cache();
    }
    base.file_with(FileAction::from(stamp(app)), options)
}

/// The labels kiln derives from the options and the base (before the
/// user's own, which win).
fn oci_metadata(input: &RecipeInput, checked: &Checked) -> BTreeMap<String, String> {
    let o = &input.options;
    let mut m = BTreeMap::new();
    let non_empty = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    if let Some(url) = non_empty(&o.source_url) {
        m.insert(keys::SOURCE.to_string(), url);
    }
    if let Some(rev) = non_empty(&o.revision) {
        m.insert(keys::REVISION.to_string(), rev);
    }
    if let Some(epoch) = o.source_date_epoch.or(o.created) {
        m.insert(keys::CREATED.to_string(), rfc3339_utc(epoch));
    }
    let base = &input.base.reference;
    let name = match base.tag() {
        Some(tag) => format!("{}:{tag}", base.name()),
        None => base.name(),
    };
    m.insert(keys::BASE_NAME.to_string(), name);
    m.insert(
        keys::BASE_DIGEST.to_string(),
        checked.base_digest.to_string(),
    );
    m
}

/// The image config: the base's runtime settings (Env, WorkingDir, User)
/// with the entrypoint, cmd, user and labels of the options; platform from
/// the target; `created` from `SOURCE_DATE_EPOCH` (else 1970-01-01).
pub(crate) fn image_config(
    input: &RecipeInput,
    checked: &Checked,
    base: &ImageConfiguration,
) -> Result<Vec<u8>, RecipeError> {
    let o = &input.options;
    let entrypoint = checked
        .mains
        .first()
        .map(|m| image_path(checked, &m.name))
        .unwrap_or_default();
    let binaries: Vec<String> = checked.mains.iter().map(|m| m.arg.clone()).collect();
    let mut b = ImageConfigBuilder::new(input.target.clone())
        .base(base)
        .entrypoint([entrypoint])
        .history(
            format!(
                "kiln build {} (go {}, {})",
                binaries.join(" "),
                input.go_version,
                input.target
            ),
            Some("kiln"),
        );
    if !o.cmd.is_empty() {
        b = b.cmd(o.cmd.clone());
    }
    if let Some(user) = &o.user {
        b = b.user(user.clone());
    }
    if let Some(epoch) = o.source_date_epoch.or(o.created) {
        b = b.source_date_epoch(epoch);
    }
    for (k, v) in oci_metadata(input, checked)
        .into_iter()
        .chain(o.labels.clone())
    {
        b = b.label(k, v);
    }
    b.to_canonical_json().map_err(RecipeError::ConfigEncode)
}

/// The manifest annotations: kiln's OCI keys, then the user's.
pub(crate) fn annotations(input: &RecipeInput, checked: &Checked) -> BTreeMap<String, String> {
    let mut m = oci_metadata(input, checked);
    m.extend(input.options.annotations.clone());
    m
}
