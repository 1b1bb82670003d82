//! Source ops: `scratch`, images, local directories, git repositories, HTTP
//! files and OCI layouts (Go's `source.go`).

use std::collections::{BTreeMap, BTreeSet};

use kiln_image::{Digest, ImageRef};
use kiln_proto::attrs::{self, scheme};
use kiln_proto::{caps, pb};

use crate::constraints::{
    envelope, op_constraint_methods, Constraints, HasOpConstraints, OpConstraints,
};
use crate::error::{LlbError, OpKind};
use crate::gitutil::{self, GitUrlError};
use crate::gojson;
use crate::path;
use crate::state::{Head, Node, OpNode, Output, State};

/// A source op: an identifier (`docker-image://…`, `local://…`, …) and its
/// attributes.
pub(crate) struct SourceOp {
    pub identifier: String,
    pub attrs: BTreeMap<String, String>,
}

impl SourceOp {
    /// Go only gives image and OCI-layout sources a platform.
    fn platform_specific(&self) -> bool {
        self.identifier.starts_with(scheme::DOCKER_IMAGE)
            || self.identifier.starts_with(scheme::OCI_LAYOUT)
    }

    pub fn marshal(
        &self,
        oc: &OpConstraints,
        c: &Constraints,
    ) -> Result<(pb::Op, pb::OpMetadata), LlbError> {
        let mut attrs = self.attrs.clone();
        let mut op_caps = BTreeSet::new();
        if self.identifier.starts_with(scheme::LOCAL)
            && !attrs.contains_key(attrs::local::SESSION)
            && !attrs.contains_key(attrs::local::UNIQUE)
        {
            // Go writes a random id here; kiln only writes one it is given.
            if let Some(id) = c.local_unique_id.as_ref().filter(|id| !id.is_empty()) {
                attrs.insert(attrs::local::UNIQUE.to_string(), id.clone());
                op_caps.insert(caps::SOURCE_LOCAL_UNIQUE);
            }
        }
        let platform = self
            .platform_specific()
            .then(|| oc.platform.as_ref().unwrap_or(&c.platform));
        let (mut pop, md) = envelope(c, oc, platform, &op_caps);
        pop.op = Some(pb::op::Op::Source(pb::SourceOp {
            identifier: self.identifier.clone(),
            attrs,
        }));
        Ok((pop, md))
    }
}

/// A state for a new source op. Attributes with empty values are dropped:
/// Go never sets them, and protobuf encoders disagree on how to write them.
fn source_state(
    identifier: String,
    mut attrs: BTreeMap<String, String>,
    oc: OpConstraints,
) -> State {
    attrs.retain(|_, v| !v.is_empty());
    let node = Node::new(OpNode::Source(SourceOp { identifier, attrs }), oc);
    State::from_head(Head::Output(Output { node, index: 0 }))
}

/// The empty filesystem (Go's `llb.Scratch`).
pub fn scratch() -> State {
    State::from_head(Head::Scratch)
}

/// How the daemon looks an image up (Go's `llb.ResolveMode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResolveMode {
    /// Registry first, cache as fallback (no attribute is written).
    #[default]
    Default,
    /// Always ask the registry (`image.resolvemode=pull`).
    Pull,
    /// Prefer the daemon's local image store (`image.resolvemode=local`).
    Local,
}

/// Options of an image source (Go's `ImageOption`s).
#[derive(Clone, Debug, Default)]
pub struct ImageOptions {
    resolve_mode: ResolveMode,
    digest: Option<Digest>,
    record_type: Option<String>,
    layer_limit: Option<u32>,
    op: OpConstraints,
}

impl HasOpConstraints for ImageOptions {
    fn op_constraints_mut(&mut self) -> &mut OpConstraints {
        &mut self.op
    }
}

