//! LLB capability ids, written into `Definition.metadata[*].caps` for what
//! the ops use (see BuildKit's `solver/pb/caps.go`).

pub const SOURCE_IMAGE: &str = "source.image";
pub const SOURCE_IMAGE_RESOLVE_MODE: &str = "source.image.resolvemode";
pub const SOURCE_IMAGE_LAYER_LIMIT: &str = "source.image.layerlimit";
pub const SOURCE_LOCAL: &str = "source.local";
pub const SOURCE_LOCAL_UNIQUE: &str = "source.local.unique";
pub const SOURCE_LOCAL_SESSIONID: &str = "source.local.sessionid";
pub const SOURCE_LOCAL_INCLUDE_PATTERNS: &str = "source.local.includepatterns";
pub const SOURCE_LOCAL_EXCLUDE_PATTERNS: &str = "source.local.excludepatterns";
pub const SOURCE_LOCAL_FOLLOW_PATHS: &str = "source.local.followpaths";
pub const SOURCE_LOCAL_SHARED_KEY_HINT: &str = "source.local.sharedkeyhint";
pub const SOURCE_LOCAL_DIFFER: &str = "source.local.differ";
pub const SOURCE_GIT: &str = "source.git";
pub const SOURCE_GIT_KEEP_DIR: &str = "source.git.keepgitdir";
pub const SOURCE_GIT_FULL_URL: &str = "source.git.fullurl";
pub const SOURCE_GIT_HTTP_AUTH: &str = "source.git.httpauth";
pub const SOURCE_GIT_KNOWN_SSH_HOSTS: &str = "source.git.knownsshhosts";
pub const SOURCE_GIT_MOUNT_SSH_SOCK: &str = "source.git.mountsshsock";
pub const SOURCE_GIT_SUBDIR: &str = "source.git.subdir";
pub const SOURCE_HTTP: &str = "source.http";
pub const SOURCE_HTTP_CHECKSUM: &str = "source.http.checksum";
pub const SOURCE_HTTP_PERM: &str = "source.http.perm";
/// BuildKit spells this cap id "soruce.http.uidgid" (sic, `solver/pb/caps.go`);
/// daemons reject any other spelling as an unknown capability.
pub const SOURCE_HTTP_UIDGID: &str = "soruce.http.uidgid";
pub const SOURCE_OCI_LAYOUT: &str = "source.ocilayout";

pub const BUILD_OP_LLB_FILE_NAME: &str = "source.buildop.llbfilename";

pub const EXEC_META_BASE: &str = "exec.meta.base";
pub const EXEC_META_CGROUP_PARENT: &str = "exec.meta.cgroup.parent";
pub const EXEC_META_NETWORK: &str = "exec.meta.network";
pub const EXEC_META_PROXY: &str = "exec.meta.proxyenv";
pub const EXEC_META_SECURITY: &str = "exec.meta.security";
pub const EXEC_META_SECURITY_DEVICE_WHITELIST_V1: &str = "exec.meta.security.devices.v1";
pub const EXEC_META_SETS_DEFAULT_PATH: &str = "exec.meta.setsdefaultpath";
pub const EXEC_META_ULIMIT: &str = "exec.meta.ulimit";
pub const EXEC_META_REMOVE_MOUNT_STUBS_RECURSIVE: &str = "exec.meta.removemountstubs.recursive";
/// Not a BuildKit capability id (daemons reject it as unknown); BuildKit's
/// cap for `Meta.valid_exit_codes` is [`EXEC_VALID_EXIT_CODE`].
#[deprecated(note = "not a BuildKit cap id; use EXEC_VALID_EXIT_CODE")]
pub const EXEC_META_VALID_EXIT_CODES: &str = "exec.meta.validexitcodes";
pub const EXEC_VALID_EXIT_CODE: &str = "exec.validexitcode";
pub const EXEC_CGROUPS_MOUNTED: &str = "exec.cgroup";
pub const EXEC_MOUNT_BIND: &str = "exec.mount.bind";
pub const EXEC_MOUNT_BIND_READ_WRITE_NO_OUTPUT: &str = "exec.mount.bind.readwrite-nooutput";
pub const EXEC_MOUNT_CACHE: &str = "exec.mount.cache";
pub const EXEC_MOUNT_CACHE_SHARING: &str = "exec.mount.cache.sharing";
pub const EXEC_MOUNT_SELECTOR: &str = "exec.mount.selector";
pub const EXEC_MOUNT_TMPFS: &str = "exec.mount.tmpfs";
pub const EXEC_MOUNT_TMPFS_SIZE: &str = "exec.mount.tmpfs.size";
pub const EXEC_MOUNT_SECRET: &str = "exec.mount.secret";
pub const EXEC_MOUNT_SSH: &str = "exec.mount.ssh";
pub const EXEC_MOUNT_CONTENT_CACHE: &str = "exec.mount.cache.content";
pub const EXEC_SECRET_ENV: &str = "exec.secretenv";
pub const EXEC_CDI_DEVICES: &str = "exec.cdidevices";

pub const FILE_BASE: &str = "file.base";
pub const FILE_RM_WILDCARD: &str = "file.rm.wildcard";
pub const FILE_COPY_INCLUDE_EXCLUDE_PATTERNS: &str = "file.copy.includeexcludepatterns";
pub const FILE_RM_NO_FOLLOW_SYMLINK: &str = "file.rm.nofollowsymlink";
pub const FILE_COPY_ALWAYS_REPLACE_EXISTING_DEST_PATHS: &str =
    "file.copy.alwaysreplaceexistingdestpaths";
pub const FILE_COPY_MODE_STRING_FORMAT: &str = "file.copy.modestring";
pub const FILE_CHECKSUM: &str = "file.checksum";
pub const FILE_SYMLINK_CREATE: &str = "file.symlink.create";

pub const CONSTRAINTS: &str = "constraints";
pub const PLATFORM: &str = "platform";
pub const META_IGNORE_CACHE: &str = "meta.ignorecache";
pub const META_DESCRIPTION: &str = "meta.description";
pub const META_EXPORT_CACHE: &str = "meta.exportcache";

pub const MERGE_OP: &str = "mergeop";
pub const DIFF_OP: &str = "diffop";

pub const SOURCE_MAP: &str = "source.sourcemap";
pub const SOURCE_POLICY: &str = "source.policy";
