//! Golden tests of source ops.

use super::*;
use crate::testutil::{amd64, def, golden, head, head_with};
use crate::Platform;

/// The same op content Go's `client/llb` writes for linux/amd64. Older
/// BuildKit clients (gogo/protobuf) wrote fields in tag order, and their
/// digests are printed in countless `buildctl debug dump-llb` / dot dumps;
/// re-encoding kiln's op in tag order reproduces them exactly. Today's Go
/// protobuf writes the `op` oneof last, and the daemon re-marshals every op
/// that way before digesting it: kiln's digests are those (checked against
/// the daemon's Status stream in tests/it/llb_digests.rs).
#[test]
fn image_digests_match_go() {
    use kiln_proto::prost::Message;
    for (r, tag_order, go_order) in [
        (
            "docker.io/library/alpine:latest",
            "sha256:665ba8b2cdc0cb0200e2a42a6b3c0f8f684089f4cd1b81494fbb9805879120f7",
            "sha256:a7f9733e307dd352c82d43053b783dd17bb2ec2c36214908ce393e41545c8b51",
        ),
        (
            "alpine",
            "sha256:665ba8b2cdc0cb0200e2a42a6b3c0f8f684089f4cd1b81494fbb9805879120f7",
            "sha256:a7f9733e307dd352c82d43053b783dd17bb2ec2c36214908ce393e41545c8b51",
        ),
        (
            "golang:1.12-alpine",
            "sha256:fc8f7a5a931404bb996ee93e11e03292efdfdf9a150192d59616c38f4796d934",
            "sha256:f4390d31ec5fc2590a1dbc8439f7bafe4c6b17e1316d2754e15649ee3e7871a9",
        ),
        (
            "golang:alpine",
            "sha256:4530882d321e760e5e25d5b2a3fa86274678c0cd51fb182037c54497bddc7847",
            "sha256:f260bf30a92d02507f92507b25c37469dc9da1e6d4c1dc8c75ad1add1048db9e",
        ),
    ] {
        let st = image(r).expect("valid reference");
        let d = def(&st);
        let op = kiln_proto::pb::Op::decode(d.as_pb().def[0].as_slice()).expect("decode");
        let legacy = crate::Digest::sha256_of(&op.encode_to_vec()).to_string();
        assert_eq!(legacy, tag_order, "{r}: tag-order bytes");
        assert_eq!(head(&st)["digest"], go_order, "{r}");
        assert_ne!(
            head(&st)["digest"],
            tag_order,
            "{r}: kiln must not send tag order"
        );
    }
}

