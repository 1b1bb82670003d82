//! Planning: images resolved to digests, the LLB of every target platform,
//! and what the lock records. No daemon needed beyond the resolver.

use kiln_go::recipe::{self, RecipeInput, ResolvedImage};
use kiln_image::{Digest, ImageRef, Platform};
use kiln_llb::{Constraints, Definition};

use super::request::Request;
use super::resolve::{ImageResolver, Resolved, Unresolvable};
use crate::error::BuildError;

/// The local source name the module directory is served under.
pub const CONTEXT: &str = "context";

/// Everything planned for one build.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The module's binary name.
    pub module: String,
    pub go_version: String,
    pub platforms: Vec<PlatformPlan>,
    /// Things the user should know (the Go version picked, …).
    pub notes: Vec<String>,
    /// The builder image and the digest it resolved to.
    pub builder: (ImageRef, Option<Digest>),
    /// The base image and its index digest.
    pub base: (ImageRef, Option<Digest>),
}

/// One target platform's graph.
#[derive(Clone, Debug)]
pub struct PlatformPlan {
    pub target: Platform,
    pub definition: Definition,
    /// The image config the exporters write for it.
    pub image_config: Vec<u8>,
    /// With `--go-cache-to`: the graph whose result is the Go build cache
    /// after `go build`, solved and exported after the image.
    pub go_cache: Option<Definition>,
}

/// The Go release to build with and the builder image that has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoChoice {
    pub version: String,
    pub builder: ImageRef,
}

