//! Golden tests of source ops.

use super::*;
use crate::testutil::{amd64, def, golden, head, head_with};
use crate::Platform;

/// Digests of image sources that Go's `client/llb` produced for
/// linux/amd64, as printed by `buildctl debug dump-llb` and the
/// Dockerfile frontend's dot output.
#[test]
fn image_digests_match_go() {
    for (r, digest) in [
        (
            "docker.io/library/alpine:latest",
            "sha256:665ba8b2cdc0cb0200e2a42a6b3c0f8f684089f4cd1b81494fbb9805879120f7",
        ),
        (
            "alpine",
            "sha256:665ba8b2cdc0cb0200e2a42a6b3c0f8f684089f4cd1b81494fbb9805879120f7",
        ),
        (
            "golang:1.12-alpine",
            "sha256:fc8f7a5a931404bb996ee93e11e03292efdfdf9a150192d59616c38f4796d934",
        ),
        (
            "golang:alpine",
            "sha256:4530882d321e760e5e25d5b2a3fa86274678c0cd51fb182037c54497bddc7847",
        ),
    ] {
        let st = image(r).expect("valid reference");
        assert_eq!(head(&st)["digest"], digest, "{r}");
    }
}

/// The same op, encoded by hand from `solver/pb/ops.proto`: an
/// independent check of field order and of the empty worker constraints.
#[test]
fn image_op_bytes_match_hand_encoding() {
    let id = b"docker-image://docker.io/library/alpine:latest";
    let mut src = vec![0x0a, id.len() as u8];
    src.extend_from_slice(id);
    let plat = b"\x0a\x05amd64\x12\x05linux";
    let mut want = vec![0x1a, src.len() as u8];
    want.extend_from_slice(&src);
    want.extend_from_slice(&[0x52, plat.len() as u8]);
    want.extend_from_slice(plat);
    want.extend_from_slice(&[0x5a, 0x00]);
    let d = def(&image("alpine").expect("valid"));
    assert_eq!(d.as_pb().def[0], want);
    assert_eq!(d.len(), 2);
}