impl ImageOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// How to resolve the image (`image.resolvemode`).
    pub fn resolve_mode(mut self, mode: ResolveMode) -> Self {
        self.resolve_mode = mode;
        self
    }

    /// Pins the image to a manifest or index digest (`name:tag@digest`).
    pub fn digest(mut self, digest: Digest) -> Self {
        self.digest = Some(digest);
        self
    }

    /// Marks the image as internal to the build (Go's `MarkImageInternal`).
    pub fn internal(mut self) -> Self {
        self.record_type = Some(attrs::image::RECORD_TYPE_INTERNAL.to_string());
        self
    }

    /// Uses only the first `limit` layers (`image.layerlimit`).
    pub fn layer_limit(mut self, limit: u32) -> Self {
        self.layer_limit = Some(limit);
        self
    }

    op_constraint_methods!();
}

/// An image from a registry (Go's `llb.Image`), normalised like `docker pull`
/// (`alpine` is `docker.io/library/alpine:latest`).
///
/// # Errors
/// [`LlbError::ImageRef`] when `reference` is not a valid reference.
pub fn image(reference: &str) -> Result<State, LlbError> {
    image_with(reference, ImageOptions::default())
}

/// [`image`] with options.
///
/// # Errors
/// [`LlbError::ImageRef`] when `reference` is not a valid reference.
pub fn image_with(reference: &str, opts: ImageOptions) -> Result<State, LlbError> {
    let r = ImageRef::parse(reference).map_err(|source| LlbError::ImageRef {
        input: reference.to_string(),
        source,
    })?;
    Ok(image_ref(&r, opts))
}

/// An image from an already parsed reference.
pub fn image_ref(reference: &ImageRef, opts: ImageOptions) -> State {
    let mut r = reference.clone().tag_name_only();
    if let Some(d) = opts.digest {
        r = r.with_digest(d);
    }
    let mut oc = opts.op;
    oc.add_cap(caps::SOURCE_IMAGE);
    let mut attrs = BTreeMap::new();
    match opts.resolve_mode {
        ResolveMode::Default => {}
        ResolveMode::Pull => {
            attrs.insert(
                attrs::image::RESOLVE_MODE.into(),
                attrs::image::RESOLVE_MODE_PULL.into(),
            );
            // Go only requires the cap for the security-relevant mode.
            oc.add_cap(caps::SOURCE_IMAGE_RESOLVE_MODE);
        }
        ResolveMode::Local => {
            attrs.insert(
                attrs::image::RESOLVE_MODE.into(),
                attrs::image::RESOLVE_MODE_LOCAL.into(),
            );
        }
    }
    if let Some(rt) = opts.record_type {
        attrs.insert(attrs::image::RECORD_TYPE.into(), rt);
    }
    if let Some(limit) = opts.layer_limit {
        attrs.insert(attrs::image::LAYER_LIMIT.into(), limit.to_string());
        oc.add_cap(caps::SOURCE_IMAGE_LAYER_LIMIT);
    }
    source_state(format!("{}{r}", scheme::DOCKER_IMAGE), attrs, oc)
}

/// How the daemon decides which local files changed (Go's `llb.DiffType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffType {
    /// Resend every file.
    None,
    /// Compare metadata (the daemon's default).
    Metadata,
}

/// Options of a local source (Go's `LocalOption`s).
#[derive(Clone, Debug, Default)]
pub struct LocalOptions {
    session_id: Option<String>,
    include_patterns: Vec<String>,
    exclude_patterns: Vec<String>,
    follow_paths: Vec<String>,
    shared_key_hint: Option<String>,
    differ: Option<(DiffType, bool)>,
    unique_id: Option<String>,
    op: OpConstraints,
}

impl HasOpConstraints for LocalOptions {
    fn op_constraints_mut(&mut self) -> &mut OpConstraints {
        &mut self.op
    }
}