/// Plans `targets`, building on `build_platform`: resolves the builder
/// (for the build platform) and the base (for each target, one index
/// digest for all) through `resolver`, pins both, and runs the recipe.
/// With a lock in `request`, the locked digests are what is resolved, and
/// an image that moved is an error.
///
/// # Errors
/// [`BuildError::Resolve`] for an image that is missing or lacks a
/// platform, [`BuildError::Lock`] for a digest that is not the locked
/// one, [`BuildError::Plan`]/[`BuildError::Marshal`] from the recipe.
pub async fn plan<R: ImageResolver>(
    request: &Request,
    resolver: &R,
    go: GoChoice,
    build_platform: &Platform,
    targets: &[Platform],
    label_platforms: bool,
) -> Result<Plan, BuildError> {
    let locked = request.locked.as_ref();
    let builder_ref = go.builder;
    let builder_locked = locked
        .map(|l| parse_locked(request, &l.builder.digest))
        .transpose()?;
    let base_locked = locked
        .map(|l| parse_locked(request, &l.base.digest))
        .transpose()?;
    // With a lock, resolve exactly the locked digests (a moved tag changes nothing).
    let lookup = |r: &ImageRef, d: &Option<Digest>| match d {
        Some(d) => r.with_digest(d.clone()),
        None => r.clone(),
    };
    let base_ref = request.base_image()?;
    // Every image at once: each resolution is a registry round trip.
    let (builder, bases) = {
        let builder_lookup = lookup(&builder_ref, &builder_locked);
        let base_lookup = lookup(&base_ref, &base_locked);
        futures::join!(
            resolver.resolve(&builder_lookup, build_platform),
            futures::future::join_all(targets.iter().map(|t| resolver.resolve(&base_lookup, t))),
        )
    };
    let builder = match builder {
        Ok(b) => b,
        Err(e) => {
            return Err(image_error(resolver, "builder", &builder_ref, build_platform, e).await)
        }
    };
    let builder_pinned = pin(request, &builder_ref, &builder, builder_locked.as_ref())?;
    let mut base_digest = base_locked.clone();
    let mut platforms = Vec::new();
    for (target, base) in targets.iter().zip(bases) {
        let mut options = request.options.clone();
        if targets.len() > 1 || label_platforms {
            // Parallel platform builds: label every step with its platform.
            options.step_label = Some(target.to_string());
        }
        let base = match base {
            Ok(b) => b,
            Err(e) => return Err(image_error(resolver, "base", &base_ref, target, e).await),
        };
        if let (Some(first), Some(got)) = (&base_digest, &base.digest) {
            if first != got && base_locked.is_none() {
                return Err(BuildError::invalid(
                    format!("the base image {base_ref}"),
                    format!("it resolved to {got} for {target} but to {first} for another platform; it changed during the build, try again"),
                ));
            }
        }
        if base_digest.is_none() {
            base_digest.clone_from(&base.digest);
        }
        let base_pinned = match &base_digest {
            Some(d) => base_ref.with_digest(d.clone()),
            None => base_ref.clone(),
        };
        if base_locked.is_some() {
            pin(request, &base_ref, &base, base_locked.as_ref())?;
        }
        let input = RecipeInput {
            context_name: CONTEXT.to_string(),
            go_version: go.version.clone(),
            builder: ResolvedImage {
                reference: builder_pinned.clone(),
                config_json: builder.config.clone(),
            },
            base: ResolvedImage {
                reference: base_pinned,
                config_json: base.config.clone(),
            },
            build_platform: build_platform.clone(),
            target: target.clone(),
            options,
            go_cache_in: request
                .go_cache_in
                .get(&target.to_string())
                .map(|c| match c {
                    crate::go_cache::PlatformCache::Registry(r) => kiln_llb::image_ref(
                        r,
                        kiln_llb::ImageOptions::new()
                            .platform(build_platform.clone())
                            .custom_name(format!("[go cache] import {r}")),
                    ),
                    crate::go_cache::PlatformCache::Local(_) => kiln_llb::local_with(
                        &super::go_cache_local_name(target),
                        kiln_llb::LocalOptions::new()
                            .shared_key_hint(super::go_cache_local_name(target))
                            .custom_name(format!("[go cache] import for {target}")),
                    ),
                }),
            go_cache_out: !request.go_cache_to.is_empty(),
            go_cache_modules: request.go_cache_to.iter().any(|s| s.modules),
        };
        let planned = recipe::plan(&input).map_err(|e| BuildError::Plan {
            platform: Box::new(target.clone()),
            source: Box::new(e),
        })?;
        // local.unique keyed on the module's absolute path: BuildKit merges
        // identical vertices of concurrent builds, so without it two builds
        // of different directories could read each other's files. It is
        // stable for one directory, so the graph stays deterministic.
        let definition = planned
            .final_state
            .marshal(
                &Constraints::new(target.clone()).local_unique_id(local_unique_id(&request.dir)),
            )
            .map_err(|e| BuildError::Marshal {
                platform: Box::new(target.clone()),
                source: Box::new(e),
            })?;
        let go_cache = planned
            .go_cache
            .map(|st| {
                st.marshal(
                    &Constraints::new(target.clone())
                        .local_unique_id(local_unique_id(&request.dir)),
                )
            })
            .transpose()
            .map_err(|e| BuildError::Marshal {
                platform: Box::new(target.clone()),
                source: Box::new(e),
            })?;
        platforms.push(PlatformPlan {
            target: target.clone(),
            definition,
            image_config: planned.image_config,
            go_cache,
        });
    }
    Ok(Plan {
        module: request.options.module_name.clone(),
        go_version: go.version,
        platforms,
        notes: Vec::new(),
        builder: (builder_ref, builder.digest),
        base: (base_ref, base_digest),
    })
}

fn parse_locked(request: &Request, digest: &str) -> Result<Digest, BuildError> {
    digest.parse().map_err(|e| BuildError::Lock {
        path: request.dir.join(crate::lock::FILE),
        reason: format!("{digest:?} is not a digest ({e}); run `kiln lock --update`"),
    })
}

/// `name@digest` for what the resolver found; with a lock, the found
/// digest must be the locked one.
fn pin(
    request: &Request,
    r: &ImageRef,
    got: &Resolved,
    locked: Option<&Digest>,
) -> Result<ImageRef, BuildError> {
    if let (Some(l), Some(d)) = (locked, &got.digest) {
        if l != d {
            return Err(BuildError::Lock {
                path: request.dir.join(crate::lock::FILE),
                reason: format!("--locked: {r} now resolves to {d}, but kiln.lock has {l}; run `kiln lock --update` to accept the new image"),
            });
        }
    }
    Ok(match locked.or(got.digest.as_ref()) {
        Some(d) => r.with_digest(d.clone()),
        None => r.clone(),
    })
}

/// A stable id for a context directory on this machine.
fn local_unique_id(dir: &std::path::Path) -> String {
    use sha2::Digest as _;
    let host = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    let h = sha2::Sha256::digest(format!("{}\n{}", host.trim(), dir.display()).as_bytes());
    format!("kiln-{}", &hex::encode(h)[..24])
}