#[test]
fn image_with_options() {
    let digest =
        Digest::parse("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
            .expect("digest");
    let st = image_with(
        "127.0.0.1:5000/kiln-fixtures/golang:1.24-trixie",
        ImageOptions::new()
            .resolve_mode(ResolveMode::Pull)
            .digest(digest)
            .internal()
            .layer_limit(2)
            .platform(Platform::parse("linux/aarch64").expect("platform"))
            .custom_name("base"),
    )
    .expect("valid");
    assert_eq!(
        st.get_platform().map(ToString::to_string).as_deref(),
        Some("linux/arm64")
    );
    golden(
        "image_with_options",
        &head(&st),
        r#"
    {
      "digest": "sha256:bec22fa12b33f1a3224307d93d0789be082de81b32c2840c5eae0cb9ce0d330d",
      "metadata": {
        "caps": [
          "source.image",
          "source.image.layerlimit",
          "source.image.resolvemode"
        ],
        "description": {
          "llb.customname": "base"
        }
      },
      "op": {
        "attrs": {
          "image.layerlimit": "2",
          "image.recordtype": "internal",
          "image.resolvemode": "pull"
        },
        "identifier": "docker-image://127.0.0.1:5000/kiln-fixtures/golang:1.24-trixie@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "kind": "source"
      },
      "platform": {
        "architecture": "arm64",
        "os": "linux"
      },
      "worker_constraints": []
    }
"#,
    );
}

#[test]
fn image_resolve_mode_local_needs_no_cap() {
    let st = image_with(
        "alpine",
        ImageOptions::new().resolve_mode(ResolveMode::Local),
    )
    .expect("valid");
    let h = head(&st);
    assert_eq!(h["op"]["attrs"]["image.resolvemode"], "local");
    assert_eq!(h["metadata"]["caps"], serde_json::json!(["source.image"]));
}

#[test]
fn image_rejects_bad_reference() {
    assert!(matches!(image("Not A Ref"), Err(LlbError::ImageRef { .. })));
    assert!(matches!(image(""), Err(LlbError::ImageRef { .. })));
}

#[test]
fn local_has_no_unique_id_by_default() {
    let h = head(&local("context"));
    golden(
        "local_default",
        &h,
        r#"
    {
      "digest": "sha256:1c696f1034a56761ca7e1da8da578acad87558b3bf7cb2e1ec90943383ced9c5",
      "metadata": {
        "caps": [
          "source.local"
        ]
      },
      "op": {
        "attrs": {},
        "identifier": "local://context",
        "kind": "source"
      },
      "worker_constraints": []
    }
"#,
    );
}

#[test]
fn local_with_options() {
    let st = local_with(
        "context",
        LocalOptions::new()
            .session_id("s1")
            .include_patterns(["go.mod", "**/*.go"])
            .exclude_patterns(["<tmp>&"])
            .follow_paths(["vendor"])
            .shared_key_hint("ctx")
            .differ(DiffType::None, true),
    );
    golden(
        "local_with_options",
        &head(&st),
        r#"
    {
      "digest": "sha256:be5b6d43c5594f58c8dc71b1212bb0cb676dca730c28715a26d70bc14dacc70b",
      "metadata": {
        "caps": [
          "source.local",
          "source.local.differ",
          "source.local.excludepatterns",
          "source.local.followpaths",
          "source.local.includepatterns",
          "source.local.sessionid",
          "source.local.sharedkeyhint"
        ]
      },
      "op": {
        "attrs": {
          "local.differ": "none",
          "local.excludepatterns": "[\"\\u003ctmp\\u003e\\u0026\"]",
          "local.followpaths": "[\"vendor\"]",
          "local.includepattern": "[\"go.mod\",\"**/*.go\"]",
          "local.session": "s1",
          "local.sharedkeyhint": "ctx"
        },
        "identifier": "local://context",
        "kind": "source"
      },
      "worker_constraints": []
    }
"#,
    );
}

#[test]
fn local_unique_id_only_when_asked() {
    let c = amd64().local_unique_id("u-1");
    let h = head_with(&local("ctx"), &c);
    assert_eq!(h["op"]["attrs"]["local.unique"], "u-1");
    assert!(h["metadata"]["caps"]
        .as_array()
        .expect("caps")
        .contains(&serde_json::json!("source.local.unique")));
    // A session id means no unique id, as in Go.
    let h = head_with(&local_with("ctx", LocalOptions::new().session_id("s")), &c);
    assert!(h["op"]["attrs"].get("local.unique").is_none());
    let h = head(&local_with("ctx", LocalOptions::new().unique_id("mine")));
    assert_eq!(h["op"]["attrs"]["local.unique"], "mine");
}

#[test]
fn git_https() {
    let st = git_with(
        "https://github.com/moby/buildkit.git",
        "v0.11.6",
        GitOptions::new().keep_git_dir().subdir("client/llb"),
    );
    golden(
        "git_https",
        &head(&st),
        r#"
    {
      "digest": "sha256:c521ddc130d5e134f8809709207b636d95a2d1b2e89ec717df9d06e33d11e21d",
      "metadata": {
        "caps": [
          "source.git",
          "source.git.fullurl",
          "source.git.keepgitdir"
        ]
      },
      "op": {
        "attrs": {
          "git.authheadersecret": "GIT_AUTH_HEADER",
          "git.authtokensecret": "GIT_AUTH_TOKEN",
          "git.fullurl": "https://github.com/moby/buildkit.git",
          "git.keepgitdir": "true"
        },
        "identifier": "git://github.com/moby/buildkit.git#v0.11.6:client/llb",
        "kind": "source"
      },
      "worker_constraints": []
    }
"#,
    );
}

#[test]
fn git_ssh_and_fragment_subdir() {
    let st = git_with(
        "git@github.com:moby/buildkit.git",
        "main:/docs/../cmd/",
        GitOptions::new()
            .known_ssh_hosts("github.com ssh-ed25519 AAAA\n")
            .auth_token_secret("tok"),
    );
    golden(
        "git_ssh",
        &head(&st),
        r#"
    {
      "digest": "sha256:413dc3012fd6139ebdfedf37c9207ab63f8865647e4f762666d1d2ac4cfda694",
      "metadata": {
        "caps": [
          "source.git",
          "source.git.fullurl",
          "source.git.httpauth",
          "source.git.knownsshhosts",
          "source.git.mountsshsock"
        ]
      },
      "op": {
        "attrs": {
          "git.authheadersecret": "GIT_AUTH_HEADER",
          "git.authtokensecret": "tok",
          "git.fullurl": "git@github.com:moby/buildkit.git",
          "git.knownsshhosts": "github.com ssh-ed25519 AAAA\n",
          "git.mountsshsock": "default"
        },
        "identifier": "git://github.com/moby/buildkit.git#main:cmd",
        "kind": "source"
      },
      "worker_constraints": []
    }
"#,
    );
}

#[test]
fn git_without_scheme_gets_https_and_no_ref() {
    let h = head(&git("github.com/moby/buildkit", ""));
    assert_eq!(h["op"]["identifier"], "git://github.com/moby/buildkit");
    assert_eq!(
        h["op"]["attrs"]["git.fullurl"],
        "https://github.com/moby/buildkit"
    );
    assert!(
        h.get("platform").is_none(),
        "git sources carry no platform, as in Go"
    );
}

#[test]
fn http_with_options() {
    let digest =
        Digest::parse("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
            .expect("digest");
    let st = http_with(
        "https://example.com/tool.tar.gz",
        HttpOptions::new()
            .checksum(digest)
            .filename("tool.tgz")
            .chmod(0o100755)
            .chown(1000, 0),
    );
    golden(
        "http_with_options",
        &head(&st),
        r#"
    {
      "digest": "sha256:e004515af307468a51f59439d6fda6234975d292ff6e1ab321e433d53459f8ac",
      "metadata": {
        "caps": [
          "soruce.http.uidgid",
          "source.http",
          "source.http.checksum",
          "source.http.perm"
        ]
      },
      "op": {
        "attrs": {
          "http.checksum": "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
          "http.filename": "tool.tgz",
          "http.perm": "0755",
          "http.uid": "1000"
        },
        "identifier": "https://example.com/tool.tar.gz",
        "kind": "source"
      },
      "worker_constraints": []
    }
"#,
    );
}

#[test]
fn oci_layout_source() {
    let digest =
        Digest::parse("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
            .expect("digest");
    let st = oci_layout_with(
        "store",
        &digest,
        OciLayoutOptions::new().session_id("s").store_id("st"),
    );
    golden(
        "oci_layout",
        &head(&st),
        r#"
    {
      "digest": "sha256:5c164cc52d7090b011e1f4e96e9c968613dde35940fa8501feef2ff9f43ab28b",
      "metadata": {
        "caps": [
          "source.ocilayout"
        ]
      },
      "op": {
        "attrs": {
          "oci.session": "s",
          "oci.store": "st"
        },
        "identifier": "oci-layout://store@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "kind": "source"
      },
      "platform": {
        "architecture": "amd64",
        "os": "linux"
      },
      "worker_constraints": []
    }
"#,
    );
}

#[test]
fn empty_names_fail_at_marshal() {
    for st in [local(""), git("", ""), http("")] {
        let err = st.marshal(&amd64()).expect_err("invalid");
        assert!(
            matches!(
                err,
                LlbError::EmptyField {
                    op: OpKind::Source,
                    ..
                }
            ),
            "{err}"
        );
    }
    let d = Digest::sha256_of(b"");
    assert!(oci_layout("", &d).marshal(&amd64()).is_err());
}

#[test]
fn scratch_marshals_to_an_empty_definition() {
    let d = def(&scratch());
    assert!(d.is_empty());
    assert_eq!(d.head().expect("head"), None);
}
