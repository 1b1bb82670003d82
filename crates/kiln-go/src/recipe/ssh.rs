//! Git over SSH in the builder: the hosts of `git-ssh-hosts`, the
//! `insteadOf` rewrites for them, and the `known_hosts` lines the caller
//! passes (checked against the hosts, hashed entries included).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::error::RecipeError;
use super::validate::sh_quote;

/// An SSH git host: `[USER@]HOST[:PORT]` (`[v6addr]:PORT` for IPv6); the
/// user defaults to `git`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SshHost {
    /// The entry as given.
    pub given: String,
    /// The ssh user (`git` unless given).
    pub user: String,
    /// The host name, lower-cased (IPv6 without brackets).
    pub host: String,
    /// The port, if not 22.
    pub port: Option<u16>,
}

impl SshHost {
    pub fn parse(given: &str) -> Result<SshHost, RecipeError> {
        let invalid = || RecipeError::Invalid {
            field: "git-ssh-hosts",
            value: given.to_string(),
            expected: "[USER@]HOST[:PORT], e.g. github.com or git@git.example.com:2222",
        };
        let (user, hostport) = match given.split_once('@') {
            Some((u, rest)) => {
                let ok = !u.is_empty()
                    && !u.starts_with('-')
                    && u.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
                if !ok {
                    return Err(invalid());
                }
                (u.to_string(), rest)
            }
            None => ("git".to_string(), given),
        };
        let given_all = given;
        let given = hostport;
        let (host, port) = if let Some(rest) = given.strip_prefix('[') {
            let (addr, after) = rest.split_once(']').ok_or_else(invalid)?;
            let ok = !addr.is_empty()
                && addr.contains(':')
                && addr
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
            if !ok {
                return Err(invalid());
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(invalid)?),
            };
            (addr, port)
        } else {
            let (host, port) = match given.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (given, None),
            };
            let ok = !host.is_empty()
                && !host.starts_with(['-', '.'])
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
            if !ok {
                return Err(invalid());
            }
            (host, port)
        };
        let port = match port {
            None => None,
            Some(p) => {
                if p.starts_with('0') || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid());
                }
                match p.parse::<u16>() {
                    Ok(22) => None,
                    Ok(n) => Some(n),
                    Err(_) => return Err(invalid()),
                }
            }
        };
        Ok(SshHost {
            given: given_all.to_string(),
            user,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The host as it appears in a URL (IPv6 in brackets).
    fn url_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// The name ssh looks up in `known_hosts`: `host`, or `[host]:port` when
    /// the port is not 22.
    pub fn known_hosts_name(&self) -> String {
        match self.port {
            None => self.host.clone(),
            Some(p) => format!("[{}]:{p}", self.host),
        }
    }

    /// `git config --global url."ssh://USER@HOST[:PORT]/".insteadOf "https://HOST/"`.
    pub fn git_config_command(&self) -> String {
        let host = self.url_host();
        let user = &self.user;
        let ssh = match self.port {
            None => format!("ssh://{user}@{host}/"),
            Some(p) => format!("ssh://{user}@{host}:{p}/"),
        };
        format!(
            "git config --global {} {}",
            sh_quote(&format!("url.{ssh}.insteadOf")),
            sh_quote(&format!("https://{host}/"))
        )
    }
}

/// One entry of a `known_hosts` file.
struct KnownHostsEntry<'a> {
    revoked: bool,
    hosts: &'a str,
}

fn parse_entry(line: &str) -> Result<KnownHostsEntry<'_>, RecipeError> {
    let syntax = |reason| RecipeError::KnownHostsSyntax {
        line: line.to_string(),
        reason,
    };
    let mut fields = line.split_ascii_whitespace();
    let mut first = fields.next().ok_or_else(|| syntax("it is empty"))?;
    let mut revoked = false;
    if let Some(marker) = first.strip_prefix('@') {
        match marker {
            "cert-authority" => {}
            "revoked" => revoked = true,
            _ => {
                return Err(syntax(
                    "unknown marker (expected @cert-authority or @revoked)",
                ))
            }
        }
        first = fields
            .next()
            .ok_or_else(|| syntax("no host after the marker"))?;
    }
    let key_type = fields.next().ok_or_else(|| syntax("no key type"))?;
    let key = fields.next().ok_or_else(|| syntax("no key"))?;
    if key_type.is_empty() || STANDARD.decode(key).is_err() {
        return Err(syntax("the key is not base64"));
    }
    Ok(KnownHostsEntry {
        revoked,
        hosts: first,
    })
}

/// Whether the host field of an entry matches `name` (OpenSSH's
/// `match_hostname` with hashed entries: `|1|salt|hmac-sha1`).
fn hosts_field_matches(field: &str, name: &str) -> Result<bool, &'static str> {
    if let Some(hashed) = field.strip_prefix("|1|") {
        let (salt, hash) = hashed
            .split_once('|')
            .ok_or("a hashed host is |1|salt|hash")?;
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| "the salt is not base64")?;
        let hash = STANDARD
            .decode(hash)
            .map_err(|_| "the hash is not base64")?;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
        return Ok(ring::hmac::verify(&key, name.as_bytes(), &hash).is_ok());
    }
    let name = name.to_ascii_lowercase();
    let mut matched = false;
    for pattern in field.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        if wildcard_match(&pattern.to_ascii_lowercase(), &name) {
            if negated {
                return Ok(false);
            }
            matched = true;
        }
    }
    Ok(matched)
}

