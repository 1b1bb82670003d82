//! kiln-image's registry client against real registries: the harness's
//! (anonymous, with the fixture images), and `docker-registry` processes
//! started here with htpasswd (Basic) and token (Bearer) authentication.

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kiln_image::config::{config_platform, parse_config, ImageConfigBuilder};
use kiln_image::registry::{Credentials, RegistryClient};
use kiln_image::{media_type, Digest, ImageRef, Manifest, Platform, RegistryError};
use kiln_test_support::tls::TestPki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::harness;

const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";
const USER: &str = "kiln-ci";
const PASSWORD: &str = "right-Pa55-9f3c1";
const WRONG_PASSWORD: &str = "wrong-Pa55-77ab2";

fn image(s: &str) -> ImageRef {
    ImageRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn anonymous() -> RegistryClient {
    RegistryClient::new().expect("registry client")
}

// ---------------------------------------------------------------------------
// The harness's registry and its fixtures.

#[tokio::test]
async fn head_and_get_of_an_index() {
    let static_image = image(&harness().static_image);
    let client = anonymous();

    let head = client
        .head_manifest(&static_image)
        .await
        .expect("HEAD of the static fixture")
        .expect("the static fixture exists");
    assert_eq!(head.media_type, media_type::OCI_INDEX);

    let fetched = client
        .get_manifest(&static_image)
        .await
        .expect("GET of the static fixture");
    assert_eq!(fetched.digest, head.digest);
    assert_eq!(fetched.media_type, media_type::OCI_INDEX);
    assert_eq!(fetched.bytes.len() as u64, head.size);
    assert_eq!(Digest::sha256_of(&fetched.bytes), fetched.digest);
    assert!(matches!(fetched.manifest, Manifest::Index(_)));

    // The same index, pinned by digest, verifies against the pin.
    let pinned = client
        .get_manifest(&static_image.with_digest(fetched.digest.clone()))
        .await
        .expect("GET by digest");
    assert_eq!(pinned.bytes, fetched.bytes);
}

#[tokio::test]
async fn resolve_platforms_matches_the_child_manifests() {
    let static_image = image(&harness().static_image);
    let client = anonymous();

    let platforms = client
        .resolve_platforms(&static_image)
        .await
        .expect("resolve platforms");
    let names: Vec<String> = platforms.iter().map(|(p, _)| p.to_string()).collect();
    assert!(names.contains(&"linux/amd64".to_string()), "{names:?}");
    assert!(names.contains(&"linux/arm64".to_string()), "{names:?}");

    let index = client.get_manifest(&static_image).await.expect("index");
    for (platform, digest) in &platforms {
        let chosen = index
            .manifest
            .platform_manifest(platform)
            .expect("the index has an entry for each resolved platform");
        assert_eq!(&chosen.digest, digest);

        let child = client
            .get_manifest(&static_image.with_digest(digest.clone()))
            .await
            .unwrap_or_else(|e| panic!("manifest for {platform}: {e}"));
        assert_eq!(&child.digest, digest);
        assert_eq!(child.bytes.len() as u64, chosen.size);
        assert!(matches!(child.manifest, Manifest::Image(_)));

        // Its config (a verified blob) says the same platform.
        let config = child.manifest.config().expect("config descriptor");
        let bytes = client
            .get_blob(&static_image, &config.digest)
            .await
            .expect("config blob");
        assert_eq!(bytes.len() as u64, config.size);
        assert!(config.digest.verifies(&bytes));
        let parsed = parse_config(&bytes).expect("config parses");
        assert_eq!(&config_platform(&parsed), platform);
    }
}

#[tokio::test]
async fn go_image_is_amd64_only() {
    let go_image = image(&harness().go_image);
    let client = anonymous();
    let platforms = client.resolve_platforms(&go_image).await.expect("resolve");
    let names: Vec<String> = platforms.iter().map(|(p, _)| p.to_string()).collect();
    assert_eq!(names, ["linux/amd64"]);

    let index = client.get_manifest(&go_image).await.expect("index");
    assert!(index
        .manifest
        .platform_manifest(&Platform::linux_arm64())
        .is_none());
    assert_eq!(
        index
            .manifest
            .platform_manifest(&Platform::linux_amd64())
            .map(|d| d.digest),
        Some(platforms[0].1.clone())
    );
}

#[tokio::test]
async fn missing_things_are_not_found() {
    let h = harness();
    let client = anonymous();

    let missing_tag = image(&h.static_image)
        .with_tag("no-such-tag")
        .expect("valid tag");
    let err = client
        .get_manifest(&missing_tag)
        .await
        .expect_err("missing tag");
    match &err {
        RegistryError::NotFound { reference } => {
            assert!(reference.ends_with(":no-such-tag"), "{reference}")
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(err.to_string().contains("no-such-tag"), "{err}");
    assert_eq!(
        client.head_manifest(&missing_tag).await.expect("HEAD"),
        None
    );

    let missing_repo = image(&format!("{}/kiln-fixtures/nothing-here:v1", h.registry));
    assert!(matches!(
        client.get_manifest(&missing_repo).await,
        Err(RegistryError::NotFound { .. })
    ));

    let missing_blob = Digest::sha256_of(b"no registry has this blob, kiln");
    let err = client
        .get_blob(&image(&h.static_image), &missing_blob)
        .await
        .expect_err("missing blob");
    assert!(
        matches!(&err, RegistryError::NotFound { reference } if reference.contains(missing_blob.hex())),
        "{err:?}"
    );
}

#[tokio::test]
async fn unreachable_registry_names_it() {
    let port = free_port();
    let client = RegistryClient::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let err = client
        .get_manifest(&image(&format!("127.0.0.1:{port}/a/b:c")))
        .await
        .expect_err("nothing listens there");
    match &err {
        RegistryError::Unreachable { registry, source } => {
            assert_eq!(registry, &format!("127.0.0.1:{port}"));
            assert!(source.is_connect(), "{source:?}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Registries with authentication, started by the tests.

/// A `docker-registry` process with its own storage, killed on drop.
pub(crate) struct TestRegistry {
    pub(crate) addr: String,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl TestRegistry {
    /// Starts a registry whose config has `auth` (YAML, indented by four
    /// spaces) as its `auth:` section.
    pub(crate) async fn start(dir: tempfile::TempDir, auth: &str) -> TestRegistry {
        assert!(
            Path::new(REGISTRY_BINARY).exists(),
            "{REGISTRY_BINARY} is missing: `./scripts/harness.sh up` installs Debian's docker-registry"
        );
        let addr = format!("127.0.0.1:{}", free_port());
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {addr}\nauth:\n{auth}\n",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let log_path = dir.path().join("registry.log");
        let log = std::fs::File::create(&log_path).expect("registry log");
        let mut child = tokio::process::Command::new(REGISTRY_BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start docker-registry");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                break;
            }
            let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Ok(Some(status)) = child.try_wait() {
                panic!("docker-registry exited ({status}):\n{}", log());
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {addr} within 15 s:\n{}",
                log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        TestRegistry {
            addr,
            _child: child,
            _dir: dir,
        }
    }

    fn client(&self, credentials: Option<Credentials>) -> RegistryClient {
        let registry = self.addr.clone();
        RegistryClient::builder()
            .credentials(move |r: &str| {
                if r == registry {
                    credentials.clone()
                } else {
                    None
                }
            })
            .build()
            .expect("client")
    }
}

/// Pushes a one-layer linux/amd64 image to `target` and returns its
/// manifest digest.
async fn push_tiny_image(
    client: &RegistryClient,
    target: &ImageRef,
) -> Result<Digest, RegistryError> {
    let layer = b"not really a tar, the registry does not look".to_vec();
    let layer_digest = client.push_blob(target, layer.clone()).await?;
    assert_eq!(layer_digest, Digest::sha256_of(&layer));
    let config = ImageConfigBuilder::new(Platform::linux_amd64())
        .entrypoint(["/app"])
        .to_canonical_json()
        .expect("config");
    let config_digest = client.push_blob(target, config.clone()).await?;
    // Pushing a blob the registry has is a HEAD and nothing more.
    assert_eq!(
        client.push_blob(target, config.clone()).await?,
        config_digest
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": media_type::OCI_LAYER_TAR, "digest": layer_digest, "size": layer.len()}],
    });
    let bytes = serde_json::to_vec(&manifest).expect("manifest JSON");
    client
        .put_manifest(target, media_type::OCI_MANIFEST, bytes)
        .await
}

/// Pushes with the right credentials, reads back, and checks that wrong
/// and missing credentials are `Unauthorized` naming the registry, with no
/// password in the error.
async fn check_authenticated_registry(registry: &TestRegistry) {
    let target = image(&format!("{}/kiln-test/tiny:v1", registry.addr));
    let good = registry.client(Some(Credentials::basic(USER, PASSWORD)));
    let digest = push_tiny_image(&good, &target)
        .await
        .expect("push with the right credentials");

    let fetched = good.get_manifest(&target).await.expect("pull it back");
    assert_eq!(fetched.digest, digest);
    assert_eq!(fetched.media_type, media_type::OCI_MANIFEST);
    assert_eq!(
        good.resolve_platforms(&target).await.expect("platforms"),
        vec![(Platform::linux_amd64(), digest.clone())]
    );
    let head = good
        .head_manifest(&target)
        .await
        .expect("HEAD")
        .expect("exists");
    assert_eq!(head.digest, digest);

    let check_unauthorized = |err: RegistryError, what: &str| {
        match &err {
            RegistryError::Unauthorized { registry: r, .. } => assert_eq!(r, &registry.addr),
            other => panic!("{what}: expected Unauthorized, got {other:?}"),
        }
        let text = format!("{err} / {err:?}");
        assert!(text.contains(&registry.addr), "{what}: {text}");
        assert!(text.contains("credentials"), "{what}: {text}");
        assert!(
            !text.contains(PASSWORD) && !text.contains(WRONG_PASSWORD),
            "{what}: a password leaked: {text}"
        );
    };
    let bad = registry.client(Some(Credentials::basic(USER, WRONG_PASSWORD)));
    check_unauthorized(
        bad.get_manifest(&target).await.expect_err("wrong password"),
        "pull, wrong password",
    );
    let other = image(&format!("{}/kiln-test/other:v1", registry.addr));
    check_unauthorized(
        push_tiny_image(&bad, &other)
            .await
            .expect_err("wrong password"),
        "push, wrong password",
    );
    check_unauthorized(
        registry
            .client(None)
            .get_manifest(&target)
            .await
            .expect_err("no credentials"),
        "pull, anonymous",
    );
    let debug = format!("{bad:?} {good:?}");
    assert!(
        !debug.contains(PASSWORD) && !debug.contains(WRONG_PASSWORD),
        "{debug}"
    );
}

#[tokio::test]
async fn htpasswd_basic_auth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tokio::process::Command::new("htpasswd")
        .args(["-Bbn", USER, PASSWORD])
        .output()
        .await
        .expect("htpasswd (apache2-utils) runs");
    assert!(out.status.success(), "htpasswd failed: {out:?}");
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, &out.stdout).expect("write htpasswd");
    let auth = format!(
        "  htpasswd:\n    realm: kiln-test\n    path: {}",
        htpasswd.display()
    );
    let registry = TestRegistry::start(dir, &auth).await;
    check_authenticated_registry(&registry).await;
}

#[tokio::test]
async fn bearer_token_auth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::generate(dir.path());
    let tokens = TokenServer::start(&pki).await;
    let auth = format!(
        "  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}",
        tokens.realm,
        pki.ca_cert.display()
    );
    let registry = TestRegistry::start(dir, &auth).await;
    check_authenticated_registry(&registry).await;
    assert!(
        tokens.issued.load(Ordering::SeqCst) >= 2,
        "the client should have fetched pull and push tokens"
    );
}

// ---------------------------------------------------------------------------
// A token service for `auth: token`: checks Basic credentials and issues
// ES256 JWTs signed with the test PKI's server key (its certificate in the
// `x5c` header, its CA the registry's `rootcertbundle`). Anonymous callers
// get a token without access, as Docker Hub's does for private repos.

const SERVICE: &str = "kiln-test-registry";
const ISSUER: &str = "kiln-test-token-service";

struct TokenServer {
    realm: String,
    issued: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Issuer {
    key: Arc<dyn rustls::sign::SigningKey>,
    cert_der: Vec<u8>,
    issued: Arc<AtomicUsize>,
}

impl TokenServer {
    async fn start(pki: &TestPki) -> TokenServer {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let key = PrivateKeyDer::from_pem_file(&pki.server_key).expect("server key");
        let cert = CertificateDer::from_pem_file(&pki.server_cert).expect("server cert");
        let issuer = Arc::new(Issuer {
            key: rustls::crypto::ring::sign::any_ecdsa_type(&key).expect("an ECDSA key"),
            cert_der: cert.to_vec(),
            issued: Arc::new(AtomicUsize::new(0)),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind token service");
        let realm = format!(
            "http://{}/token",
            listener.local_addr().expect("local addr")
        );
        let issued = issuer.issued.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_token(stream, issuer.clone()));
            }
        });
        TokenServer {
            realm,
            issued,
            task,
        }
    }
}

/// Answers one HTTP/1.1 request and closes the connection.
async fn serve_token(mut stream: tokio::net::TcpStream, issuer: Arc<Issuer>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let target = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or_default()
        .to_string();
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_string());
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let params: Vec<(String, String)> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect();

    let expected = format!(
        "Basic {}",
        b64(format!("{USER}:{PASSWORD}").as_bytes(), false)
    );
    let (status, body) = match authorization {
        Some(a) if a == expected => (
            "200 OK",
            issuer.token(
                USER,
                params.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v),
            ),
        ),
        Some(_) => (
            "401 Unauthorized",
            r#"{"details":"incorrect username or password"}"#.to_string(),
        ),
        None => ("200 OK", issuer.token("", std::iter::empty())),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

impl Issuer {
    /// `{"token": JWT}` granting every `repository:NAME:ACTIONS` scope asked.
    fn token<'a>(&self, subject: &str, scopes: impl Iterator<Item = &'a String>) -> String {
        let access: Vec<serde_json::Value> = scopes
            .flat_map(|s| s.split(' '))
            .filter_map(|scope| {
                let mut parts = scope.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                Some(serde_json::json!({
                    "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()
                }))
            })
            .collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let n = self.issued.fetch_add(1, Ordering::SeqCst);
        let header =
            serde_json::json!({"alg": "ES256", "typ": "JWT", "x5c": [b64(&self.cert_der, false)]});
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": subject, "aud": SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("kiln-{n}"),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes(), true),
            b64(claims.to_string().as_bytes(), true)
        );
        let signer = self
            .key
            .choose_scheme(&[rustls::SignatureScheme::ECDSA_NISTP256_SHA256])
            .expect("a P-256 signer");
        let der = signer.sign(signing_input.as_bytes()).expect("sign");
        let jwt = format!("{signing_input}.{}", b64(&ecdsa_der_to_jose(&der), true));
        serde_json::json!({"token": jwt, "expires_in": 300}).to_string()
    }
}

/// An ASN.1 `SEQUENCE { r INTEGER, s INTEGER }` as JOSE's fixed 64-byte `r || s`.
fn ecdsa_der_to_jose(der: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    // 0x30 LEN, then two INTEGERs (P-256 signatures fit short-form lengths).
    let mut i = 2;
    for _ in 0..2 {
        assert_eq!(der[i], 0x02, "INTEGER expected in {der:02x?}");
        let len = der[i + 1] as usize;
        let int = &der[i + 2..i + 2 + len];
        let int = &int[int.len().saturating_sub(32)..];
        out.extend(std::iter::repeat_n(0u8, 32 - int.len()));
        out.extend_from_slice(int);
        i += 2 + len;
    }
    out
}

fn b64(data: &[u8], url_safe: bool) -> String {
    let alphabet: &[u8; 64] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        if !url_safe {
            out.push_str(&"=".repeat(3 - chunk.len()));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= bytes.len() => {
                match s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn test_helpers() {
    assert_eq!(b64(b"kiln-ci:pw", false), "a2lsbi1jaTpwdw==");
    assert_eq!(b64(b"\xfb\xff", true), "-_8");
    assert_eq!(
        percent_decode("repository%3Aa%2Fb%3Apull%2Cpush+x"),
        "repository:a/b:pull,push x"
    );
}
