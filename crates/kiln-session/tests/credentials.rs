//! Registry credentials from a test `config.json` and a fake credential
//! helper. A binary of its own: it puts the helper on `PATH`, which no
//! other test may race with.

use std::os::unix::fs::PermissionsExt;

use kiln_proto::moby::filesync::v1::auth_client::AuthClient;
use kiln_proto::moby::filesync::v1::{CredentialsRequest, GetTokenAuthorityRequest};
use kiln_session::{DockerAuth, ExposeSecret, Session};

#[path = "it/support.rs"]
#[allow(dead_code)]
mod support;

const CONFIG: &str = r#"{
  "auths": {
    "https://index.docker.io/v1/": { "auth": "aHViLXVzZXI6aHViLXBhc3M=" },
    "https://legacy.example.com/v1/": { "username": "legacy", "password": "legacy-pass" },
    "tokens.example.com": { "auth": "dW51c2VkOnVudXNlZA==", "identitytoken": "id-token-value" },
    "broken.example.com": { "auth": "not base64!" }
  },
  "credHelpers": { "helped.example.com": "test" }
}"#;

const HELPER: &str = r#"#!/bin/sh
read host
case "$host" in
  helped.example.com) echo '{"ServerURL":"helped.example.com","Username":"helper-user","Secret":"helper-secret"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_config_and_helper() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.json");
    std::fs::write(&config, CONFIG).expect("write config");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    let helper = bin.join("docker-credential-test");
    std::fs::write(&helper, HELPER).expect("write helper");
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin.clone()];
    dirs.extend(std::env::split_paths(&path));
    // Only this test runs in this process.
    std::env::set_var("PATH", std::env::join_paths(dirs).expect("PATH"));

    let auth = DockerAuth::with_config_file(&config);
    let hub = auth.credentials("registry-1.docker.io").await.expect("hub");
    assert_eq!(hub.username, "hub-user");
    assert_eq!(
        hub.secret.as_ref().map(|s| s.expose_secret()),
        Some(&b"hub-pass"[..])
    );
    assert!(
        !format!("{hub:?}").contains("hub-pass"),
        "credentials are redacted"
    );

    let legacy = auth
        .credentials("legacy.example.com")
        .await
        .expect("legacy");
    assert_eq!(legacy.username, "legacy");

    let token = auth.credentials("tokens.example.com").await.expect("token");
    assert_eq!(token.username, "");
    assert_eq!(
        token.secret.as_ref().map(|s| s.expose_secret()),
        Some(&b"id-token-value"[..])
    );

    let helped = auth
        .credentials("helped.example.com")
        .await
        .expect("helper");
    assert_eq!(helped.username, "helper-user");

    let anonymous = auth
        .credentials("nowhere.example.com")
        .await
        .expect("anonymous");
    assert!(anonymous.is_anonymous());

    let err = auth
        .credentials("broken.example.com")
        .await
        .expect_err("bad auth");
    assert!(!err.to_string().contains("base64!"), "{err}");

    // The same through the session, as the daemon calls it.
    let session = Session::builder().auth(auth).build().expect("session");
    let mut client = AuthClient::new(support::connect(&session).await);
    let resp = client
        .credentials(CredentialsRequest {
            host: "helped.example.com".to_owned(),
        })
        .await
        .expect("credentials")
        .into_inner();
    assert_eq!(
        (resp.username.as_str(), resp.secret.as_str()),
        ("helper-user", "helper-secret")
    );
    let resp = client
        .credentials(CredentialsRequest {
            host: "nowhere.example.com".to_owned(),
        })
        .await
        .expect("anonymous")
        .into_inner();
    assert_eq!((resp.username.as_str(), resp.secret.as_str()), ("", ""));
    let err = client
        .get_token_authority(GetTokenAuthorityRequest::default())
        .await
        .expect_err("no token authority");
    assert_eq!(err.code(), tonic::Code::Unavailable);

    // A missing config file means anonymous everywhere.
    let none = DockerAuth::with_config_file(dir.path().join("missing.json"));
    assert!(none
        .credentials("ghcr.io")
        .await
        .expect("anonymous")
        .is_anonymous());
}
