//! Registry credentials through the session: the daemon asks kiln for the
//! credentials of `DOCKER_CONFIG`'s config.json when it pushes.

use std::path::{Path, PathBuf};

use kiln_llb::Mkfile;

use crate::common::*;
use crate::session_common::*;

pub(crate) const USER: &str = "kiln-user";

/// A `docker-registry` with htpasswd auth on a free port.
pub(crate) struct AuthRegistry {
    pub(crate) addr: String,
    _proc: Background,
}

pub(crate) async fn start_registry(dir: &Path, password: &str) -> AuthRegistry {
    let htpasswd = host(std::process::Command::new("htpasswd").args(["-Bbn", USER, password]));
    std::fs::write(dir.join("htpasswd"), htpasswd).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {data}\n\
             http:\n  addr: {addr}\nauth:\n  htpasswd:\n    realm: kiln-test\n    path: {ht}\n",
            data = dir.join("data").display(),
            ht = dir.join("htpasswd").display()
        ),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new("/usr/bin/docker-registry");
    cmd.arg("serve").arg(&config);
    let mut proc = Background::spawn("docker-registry", cmd, &dir.join("registry.log"));
    proc.wait_for_port(&addr).await;
    AuthRegistry { addr, _proc: proc }
}

/// A `DOCKER_CONFIG` directory whose config.json logs in to `registry`.
pub(crate) fn docker_config(dir: &Path, registry: &str, password: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let auth = base64(format!("{USER}:{password}").as_bytes());
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({ "auths": { registry: { "auth": auth } } }).to_string(),
    )
    .unwrap();
    dir.to_path_buf()
}

/// `curl` a registry path; returns (HTTP status, headers, body).
fn curl(url: &str, credentials: Option<&str>) -> (u16, String, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "-D", "-", "-o", "/dev/stdout", "-w", "\n%{http_code}"])
        .args([
            "-H",
            "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
             application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json",
        ]);
    if let Some(c) = credentials {
        cmd.arg("-u").arg(c);
    }
    let out = host(cmd.arg(url));
    let (rest, code) = out.trim_end().rsplit_once('\n').unwrap();
    let (headers, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    (code.parse().unwrap(), headers.to_owned(), body.to_owned())
}

/// Removes a tag from the daemon's image store (best effort; a standalone
/// buildkitd has no image store).
pub(crate) fn forget_image(name: &str) {
    let Some(sock) = &daemon().docker_sock else {
        return;
    };
    let _ = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-X", "DELETE", "--unix-socket"])
        .arg(sock)
        .arg(format!("http://localhost/images/{name}?force=1"))
        .status();
}

async fn push(def: &Path, config_dir: &Path, name: &str) -> Run {
    let mut cmd = kiln_on();
    cmd.env("DOCKER_CONFIG", config_dir);
    run(
        cmd,
        &[
            "solve",
            "-f",
            def.to_str().unwrap(),
            "--progress",
            "plain",
            "-o",
            &format!("type=image,name={name},push=true"),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn session_push_uses_docker_config_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let password = format!("pw-{}", unique());
    let registry = start_registry(tmp.path(), &password).await;
    let addr = registry.addr.clone();
    let state = kiln_llb::scratch().mkfile(Mkfile::new("/hello", 0o644, unique()));
    let def = write_llb(tmp.path(), "def.llb", &state);
    let manifest_url = |tag: &str| format!("http://{addr}/v2/test/img/manifests/{tag}");

    // The registry really wants credentials.
    assert_eq!(curl(&manifest_url("1"), None).0, 401);

    // Right credentials: pushed.
    let name = format!("{addr}/test/img:1");
    let good = docker_config(&tmp.path().join("good"), &addr, &password);
    let r = push(&def, &good, &name).await;
    forget_image(&name);
    r.success();
    let (code, headers, body) = curl(&manifest_url("1"), Some(&format!("{USER}:{password}")));
    assert_eq!(code, 200, "{headers}\n{body}");
    let manifest: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(manifest["schemaVersion"], 2, "{body}");
    let digest = r.stdout.trim();
    assert!(digest.starts_with("sha256:"), "stdout: {}", r.stdout);
    assert!(
        headers
            .to_ascii_lowercase()
            .contains(&format!("docker-content-digest: {digest}")),
        "kiln printed {digest}; the registry has:\n{headers}"
    );
    for out in [&r.stdout, &r.stderr] {
        assert!(!out.contains(&password), "the password leaked:\n{out}");
    }

    // Wrong credentials: exit 1, the registry named, no password shown.
    let wrong_password = format!("wrong-{}", unique());
    let bad = docker_config(&tmp.path().join("bad"), &addr, &wrong_password);
    let name = format!("{addr}/test/img:2");
    let r = push(&def, &bad, &name).await;
    forget_image(&name);
    r.failure();
    let last = r
        .stderr
        .lines()
        .rfind(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        last.contains(&addr),
        "the error names no registry:\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("401") || r.stderr.to_lowercase().contains("unauthorized"),
        "{}",
        r.stderr
    );
    for secret in [
        wrong_password.clone(),
        base64(format!("{USER}:{wrong_password}").as_bytes()),
        password.clone(),
    ] {
        assert!(
            !r.stderr.contains(&secret) && !r.stdout.contains(&secret),
            "a credential leaked:\n{}",
            r.stderr
        );
    }
    assert_eq!(
        curl(&manifest_url("2"), Some(&format!("{USER}:{password}"))).0,
        404
    );
}