impl LocalOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// The session that serves the files (`local.session`); without it the
    /// daemon uses the solve's session.
    pub fn session_id(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    /// Only send paths matching these patterns.
    pub fn include_patterns<I: IntoIterator<Item = S>, S: Into<String>>(mut self, p: I) -> Self {
        self.include_patterns = p.into_iter().map(Into::into).collect();
        self
    }

    /// Never send paths matching these patterns.
    pub fn exclude_patterns<I: IntoIterator<Item = S>, S: Into<String>>(mut self, p: I) -> Self {
        self.exclude_patterns = p.into_iter().map(Into::into).collect();
        self
    }

    /// Symlinks to follow when sending these paths.
    pub fn follow_paths<I: IntoIterator<Item = S>, S: Into<String>>(mut self, p: I) -> Self {
        self.follow_paths = p.into_iter().map(Into::into).collect();
        self
    }

    /// A key under which the daemon keeps this directory's copy between
    /// builds (`local.sharedkeyhint`).
    pub fn shared_key_hint(mut self, hint: impl Into<String>) -> Self {
        self.shared_key_hint = Some(hint.into());
        self
    }

    /// How changes are detected; `required` demands daemon support.
    pub fn differ(mut self, differ: DiffType, required: bool) -> Self {
        self.differ = Some((differ, required));
        self
    }

    /// Makes the source unique (`local.unique`), so it is never shared with
    /// another build's copy. Go sets a random id by default; kiln never does.
    pub fn unique_id(mut self, id: impl Into<String>) -> Self {
        self.unique_id = Some(id.into());
        self
    }

    op_constraint_methods!();
}

/// A directory the client sends over the session (Go's `llb.Local`).
pub fn local(name: &str) -> State {
    local_with(name, LocalOptions::default())
}

/// [`local`] with options.
pub fn local_with(name: &str, opts: LocalOptions) -> State {
    if name.is_empty() {
        return State::invalid(LlbError::empty(OpKind::Source, "local name"));
    }
    let mut oc = opts.op;
    let mut attrs = BTreeMap::new();
    let mut set = |key: &str, value: String, cap: Option<&'static str>, oc: &mut OpConstraints| {
        if !value.is_empty() {
            attrs.insert(key.to_string(), value);
            if let Some(cap) = cap {
                oc.add_cap(cap);
            }
        }
    };
    let json = |p: &[String]| {
        if p.is_empty() {
            String::new()
        } else {
            gojson::string_array(p)
        }
    };
    use attrs::local as a;
    set(
        a::SESSION,
        opts.session_id.unwrap_or_default(),
        Some(caps::SOURCE_LOCAL_SESSIONID),
        &mut oc,
    );
    set(
        a::INCLUDE_PATTERNS,
        json(&opts.include_patterns),
        Some(caps::SOURCE_LOCAL_INCLUDE_PATTERNS),
        &mut oc,
    );
    set(
        a::FOLLOW_PATHS,
        json(&opts.follow_paths),
        Some(caps::SOURCE_LOCAL_FOLLOW_PATHS),
        &mut oc,
    );
    set(
        a::EXCLUDE_PATTERNS,
        json(&opts.exclude_patterns),
        Some(caps::SOURCE_LOCAL_EXCLUDE_PATTERNS),
        &mut oc,
    );
    set(
        a::SHARED_KEY_HINT,
        opts.shared_key_hint.unwrap_or_default(),
        Some(caps::SOURCE_LOCAL_SHARED_KEY_HINT),
        &mut oc,
    );
    if let Some((differ, required)) = opts.differ {
        let value = match differ {
            DiffType::None => a::DIFFER_NONE,
            DiffType::Metadata => a::DIFFER_METADATA,
        };
        set(
            a::DIFFER,
            value.to_string(),
            required.then_some(caps::SOURCE_LOCAL_DIFFER),
            &mut oc,
        );
    }
    set(
        a::UNIQUE,
        opts.unique_id.unwrap_or_default(),
        Some(caps::SOURCE_LOCAL_UNIQUE),
        &mut oc,
    );
    oc.add_cap(caps::SOURCE_LOCAL);
    source_state(format!("{}{name}", scheme::LOCAL), attrs, oc)
}

