//! An SPDX 2.3 JSON document for an image kiln built: the Go modules linked
//! into its binary (from [`BuildInfo`]), the Go
//! standard library, and the base image.
//!
//! The output is a pure function of [`SbomInput`]: the caller passes the
//! creation time, packages are sorted, SPDX ids derive from names and
//! versions, and the document namespace is a digest of the rest of the
//! document. So the same build gives the same bytes, and an attestation
//! built from it does not change the image digest between runs.
//!
//! ```
//! use kiln_go::buildinfo::{BuildInfo, Module};
//! use kiln_go::sbom::{spdx, SbomInput};
//!
//! let build = BuildInfo {
//!     go_version: "go1.24.1".into(),
//!     path: "example.com/app".into(),
//!     main: Module { path: "example.com/app".into(), version: "v1.0.0".into(), ..Module::default() },
//!     deps: vec![Module {
//!         path: "golang.org/x/text".into(),
//!         version: "v0.14.0".into(),
//!         sum: "h1:ScX5w1eTa3QqT8oi6+ziP7dTV1S2+ALU0bI+0zXKWiQ=".into(),
//!         replace: None,
//!     }],
//!     settings: vec![],
//! };
//! let doc = spdx(&SbomInput {
//!     name: "registry.example.com/app:v1",
//!     build: &build,
//!     base_image: Some(("gcr.io/distroless/static:nonroot", "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")),
//!     created: "2025-01-01T00:00:00Z",
//! });
//! assert_eq!(doc["spdxVersion"], "SPDX-2.3");
//! // The main module, its dependency, the standard library and the base image.
//! assert_eq!(doc["packages"].as_array().map(Vec::len), Some(4));
//! assert_eq!(
//!     doc["packages"][1]["externalRefs"][0]["referenceLocator"],
//!     "pkg:golang/golang.org/x/text@v0.14.0"
//! );
//! ```

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::buildinfo::{BuildInfo, Module};

/// What the document describes.
#[derive(Debug, Clone, Copy)]
pub struct SbomInput<'a> {
    /// The document's name: the image name (`registry/app:tag`), or the main
    /// module path when the image is untagged.
    pub name: &'a str,
    /// The build info read from the image's Go binary.
    pub build: &'a BuildInfo,
    /// The base image: its reference without digest (a tag is allowed;
    /// pass it fully qualified, e.g. `docker.io/library/alpine:3.20`, since
    /// this crate does not normalize references) and its `sha256:…` digest.
    pub base_image: Option<(&'a str, &'a str)>,
    /// The creation time, RFC 3339 UTC; given by the caller so that the
    /// document is reproducible.
    pub created: &'a str,
}

/// The creator recorded in `creationInfo`.
const CREATOR: &str = concat!("Tool: kiln-", env!("CARGO_PKG_VERSION"));
/// Where document namespaces live; `.invalid` never resolves (RFC 2606),
/// which SPDX allows: the namespace only has to be a unique URI.
const NAMESPACE_BASE: &str = "https://kiln.invalid/spdx/";
/// The SPDX id of the document itself.
const DOCUMENT_ID: &str = "SPDXRef-DOCUMENT";

/// A package of the document, before it is written as JSON.
struct Package {
    name: String,
    version: Option<String>,
    purl: Option<String>,
    /// Lower-case hex SHA-256.
    sha256: Option<String>,
    comment: Option<String>,
    /// SPDX 2.3 `primaryPackagePurpose`.
    purpose: &'static str,
}

