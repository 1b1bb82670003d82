//! The client-side frontend (gateway) against the real daemon.

use kiln_client::gateway::ResolveMode;
use kiln_client::{Client, SolveRequest};
use kiln_proto::pb;

use crate::common::*;

fn amd64() -> pb::Platform {
    pb::Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        ..Default::default()
    }
}

/// The digest the registry serves for `image` (an index for multi-platform images).
fn registry_digest(image: &str) -> String {
    let (host_repo, tag) = image.rsplit_once(':').unwrap();
    let (host, repo) = host_repo.split_once('/').unwrap();
    let out = std::process::Command::new("curl")
        .args([
            "-sfI",
            "-H",
            "Accept: application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json",
            &format!("http://{host}/v2/{repo}/manifests/{tag}"),
        ])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("docker-content-digest")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no digest for {image}: {text}"))
}

async fn client() -> Client {
    daemon().client().await
}

#[tokio::test(flavor = "multi_thread")]
async fn resolves_image_config_through_the_daemon() {
    let h = harness();
    let c = client().await;
    let gw = c
        .gateway(SolveRequest::default(), None)
        .await
        .expect("gateway starts");
    let caps = gw.caps().await.unwrap();
    assert!(caps.iter().any(|c| c == "return"), "{caps:?}");

    let img = gw
        .resolve_image_config(&h.static_image, Some(amd64()), ResolveMode::Pull, None)
        .await
        .expect("resolve static image");
    assert_eq!(
        img.digest.as_deref(),
        Some(registry_digest(&h.static_image).as_str())
    );
    let cfg: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
    assert_eq!(cfg["architecture"], "amd64");
    let env = cfg["config"]["Env"].as_array().unwrap();
    assert!(
        env.iter()
            .any(|e| e.as_str().unwrap().starts_with("SSL_CERT_FILE=")),
        "{cfg}"
    );

    let go = gw
        .resolve_image_config(&h.go_image, Some(amd64()), ResolveMode::Default, None)
        .await
        .expect("resolve go image");
    let cfg: serde_json::Value = serde_json::from_slice(&go.config).unwrap();
    assert!(
        cfg["config"]["Env"].to_string().contains("GOPATH=/go"),
        "{cfg}"
    );

    let missing = format!("{}/kiln-fixtures/static:no-such-tag", h.registry);
    let err = gw
        .resolve_image_config(&missing, Some(amd64()), ResolveMode::Pull, None)
        .await
        .expect_err("a missing tag fails");
    assert!(err.to_string().contains("not found"), "{err}");
    gw.fail("test done").await.unwrap();
}