/// Options of a git source (Go's `GitOption`s).
#[derive(Clone, Debug, Default)]
pub struct GitOptions {
    keep_git_dir: bool,
    subdir: Option<String>,
    auth_token_secret: Option<String>,
    auth_header_secret: Option<String>,
    known_ssh_hosts: String,
    mount_ssh_sock: Option<String>,
    op: OpConstraints,
}

impl HasOpConstraints for GitOptions {
    fn op_constraints_mut(&mut self) -> &mut OpConstraints {
        &mut self.op
    }
}

impl GitOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the `.git` directory in the checkout (Go's `KeepGitDir`).
    pub fn keep_git_dir(mut self) -> Self {
        self.keep_git_dir = true;
        self
    }

    /// Uses only this subdirectory of the repository (Go's `GitSubDir`).
    pub fn subdir(mut self, dir: impl Into<String>) -> Self {
        self.subdir = Some(dir.into());
        self
    }

    /// The secret holding an HTTP token (default `GIT_AUTH_TOKEN`).
    pub fn auth_token_secret(mut self, name: impl Into<String>) -> Self {
        self.auth_token_secret = Some(name.into());
        self
    }

    /// The secret holding an HTTP `Authorization` header (default `GIT_AUTH_HEADER`).
    pub fn auth_header_secret(mut self, name: impl Into<String>) -> Self {
        self.auth_header_secret = Some(name.into());
        self
    }

    /// Adds a `known_hosts` line for SSH remotes (Go's `KnownSSHHosts`).
    pub fn known_ssh_hosts(mut self, line: &str) -> Self {
        self.known_ssh_hosts.push_str(line.trim_end_matches('\n'));
        self.known_ssh_hosts.push('\n');
        self
    }

    /// The SSH agent id for SSH remotes (default `default`).
    pub fn mount_ssh_sock(mut self, id: impl Into<String>) -> Self {
        self.mount_ssh_sock = Some(id.into());
        self
    }

    op_constraint_methods!();
}

/// A git repository (Go's `llb.Git`). `fragment` is the ref (branch, tag or
/// commit), optionally followed by `:subdir`, as in Go; it may be empty.
/// A URL without scheme gets `https://`.
pub fn git(url: &str, fragment: &str) -> State {
    git_with(url, fragment, GitOptions::default())
}

