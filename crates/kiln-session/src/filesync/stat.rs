//! `fsutil.types.Stat` from host metadata, with Go's `os.FileMode` bits.
//!
//! fsutil sends `uint32(fi.Mode())` of Go's `os.FileMode`, whose type bits
//! sit at the top of the word, not where unix `st_mode` keeps them.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use kiln_proto::fsutil::types::Stat;

use crate::error::{Error, Result};

/// Go `os.ModeDir`.
pub const MODE_DIR: u32 = 1 << 31;
/// Go `os.ModeSymlink`.
pub const MODE_SYMLINK: u32 = 1 << 27;
/// Go `os.ModeDevice`.
pub const MODE_DEVICE: u32 = 1 << 26;
/// Go `os.ModeNamedPipe`.
pub const MODE_NAMED_PIPE: u32 = 1 << 25;
/// Go `os.ModeSocket`.
pub const MODE_SOCKET: u32 = 1 << 24;
/// Go `os.ModeSetuid`.
pub const MODE_SETUID: u32 = 1 << 23;
/// Go `os.ModeSetgid`.
pub const MODE_SETGID: u32 = 1 << 22;
/// Go `os.ModeCharDevice`.
pub const MODE_CHAR_DEVICE: u32 = 1 << 21;
/// Go `os.ModeSticky`.
pub const MODE_STICKY: u32 = 1 << 20;
/// Go `os.ModeIrregular`.
pub const MODE_IRREGULAR: u32 = 1 << 19;
/// Go `os.ModePerm`.
pub const MODE_PERM: u32 = 0o777;
/// Go `os.ModeType`: the bits that make an entry something other than a
/// regular file.
pub const MODE_TYPE: u32 = MODE_DIR
    | MODE_SYMLINK
    | MODE_NAMED_PIPE
    | MODE_SOCKET
    | MODE_DEVICE
    | MODE_CHAR_DEVICE
    | MODE_IRREGULAR;

/// Converts host metadata (from `lstat`) to a Go `os.FileMode` value.
pub fn go_mode(meta: &Metadata) -> u32 {
    let st_mode = meta.mode();
    let ft = meta.file_type();
    let mut mode = st_mode & MODE_PERM;
    if ft.is_dir() {
        mode |= MODE_DIR;
    } else if ft.is_symlink() {
        mode |= MODE_SYMLINK;
    } else if ft.is_fifo() {
        mode |= MODE_NAMED_PIPE;
    } else if ft.is_socket() {
        mode |= MODE_SOCKET;
    } else if ft.is_block_device() {
        mode |= MODE_DEVICE;
    } else if ft.is_char_device() {
        mode |= MODE_DEVICE | MODE_CHAR_DEVICE;
    }
    if st_mode & 0o4000 != 0 {
        mode |= MODE_SETUID;
    }
    if st_mode & 0o2000 != 0 {
        mode |= MODE_SETGID;
    }
    if st_mode & 0o1000 != 0 {
        mode |= MODE_STICKY;
    }
    mode
}

/// Unix permission bits (`0o7777` range) for a Go mode; setuid/setgid are
/// kept only when `keep_setid` is set.
pub fn unix_perm(go_mode: u32, keep_setid: bool) -> u32 {
    let mut perm = go_mode & MODE_PERM;
    if keep_setid && go_mode & MODE_SETUID != 0 {
        perm |= 0o4000;
    }
    if keep_setid && go_mode & MODE_SETGID != 0 {
        perm |= 0o2000;
    }
    if go_mode & MODE_STICKY != 0 {
        perm |= 0o1000;
    }
    perm
}

/// Whether the receiver may request this entry's content (fsutil's
/// `fileCanRequestData`: regular files, hardlinks included).
pub fn can_request_data(go_mode: u32) -> bool {
    go_mode & MODE_TYPE == 0
}

/// Tracks inodes seen during one walk so hardlinks are sent as such.
#[derive(Debug, Default)]
pub struct Hardlinks {
    seen: HashMap<(u64, u64), String>,
}