/// What a failed image resolution means for the user: when the daemon
/// failed it, the resolver asks the registry why (never the error's text).
async fn image_error<R: ImageResolver>(
    resolver: &R,
    role: &'static str,
    r: &ImageRef,
    p: &Platform,
    e: BuildError,
) -> BuildError {
    let why = match e.daemon() {
        Some(_) => resolver.why_unresolvable(r, p).await,
        None => None,
    };
    let reason = match why {
        Some(Unresolvable::NoPlatform { available }) => {
            let has: Vec<String> = available.iter().map(ToString::to_string).collect();
            Some(format!(
                "it has no {p} variant (it has {}); pick an image that supports {p} or drop {p} from --platform",
                if has.is_empty() { "none".to_string() } else { has.join(", ") }
            ))
        }
        Some(Unresolvable::NotFound) => Some(
            "its registry has no such image or tag: check the name (kiln resolves it on the daemon's registry)".to_string(),
        ),
        None => None,
    };
    match reason {
        Some(reason) => BuildError::invalid(format!("the {role} image {r}"), reason),
        None => BuildError::Resolve {
            role,
            image: r.to_string(),
            platform: Box::new(p.clone()),
            source: Box::new(e),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;
    use crate::build::request::BuildFlags;
    use crate::lock::{Lock, LockedImage};

    const BUILDER: &str = "127.0.0.1:5000/golang:1.24.4-trixie";
    const BASE: &str = "127.0.0.1:5000/static:nonroot";

    fn config(arch: &str) -> Vec<u8> {
        format!(
            r#"{{"architecture":"{arch}","os":"linux","config":{{"Env":["PATH=/usr/local/go/bin:/usr/bin:/bin","GOLANG_VERSION=1.24.4"],"User":"65532"}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        )
        .into_bytes()
    }

    /// A resolver that answers from a table (image name → digest per
    /// platform) and records what it was asked.
    #[derive(Default)]
    struct Fixed {
        digests: BTreeMap<(String, String), Digest>,
        asked: Mutex<Vec<String>>,
    }

    impl Fixed {
        fn with(mut self, image: &str, platform: &str, digest: &[u8]) -> Fixed {
            self.digests.insert(
                (image.to_string(), platform.to_string()),
                Digest::sha256_of(digest),
            );
            self
        }
    }

    impl ImageResolver for Fixed {
        async fn resolve(
            &self,
            image: &ImageRef,
            platform: &Platform,
        ) -> Result<Resolved, BuildError> {
            self.asked
                .lock()
                .unwrap()
                .push(format!("{image} {platform}"));
            let key = (image.to_string(), platform.to_string());
            let digest = self
                .digests
                .get(&key)
                .cloned()
                .ok_or_else(|| BuildError::invalid(format!("{image}"), "not in the table"))?;
            Ok(Resolved {
                digest: Some(digest),
                config: config(&platform.architecture),
            })
        }
    }

    fn module() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("go.mod"),
            "module example.com/shop\n\ngo 1.24\n",
        )
        .unwrap();
        std::fs::write(d.path().join("main.go"), "package main\n\nfunc main() {}\n").unwrap();
        d
    }

    fn request(dir: &std::path::Path, platforms: &[&str]) -> Request {
        Request::gather(
            &BuildFlags {
                dir: dir.to_path_buf(),
                platforms: platforms.iter().map(ToString::to_string).collect(),
                go: Some("1.24.4".into()),
                base_image: Some(BASE.into()),
                ..Default::default()
            },
            false,
        )
        .unwrap()
    }

    fn go() -> GoChoice {
        GoChoice {
            version: "1.24.4".into(),
            builder: ImageRef::parse(BUILDER).unwrap(),
        }
    }

    fn amd64() -> Platform {
        Platform::linux_amd64()
    }

    fn table() -> Fixed {
        Fixed::default()
            .with(BUILDER, "linux/amd64", b"builder index")
            .with(BASE, "linux/amd64", b"base index")
            .with(BASE, "linux/arm64", b"base index")
    }

    #[tokio::test]
    async fn every_platform_is_planned_on_the_build_platform_with_pinned_images() {
        let m = module();
        let req = request(m.path(), &["linux/amd64", "linux/arm64"]);
        let targets = req.targets(&amd64()).unwrap();
        let r = table();
        let planned = plan(&req, &r, go(), &amd64(), &targets, false)
            .await
            .unwrap();
        assert_eq!(planned.module, "shop");
        let plats: Vec<String> = planned
            .platforms
            .iter()
            .map(|p| p.target.to_string())
            .collect();
        assert_eq!(plats, ["linux/amd64", "linux/arm64"]);
        assert_eq!(planned.builder.1, Some(Digest::sha256_of(b"builder index")));
        assert_eq!(planned.base.1, Some(Digest::sha256_of(b"base index")));
        // The builder is resolved once, for the build platform; the base per target.
        assert_eq!(
            *r.asked.lock().unwrap(),
            [
                format!("{BUILDER} linux/amd64"),
                format!("{BASE} linux/amd64"),
                format!("{BASE} linux/arm64"),
            ]
        );
        for p in &planned.platforms {
            let dump = serde_json::to_string(&kiln_llb::dump::to_json(&p.definition)).unwrap();
            let pinned = |img: &str, d: &[u8]| format!("{img}@{}", Digest::sha256_of(d));
            assert!(
                dump.contains(&pinned(BUILDER, b"builder index")),
                "builder pinned: {dump}"
            );
            assert!(
                dump.contains(&pinned(BASE, b"base index")),
                "base pinned: {dump}"
            );
            // Two platforms: every step carries its platform's label.
            assert!(dump.contains(&format!("[{} ", p.target)), "{dump}");
        }
        // Planning is deterministic.
        let again = plan(&req, &table(), go(), &amd64(), &targets, false)
            .await
            .unwrap();
        for (a, b) in planned.platforms.iter().zip(&again.platforms) {
            assert_eq!(a.definition.to_bytes(), b.definition.to_bytes());
            assert_eq!(a.image_config, b.image_config);
        }
    }

    #[tokio::test]
    async fn a_base_that_moves_between_platforms_is_refused() {
        let m = module();
        let req = request(m.path(), &["linux/amd64", "linux/arm64"]);
        let targets = req.targets(&amd64()).unwrap();
        let r = table().with(BASE, "linux/arm64", b"a newer index");
        let e = plan(&req, &r, go(), &amd64(), &targets, false)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("changed during the build"), "{e}");
    }

    #[tokio::test]
    async fn a_lock_pins_what_is_resolved_and_refuses_a_moved_image() {
        let m = module();
        let mut req = request(m.path(), &[]);
        let lock = Lock {
            inputs: Default::default(),
            go: "1.24.4".into(),
            builder: LockedImage {
                name: BUILDER.into(),
                digest: Digest::sha256_of(b"builder index").to_string(),
                platforms: BTreeMap::new(),
            },
            base: LockedImage {
                name: BASE.into(),
                digest: Digest::sha256_of(b"an older base").to_string(),
                platforms: BTreeMap::new(),
            },
        };
        req.locked = Some(lock);
        // The resolver is asked for the locked digests…
        let r = table().with(
            &format!("{BASE}@{}", Digest::sha256_of(b"an older base")),
            "linux/amd64",
            b"an older base",
        );
        let r = Fixed {
            digests: r
                .digests
                .into_iter()
                .map(|((i, p), d)| {
                    let i = if i == BUILDER {
                        format!("{BUILDER}@{}", Digest::sha256_of(b"builder index"))
                    } else {
                        i
                    };
                    ((i, p), d)
                })
                .collect(),
            ..Default::default()
        };
        let p = plan(&req, &r, go(), &amd64(), &[amd64()], false)
            .await
            .unwrap();
        assert_eq!(p.base.1, Some(Digest::sha256_of(b"an older base")));
        // …and one that now answers another digest is refused.
        let moved = Fixed::default()
            .with(
                &format!("{BUILDER}@{}", Digest::sha256_of(b"builder index")),
                "linux/amd64",
                b"builder index",
            )
            .with(
                &format!("{BASE}@{}", Digest::sha256_of(b"an older base")),
                "linux/amd64",
                b"the base moved",
            );
        let e = plan(&req, &moved, go(), &amd64(), &[amd64()], false)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("kiln lock --update"), "{e}");
    }
}