/// The same op, encoded by hand from `solver/pb/ops.proto` in Go's order
/// (regular fields by tag, then the `op` oneof): an independent check of
/// field order and of the empty worker constraints.
#[test]
fn image_op_bytes_match_hand_encoding() {
    let id = b"docker-image://docker.io/library/alpine:latest";
    let mut src = vec![0x0a, id.len() as u8];
    src.extend_from_slice(id);
    let plat = b"\x0a\x05amd64\x12\x05linux";
    let mut want = vec![0x52, plat.len() as u8];
    want.extend_from_slice(plat);
    want.extend_from_slice(&[0x5a, 0x00]);
    want.extend_from_slice(&[0x1a, src.len() as u8]);
    want.extend_from_slice(&src);
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
    // Go: llb.Image("127.0.0.1:5000/kiln-fixtures/golang:1.24-trixie@sha256:e3b0c442…b855",
    //         llb.ResolveModeForcePull, llb.MarkImageInternal, llb.WithLayerLimit(2),
    //         llb.Platform(platforms.MustParse("linux/aarch64")), llb.WithCustomName("base"))
    //   (kiln's .digest() pins the digest in the reference; Go's llb.WithImageChecksum would
    //   instead write image.checksum + source.image.checksum, which this golden does not use.)
    // - digest: sha256 of the op bytes, checked against the daemon separately.
    // - identifier: ParseNormalizedNamed + TagNameOnly + String keeps "name:tag@digest" — source.go
    //   Image.
    // - attrs image.resolvemode "pull" (ResolveModeForcePull.String()), image.recordtype "internal"
    //   (MarkImageInternal), image.layerlimit "2" (strconv.FormatInt) — source.go Image,
    //   ResolveMode.String, MarkImageInternal; resolver.go WithLayerLimit.
    // - caps source.image (always), source.image.resolvemode (only for ForcePull),
    //   source.image.layerlimit — source.go Image.
    // - description llb.customname — state.go WithCustomName.
    // - platform linux/arm64: the source's own constraint platform overrides the marshal's —
    //   marshal.go MarshalConstraints; kept because docker-image is platform specific — source.go
    //   (*SourceOp).Marshal, platformSpecificSource. "aarch64" is normalized to "arm64" with no
    //   variant by containerd platforms.Parse (llb.Platform itself does not normalize).
    // - worker_constraints []: MarshalConstraints always sets it.
    golden(
        "image_with_options",
        &head(&st),
        r#"
    {
      "digest": "sha256:c7ade0a28181e0236c200485825f90d568c734cda83dce39d3109a5a736792a9",
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
    // Go: llb.Local("context")
    // - digest: sha256 of the op bytes, checked against the daemon separately.
    // - identifier "local://context" — source.go Local; no platform: local is not platform
    //   specific — source.go (*SourceOp).Marshal, platformSpecificSource.
    // - DIFFERS FROM GO: attrs and caps. Without local.session Go always writes
    //   attrs["local.unique"] = the op's or the marshal's LocalUniqueID (random by default:
    //   state.go NewConstraints uses identity.NewID()) and adds cap "source.local.unique" —
    //   source.go (*SourceOp).Marshal, lines 64-73. The Go fixture
    //   /work/shared/llb-fixtures/local_copy_include.json lists source.local.unique for its local
    //   op. Kiln writes attrs {} and caps [source.local] — a deliberate choice in source.rs
    //   (SourceOp::marshal: "Go writes a random id here; kiln only writes one it is given"), so
    //   the digest differs from Go's too.
    golden(
        "local_default",
        &h,
        r#"
    {
      "digest": "sha256:6051f8ddb6bb186934458c24d3f25ea67f0bb779ba6d7a93533168cb80387115",
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
    // Go: llb.Local("context", llb.SessionID("s1"),
    //         llb.IncludePatterns([]string{"go.mod", "**/*.go"}), llb.ExcludePatterns([]string{"<tmp>&"}),
    //         llb.FollowPaths([]string{"vendor"}), llb.SharedKeyHint("ctx"), llb.Differ(llb.DiffNone, true))
    // - digest: sha256 of the op bytes, checked against the daemon separately.
    // - attr keys from solver/pb/attr.go: local.session, local.includepattern (singular),
    //   local.excludepatterns, local.followpaths, local.sharedkeyhint, local.differ.
    // - pattern values: encoding/json.Marshal of the list, which escapes <, >, & as \u003c,
    //   \u003e, \u0026 — source.go IncludePatterns/ExcludePatterns/FollowPaths.
    // - local.differ "none" (pb.AttrLocalDifferNone) and cap source.local.differ because
    //   required = true — source.go Local.
    // - caps source.local.{sessionid,includepatterns,excludepatterns,followpaths,sharedkeyhint,
    //   differ} + source.local — source.go Local.
    // - no local.unique: a session id is present — source.go (*SourceOp).Marshal.
    // - no platform: local is not platform specific — source.go platformSpecificSource.
    golden(
        "local_with_options",
        &head(&st),
        r#"
    {
      "digest": "sha256:982c66275c53d9f8e91fa4e6ed8309c040a37d4d529aa09db9fafe091e77a7b9",
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
    // Go: llb.Git("https://github.com/moby/buildkit.git", "v0.11.6", llb.KeepGitDir(),
    //         llb.GitSubDir("client/llb"))
    // - digest: sha256 of the op bytes, checked against the daemon separately.
    // - identifier "git://" + host + path.Join("/", path) + "#" + ref + ":" + subdir — source.go Git
    //   (gitutil.ParseURL: Host "github.com", Path "/moby/buildkit.git").
    // - git.fullurl = remote.Remote (URL without fragment) + cap source.git.fullurl — source.go Git.
    // - git.keepgitdir "true" + cap source.git.keepgitdir — source.go Git.
    // - git.authtokensecret "GIT_AUTH_TOKEN" / git.authheadersecret "GIT_AUTH_HEADER": GitInfo
    //   defaults (GitAuthTokenKey, GitAuthHeaderKey); no source.git.httpauth cap because neither
    //   AuthTokenSecret nor AuthHeaderSecret was called (addAuthCap) — source.go Git.
    // - https: no known-hosts / mountsshsock attrs (SSH only); cap source.git always.
    // - no platform: git is not platform specific — source.go platformSpecificSource.
    golden(
        "git_https",
        &head(&st),
        r#"
    {
      "digest": "sha256:dc87480a392ab3620c781aa918718d6abbe3e0fa22a495e06309fc0e9564a36b",
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
    // Go: llb.Git("git@github.com:moby/buildkit.git", "main:/docs/../cmd/",
    //         llb.KnownSSHHosts("github.com ssh-ed25519 AAAA\n"), llb.AuthTokenSecret("tok"))
    // - digest: sha256 of the op bytes, checked against the daemon separately.
    // - fragment "main:/docs/../cmd/": ref "main"; subdir path.Join("/", …) with the leading "/"
    //   trimmed = "cmd" — source.go Git; identifier "git://github.com/moby/buildkit.git#main:cmd"
    //   (scp-style URL: Host "github.com", Path "moby/buildkit.git" — util/gitutil ParseURL).
    // - git.fullurl is the scp-style remote as given + cap source.git.fullurl.
    // - git.authtokensecret "tok" and cap source.git.httpauth (AuthTokenSecret sets addAuthCap);
    //   git.authheadersecret keeps the default "GIT_AUTH_HEADER" — source.go AuthTokenSecret, Git.
    // - git.knownsshhosts: the key with one trailing "\n" — source.go KnownSSHHosts; cap
    //   source.git.knownsshhosts; git.mountsshsock "default" + cap source.git.mountsshsock —
    //   source.go Git (SSH scheme only).
    // - no platform: git is not platform specific.
    golden(
        "git_ssh",
        &head(&st),
        r#"
    {
      "digest": "sha256:816952214d48812bd9cf68d531736068bab3e7374a5b3d25334861d3ea969b90",
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
    // Go: llb.HTTP("https://example.com/tool.tar.gz", llb.Checksum(dgst), llb.Filename("tool.tgz"),
    //         llb.Chmod(0755), llb.Chown(1000, 0))
    //   (Chmod keeps int(perm) & 0777, so kiln's 0o100755 gives the same 0755 — source.go Chmod.)
    // - digest: sha256 of the op bytes, checked against the daemon separately.
    // - http.checksum = digest string + cap source.http.checksum — source.go HTTP.
    // - http.filename, no cap — source.go HTTP.
    // - http.perm "0755": "0" + octal — source.go HTTP; cap source.http.perm.
    // - http.uid "1000" + cap "soruce.http.uidgid" (the historical typo is the real cap id —
    //   solver/pb/caps.go CapSourceHTTPUIDGID); gid 0 is not written — source.go HTTP.
    // - cap source.http always; identifier is the URL itself.
    // - no platform: http is not platform specific — source.go platformSpecificSource.
    golden(
        "http_with_options",
        &head(&st),
        r#"
    {
      "digest": "sha256:71c13470ee4b284e19c122718b1acf479befeb6bc552852b53d9b79ff969d300",
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
        "app:ignored-tag",
        &digest,
        OciLayoutOptions::new().session_id("s").store_id("st"),
    );
    // Go: llb.OCILayout("docker.io/library/app@sha256:e3b0c442…b855", llb.OCIStore("s", "st"))
    //   Go's OCILayout takes the reference verbatim ("oci-layout://" + ref); the normalization
    //   (docker.io/library/, tag dropped) is kiln's oci_layout_with. Note: the Dockerfile
    //   frontend (frontend/dockerui/namedcontext.go) builds it with reference.WithDigest, which
    //   KEEPS a tag ("…/app:ignored-tag@sha256:…"); kiln drops it — not a client/llb difference.
    // - digest: sha256 of the op bytes, checked against the daemon separately.
    // - attrs oci.session, oci.store — source.go OCILayout, OCIStore; cap source.ocilayout only.
    // - platform linux/amd64 from the marshal constraints: oci-layout is platform specific —
    //   source.go platformSpecificSource; marshal.go MarshalConstraints.
    golden(
        "oci_layout",
        &head(&st),
        r#"
    {
      "digest": "sha256:2bc9c42b99a59e23bebf639c7eb3f3e6c3b625952f4714ca68d01be0b6dc0485",
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
        "identifier": "oci-layout://docker.io/library/app@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
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
    assert!(oci_layout("Not A Name", &d).marshal(&amd64()).is_err());
}

#[test]
fn scratch_marshals_to_an_empty_definition() {
    let d = def(&scratch());
    assert!(d.is_empty());
    assert_eq!(d.head().expect("head"), None);
}