/// OpenSSH's `match_pattern`: `*` any run, `?` any one character.
fn wildcard_match(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Checks the `known_hosts` lines against the hosts and returns the file
/// to write: every line must be for one of the hosts, and every host needs
/// a line that is not `@revoked`. Blank lines and comments are dropped;
/// strings holding several lines are split.
pub(crate) fn known_hosts_file(hosts: &[SshHost], lines: &[String]) -> Result<String, RecipeError> {
    let host_list = || {
        hosts
            .iter()
            .map(|h| h.given.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut covered = vec![false; hosts.len()];
    let mut file = String::new();
    for line in lines.iter().flat_map(|l| l.lines()) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let entry = parse_entry(line)?;
        let mut any = false;
        for (i, h) in hosts.iter().enumerate() {
            let m = hosts_field_matches(entry.hosts, &h.known_hosts_name()).map_err(|reason| {
                RecipeError::KnownHostsSyntax {
                    line: line.to_string(),
                    reason,
                }
            })?;
            if m {
                any = true;
                covered[i] |= !entry.revoked;
            }
        }
        if !any {
            return Err(RecipeError::KnownHostsUnmatched {
                line: line.to_string(),
                hosts: if hosts.is_empty() {
                    "none".to_string()
                } else {
                    host_list()
                },
            });
        }
        file.push_str(line);
        file.push('\n');
    }
    if let Some(i) = covered.iter().position(|c| !c) {
        return Err(RecipeError::KnownHostsMissing {
            host: hosts[i].given.clone(),
            lookup: hosts[i].known_hosts_name(),
        });
    }
    Ok(file)
}

/// The lines of a whole `known_hosts` file (e.g. `~/.ssh/known_hosts`)
/// that are for `hosts` (`[USER@]HOST[:PORT]`, as `--git-ssh-host` takes
/// them), hashed entries, wildcards, `[host]:port` and `@cert-authority`
/// understood as OpenSSH does. Lines for other hosts, comments and lines
/// this parser cannot read are left out; `@revoked` lines are kept (they
/// still revoke).
///
/// # Errors
/// [`RecipeError::SshHost`] for a host that does not parse,
/// [`RecipeError::KnownHostsMissing`] for one with no usable line.
pub fn select_known_hosts(text: &str, hosts: &[String]) -> Result<Vec<String>, RecipeError> {
    let hosts: Vec<SshHost> = hosts
        .iter()
        .map(|h| SshHost::parse(h))
        .collect::<Result<_, _>>()?;
    let mut covered = vec![false; hosts.len()];
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Ok(entry) = parse_entry(line) else {
            continue;
        };
        let mut any = false;
        for (i, h) in hosts.iter().enumerate() {
            if hosts_field_matches(entry.hosts, &h.known_hosts_name()).unwrap_or(false) {
                any = true;
                covered[i] |= !entry.revoked;
            }
        }
        if any {
            out.push(line.to_string());
        }
    }
    if let Some(i) = covered.iter().position(|c| !c) {
        return Err(RecipeError::KnownHostsMissing {
            host: hosts[i].given.clone(),
            lookup: hosts[i].known_hosts_name(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_known_hosts_reads_hashed_ported_and_wildcard_entries() {
        // `|1|salt|hmac` of "git.corp" with salt "salt-bytes-1234567890".
        let salt = STANDARD.encode(b"salt-bytes-1234567890");
        let key = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            b"salt-bytes-1234567890",
        );
        let tag = ring::hmac::sign(&key, b"git.corp");
        let hashed = format!(
            "|1|{salt}|{} ssh-ed25519 {KEY}",
            STANDARD.encode(tag.as_ref())
        );
        let text = format!(
            "# comment\n{hashed}\n[127.0.0.1]:2222 ssh-ed25519 {KEY}\n*.example.org ssh-ed25519 {KEY}\nother ssh-rsa {KEY}\nnot a valid line\n"
        );
        assert_eq!(
            select_known_hosts(&text, &["git.corp".into()]).expect("hashed"),
            std::slice::from_ref(&hashed)
        );
        assert_eq!(
            select_known_hosts(&text, &["git@127.0.0.1:2222".into()]).expect("port"),
            [format!("[127.0.0.1]:2222 ssh-ed25519 {KEY}")]
        );
        assert_eq!(
            select_known_hosts(&text, &["src.example.org".into()]).expect("wildcard"),
            [format!("*.example.org ssh-ed25519 {KEY}")]
        );
        let e = select_known_hosts(&text, &["nope.test".into()])
            .expect_err("missing")
            .to_string();
        assert!(e.contains("nope.test") && e.contains("ssh-keyscan"), "{e}");
        // A revoked key alone does not cover its host.
        let revoked = format!("@revoked git.corp ssh-ed25519 {KEY}\n");
        assert!(select_known_hosts(&revoked, &["git.corp".into()]).is_err());
    }

    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

    fn hosts(list: &[&str]) -> Vec<SshHost> {
        list.iter()
            .map(|h| SshHost::parse(h).expect("valid host"))
            .collect()
    }

    #[test]
    fn parses_hosts_and_ports() {
        let h = SshHost::parse("GitHub.com").expect("valid");
        assert_eq!((h.host.as_str(), h.port), ("github.com", None));
        assert_eq!(h.known_hosts_name(), "github.com");
        assert_eq!(
            h.git_config_command(),
            "git config --global 'url.ssh://git@github.com/.insteadOf' https://github.com/"
        );
        let h = SshHost::parse("git.example.com:2222").expect("valid");
        assert_eq!(h.known_hosts_name(), "[git.example.com]:2222");
        assert_eq!(
            h.git_config_command(),
            "git config --global 'url.ssh://git@git.example.com:2222/.insteadOf' https://git.example.com/"
        );
        assert_eq!(
            SshHost::parse("git.example.com:22").expect("valid").port,
            None
        );
        let h = SshHost::parse("[fd00::1]:2222").expect("valid");
        assert_eq!(h.known_hosts_name(), "[fd00::1]:2222");
        for bad in [
            "",
            ":22",
            "host:",
            "host:0",
            "host:70000",
            "host:x",
            "-host",
            "a b",
            "a;rm -rf /",
            "[zz]:22",
            "host:022",
        ] {
            assert!(SshHost::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.example.com", "git.example.com"));
        assert!(wildcard_match("git?.example.com", "git1.example.com"));
        assert!(!wildcard_match("*.example.com", "example.com"));
        assert!(wildcard_match("*", "anything"));
        assert!(!wildcard_match("a*b", "ac"));
    }

    #[test]
    fn plain_and_port_entries() {
        let hs = hosts(&["github.com", "git.example.com:2222"]);
        let lines = vec![
            format!("github.com,140.82.121.4 ssh-ed25519 {KEY}"),
            format!("# a comment\n\n[git.example.com]:2222 ssh-ed25519 {KEY} me@host"),
        ];
        let file = known_hosts_file(&hs, &lines).expect("valid");
        assert_eq!(file.lines().count(), 2);
        assert!(file.ends_with('\n'));
    }

    #[test]
    fn hashed_entry_matches() {
        // `ssh-keygen -H` of "github.com" with this salt (HMAC-SHA1).
        let salt = [7u8; 20];
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
        let tag = ring::hmac::sign(&key, b"github.com");
        let field = format!("|1|{}|{}", STANDARD.encode(salt), STANDARD.encode(tag));
        let hs = hosts(&["github.com"]);
        let line = format!("{field} ssh-ed25519 {KEY}");
        assert!(known_hosts_file(&hs, std::slice::from_ref(&line)).is_ok());
        let other = hosts(&["gitlab.com"]);
        assert!(matches!(
            known_hosts_file(&other, &[line]),
            Err(RecipeError::KnownHostsUnmatched { .. })
        ));
    }

    #[test]
    fn unmatched_missing_and_malformed() {
        let hs = hosts(&["github.com"]);
        let err = known_hosts_file(&hs, &[format!("gitlab.com ssh-ed25519 {KEY}")]);
        assert!(matches!(err, Err(RecipeError::KnownHostsUnmatched { .. })));
        // The port matters: a port-22 entry is not one for :2222.
        let err = known_hosts_file(
            &hosts(&["git.example.com:2222"]),
            &[format!("git.example.com ssh-ed25519 {KEY}")],
        );
        assert!(matches!(err, Err(RecipeError::KnownHostsUnmatched { .. })));
        let err = known_hosts_file(&hs, &[]);
        assert!(
            matches!(err, Err(RecipeError::KnownHostsMissing { ref lookup, .. }) if lookup == "github.com")
        );
        let err = known_hosts_file(&hs, &[format!("@revoked github.com ssh-ed25519 {KEY}")]);
        assert!(matches!(err, Err(RecipeError::KnownHostsMissing { .. })));
        let err = known_hosts_file(&hs, &["github.com ssh-ed25519".to_string()]);
        assert!(matches!(err, Err(RecipeError::KnownHostsSyntax { .. })));
        let err = known_hosts_file(&hs, &["github.com ssh-ed25519 !!notbase64".to_string()]);
        assert!(matches!(err, Err(RecipeError::KnownHostsSyntax { .. })));
        let neg = format!("*.com,!github.com ssh-ed25519 {KEY}");
        assert!(matches!(
            known_hosts_file(&hs, &[neg]),
            Err(RecipeError::KnownHostsUnmatched { .. })
        ));
        let ca = format!("@cert-authority *.com ssh-ed25519 {KEY}");
        assert!(known_hosts_file(&hs, &[ca]).is_ok());
    }
}
