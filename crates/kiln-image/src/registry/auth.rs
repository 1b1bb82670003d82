//! Registry credentials and the `WWW-Authenticate` challenges that ask for
//! them.
//!
//! A registry answers an unauthenticated request with 401 and a challenge:
//! `Basic realm="…"` (send the username and password with every request) or
//! `Bearer realm="…",service="…",scope="…"` (get a token from the realm,
//! with the credentials if there are any, and send the token). kiln does not
//! read Docker's `config.json` here: the caller supplies credentials through
//! a [`CredentialStore`].

use std::collections::BTreeMap;
use std::fmt;

/// A secret string (password or token): `secrecy`'s redacting box, the one
/// secret type kiln uses (`Debug` never shows it; read it with
/// [`ExposeSecret::expose_secret`]).
///
/// ```
/// use kiln_image::registry::{ExposeSecret, Secret};
/// let s = Secret::from("hunter2");
/// assert!(!format!("{s:?}").contains("hunter2"));
/// assert_eq!(s.expose_secret(), "hunter2");
/// ```
pub type Secret = secrecy::SecretString;

pub use secrecy::ExposeSecret;

/// The credentials for one registry: a username and password, or an
/// identity token (the OAuth2 refresh token `docker login` stores for some
/// registries as `identitytoken`).
///
/// ```
/// use kiln_image::registry::Credentials;
/// let c = Credentials::basic("ci", "s3cret");
/// assert_eq!(c.username(), "ci");
/// assert!(!format!("{c:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct Credentials {
    username: String,
    secret: CredentialSecret,
}

#[derive(Clone)]
enum CredentialSecret {
    Password(Secret),
    IdentityToken(Secret),
}

impl Credentials {
    /// A username and password (or personal access token used as one).
    pub fn basic(username: impl Into<String>, password: impl Into<Secret>) -> Self {
        Credentials {
            username: username.into(),
            secret: CredentialSecret::Password(password.into()),
        }
    }

    /// An identity (refresh) token, exchanged at the registry's token
    /// service with the OAuth2 `refresh_token` grant.
    pub fn identity_token(token: impl Into<Secret>) -> Self {
        Credentials {
            username: "<token>".to_string(),
            secret: CredentialSecret::IdentityToken(token.into()),
        }
    }

    /// The username (`<token>` for an identity token).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password, unless these are identity-token credentials.
    pub(crate) fn password(&self) -> Option<&Secret> {
        match &self.secret {
            CredentialSecret::Password(p) => Some(p),
            CredentialSecret::IdentityToken(_) => None,
        }
    }

    /// The identity token, if these are identity-token credentials.
    pub(crate) fn refresh_token(&self) -> Option<&Secret> {
        match &self.secret {
            CredentialSecret::IdentityToken(t) => Some(t),
            CredentialSecret::Password(_) => None,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Credentials");
        s.field("username", &self.username);
        match &self.secret {
            CredentialSecret::Password(p) => s.field("password", p),
            CredentialSecret::IdentityToken(t) => s.field("identity_token", t),
        };
        s.finish()
    }
}

/// Where the registry client gets credentials from, per registry.
///
/// `registry` is the domain as written in the image reference, after
/// normalisation: `docker.io` (not `registry-1.docker.io` or
/// `https://index.docker.io/v1/`), `ghcr.io`, `localhost:5000`. Any
/// `Fn(&str) -> Option<Credentials>` and a `BTreeMap` from registry to
/// credentials are stores.
pub trait CredentialStore: Send + Sync {
    /// The credentials for `registry`, or `None` to go anonymous.
    fn credentials(&self, registry: &str) -> Option<Credentials>;
}

impl<F> CredentialStore for F
where
    F: Fn(&str) -> Option<Credentials> + Send + Sync,
{
    fn credentials(&self, registry: &str) -> Option<Credentials> {
        self(registry)
    }
}

impl CredentialStore for BTreeMap<String, Credentials> {
    fn credentials(&self, registry: &str) -> Option<Credentials> {
        self.get(registry).cloned()
    }
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme, lowercased (`basic`, `bearer`).
    pub scheme: String,
    /// The parameters, keys lowercased, values unquoted.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// A parameter by (lowercase) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses a `WWW-Authenticate` header value into its challenges (RFC 7235):
/// `Bearer realm="https://auth.example/token",service="reg",scope="a,b"`.
/// Quoted values may contain commas and `\"` escapes; several challenges
/// may share one header. Unparseable tails are ignored.
///
/// ```
/// use kiln_image::registry::parse_www_authenticate;
/// let c = parse_www_authenticate(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io""#);
/// assert_eq!(c[0].scheme, "bearer");
/// assert_eq!(c[0].param("service"), Some("registry.docker.io"));
/// ```
pub fn parse_www_authenticate(header: &str) -> Vec<Challenge> {
    let mut scanner = Scanner {
        chars: header.chars().collect(),
        pos: 0,
    };
    let mut challenges = Vec::new();
    loop {
        // Separators, and any stray `=` or quote a token68 left behind.
        scanner.skip(|c| c.is_whitespace() || matches!(c, ',' | '=' | '"'));
        let scheme = scanner.token();
        if scheme.is_empty() {
            break;
        }
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: BTreeMap::new(),
        };
        loop {
            scanner.skip(char::is_whitespace);
            let start = scanner.pos;
            let key = scanner.token();
            scanner.skip(char::is_whitespace);
            if key.is_empty() || !scanner.eat('=') {
                // Not `key=`: the next challenge's scheme (or junk).
                scanner.pos = start;
                break;
            }
            scanner.skip(char::is_whitespace);
            let value = if scanner.eat('"') {
                scanner.quoted()
            } else {
                scanner.token()
            };
            challenge.params.insert(key.to_ascii_lowercase(), value);
            scanner.skip(char::is_whitespace);
            if !scanner.eat(',') {
                break;
            }
        }
        challenges.push(challenge);
    }
    challenges
}

struct Scanner {
    chars: Vec<char>,
    pos: usize,
}

impl Scanner {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip(&mut self, f: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
    }