/// Builds the `Stat` fsutil would send for `abs` (already `lstat`ed into
/// `meta`), recorded under the relative `/`-separated path `rel`.
///
/// Like fsutil's `mkstat`: directories have size 0; symlinks carry their
/// target in `linkname`; a regular file whose inode was already sent carries
/// the first path in `linkname` (a hardlink); the socket bit is cleared.
///
/// # Errors
/// [`Error::Io`] when a symlink cannot be read, [`Error::NonUtf8Path`] when
/// its target is not UTF-8.
pub fn make_stat(abs: &Path, rel: &str, meta: &Metadata, links: &mut Hardlinks) -> Result<Stat> {
    let mut stat = Stat {
        path: rel.to_owned(),
        mode: go_mode(meta),
        uid: meta.uid(),
        gid: meta.gid(),
        size: 0,
        mod_time: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ..Stat::default()
    };
    let ft = meta.file_type();
    if !ft.is_dir() {
        if ft.is_block_device() || ft.is_char_device() {
            let rdev = meta.rdev();
            stat.devmajor = ((rdev >> 8) & 0xfff) as i64;
            stat.devminor = ((rdev & 0xff) | ((rdev >> 12) & 0xfff00)) as i64;
        }
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            match links.seen.get(&key) {
                Some(first) => stat.linkname = first.clone(),
                None => {
                    links.seen.insert(key, rel.to_owned());
                }
            }
        }
        stat.size = i64::try_from(meta.len()).unwrap_or(i64::MAX);
        if ft.is_symlink() {
            let target = std::fs::read_link(abs).map_err(|e| Error::io("readlink", abs, e))?;
            stat.linkname = target
                .to_str()
                .ok_or_else(|| Error::NonUtf8Path {
                    path: abs.to_path_buf(),
                })?
                .to_owned();
        }
    }
    stat.xattrs = load_xattrs(abs);
    stat.mode &= !MODE_SOCKET;
    Ok(stat)
}

/// The entry's extended attributes (not following symlinks), like
/// fsutil's `loadXattr`; best effort: a file system without xattr support
/// or an unreadable attribute yields nothing. Names that are not UTF-8
/// cannot travel in the protobuf map and are skipped, as are macOS's
/// `com.apple.` attributes.
fn load_xattrs(path: &Path) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    let Ok(size) = rustix::fs::llistxattr_query(path) else {
        return out;
    };
    if size == 0 {
        return out;
    }
    let mut list = vec![0u8; size];
    let Ok(n) = rustix::fs::llistxattr(path, &mut list[..]) else {
        return out;
    };
    for name in list[..n.min(size)]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
    {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if name.starts_with("com.apple.") {
            continue;
        }
        let Ok(len) = rustix::fs::lgetxattr_query(path, name) else {
            continue;
        };
        let mut value = vec![0u8; len];
        match rustix::fs::lgetxattr(path, name, &mut value[..]) {
            Ok(got) => {
                value.truncate(got);
                out.insert(name.to_owned(), value);
            }
            Err(e) => {
                tracing::debug!(path = %path.display(), xattr = name, error = %e, "xattr unreadable")
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perm_roundtrip_keeps_sticky_and_optionally_setid() {
        let mode = MODE_SETUID | MODE_SETGID | MODE_STICKY | 0o755;
        assert_eq!(unix_perm(mode, true), 0o7755);
        assert_eq!(unix_perm(mode, false), 0o1755);
    }

    #[test]
    fn only_regular_files_are_requestable() {
        assert!(can_request_data(0o644));
        assert!(can_request_data(0o755 | MODE_SETUID));
        assert!(!can_request_data(MODE_DIR | 0o755));
        assert!(!can_request_data(MODE_SYMLINK | 0o777));
        assert!(!can_request_data(MODE_NAMED_PIPE | 0o644));
        assert!(!can_request_data(MODE_DEVICE | MODE_CHAR_DEVICE | 0o644));
    }
}
