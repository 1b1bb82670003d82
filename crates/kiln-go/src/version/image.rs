//! Falling back to the newest release whose builder image is published.
//!
//! A Go release reaches the module proxy within minutes, but the official
//! `golang:1.24.5-bookworm` image follows hours later. Building right after a
//! release would fail on a missing image, so kiln asks whether the image
//! exists and steps back to the previous patch when it does not.

use std::future::Future;

use kiln_image::ImageRef;

use super::GoVersion;
use crate::error::{Error, TemplateProblem};

/// At most this many candidate images are probed before giving up.
pub const MAX_IMAGE_PROBES: usize = 5;

/// The builder-image template kiln uses by default.
pub const DEFAULT_IMAGE_TEMPLATE: &str = "docker.io/library/golang:{go}-{distro}";

/// Answers whether an image exists. kiln implements it through the BuildKit
/// daemon (gateway `ResolveImageConfig`), so this crate stays off the
/// network; tests use a fake.
///
/// Implementations may write `async fn exists(...)`.
pub trait ImageTagProbe {
    /// The probe's failure (not "the image does not exist", which is
    /// `Ok(false)`).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Whether `image` can be pulled.
    fn exists(&self, image: &ImageRef) -> impl Future<Output = Result<bool, Self::Error>> + Send;
}

