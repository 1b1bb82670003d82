//! `-o`/`--output` values: where a build's result goes.
//!
//! ```
//! use kiln_build::spec::{Dest, OutputSpec};
//! let o: OutputSpec = "type=oci,dest=app.tar,name=app:1".parse()?;
//! assert!(matches!(o, OutputSpec::Oci { dest: Dest::File(_), name: Some(_), .. }));
//! let o: OutputSpec = "type=registry,name=r.example/app:1,compression=zstd".parse()?;
//! assert!(matches!(o, OutputSpec::Image { push: true, .. }));
//! # Ok::<(), kiln_build::spec::SpecError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use kiln_client::kiln_proto::attrs::exporter as ex;
use kiln_image::ImageRef;

use super::csv;
use super::SpecError;

/// A file destination: a path, or standard output (`-`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    Stdout,
    File(PathBuf),
}

impl Dest {
    fn parse(s: &str) -> Dest {
        if s == "-" {
            Dest::Stdout
        } else {
            Dest::File(PathBuf::from(s))
        }
    }

    /// Whether the file's name asks for gzip (`.tar.gz`, `.tgz`): kiln
    /// compresses the tarball the daemon sends (`podman load`, `docker
    /// load` and `ctr images import` all read gzip).
    #[must_use]
    pub fn gzip(&self) -> bool {
        match self {
            Dest::Stdout => false,
            Dest::File(p) => p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".tar.gz") || n.ends_with(".tgz")),
        }
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Stdout => f.write_str("-"),
            Dest::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// One output, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputSpec {
    /// The result's files as a tarball (`type=tar`).
    Tar { dest: Dest },
    /// The result's files into a directory (`type=local`).
    Local { dir: PathBuf },
    /// An OCI image layout tarball (`type=oci`).
    Oci {
        dest: Dest,
        name: Option<ImageRef>,
        /// The exporter's other options (`compression`, `annotation.*`, …).
        attrs: BTreeMap<String, String>,
    },
    /// A docker-archive tarball for `docker load` (`type=docker`).
    Docker {
        dest: Dest,
        name: Option<ImageRef>,
        attrs: BTreeMap<String, String>,
    },
    /// An image in the daemon's store and/or pushed (`type=image`;
    /// `type=registry` is `type=image,push=true`).
    Image {
        names: Vec<ImageRef>,
        push: bool,
        attrs: BTreeMap<String, String>,
    },
    /// Loaded into podman through its API socket (`type=podman`): every
    /// platform, a manifest list for several.
    Podman {
        name: Option<ImageRef>,
        /// `address=`: the API socket (`unix://PATH`); else `$CONTAINER_HOST`
        /// or podman's default socket.
        address: Option<String>,
    },
    /// Loaded into containerd through its gRPC socket (`type=containerd`):
    /// every platform of the index, the name set.
    Containerd {
        name: Option<ImageRef>,
        /// `address=`: the socket; else `$CONTAINERD_ADDRESS` or the
        /// default (containerd's, then k3s's).
        address: Option<String>,
        /// `namespace=`; else `$CONTAINERD_NAMESPACE`, `k8s.io` on k3s's
        /// socket, `default` elsewhere.
        namespace: Option<String>,
    },
}

const TYPES: &str = "tar, local, oci, docker, image, registry, podman or containerd";

