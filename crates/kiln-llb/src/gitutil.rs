//! Git remote URL parsing as BuildKit's `util/gitutil.ParseURL` does it, for
//! the identifiers and attributes of git sources.

/// A parsed git remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitUrl {
    /// `http`, `https`, `ssh` or `git`.
    pub scheme: String,
    /// Host, with port when given (Go's `url.URL.Host`).
    pub host: String,
    /// Path on the host.
    pub path: String,
    /// The URL without its fragment, as given to git.
    pub remote: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GitUrlError {
    /// No `scheme://` and not `user@host:path`.
    UnknownProtocol,
    /// A `scheme://` other than http, https, ssh or git, or no host.
    Invalid,
}

/// Go's `gitutil.ParseURL`.
pub(crate) fn parse_url(remote: &str) -> Result<GitUrl, GitUrlError> {
    if let Some(scheme_len) = scheme_prefix(remote) {
        let scheme = remote[..scheme_len].to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https" | "ssh" | "git") {
            return Err(GitUrlError::Invalid);
        }
        let without_fragment = remote.split_once('#').map_or(remote, |(r, _)| r);
        let rest = &without_fragment[scheme_len + 3..];
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        return Ok(GitUrl {
            scheme,
            host: host.to_string(),
            path: path.to_string(),
            remote: without_fragment.to_string(),
        });
    }
    parse_scp_style(remote).ok_or(GitUrlError::UnknownProtocol)
}

/// Length of a leading `[a-zA-Z0-9]+://` scheme, without the `://`.
fn scheme_prefix(s: &str) -> Option<usize> {
    let end = s.find("://")?;
    (end > 0 && s[..end].bytes().all(|b| b.is_ascii_alphanumeric())).then_some(end)
}

/// `user@host:path[#fragment]` (BuildKit's `sshutil.ParseSCPStyleURL`).
fn parse_scp_style(s: &str) -> Option<GitUrl> {
    let (user, rest) = s.split_once('@')?;
    let user_ok = !user.is_empty()
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let (host, path) = rest.split_once(':')?;
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !user_ok || !host_ok {
        return None;
    }
    let path = path.split_once('#').map_or(path, |(p, _)| p);
    Some(GitUrl {
        scheme: "ssh".to_string(),
        host: host.to_string(),
        path: path.to_string(),
        remote: format!("{user}@{host}:{path}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_standard_urls() {
        let u = parse_url("https://github.com/moby/buildkit.git").expect("valid");
        assert_eq!(u.scheme, "https");
        assert_eq!(u.host, "github.com");
        assert_eq!(u.path, "/moby/buildkit.git");
        assert_eq!(u.remote, "https://github.com/moby/buildkit.git");
        let u = parse_url("ssh://git@example.com:2222/r.git#main").expect("valid");
        assert_eq!(
            (u.host.as_str(), u.path.as_str()),
            ("example.com:2222", "/r.git")
        );
        assert_eq!(u.remote, "ssh://git@example.com:2222/r.git");
        let u = parse_url("HTTPS://h/p?x=1").expect("valid");
        assert_eq!((u.scheme.as_str(), u.path.as_str()), ("https", "/p"));
    }

    #[test]
    fn parses_scp_style() {
        let u = parse_url("git@github.com:moby/buildkit.git").expect("valid");
        assert_eq!(u.scheme, "ssh");
        assert_eq!(u.host, "github.com");
        assert_eq!(u.path, "moby/buildkit.git");
        assert_eq!(u.remote, "git@github.com:moby/buildkit.git");
    }

    #[test]
    fn rejects_others() {
        assert_eq!(
            parse_url("github.com/moby/buildkit"),
            Err(GitUrlError::UnknownProtocol)
        );
        assert_eq!(parse_url("ftp://h/p"), Err(GitUrlError::Invalid));
    }
}