/// Expands a builder-image template: `{go}` becomes the version and
/// `{distro}` the distribution. An empty `distro` also drops a `-` right
/// before `{distro}` (`golang:{go}-{distro}` → `golang:1.24.3`).
///
/// ```
/// use kiln_go::version::builder_image;
///
/// let image = builder_image("golang:{go}-{distro}", &"1.24.3".parse()?, "bookworm")?;
/// assert_eq!(image.to_string(), "docker.io/library/golang:1.24.3-bookworm");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Template`] for a template without `{go}` or with an unknown
/// placeholder; [`Error::ImageRef`] if the result is not a reference.
pub fn builder_image(template: &str, go: &GoVersion, distro: &str) -> Result<ImageRef, Error> {
    let problem = |problem| Error::Template {
        template: template.to_owned(),
        problem,
    };
    let mut out = String::with_capacity(template.len() + 16);
    let mut saw_go = false;
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        out.push_str(&rest[..open]);
        if rest[open..].starts_with('}') {
            return Err(problem(TemplateProblem::UnknownPlaceholder));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| problem(TemplateProblem::UnknownPlaceholder))?;
        match &after[..close] {
            "go" => {
                saw_go = true;
                out.push_str(&go.to_string());
            }
            "distro" if distro.is_empty() => {
                if out.ends_with('-') {
                    out.pop();
                }
            }
            "distro" => out.push_str(distro),
            _ => return Err(problem(TemplateProblem::UnknownPlaceholder)),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    if !saw_go {
        return Err(problem(TemplateProblem::MissingGo));
    }
    ImageRef::parse(&out).map_err(|source| Error::ImageRef {
        reference: out,
        source,
    })
}

/// The first of `candidates` (newest first) whose builder image exists,
/// probing at most [`MAX_IMAGE_PROBES`]: that version, its image (expanded
/// from `template` as in [`builder_image`]) and, when it is not the newest,
/// a note for the user (`golang:1.24.5-bookworm is not published yet; using
/// 1.24.4`).
///
/// # Errors
/// The errors of [`builder_image`]; [`Error::Probe`] if the probe fails;
/// [`Error::NoBuilderImage`] if no probed image exists.
pub async fn first_published<P: ImageTagProbe>(
    candidates: &[GoVersion],
    template: &str,
    distro: &str,
    probe: &P,
) -> Result<(GoVersion, ImageRef, Option<String>), Error> {
    let mut missing: Vec<ImageRef> = Vec::new();
    for version in candidates.iter().take(MAX_IMAGE_PROBES) {
        let image = builder_image(template, version, distro)?;
        let exists = probe.exists(&image).await.map_err(|e| Error::Probe {
            image: image.to_string(),
            source: Box::new(e),
        })?;
        if exists {
            let note = missing.first().map(|newest| {
                let also = match &missing[1..] {
                    [] => String::new(),
                    rest => format!(
                        " (also missing: {})",
                        rest.iter()
                            .map(ImageRef::familiar)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                format!(
                    "{} is not published yet; using {version}{also}",
                    newest.familiar()
                )
            });
            return Ok((version.clone(), image, note));
        }
        tracing::debug!(%image, "builder image not published");
        missing.push(image);
    }
    Err(Error::NoBuilderImage {
        tried: missing.iter().map(ImageRef::familiar).collect(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use super::*;

    /// Knows a fixed set of published tags and records what it was asked.
    struct FakeProbe {
        published: HashSet<String>,
        asked: Mutex<Vec<String>>,
        fail: bool,
    }

    impl FakeProbe {
        fn new(published: &[&str]) -> Self {
            FakeProbe {
                published: published.iter().map(|s| s.to_string()).collect(),
                asked: Mutex::new(Vec::new()),
                fail: false,
            }
        }
        fn asked(&self) -> Vec<String> {
            self.asked.lock().unwrap().clone()
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("registry unreachable")]
    struct Unreachable;

    impl ImageTagProbe for FakeProbe {
        type Error = Unreachable;
        async fn exists(&self, image: &ImageRef) -> Result<bool, Unreachable> {
            self.asked.lock().unwrap().push(image.familiar());
            if self.fail {
                return Err(Unreachable);
            }
            Ok(self.published.contains(&image.familiar()))
        }
    }

    fn vs(list: &[&str]) -> Vec<GoVersion> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn templates() {
        let go = "1.24.3".parse().unwrap();
        let t = |template: &str, distro: &str| {
            builder_image(template, &go, distro).map(|i| i.to_string())
        };
        assert_eq!(
            t(DEFAULT_IMAGE_TEMPLATE, "bookworm").unwrap(),
            "docker.io/library/golang:1.24.3-bookworm"
        );
        assert_eq!(
            t(DEFAULT_IMAGE_TEMPLATE, "").unwrap(),
            "docker.io/library/golang:1.24.3"
        );
        assert_eq!(
            t(
                "127.0.0.1:5000/kiln-fixtures/golang:{go}-{distro}",
                "trixie"
            )
            .unwrap(),
            "127.0.0.1:5000/kiln-fixtures/golang:1.24.3-trixie"
        );
        assert_eq!(
            t("golang:{distro}-{go}", "alpine").unwrap(),
            "docker.io/library/golang:alpine-1.24.3"
        );
        for (bad, problem) in [
            ("golang:latest", TemplateProblem::MissingGo),
            ("golang:{version}", TemplateProblem::UnknownPlaceholder),
            ("golang:{go", TemplateProblem::UnknownPlaceholder),
            ("golang:go}", TemplateProblem::UnknownPlaceholder),
        ] {
            let err = t(bad, "x").unwrap_err();
            assert!(
                matches!(&err, Error::Template { problem: p, .. } if *p == problem),
                "{bad}: {err:?}"
            );
        }
        assert!(matches!(t("Golang:{go}", ""), Err(Error::ImageRef { .. })));
    }

    #[tokio::test]
    async fn newest_published_tag_is_used() {
        let probe = FakeProbe::new(&["golang:1.24.7-bookworm", "golang:1.24.6-bookworm"]);
        let (v, image, note) = first_published(
            &vs(&["1.24.7", "1.24.6"]),
            DEFAULT_IMAGE_TEMPLATE,
            "bookworm",
            &probe,
        )
        .await
        .unwrap();
        assert_eq!(v.to_string(), "1.24.7");
        assert_eq!(image.familiar(), "golang:1.24.7-bookworm");
        assert_eq!(note, None);
        assert_eq!(probe.asked(), ["golang:1.24.7-bookworm"]);
    }

    #[tokio::test]
    async fn falls_back_to_the_newest_published_patch() {
        let probe = FakeProbe::new(&["golang:1.24.4-bookworm", "golang:1.24.3-bookworm"]);
        let candidates = vs(&["1.24.5", "1.24.4", "1.24.3"]);
        let (v, _, note) = first_published(&candidates, DEFAULT_IMAGE_TEMPLATE, "bookworm", &probe)
            .await
            .unwrap();
        assert_eq!(v.to_string(), "1.24.4");
        assert_eq!(
            note.as_deref(),
            Some("golang:1.24.5-bookworm is not published yet; using 1.24.4")
        );

        let probe = FakeProbe::new(&["golang:1.24.3-bookworm"]);
        let (v, _, note) = first_published(&candidates, DEFAULT_IMAGE_TEMPLATE, "bookworm", &probe)
            .await
            .unwrap();
        assert_eq!(v.to_string(), "1.24.3");
        assert_eq!(
            note.as_deref(),
            Some("golang:1.24.5-bookworm is not published yet; using 1.24.3 (also missing: golang:1.24.4-bookworm)")
        );
    }

    #[tokio::test]
    async fn gives_up_after_five_probes() {
        let probe = FakeProbe::new(&["golang:1.24.1-bookworm"]);
        let candidates = vs(&[
            "1.24.7", "1.24.6", "1.24.5", "1.24.4", "1.24.3", "1.24.2", "1.24.1",
        ]);
        let err = first_published(&candidates, DEFAULT_IMAGE_TEMPLATE, "bookworm", &probe)
            .await
            .unwrap_err();
        assert_eq!(probe.asked().len(), MAX_IMAGE_PROBES);
        let Error::NoBuilderImage { tried } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(
            tried.first().map(String::as_str),
            Some("golang:1.24.7-bookworm")
        );
        assert!(err.to_string().contains("--go"), "{err}");
    }

    #[tokio::test]
    async fn probe_errors_are_reported_with_the_image() {
        let mut probe = FakeProbe::new(&[]);
        probe.fail = true;
        let err = first_published(&vs(&["1.24.7"]), DEFAULT_IMAGE_TEMPLATE, "bookworm", &probe)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot check whether docker.io/library/golang:1.24.7-bookworm exists: registry unreachable"
        );
    }
}
