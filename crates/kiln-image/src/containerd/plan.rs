//! What loading a layout writes, decided before containerd is called: the
//! blobs the root reaches, children before parents, each parent with the
//! garbage-collection labels that keep its children alive; and where
//! containerd listens.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{ContainerdError, LayoutError};
use crate::layout::Layout;
use crate::manifest::{Descriptor, Manifest};
use crate::media_type;
use crate::platform::Platform;

/// containerd's socket when it runs as a system service.
pub const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";
/// The socket of the containerd that k3s runs (and whose CRI uses the
/// `k8s.io` namespace).
pub const K3S_SOCKET: &str = "/run/k3s/containerd/containerd.sock";
/// containerd's default namespace (`ctr`'s, and `nerdctl`'s).
pub const DEFAULT_NAMESPACE: &str = "default";
/// The namespace of containerd's CRI plugin: Kubernetes (k3s, kubeadm)
/// sees only the images in it.
pub const K8S_NAMESPACE: &str = "k8s.io";
/// The environment variable `ctr` reads the address from.
pub const ENV_ADDRESS: &str = "CONTAINERD_ADDRESS";
/// The environment variable `ctr` reads the namespace from.
pub const ENV_NAMESPACE: &str = "CONTAINERD_NAMESPACE";

/// The label prefix by which containerd's garbage collector follows a blob
/// to the blobs it refers to (`containerd.io/gc.ref.content`).
pub const GC_REF_CONTENT: &str = "containerd.io/gc.ref.content";
/// The lease label that lets containerd collect a lease kiln left behind
/// (say, killed mid-load) once the time it names has passed.
pub const GC_EXPIRE: &str = "containerd.io/gc.expire";
/// The image label by which containerd's CRI plugin (and so Kubernetes)
/// counts an image as its own.
pub const CRI_IMAGE_LABEL: &str = "io.cri-containerd.image";
/// [`CRI_IMAGE_LABEL`]'s value.
pub const CRI_IMAGE_MANAGED: &str = "managed";

/// Where containerd listens and which namespace to use, resolved from what
/// the user passed, the environment and which sockets exist.
pub(crate) fn resolve(
    address: Option<&str>,
    namespace: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    exists: impl Fn(&Path) -> bool,
) -> Result<(PathBuf, String), ContainerdError> {
    let socket = match address
        .map(str::to_string)
        .or_else(|| env(ENV_ADDRESS).filter(|a| !a.is_empty()))
    {
        Some(a) => parse_address(&a)?,
        None => [DEFAULT_SOCKET, K3S_SOCKET]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| exists(p))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
    };
    let namespace = match namespace
        .map(str::to_string)
        .or_else(|| env(ENV_NAMESPACE).filter(|n| !n.is_empty()))
    {
        Some(n) => n,
        None if socket == Path::new(K3S_SOCKET) => K8S_NAMESPACE.to_string(),
        None => DEFAULT_NAMESPACE.to_string(),
    };
    check_namespace_name(&namespace)?;
    Ok((socket, namespace))
}

/// `unix:///path` or `/path`: containerd's gRPC API on a unix socket.
fn parse_address(address: &str) -> Result<PathBuf, ContainerdError> {
    let path = match address.split_once("://") {
        Some(("unix", path)) => path,
        Some(_) => {
            return Err(ContainerdError::InvalidAddress {
                address: address.to_string(),
            })
        }
        None => address,
    };
    if path.is_empty() || !path.starts_with('/') {
        return Err(ContainerdError::InvalidAddress {
            address: address.to_string(),
        });
    }
    Ok(PathBuf::from(path))
}

/// containerd's rule for namespace names (`identifiers.Validate`): at
/// most 76 characters, alphanumeric parts joined by single `.`, `_`, `-`.
fn check_namespace_name(namespace: &str) -> Result<(), ContainerdError> {
    let invalid = || ContainerdError::InvalidNamespace {
        namespace: namespace.to_string(),
    };
    if namespace.is_empty() || namespace.len() > 76 {
        return Err(invalid());
    }
    let separator = |c: char| matches!(c, '.' | '_' | '-');
    if namespace
        .split(separator)
        .any(|part| part.is_empty() || !part.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(invalid());
    }
    Ok(())
}

/// One blob to load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Blob {
    pub digest: Digest,
    /// Its size in the tarball.
    pub size: u64,
    /// The labels naming its children (empty for a leaf).
    pub labels: BTreeMap<String, String>,
    /// Whether [`Layout::document`] holds its bytes (indexes, manifests,
    /// configs); the others (layers) are streamed from the tarball.
    pub in_memory: bool,
}

/// Everything a load writes.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// What the image record points at.
    pub root: Descriptor,
    /// The blobs the root reaches, each once, children before parents.
    pub blobs: Vec<Blob>,
    /// The root's runnable platforms.
    pub platforms: Vec<Platform>,
}