/// The SPDX 2.3 JSON document for `input`.
///
/// Packages, in this order: the main module (`APPLICATION`), every
/// dependency sorted by path and version (a replaced module appears as its
/// replacement, with a comment naming the original), the Go standard
/// library as `stdlib`, and the base image (`CONTAINER`) when given. Go
/// modules carry a `pkg:golang/…` purl and, from their `h1:` sum, a SHA256
/// checksum; no files are listed (`filesAnalyzed: false`).
///
/// Relationships: the document `DESCRIBES` the main module, which
/// `DEPENDS_ON` every dependency and `stdlib`, and is a `DESCENDANT_OF` the
/// base image. SPDX 2.3 has no "built from base image" relationship;
/// `DESCENDANT_OF` ("same lineage, but postdates") says the image this
/// document stands for is the base image plus kiln's layer. `CONTAINS` would
/// claim the Go module holds the base's files, and `DEPENDS_ON` would make
/// scanners blame the base's packages on the module's code.
pub fn spdx(input: &SbomInput<'_>) -> Value {
    let build = input.build;
    let main = if build.main.path.is_empty() {
        // Built outside module mode: name the package after the main package
        // path, or the document.
        let path = if build.path.is_empty() {
            input.name
        } else {
            &build.path
        };
        go_package(
            &Module {
                path: path.to_string(),
                ..Module::default()
            },
            "APPLICATION",
        )
    } else {
        go_package(&build.main, "APPLICATION")
    };
    let mut deps: Vec<Package> = build
        .deps
        .iter()
        .map(|m| go_package(m, "LIBRARY"))
        .collect();
    deps.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    let stdlib = stdlib_package(&build.go_version);
    let base = input
        .base_image
        .map(|(reference, digest)| base_package(reference, digest));

    let mut ids = Ids::default();
    let main_id = ids.assign(&main);
    let dep_ids: Vec<String> = deps.iter().map(|p| ids.assign(p)).collect();
    let stdlib_id = ids.assign(&stdlib);
    let base_id = base.as_ref().map(|p| ids.assign(p));

    let mut packages = vec![package_json(&main, &main_id)];
    packages.extend(deps.iter().zip(&dep_ids).map(|(p, id)| package_json(p, id)));
    packages.push(package_json(&stdlib, &stdlib_id));
    let mut relationships = vec![relationship(DOCUMENT_ID, "DESCRIBES", &main_id)];
    for id in dep_ids.iter().chain([&stdlib_id]) {
        relationships.push(relationship(&main_id, "DEPENDS_ON", id));
    }
    if let (Some(base), Some(base_id)) = (&base, &base_id) {
        packages.push(package_json(base, base_id));
        relationships.push(relationship(&main_id, "DESCENDANT_OF", base_id));
    }

    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": DOCUMENT_ID,
        "name": input.name,
        "creationInfo": {
            "created": input.created,
            "creators": [CREATOR],
        },
        "packages": packages,
        "relationships": relationships,
    });
    // Unique per content, yet the same for the same build: a digest of
    // everything else in the document.
    let digest = sha256_hex(doc.to_string().as_bytes());
    let namespace = format!("{NAMESPACE_BASE}{}-{digest}", encode(input.name, "/"));
    if let Value::Object(fields) = &mut doc {
        fields.insert("documentNamespace".to_string(), Value::String(namespace));
    }
    doc
}

/// A Go module as a package: its replacement when replaced.
fn go_package(module: &Module, purpose: &'static str) -> Package {
    let (effective, comment) = match module.replace.as_deref() {
        None => (module, None),
        // A directory replacement has no version (and no sum).
        Some(with) if with.version.is_empty() => (
            with,
            Some(format!(
                "replaces {}@{} with the local directory {}",
                module.path, module.version, with.path
            )),
        ),
        Some(with) => (
            with,
            Some(format!(
                "replaces {}@{} (a go.mod replace directive)",
                module.path, module.version
            )),
        ),
    };
    let local = module.replace.is_some() && effective.version.is_empty();
    let version = Some(effective.version.clone()).filter(|v| !v.is_empty());
    // `(devel)` is not a version a purl can name.
    let purl_version = version.as_deref().filter(|v| *v != "(devel)");
    Package {
        name: effective.path.clone(),
        purl: (!local).then(|| golang_purl(&effective.path, purl_version)),
        sha256: h1_sha256_hex(&effective.sum),
        version,
        comment,
        purpose,
    }
}