    /// An RFC 7230 token (anything but blanks, separators and quotes).
    fn token(&mut self) -> String {
        let start = self.pos;
        self.skip(|c| !c.is_whitespace() && !matches!(c, ',' | '=' | '"'));
        self.chars[start..self.pos].iter().collect()
    }

    /// The rest of a quoted string after its opening quote.
    fn quoted(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                '"' => break,
                '\\' => {
                    if let Some(next) = self.peek() {
                        out.push(next);
                        self.pos += 1;
                    }
                }
                c => out.push(c),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_commas_inside_quotes() {
        let c = parse_www_authenticate(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/golang:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(
            c[0].param("scope"),
            Some("repository:library/golang:pull,push")
        );
    }

    #[test]
    fn several_challenges_spaces_escapes_and_unquoted_values() {
        let c = parse_www_authenticate(
            r#"Basic realm="Registry Realm", BEARER Realm = "http://127.0.0.1:1/t" , error=insufficient_scope, note="say \"hi\", ok""#,
        );
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("realm"), Some("http://127.0.0.1:1/t"));
        assert_eq!(c[1].param("error"), Some("insufficient_scope"));
        assert_eq!(c[1].param("note"), Some(r#"say "hi", ok"#));
    }

    #[test]
    fn odd_headers_do_not_panic() {
        assert!(parse_www_authenticate("").is_empty());
        assert_eq!(parse_www_authenticate("Basic")[0].scheme, "basic");
        let c = parse_www_authenticate(r#"Bearer realm="unterminated"#);
        assert_eq!(c[0].param("realm"), Some("unterminated"));
        let c = parse_www_authenticate("Negotiate abc==, Basic realm=x");
        assert!(c.iter().any(|c| c.scheme == "basic"), "{c:?}");
        for junk in ["=", "==,,", "\"", ",=\"", "a b c", "Bearer ,,realm"] {
            let _ = parse_www_authenticate(junk);
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let basic = Credentials::basic("user", "pa55word");
        let token = Credentials::identity_token("t0ken-value");
        let shown = format!("{basic:?} {token:?} {:?}", Secret::from("x"));
        assert!(!shown.contains("pa55word") && !shown.contains("t0ken-value"));
        assert!(shown.contains("user"));
        assert_eq!(
            basic.password().map(|s| s.expose_secret()),
            Some("pa55word")
        );
        assert_eq!(
            token.refresh_token().map(|s| s.expose_secret()),
            Some("t0ken-value")
        );
        assert!(token.password().is_none());
    }

    #[test]
    fn stores() {
        let mut map = BTreeMap::new();
        map.insert("docker.io".to_string(), Credentials::basic("u", "p"));
        assert!(map.credentials("docker.io").is_some());
        assert!(map.credentials("ghcr.io").is_none());
        let f = |registry: &str| (registry == "ghcr.io").then(|| Credentials::basic("g", "p"));
        assert_eq!(
            CredentialStore::credentials(&f, "ghcr.io").map(|c| c.username().to_string()),
            Some("g".to_string())
        );
    }
}