/// [`git`] with options.
pub fn git_with(url: &str, fragment: &str, opts: GitOptions) -> State {
    if url.is_empty() {
        return State::invalid(LlbError::empty(OpKind::Source, "git url"));
    }
    let mut url = url.to_string();
    let mut remote = gitutil::parse_url(&url);
    if remote == Err(GitUrlError::UnknownProtocol) {
        url = format!("https://{url}");
        remote = gitutil::parse_url(&url);
    }
    if let Ok(r) = &remote {
        url.clone_from(&r.remote);
    }
    let (git_ref, frag_subdir) = match fragment.split_once(':') {
        Some((r, sub)) => (
            r,
            Some(path::join(&["/", sub]).trim_start_matches('/').to_string()),
        ),
        None => (fragment, None),
    };
    let subdir = opts.subdir.clone().or(frag_subdir).unwrap_or_default();
    let id = match &remote {
        // Same id for https and ssh remotes of one repository.
        Ok(r) => {
            let mut id = format!("{}{}", r.host, path::join(&["/", &r.path]));
            if !git_ref.is_empty() || !subdir.is_empty() {
                id.push('#');
                id.push_str(git_ref);
                if !subdir.is_empty() {
                    id.push(':');
                    id.push_str(&subdir);
                }
            }
            id
        }
        Err(_) => url.clone(),
    };
    let mut oc = opts.op;
    let mut attrs = BTreeMap::new();
    if opts.keep_git_dir {
        attrs.insert(attrs::git::KEEP_GIT_DIR.to_string(), "true".to_string());
        oc.add_cap(caps::SOURCE_GIT_KEEP_DIR);
    }
    attrs.insert(attrs::git::FULL_URL.to_string(), url);
    oc.add_cap(caps::SOURCE_GIT_FULL_URL);
    let token = opts.auth_token_secret.clone();
    let header = opts.auth_header_secret.clone();
    attrs.insert(
        attrs::git::AUTH_TOKEN_SECRET.to_string(),
        token
            .clone()
            .unwrap_or_else(|| attrs::git::DEFAULT_AUTH_TOKEN_SECRET.to_string()),
    );
    attrs.insert(
        attrs::git::AUTH_HEADER_SECRET.to_string(),
        header
            .clone()
            .unwrap_or_else(|| attrs::git::DEFAULT_AUTH_HEADER_SECRET.to_string()),
    );
    if token.is_some_and(|t| !t.is_empty()) || header.is_some_and(|h| !h.is_empty()) {
        oc.add_cap(caps::SOURCE_GIT_HTTP_AUTH);
    }
    if remote.as_ref().is_ok_and(|r| r.scheme == "ssh") {
        // Go falls back to running ssh-keyscan on the client here; kiln
        // never reaches out to the network while building a graph.
        attrs.insert(
            attrs::git::KNOWN_SSH_HOSTS.to_string(),
            opts.known_ssh_hosts.clone(),
        );
        oc.add_cap(caps::SOURCE_GIT_KNOWN_SSH_HOSTS);
        let sock = opts
            .mount_ssh_sock
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| attrs::git::MOUNT_SSH_SOCK_DEFAULT.to_string());
        attrs.insert(attrs::git::MOUNT_SSH_SOCK.to_string(), sock);
        oc.add_cap(caps::SOURCE_GIT_MOUNT_SSH_SOCK);
    }
    oc.add_cap(caps::SOURCE_GIT);
    source_state(format!("{}{id}", scheme::GIT), attrs, oc)
}

/// Options of an HTTP source (Go's `HTTPOption`s).
#[derive(Clone, Debug, Default)]
pub struct HttpOptions {
    checksum: Option<Digest>,
    filename: Option<String>,
    perm: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    op: OpConstraints,
}

impl HasOpConstraints for HttpOptions {
    fn op_constraints_mut(&mut self) -> &mut OpConstraints {
        &mut self.op
    }
}

impl HttpOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// The expected digest of the download (Go's `Checksum`).
    pub fn checksum(mut self, digest: Digest) -> Self {
        self.checksum = Some(digest);
        self
    }

    /// The name of the downloaded file (Go's `Filename`).
    pub fn filename(mut self, name: impl Into<String>) -> Self {
        self.filename = Some(name.into());
        self
    }

    /// Permission bits of the file (Go's `Chmod`; masked to `0o777`).
    pub fn chmod(mut self, perm: u32) -> Self {
        self.perm = Some(perm & 0o777);
        self
    }

    /// Owner of the file (Go's `Chown`).
    pub fn chown(mut self, uid: u32, gid: u32) -> Self {
        self.uid = Some(uid);
        self.gid = Some(gid);
        self
    }

    op_constraint_methods!();
}

/// A file downloaded over HTTP(S) (Go's `llb.HTTP`).
pub fn http(url: &str) -> State {
    http_with(url, HttpOptions::default())
}