/// The Go standard library, versioned by the toolchain (`go1.24.1`; a
/// suffix such as ` X:boringcrypto` stays in `versionInfo` only).
fn stdlib_package(go_version: &str) -> Package {
    let version = Some(go_version.to_string()).filter(|v| !v.is_empty());
    let purl_version = go_version
        .split_whitespace()
        .find(|t| t.starts_with("go"))
        .or_else(|| go_version.split_whitespace().next());
    Package {
        name: "stdlib".to_string(),
        purl: Some(golang_purl("stdlib", purl_version)),
        version,
        sha256: None,
        comment: None,
        purpose: "LIBRARY",
    }
}

/// The base image as an `oci` package.
fn base_package(reference: &str, digest: &str) -> Package {
    // Tolerate a digest in the reference: it is given separately.
    let reference = reference.split('@').next().unwrap_or(reference);
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match reference[name_start..].rfind(':') {
        Some(i) => (
            &reference[..name_start + i],
            Some(&reference[name_start + i + 1..]),
        ),
        None => (reference, None),
    };
    let digest = digest.to_ascii_lowercase();
    let name = repository[repository.rfind('/').map_or(0, |i| i + 1)..].to_ascii_lowercase();
    // Qualifiers sorted by key, as the purl spec asks.
    let mut purl = format!(
        "pkg:oci/{}@{}?repository_url={}",
        encode(&name, ""),
        encode(&digest, ""),
        encode(repository, "")
    );
    if let Some(tag) = tag.filter(|t| !t.is_empty()) {
        purl.push_str("&tag=");
        purl.push_str(&encode(tag, ""));
    }
    let sha256 = digest
        .strip_prefix("sha256:")
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string);
    Package {
        name: reference.to_string(),
        version: Some(digest),
        purl: Some(purl),
        sha256,
        comment: None,
        purpose: "CONTAINER",
    }
}

/// `pkg:golang/<path>[@<version>]`. The purl spec's golang type says the
/// namespace and name must be lowercased (case is kept in the package's
/// `name`); every segment and the version are percent-encoded.
fn golang_purl(path: &str, version: Option<&str>) -> String {
    let path = path.to_lowercase();
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| encode(s, ""))
        .collect();
    let mut purl = format!("pkg:golang/{}", segments.join("/"));
    if let Some(version) = version.filter(|v| !v.is_empty()) {
        purl.push('@');
        purl.push_str(&encode(version, ""));
    }
    purl
}