impl OutputSpec {
    /// Parses an `-o` value (`-` is `type=tar,dest=-`; a bare path is
    /// `type=local,dest=PATH`).
    ///
    /// # Errors
    /// [`SpecError`] naming the value and what is wrong.
    pub fn parse(spec: &str) -> Result<OutputSpec, SpecError> {
        let spec = spec.trim();
        if spec == "-" {
            return Ok(OutputSpec::Tar { dest: Dest::Stdout });
        }
        if !spec.contains('=') {
            if spec.is_empty() {
                return Err(SpecError::new(
                    "-o",
                    spec,
                    "empty output; e.g. type=oci,dest=app.tar",
                ));
            }
            return Ok(OutputSpec::Local {
                dir: PathBuf::from(spec),
            });
        }
        let bad = |why: String| SpecError::new("-o", spec, why);
        let mut attrs = BTreeMap::new();
        for field in csv::fields(spec).map_err(|e| bad(e.to_string()))? {
            let (k, v) = csv::key_value(&field).ok_or_else(|| {
                bad(format!(
                    "{field:?} is not KEY=VALUE (e.g. type=tar,dest=out.tar)"
                ))
            })?;
            if attrs
                .insert(k.trim().to_string(), v.trim().to_string())
                .is_some()
            {
                return Err(bad(format!("{} is given twice", k.trim())));
            }
        }
        let kind = attrs
            .remove("type")
            .ok_or_else(|| bad(format!("no type= ({TYPES})")))?;
        let dest = attrs.remove("dest");
        let need_dest = |what: &str| -> Result<String, SpecError> {
            match &dest {
                Some(d) if !d.is_empty() => Ok(d.clone()),
                _ => Err(bad(format!("type={kind} needs dest={what}"))),
            }
        };
        let name = |attrs: &mut BTreeMap<String, String>| -> Result<Vec<ImageRef>, SpecError> {
            let Some(n) = attrs.remove(ex::NAME) else {
                return Ok(Vec::new());
            };
            n.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| {
                    ImageRef::parse(n)
                        .map_err(|e| bad(format!("name {n:?} is not an image reference: {e}")))
                })
                .collect()
        };
        Ok(match kind.as_str() {
            ex::TYPE_TAR => OutputSpec::Tar {
                dest: Dest::parse(&need_dest("FILE or -")?),
            },
            ex::TYPE_LOCAL => {
                let d = need_dest("DIR")?;
                if d == "-" {
                    return Err(bad("a local export needs a directory, not stdout; use type=tar,dest=- for a stream".into()));
                }
                OutputSpec::Local {
                    dir: PathBuf::from(d),
                }
            }
            ex::TYPE_OCI | ex::TYPE_DOCKER => {
                let dest = Dest::parse(&need_dest("FILE or -")?);
                let mut names = name(&mut attrs)?;
                if names.len() > 1 {
                    return Err(bad(format!("type={kind} takes one name")));
                }
                let name = names.pop();
                if kind == ex::TYPE_OCI {
                    OutputSpec::Oci { dest, name, attrs }
                } else {
                    OutputSpec::Docker { dest, name, attrs }
                }
            }
            ex::TYPE_IMAGE | "registry" => {
                if dest.is_some() {
                    return Err(bad(format!("type={kind} has no dest; it goes to the daemon's image store or, with push=true, to the registry named in name=")));
                }
                let names = name(&mut attrs)?;
                if names.is_empty() {
                    return Err(bad(format!("type={kind} needs name=REF")));
                }
                let push = match attrs.remove(ex::PUSH).as_deref() {
                    None => kind == "registry",
                    Some("true") => true,
                    Some("false") => false,
                    Some(other) => return Err(bad(format!("push={other} is not true or false"))),
                };
                OutputSpec::Image { names, push, attrs }
            }
            "podman" | "containerd" => {
                if dest.is_some() {
                    return Err(bad(format!("type={kind} has no dest; it loads the image into {kind} (address= names the socket)")));
                }
                let mut names = name(&mut attrs)?;
                if names.len() > 1 {
                    return Err(bad(format!("type={kind} takes one name")));
                }
                let name = names.pop();
                let address = attrs.remove("address").filter(|a| !a.is_empty());
                let namespace = if kind == "containerd" {
                    attrs.remove("namespace").filter(|n| !n.is_empty())
                } else {
                    None
                };
                if let Some(k) = attrs.keys().next() {
                    let known = if kind == "containerd" {
                        "name, address and namespace"
                    } else {
                        "name and address"
                    };
                    return Err(bad(format!(
                        "type={kind} has no option {k:?}; it takes {known}"
                    )));
                }
                if kind == "podman" {
                    OutputSpec::Podman { name, address }
                } else {
                    OutputSpec::Containerd {
                        name,
                        address,
                        namespace,
                    }
                }
            }
            other => return Err(bad(format!("unknown type {other:?}; use {TYPES}"))),
        })
    }

    /// `podman` or `containerd` for an output kiln loads into that store.
    #[must_use]
    pub fn load_kind(&self) -> Option<&'static str> {
        match self {
            OutputSpec::Podman { .. } => Some("podman"),
            OutputSpec::Containerd { .. } => Some("containerd"),
            _ => None,
        }
    }

    /// The BuildKit exporter name.
    #[must_use]
    pub fn exporter_type(&self) -> &'static str {
        match self {
            OutputSpec::Tar { .. } => ex::TYPE_TAR,
            OutputSpec::Local { .. } => ex::TYPE_LOCAL,
            OutputSpec::Oci { .. } => ex::TYPE_OCI,
            OutputSpec::Docker { .. } => ex::TYPE_DOCKER,
            OutputSpec::Image { .. } => ex::TYPE_IMAGE,
            // The daemon writes an OCI layout kiln then loads.
            OutputSpec::Podman { .. } | OutputSpec::Containerd { .. } => ex::TYPE_OCI,
        }
    }

    /// The exporter's attributes as BuildKit takes them.
    #[must_use]
    pub fn exporter_attrs(&self) -> BTreeMap<String, String> {
        let join = |names: &[ImageRef]| {
            names
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            OutputSpec::Tar { .. } | OutputSpec::Local { .. } => BTreeMap::new(),
            OutputSpec::Oci { name, attrs, .. } | OutputSpec::Docker { name, attrs, .. } => {
                let mut a = attrs.clone();
                if let Some(n) = name {
                    a.insert(ex::NAME.into(), n.to_string());
                }
                a
            }
            OutputSpec::Podman { name, .. } | OutputSpec::Containerd { name, .. } => name
                .iter()
                .map(|n| (ex::NAME.to_string(), n.to_string()))
                .collect(),
            OutputSpec::Image { names, push, attrs } => {
                let mut a = attrs.clone();
                // By digest, BuildKit refuses a tagged name: the repository only.
                let by_digest = attrs.get(ex::PUSH_BY_DIGEST).is_some_and(|v| v == "true");
                let name = if by_digest {
                    names
                        .iter()
                        .map(ImageRef::name)
                        .collect::<Vec<_>>()
                        .join(",")
                } else {
                    join(names)
                };
                a.insert(ex::NAME.into(), name);
                if *push {
                    a.insert(ex::PUSH.into(), "true".into());
                }
                a
            }
        }
    }
}