/// [`http`] with options.
pub fn http_with(url: &str, opts: HttpOptions) -> State {
    if url.is_empty() {
        return State::invalid(LlbError::empty(OpKind::Source, "http url"));
    }
    let mut oc = opts.op;
    let mut attrs = BTreeMap::new();
    if let Some(d) = opts.checksum {
        attrs.insert(attrs::http::CHECKSUM.to_string(), d.to_string());
        oc.add_cap(caps::SOURCE_HTTP_CHECKSUM);
    }
    if let Some(f) = opts.filename.filter(|f| !f.is_empty()) {
        attrs.insert(attrs::http::FILENAME.to_string(), f);
    }
    if let Some(perm) = opts.perm.filter(|p| *p != 0) {
        attrs.insert(attrs::http::PERM.to_string(), format!("0{perm:o}"));
        oc.add_cap(caps::SOURCE_HTTP_PERM);
    }
    // Go writes uid and gid only when non-zero.
    for (key, id) in [(attrs::http::UID, opts.uid), (attrs::http::GID, opts.gid)] {
        if let Some(id) = id.filter(|i| *i != 0) {
            attrs.insert(key.to_string(), id.to_string());
            oc.add_cap(caps::SOURCE_HTTP_UIDGID);
        }
    }
    oc.add_cap(caps::SOURCE_HTTP);
    source_state(url.to_string(), attrs, oc)
}

/// Options of an OCI layout source (Go's `OCILayoutOption`s).
#[derive(Clone, Debug, Default)]
pub struct OciLayoutOptions {
    session_id: Option<String>,
    store_id: Option<String>,
    layer_limit: Option<u32>,
    op: OpConstraints,
}

impl HasOpConstraints for OciLayoutOptions {
    fn op_constraints_mut(&mut self) -> &mut OpConstraints {
        &mut self.op
    }
}

impl OciLayoutOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// The session serving the content store (`oci.session`).
    pub fn session_id(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    /// The content store's id in that session (`oci.store`).
    pub fn store_id(mut self, id: impl Into<String>) -> Self {
        self.store_id = Some(id.into());
        self
    }

    /// Uses only the first `limit` layers (`oci.layerlimit`).
    pub fn layer_limit(mut self, limit: u32) -> Self {
        self.layer_limit = Some(limit);
        self
    }

    op_constraint_methods!();
}

/// An image from an OCI layout the client serves over its session (Go's
/// `llb.OCILayout`): `name` is an image name, normalised like image
/// references (`app` → `docker.io/library/app`; a tag is dropped), which the
/// daemon shows but never looks up; `digest` is the manifest or index to
/// use (an index is resolved for the op's platform). The layout itself is
/// chosen by [`OciLayoutOptions::store_id`] (the id the session serves it
/// under, e.g. `kiln solve --oci-layout ID=DIR`).
///
/// The identifier is `oci-layout://<name>@<digest>`: BuildKit parses it as a
/// reference with a domain, so a bare `store@digest` would be refused.
pub fn oci_layout(name: &str, digest: &Digest) -> State {
    oci_layout_with(name, digest, OciLayoutOptions::default())
}

/// [`oci_layout`] with options.
pub fn oci_layout_with(name: &str, digest: &Digest, opts: OciLayoutOptions) -> State {
    if name.is_empty() {
        return State::invalid(LlbError::empty(OpKind::Source, "oci layout image name"));
    }
    let r = match ImageRef::parse(name) {
        Ok(r) => r,
        Err(source) => {
            return State::invalid(LlbError::ImageRef {
                input: name.to_string(),
                source,
            })
        }
    };
    let mut oc = opts.op;
    let mut attrs = BTreeMap::new();
    if let Some(s) = opts.session_id {
        attrs.insert(attrs::oci_layout::SESSION.to_string(), s);
    }
    if let Some(s) = opts.store_id {
        attrs.insert(attrs::oci_layout::STORE_ID.to_string(), s);
    }
    if let Some(l) = opts.layer_limit {
        attrs.insert(attrs::oci_layout::LAYER_LIMIT.to_string(), l.to_string());
    }
    oc.add_cap(caps::SOURCE_OCI_LAYOUT);
    source_state(
        format!("{}{}@{digest}", scheme::OCI_LAYOUT, r.name()),
        attrs,
        oc,
    )
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
