//! Attribute keys of sources and exporters, and the values they take.

/// Source identifiers' scheme prefixes.
pub mod scheme {
    pub const DOCKER_IMAGE: &str = "docker-image://";
    pub const LOCAL: &str = "local://";
    pub const GIT: &str = "git://";
    pub const HTTPS: &str = "https://";
    pub const HTTP: &str = "http://";
    pub const OCI_LAYOUT: &str = "oci-layout://";
}

/// Image source attributes.
pub mod image {
    pub const RESOLVE_MODE: &str = "image.resolvemode";
    pub const RESOLVE_MODE_DEFAULT: &str = "default";
    pub const RESOLVE_MODE_PULL: &str = "pull";
    pub const RESOLVE_MODE_LOCAL: &str = "local";
    pub const RECORD_TYPE: &str = "image.recordtype";
    /// The record type Go's `llb.MarkImageInternal` sets.
    pub const RECORD_TYPE_INTERNAL: &str = "internal";
    pub const LAYER_LIMIT: &str = "image.layerlimit";
}

/// Local source attributes.
pub mod local {
    pub const SESSION: &str = "local.session";
    pub const UNIQUE: &str = "local.unique";
    pub const INCLUDE_PATTERNS: &str = "local.includepattern";
    pub const EXCLUDE_PATTERNS: &str = "local.excludepatterns";
    pub const FOLLOW_PATHS: &str = "local.followpaths";
    pub const SHARED_KEY_HINT: &str = "local.sharedkeyhint";
    pub const DIFFER: &str = "local.differ";
    pub const DIFFER_NONE: &str = "none";
    pub const DIFFER_METADATA: &str = "metadata";
}

/// Git source attributes.
pub mod git {
    pub const KEEP_GIT_DIR: &str = "git.keepgitdir";
    pub const FULL_URL: &str = "git.fullurl";
    pub const AUTH_HEADER_SECRET: &str = "git.authheadersecret";
    pub const AUTH_TOKEN_SECRET: &str = "git.authtokensecret";
    pub const KNOWN_SSH_HOSTS: &str = "git.knownsshhosts";
    pub const MOUNT_SSH_SOCK: &str = "git.mountsshsock";
    pub const SUBDIR: &str = "git.subdir";
    /// The secret names Go's `llb.Git` writes unless told otherwise.
    pub const DEFAULT_AUTH_HEADER_SECRET: &str = "GIT_AUTH_HEADER";
    pub const DEFAULT_AUTH_TOKEN_SECRET: &str = "GIT_AUTH_TOKEN";
    /// The `git.mountsshsock` value for the default SSH agent.
    pub const MOUNT_SSH_SOCK_DEFAULT: &str = "default";
}

/// HTTP source attributes.
pub mod http {
    pub const CHECKSUM: &str = "http.checksum";
    pub const FILENAME: &str = "http.filename";
    pub const PERM: &str = "http.perm";
    pub const UID: &str = "http.uid";
    pub const GID: &str = "http.gid";
}

/// OCI layout source attributes.
pub mod oci_layout {
    pub const SESSION: &str = "oci.session";
    pub const STORE_ID: &str = "oci.store";
    pub const LAYER_LIMIT: &str = "oci.layerlimit";
}

/// Exporter types and attributes.
pub mod exporter {
    pub const TYPE_IMAGE: &str = "image";
    pub const TYPE_LOCAL: &str = "local";
    pub const TYPE_TAR: &str = "tar";
    pub const TYPE_OCI: &str = "oci";
    pub const TYPE_DOCKER: &str = "docker";

    pub const NAME: &str = "name";
    pub const PUSH: &str = "push";
    pub const PUSH_BY_DIGEST: &str = "push-by-digest";
    pub const REGISTRY_INSECURE: &str = "registry.insecure";
    pub const OCI_MEDIATYPES: &str = "oci-mediatypes";
    pub const REWRITE_TIMESTAMP: &str = "rewrite-timestamp";
    pub const SOURCE_DATE_EPOCH: &str = "source-date-epoch";
    pub const COMPRESSION: &str = "compression";
    pub const FORCE_COMPRESSION: &str = "force-compression";
    pub const UNPACK: &str = "unpack";
    pub const STORE: &str = "store";
}

/// Solve response keys.
pub mod response {
    pub const IMAGE_DIGEST: &str = "containerimage.digest";
    pub const IMAGE_CONFIG_DIGEST: &str = "containerimage.config.digest";
    pub const IMAGE_NAME: &str = "image.name";
    pub const IMAGE_DESCRIPTOR: &str = "containerimage.descriptor";
}

/// Frontend result metadata keys (gateway `Return`).
pub mod result {
    pub const IMAGE_CONFIG: &str = "containerimage.config";
    pub const PLATFORMS: &str = "refs.platforms";
}

/// Op metadata description keys.
pub mod description {
    pub const CUSTOM_NAME: &str = "llb.customname";
}