/// Percent-encodes every byte but ASCII alphanumerics, `.-_~` (the purl
/// spec's and RFC 3986's unreserved characters) and those in `keep`.
fn encode(s: &str, keep: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b".-_~".contains(&b) || keep.as_bytes().contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The hex SHA-256 in a `go.sum` hash: `h1:` is base64 of a SHA-256 (of
/// the module's file list, Go's dirhash). `None` for other or malformed sums.
fn h1_sha256_hex(sum: &str) -> Option<String> {
    let bytes = STANDARD.decode(sum.strip_prefix("h1:")?).ok()?;
    (bytes.len() == 32).then(|| hex(&bytes))
}

fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SPDX ids from name and version, unique within the document: characters
/// outside `[A-Za-z0-9.-]` become `-`, and a clash gets `-2`, `-3`, ….
#[derive(Default)]
struct Ids {
    taken: std::collections::BTreeSet<String>,
}

impl Ids {
    fn assign(&mut self, package: &Package) -> String {
        let mut seed = package.name.clone();
        if let Some(version) = &package.version {
            seed.push('-');
            seed.push_str(version);
        }
        let sanitized: String = seed
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let base = format!("SPDXRef-Package-{sanitized}");
        let mut id = base.clone();
        let mut n = 1;
        while self.taken.contains(&id) {
            n += 1;
            id = format!("{base}-{n}");
        }
        self.taken.insert(id.clone());
        id
    }
}

fn package_json(p: &Package, id: &str) -> Value {
    let mut v = json!({
        "SPDXID": id,
        "name": p.name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": p.purpose,
    });
    if let Value::Object(fields) = &mut v {
        if let Some(version) = &p.version {
            fields.insert("versionInfo".into(), json!(version));
        }
        if let Some(hex) = &p.sha256 {
            fields.insert(
                "checksums".into(),
                json!([{ "algorithm": "SHA256", "checksumValue": hex }]),
            );
        }
        if let Some(purl) = &p.purl {
            fields.insert(
                "externalRefs".into(),
                json!([{
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": purl,
                }]),
            );
        }
        if let Some(comment) = &p.comment {
            fields.insert("comment".into(), json!(comment));
        }
    }
    v
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({ "spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    /// `h1:` of the SHA-256 of nothing.
    const EMPTY_H1: &str = "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn module(path: &str, version: &str, sum: &str) -> Module {
        Module {
            path: path.into(),
            version: version.into(),
            sum: sum.into(),
            replace: None,
        }
    }

    fn build() -> BuildInfo {
        let mut replaced = module("github.com/old/lib", "v1.0.0", "");
        replaced.replace = Some(Box::new(module("github.com/new/lib", "v1.2.0", EMPTY_H1)));
        let mut local = module("example.com/local", "v0.0.0", "");
        local.replace = Some(Box::new(module("../local", "", "")));
        BuildInfo {
            go_version: "go1.24.1 X:boringcrypto".into(),
            path: "example.com/app/cmd/app".into(),
            main: module("example.com/app", "v1.0.0", ""),
            deps: vec![
                module("golang.org/x/sys", "v0.20.0", EMPTY_H1),
                replaced,
                module(
                    "github.com/Azure/go-autorest",
                    "v14.2.0+incompatible",
                    "h1:bad",
                ),
                local,
            ],
            settings: vec![("GOOS".into(), "linux".into())],
        }
    }

    fn input(build: &BuildInfo) -> SbomInput<'_> {
        SbomInput {
            name: "registry.example.com/app:v1",
            build,
            base_image: Some(("gcr.io/distroless/static:nonroot", DIGEST)),
            created: "2025-01-01T00:00:00Z",
        }
    }

    fn packages(doc: &Value) -> &[Value] {
        doc["packages"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    fn by_name<'a>(doc: &'a Value, name: &str) -> &'a Value {
        packages(doc)
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no package {name}"))
    }

    fn purl(p: &Value) -> &Value {
        &p["externalRefs"][0]["referenceLocator"]
    }

    #[test]
    fn document_structure() {
        let b = build();
        let doc = spdx(&input(&b));
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        assert_eq!(doc["dataLicense"], "CC0-1.0");
        assert_eq!(doc["SPDXID"], "SPDXRef-DOCUMENT");
        assert_eq!(doc["name"], "registry.example.com/app:v1");
        assert_eq!(doc["creationInfo"]["created"], "2025-01-01T00:00:00Z");
        assert_eq!(doc["creationInfo"]["creators"], json!([CREATOR]));
        assert!(CREATOR.starts_with("Tool: kiln-"));
        let namespace = doc["documentNamespace"].as_str().expect("namespace");
        let prefix = "https://kiln.invalid/spdx/registry.example.com/app%3Av1-";
        assert!(namespace.starts_with(prefix), "{namespace}");
        assert_eq!(namespace.len(), prefix.len() + 64);

        // Main first, dependencies sorted by path, then stdlib and the base.
        let names: Vec<&str> = packages(&doc)
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "example.com/app",
                "../local",
                "github.com/Azure/go-autorest",
                "github.com/new/lib",
                "golang.org/x/sys",
                "stdlib",
                "gcr.io/distroless/static:nonroot",
            ]
        );
        for p in packages(&doc) {
            assert_eq!(p["downloadLocation"], "NOASSERTION");
            assert_eq!(p["filesAnalyzed"], false);
        }
        let main = by_name(&doc, "example.com/app");
        assert_eq!(main["versionInfo"], "v1.0.0");
        assert_eq!(main["primaryPackagePurpose"], "APPLICATION");
        assert_eq!(purl(main), "pkg:golang/example.com/app@v1.0.0");
        assert!(
            main.get("checksums").is_none(),
            "the main module has no sum"
        );
        let sys = by_name(&doc, "golang.org/x/sys");
        assert_eq!(
            sys["checksums"],
            json!([{ "algorithm": "SHA256", "checksumValue": EMPTY_SHA256 }])
        );
        assert_eq!(
            sys["externalRefs"][0]["referenceCategory"],
            "PACKAGE-MANAGER"
        );
        assert_eq!(sys["externalRefs"][0]["referenceType"], "purl");
        let stdlib = by_name(&doc, "stdlib");
        assert_eq!(stdlib["versionInfo"], "go1.24.1 X:boringcrypto");
        assert_eq!(purl(stdlib), "pkg:golang/stdlib@go1.24.1");
        let base = by_name(&doc, "gcr.io/distroless/static:nonroot");
        assert_eq!(base["versionInfo"], DIGEST);
        assert_eq!(base["primaryPackagePurpose"], "CONTAINER");
        assert_eq!(
            purl(base),
            "pkg:oci/static@sha256%3A0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\
             ?repository_url=gcr.io%2Fdistroless%2Fstatic&tag=nonroot"
        );

        let id = |name| {
            by_name(&doc, name)["SPDXID"]
                .as_str()
                .expect("id")
                .to_string()
        };
        let rel = |from: &str, kind: &str, to: &str| json!({ "spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to });
        let main_id = id("example.com/app");
        assert_eq!(main_id, "SPDXRef-Package-example.com-app-v1.0.0");
        let mut expected = vec![rel("SPDXRef-DOCUMENT", "DESCRIBES", &main_id)];
        for name in &names[1..6] {
            expected.push(rel(&main_id, "DEPENDS_ON", &id(name)));
        }
        expected.push(rel(
            &main_id,
            "DESCENDANT_OF",
            &id("gcr.io/distroless/static:nonroot"),
        ));
        assert_eq!(doc["relationships"], Value::Array(expected));
    }

    #[test]
    fn replaced_dependencies() {
        let b = build();
        let doc = spdx(&input(&b));
        let new = by_name(&doc, "github.com/new/lib");
        assert_eq!(new["versionInfo"], "v1.2.0");
        assert_eq!(purl(new), "pkg:golang/github.com/new/lib@v1.2.0");
        assert_eq!(new["checksums"][0]["checksumValue"], EMPTY_SHA256);
        assert_eq!(
            new["comment"],
            "replaces github.com/old/lib@v1.0.0 (a go.mod replace directive)"
        );
        assert!(packages(&doc)
            .iter()
            .all(|p| p["name"] != "github.com/old/lib"));
        let local = by_name(&doc, "../local");
        assert!(local.get("versionInfo").is_none());
        assert!(
            local.get("externalRefs").is_none(),
            "a directory has no purl"
        );
        assert_eq!(
            local["comment"],
            "replaces example.com/local@v0.0.0 with the local directory ../local"
        );
    }

    #[test]
    fn deterministic() {
        let b = build();
        let first = spdx(&input(&b)).to_string();
        assert_eq!(first, spdx(&input(&b)).to_string());
        // The order of the build info does not matter.
        let mut reversed = build();
        reversed.deps.reverse();
        assert_eq!(first, spdx(&input(&reversed)).to_string());
        // Another document gets another namespace.
        let later = SbomInput {
            created: "2025-01-02T00:00:00Z",
            ..input(&b)
        };
        let other = spdx(&later);
        assert_ne!(
            spdx(&input(&b))["documentNamespace"],
            other["documentNamespace"]
        );
    }

    #[test]
    fn purl_escaping() {
        assert_eq!(
            golang_purl("github.com/Azure/go-autorest", Some("v14.2.0+incompatible")),
            "pkg:golang/github.com/azure/go-autorest@v14.2.0%2Bincompatible"
        );
        assert_eq!(
            golang_purl(
                "example.com/a b/c@d",
                Some("v0.0.0-20240101000000-abcdef123456")
            ),
            "pkg:golang/example.com/a%20b/c%40d@v0.0.0-20240101000000-abcdef123456"
        );
        assert_eq!(
            golang_purl("example.com/Ünï", None),
            "pkg:golang/example.com/%C3%BCn%C3%AF"
        );
        assert_eq!(
            purl(&package_json(
                &stdlib_package("devel go1.25-abc123 Tue"),
                "x"
            )),
            "pkg:golang/stdlib@go1.25-abc123"
        );

        let b = build();
        let doc = spdx(&input(&b));
        assert_eq!(
            purl(by_name(&doc, "github.com/Azure/go-autorest")),
            "pkg:golang/github.com/azure/go-autorest@v14.2.0%2Bincompatible"
        );
        let devel = go_package(&module("example.com/app", "(devel)", ""), "APPLICATION");
        assert_eq!(devel.purl.as_deref(), Some("pkg:golang/example.com/app"));
        assert_eq!(devel.version.as_deref(), Some("(devel)"));

        let base = base_package("localhost:5000/Team/App", "SHA256:ABC");
        assert_eq!(
            base.purl.as_deref(),
            Some("pkg:oci/app@sha256%3Aabc?repository_url=localhost%3A5000%2FTeam%2FApp")
        );
        assert_eq!(base.sha256, None, "not a full sha256 digest");
        let base = base_package("alpine:3.20@sha256:feed", DIGEST);
        assert_eq!(base.name, "alpine:3.20");
        assert_eq!(base.sha256.as_deref(), Some(&DIGEST["sha256:".len()..]));
        assert!(base
            .purl
            .as_deref()
            .is_some_and(|p| p.ends_with("?repository_url=alpine&tag=3.20")));
    }

    #[test]
    fn h1_to_hex() {
        assert_eq!(h1_sha256_hex(EMPTY_H1).as_deref(), Some(EMPTY_SHA256));
        assert_eq!(h1_sha256_hex(""), None);
        assert_eq!(
            h1_sha256_hex("h2:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
            None
        );
        assert_eq!(h1_sha256_hex("h1:not base64!"), None);
        assert_eq!(h1_sha256_hex("h1:AAAA"), None, "not 32 bytes");
        let b = build();
        let doc = spdx(&input(&b));
        assert!(by_name(&doc, "github.com/Azure/go-autorest")
            .get("checksums")
            .is_none());
    }

    #[test]
    fn spdx_ids_are_sanitized_and_unique() {
        let mut b = build();
        b.deps = vec![
            module("example.com/a/b", "v1", ""),
            module("example.com/a-b", "v1", ""),
            module("example.com/a_b", "v1", ""),
        ];
        let doc = spdx(&SbomInput {
            base_image: None,
            ..input(&b)
        });
        let ids: Vec<&str> = packages(&doc)
            .iter()
            .filter_map(|p| p["SPDXID"].as_str())
            .collect();
        assert_eq!(
            ids[1..4],
            [
                "SPDXRef-Package-example.com-a-b-v1",
                "SPDXRef-Package-example.com-a-b-v1-2",
                "SPDXRef-Package-example.com-a-b-v1-3",
            ]
        );
        let unique: std::collections::BTreeSet<&&str> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        for id in &ids {
            let rest = id.strip_prefix("SPDXRef-").expect("prefix");
            assert!(
                rest.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'),
                "{id}"
            );
        }
        assert!(packages(&doc)
            .iter()
            .all(|p| p["primaryPackagePurpose"] != "CONTAINER"));
    }

    #[test]
    fn a_build_outside_module_mode_is_named_by_its_package_path() {
        let b = BuildInfo {
            go_version: "go1.22.0".into(),
            path: "command-line-arguments".into(),
            ..BuildInfo::default()
        };
        let doc = spdx(&SbomInput {
            base_image: None,
            ..input(&b)
        });
        assert_eq!(packages(&doc)[0]["name"], "command-line-arguments");
        assert!(packages(&doc)[0].get("versionInfo").is_none());
        assert_eq!(packages(&doc).len(), 2);
    }
}