impl Plan {
    /// Walks `layout` from its root.
    ///
    /// # Errors
    /// [`LayoutError::MissingBlob`] for a blob the root reaches that the
    /// tarball does not hold, and the errors of reading the layout's
    /// documents.
    pub(crate) fn of(layout: &Layout) -> Result<Plan, LayoutError> {
        let (root, _) = layout.root()?;
        let platforms = layout
            .images()?
            .into_iter()
            .filter_map(|d| d.platform)
            .collect();
        let mut plan = Plan {
            root: root.clone(),
            blobs: Vec::new(),
            platforms,
        };
        let sizes: BTreeMap<&Digest, u64> = layout.blobs().collect();
        let mut seen = BTreeSet::new();
        plan.visit(layout, &sizes, &root, &mut seen)?;
        Ok(plan)
    }

    fn visit(
        &mut self,
        layout: &Layout,
        sizes: &BTreeMap<&Digest, u64>,
        descriptor: &Descriptor,
        seen: &mut BTreeSet<Digest>,
    ) -> Result<(), LayoutError> {
        if !seen.insert(descriptor.digest.clone()) {
            return Ok(());
        }
        let Some(&size) = sizes.get(&descriptor.digest) else {
            return Err(LayoutError::MissingBlob {
                tar: layout.path().to_path_buf(),
                digest: descriptor.digest.clone(),
            });
        };
        let kind = media_type::base(&descriptor.media_type);
        let labels = if media_type::is_index(kind) || media_type::is_manifest(kind) {
            let manifest = layout.manifest(descriptor)?;
            for child in children(&manifest) {
                self.visit(layout, sizes, &child, seen)?;
            }
            gc_labels(&manifest)
        } else {
            BTreeMap::new()
        };
        self.blobs.push(Blob {
            digest: descriptor.digest.clone(),
            size,
            labels,
            in_memory: layout.document(&descriptor.digest).is_some(),
        });
        Ok(())
    }
}

/// What a manifest refers to: an index's entries, a manifest's config and
/// layers.
fn children(manifest: &Manifest) -> Vec<Descriptor> {
    match manifest {
        Manifest::Index(_) => manifest.entries(),
        Manifest::Image(_) => manifest
            .config()
            .into_iter()
            .chain(manifest.layers())
            .collect(),
    }
}

/// The labels containerd's garbage collector follows from a manifest to
/// its children, as `ctr images import` writes them
/// (`images.SetChildrenMappedLabels`): `…content.m.<i>` for an index's
/// entries, `…content.config` and `…content.l.<i>` for a manifest's config
/// and layers.
pub(crate) fn gc_labels(manifest: &Manifest) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    match manifest {
        Manifest::Index(_) => {
            for (i, d) in manifest.entries().iter().enumerate() {
                labels.insert(format!("{GC_REF_CONTENT}.m.{i}"), d.digest.to_string());
            }
        }
        Manifest::Image(_) => {
            if let Some(config) = manifest.config() {
                labels.insert(
                    format!("{GC_REF_CONTENT}.config"),
                    config.digest.to_string(),
                );
            }
            for (i, d) in manifest.layers().iter().enumerate() {
                labels.insert(format!("{GC_REF_CONTENT}.l.{i}"), d.digest.to_string());
            }
        }
    }
    labels
}