impl FromStr for OutputSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        OutputSpec::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(s: &str) -> OutputSpec {
        OutputSpec::parse(s).unwrap()
    }

    #[test]
    fn push_by_digest_names_the_repository_only() {
        let a = p("type=image,name=r.example/app:1,push-by-digest=true,push=true").exporter_attrs();
        assert_eq!(a["name"], "r.example/app");
        assert_eq!(a["push-by-digest"], "true");
        let a = p("type=image,name=r.example/app:1,push=true").exporter_attrs();
        assert_eq!(a["name"], "r.example/app:1");
    }

    #[test]
    fn every_type_and_shorthand() {
        assert_eq!(
            p("type=tar,dest=out.tar"),
            OutputSpec::Tar {
                dest: Dest::File("out.tar".into())
            }
        );
        assert_eq!(p("-"), OutputSpec::Tar { dest: Dest::Stdout });
        assert_eq!(
            p("outdir"),
            OutputSpec::Local {
                dir: "outdir".into()
            }
        );
        let OutputSpec::Oci { dest, name, attrs } =
            p("type=oci,dest=o.tar,name=x,compression=zstd")
        else {
            panic!()
        };
        assert_eq!(dest, Dest::File("o.tar".into()));
        assert_eq!(name.unwrap().to_string(), "docker.io/library/x:latest");
        assert_eq!(attrs["compression"], "zstd");
        let OutputSpec::Image { names, push, .. } = p("type=image,name=a:1,push=true") else {
            panic!()
        };
        assert_eq!((names.len(), push), (1, true));
        let OutputSpec::Image { push, .. } = p("type=registry,name=a:1") else {
            panic!()
        };
        assert!(push);
        assert!(matches!(
            p("type=docker,dest=-"),
            OutputSpec::Docker {
                dest: Dest::Stdout,
                name: None,
                ..
            }
        ));
    }

    #[test]
    fn podman_and_containerd_load_an_oci_layout() {
        assert_eq!(
            p("type=podman,name=app,address=unix:///run/p.sock"),
            OutputSpec::Podman {
                name: Some(ImageRef::parse("app").unwrap()),
                address: Some("unix:///run/p.sock".into())
            }
        );
        let o = p("type=containerd,namespace=k8s.io");
        assert_eq!(
            o,
            OutputSpec::Containerd {
                name: None,
                address: None,
                namespace: Some("k8s.io".into())
            }
        );
        assert_eq!(o.exporter_type(), "oci");
        let e = OutputSpec::parse("type=podman,namespace=x")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no option \"namespace\"") && e.contains("name and address"),
            "{e}"
        );
        let e = OutputSpec::parse("type=containerd,dest=x.tar")
            .unwrap_err()
            .to_string();
        assert!(e.contains("has no dest"), "{e}");
    }

    #[test]
    fn gzip_when_the_name_says_so() {
        for (f, gz) in [
            ("a.tar.gz", true),
            ("d/a.tgz", true),
            ("a.tar", false),
            ("gz", false),
        ] {
            assert_eq!(Dest::File(f.into()).gzip(), gz, "{f}");
        }
        assert!(!Dest::Stdout.gzip());
    }

    #[test]
    fn quoted_values_may_hold_commas() {
        let OutputSpec::Image { names, .. } = p(r#"type=image,"name=r/a:1,r/b:2""#) else {
            panic!()
        };
        assert_eq!(names.len(), 2);
        let OutputSpec::Oci { attrs, .. } = p(r#"type=oci,dest=x,"annotation.note=a, b""#) else {
            panic!()
        };
        assert_eq!(attrs["annotation.note"], "a, b");
    }

    #[test]
    fn exporter_attrs_round_trip_names_and_push() {
        let o = p("type=image,name=r/a:1,push=true,compression=gzip");
        assert_eq!(o.exporter_type(), "image");
        let a = o.exporter_attrs();
        assert_eq!(a["name"], "docker.io/r/a:1", "names are normalised");
        assert_eq!(a["push"], "true");
        assert_eq!(a["compression"], "gzip");
    }

    #[test]
    fn bad_outputs_name_the_value_and_why() {
        for (spec, want) in [
            ("type=tar", "needs dest"),
            ("type=zip,dest=x", "unknown type"),
            ("dest=x", "no type="),
            ("type=image", "needs name"),
            ("type=local,dest=-", "needs a directory"),
            ("type=tar,dest", "not KEY=VALUE"),
            ("type=tar,dest=a,dest=b", "given twice"),
            ("type=image,name=UPPER/Case", "not an image reference"),
            ("type=image,name=a,push=yes", "not true or false"),
            (r#"type=tar,dest="a"#, "quoted field"),
        ] {
            let e = OutputSpec::parse(spec).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
            assert!(e.contains("-o"), "{spec}: names the flag: {e}");
        }
    }
}