/// `seconds` since 1970 as RFC 3339 in UTC (`2026-12-06T02:40:19Z`), as
/// containerd parses [`GC_EXPIRE`].
pub(crate) fn rfc3339(seconds: u64) -> String {
    let days = seconds / 86_400;
    let rest = seconds % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::testing::{blob, index_of, layout_files, write_tar};

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults_follow_flags_then_environment_then_sockets() {
        let none = |_: &Path| false;
        let k3s_only = |p: &Path| p == Path::new(K3S_SOCKET);
        let both = |_: &Path| true;
        let r = |a, n, e: &[(&str, &str)], x: &dyn Fn(&Path) -> bool| {
            resolve(a, n, env(e), x)
                .map(|(s, n)| (s.display().to_string(), n))
                .expect("resolves")
        };
        let pair = |s: &str, n: &str| (s.to_string(), n.to_string());

        // Nothing anywhere: the system socket, the default namespace.
        assert_eq!(r(None, None, &[], &none), pair(DEFAULT_SOCKET, "default"));
        // Only k3s runs: its socket and namespace.
        assert_eq!(r(None, None, &[], &k3s_only), pair(K3S_SOCKET, "k8s.io"));
        // Both run: the system one wins.
        assert_eq!(r(None, None, &[], &both), pair(DEFAULT_SOCKET, "default"));
        // The environment beats the sockets found...
        let e = [(ENV_ADDRESS, "unix:///x/c.sock"), (ENV_NAMESPACE, "builds")];
        assert_eq!(r(None, None, &e, &k3s_only), pair("/x/c.sock", "builds"));
        // ...and what was passed beats the environment.
        assert_eq!(
            r(Some("/y.sock"), Some("other"), &e, &none),
            pair("/y.sock", "other")
        );
        // k3s's socket passed explicitly also means k8s.io.
        let k3s = format!("unix://{K3S_SOCKET}");
        assert_eq!(r(Some(&k3s), None, &[], &none), pair(K3S_SOCKET, "k8s.io"));
        // Empty variables count as unset.
        let e = [(ENV_ADDRESS, ""), (ENV_NAMESPACE, "")];
        assert_eq!(r(None, None, &e, &none), pair(DEFAULT_SOCKET, "default"));
    }

    #[test]
    fn bad_addresses_and_namespaces_are_refused() {
        for a in ["tcp://127.0.0.1:1234", "relative.sock", "unix://", ""] {
            let e = resolve(Some(a), None, env(&[]), |_| false).expect_err(a);
            assert!(
                matches!(e, ContainerdError::InvalidAddress { .. }),
                "{a}: {e:?}"
            );
            assert!(e.to_string().contains("unix:///"), "{e}");
        }
        for n in ["k8s..io", "-x", "a b", "ünï", &"x".repeat(77)] {
            let e = resolve(None, Some(n), env(&[]), |_| false).expect_err(n);
            assert!(
                matches!(e, ContainerdError::InvalidNamespace { .. }),
                "{n}: {e:?}"
            );
        }
        for n in ["k8s.io", "default", "a_b-c.d", "moby"] {
            resolve(None, Some(n), env(&[]), |_| false).expect(n);
        }
    }

    #[test]
    fn plan_writes_children_first_with_gc_labels() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut files = layout_files(b"amd-layer", "amd64");
        let amd = files.root.clone();
        let arm = layout_files(b"arm-layer", "arm64");
        files.files.extend(
            arm.files
                .iter()
                .filter(|(p, _)| p.starts_with("blobs/"))
                .cloned(),
        );
        let index = index_of(&[(amd.clone(), "amd64"), (arm.root.clone(), "arm64")]);
        let index_digest = blob(&mut files.files, index.clone());
        files.set_index_json(&index_digest, media_type::OCI_INDEX, index.len());
        let path = tmp.path().join("multi.tar");
        write_tar(&path, &files.files);
        let layout = Layout::open(&path).expect("open");

        let plan = Plan::of(&layout).expect("plan");
        assert_eq!(plan.root.digest, index_digest);
        assert_eq!(
            plan.platforms,
            [Platform::linux_amd64(), Platform::linux_arm64()]
        );
        // Each manifest after its config and layer, the index last; the
        // unreferenced blobs are not loaded.
        let order: Vec<&Digest> = plan.blobs.iter().map(|b| &b.digest).collect();
        let amd_manifest = layout.manifest(&amd).expect("amd");
        let amd_config = amd_manifest.config().expect("config").digest;
        let amd_layer = Digest::sha256_of(b"amd-layer");
        let arm_layer = Digest::sha256_of(b"arm-layer");
        let arm_config = layout
            .manifest(&arm.root)
            .expect("arm")
            .config()
            .expect("config")
            .digest;
        assert_eq!(
            order,
            [
                &amd_config,
                &amd_layer,
                &amd.digest,
                &arm_config,
                &arm_layer,
                &arm.root.digest,
                &index_digest
            ]
        );
        let labels = |d: &Digest| {
            plan.blobs
                .iter()
                .find(|b| &b.digest == d)
                .expect("planned")
                .labels
                .clone()
        };
        let expect = |pairs: &[(&str, &Digest)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            labels(&index_digest),
            expect(&[
                ("containerd.io/gc.ref.content.m.0", &amd.digest),
                ("containerd.io/gc.ref.content.m.1", &arm.root.digest),
            ])
        );
        assert_eq!(
            labels(&amd.digest),
            expect(&[
                ("containerd.io/gc.ref.content.config", &amd_config),
                ("containerd.io/gc.ref.content.l.0", &amd_layer),
            ])
        );
        assert!(labels(&amd_layer).is_empty());
        assert!(labels(&amd_config).is_empty());
        // Documents are held, layers streamed.
        let in_memory = |d: &Digest| plan.blobs.iter().any(|b| &b.digest == d && b.in_memory);
        assert!(in_memory(&index_digest) && in_memory(&amd_config));
        assert!(!in_memory(&amd_layer));
        assert_eq!(
            plan.blobs
                .iter()
                .find(|b| b.digest == amd_layer)
                .map(|b| b.size),
            Some(b"amd-layer".len() as u64)
        );
    }

    #[test]
    fn a_missing_blob_fails_the_plan() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut files = layout_files(b"layer", "amd64").files;
        let layer = crate::layout::blob_path(&Digest::sha256_of(b"layer"));
        files.retain(|(p, _)| *p != layer);
        let path = tmp.path().join("x.tar");
        write_tar(&path, &files);
        let layout = Layout::open(&path).expect("open");
        let e = Plan::of(&layout).expect_err("missing layer");
        assert!(
            matches!(&e, LayoutError::MissingBlob { digest, .. } if *digest == Digest::sha256_of(b"layer")),
            "{e:?}"
        );
    }

    #[test]
    fn expiry_is_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_524_819), "2026-12-06T02:40:19Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
