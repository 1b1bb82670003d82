//! Golden tests of file ops: each action, chains, copies and errors.

use serde_json::json;

use super::normalize_path;
use crate::testutil::{amd64, golden, head};
use crate::*;

#[test]
fn normalize_path_matches_go() {
    assert_eq!(normalize_path("/", "foo", false), "/foo");
    assert_eq!(normalize_path("/abc", "./foo/../bar", false), "/abc/bar");
    assert_eq!(normalize_path("/abc", "/x/", false), "/x");
    assert_eq!(normalize_path("/abc", "dir/", true), "/abc/dir/");
    assert_eq!(normalize_path("/abc", "dir/.", true), "/abc/dir/.");
    assert_eq!(normalize_path("/", "/.", true), "/.");
    assert_eq!(normalize_path("/abc", "", true), "/abc");
}

#[test]
fn mkdir_action() {
    let st = image("alpine").expect("valid").dir("/app").mkdir(
        Mkdir::new("data/cache", 0o40755)
            .parents(true)
            .owner(Chown::parse("app:staff"))
            .created_time(0),
    );
    // Go: llb.Image("alpine").Dir("/app").File(llb.Mkdir("data/cache", 0755|os.ModeDir,
    //         llb.WithParents(true), llb.WithUser("app:staff"), llb.WithCreatedTime(time.Unix(0, 0))))
    // - digest / input digest: sha256 of the op bytes, checked against the daemon separately.
    // - path "/app/data/cache": normalizePath(state dir, p, false) — fileop.go normalizePath.
    // - mode "755": int32(mode & 0777) — fileop.go (*fileActionMkdir).toProtoAction (kiln's
    //   0o40755 is masked the same way).
    // - owner by name, input 0: WithUser("app:staff") keeps names that are not numbers/"root"
    //   (fileop.go WithUser, parseUID); a name carries the action's base input — fileop.go
    //   (*UserOpt).marshal; base = index of the state's output in the op inputs = 0 —
    //   fileop.go (*marshalState).add.
    // - timestamp 0: time.Unix(0,0).UnixNano() — fileop.go marshalTime.
    // - input 0 / secondary_input -1 / output 0: first action takes its base; no copy source;
    //   the last action is output 0 — fileop.go (*marshalState).add, (*FileOp).Marshal.
    // - caps: file.base only — fileop.go (*FileOp).Marshal.
    // - no platform: fileop.go (*FileOp).Marshal sets pop.Platform = nil ("file op is not
    //   platform specific"); worker_constraints []: MarshalConstraints always sets it (marshal.go).
    golden(
        "file_mkdir",
        &head(&st),
        r#"
{
  "digest": "sha256:0fa43831576b73f7873f5b72c01e7f84a6af5e9fc3c2f60c03e0330e860879ff",
  "inputs": [
    {
      "digest": "sha256:a7f9733e307dd352c82d43053b783dd17bb2ec2c36214908ce393e41545c8b51",
      "index": 0
    }
  ],
  "metadata": {
    "caps": [
      "file.base"
    ]
  },
  "op": {
    "actions": [
      {
        "input": 0,
        "mkdir": {
          "make_parents": true,
          "mode": "755",
          "owner": {
            "group": {
              "input": 0,
              "name": "staff"
            },
            "user": {
              "input": 0,
              "name": "app"
            }
          },
          "path": "/app/data/cache",
          "timestamp": 0
        },
        "output": 0,
        "secondary_input": -1
      }
    ],
    "kind": "file"
  },
  "worker_constraints": []
}
    "#,
    );
}

#[test]
fn mkfile_action() {
    let st = scratch().mkfile(
        Mkfile::new("/etc/passwd", 0o644, "root:x:0:0::/root:/bin/sh\n")
            .owner(Chown::ids(0, 0))
            .created_time(1_700_000_000_000_000_000),
    );
    // Go: llb.Scratch().File(llb.Mkfile("/etc/passwd", 0644, []byte("root:x:0:0::/root:/bin/sh\n"),
    //         llb.WithUIDGID(0, 0), llb.WithCreatedTime(time.Unix(0, 1700000000000000000))))
    // - digest: sha256 of the op bytes, checked against the daemon separately.
    // - no inputs, input -1: scratch has no output, so base = -1 and the first action's input is
    //   its base — fileop.go (*marshalState).add.
    // - owner {"id": 0} for user and group: WithUIDGID — fileop.go WithUIDGID, (*UserOpt).marshal
    //   (UserOpt_ByID is a oneof, so id 0 is still written).
    // - mode "644": mode & 0777 — fileop.go (*fileActionMkfile).toProtoAction.
    // - timestamp: UnixNano — fileop.go marshalTime.
    // - caps: file.base only — fileop.go (*FileOp).Marshal.
    // - no platform: fileop.go (*FileOp).Marshal sets pop.Platform = nil ("file op is not
    //   platform specific"); worker_constraints []: MarshalConstraints always sets it (marshal.go).
    golden(
        "file_mkfile",
        &head(&st),
        r#"
{
  "digest": "sha256:d4b5fc1fe4d97c87eafb02d69d7c033f0e2ba45559c372681ec740b5f707051a",
  "metadata": {
    "caps": [
      "file.base"
    ]
  },
  "op": {
    "actions": [
      {
        "input": -1,
        "mkfile": {
          "data": "root:x:0:0::/root:/bin/sh\n",
          "mode": "644",
          "owner": {
            "group": {
              "id": 0
            },
            "user": {
              "id": 0
            }
          },
          "path": "/etc/passwd",
          "timestamp": 1700000000000000000
        },
        "output": 0,
        "secondary_input": -1
      }
    ],
    "kind": "file"
  },
  "worker_constraints": []
}
    "#,
    );
}

#[test]
fn rm_action() {
    let st = image("alpine")
        .expect("valid")
        .rm(Rm::new("/var/cache/apk/*")
            .allow_not_found()
            .allow_wildcard());
    // Go: llb.Image("alpine").File(llb.Rm("/var/cache/apk/*",
    //         llb.WithAllowNotFound(true), llb.WithAllowWildcard(true)))
    // - digest / input digest: sha256 of the op bytes, checked against the daemon separately.
    // - path normalized against the state dir "/" — fileop.go (*fileActionRm).toProtoAction.
    // - allow_not_found / allow_wildcard copied from RmInfo — same function.
    // - caps: file.base only; Go adds no cap for wildcards (file.rm.wildcard exists in caps.go
    //   but the client never sets it).
    // - no platform: fileop.go (*FileOp).Marshal sets pop.Platform = nil ("file op is not
    //   platform specific"); worker_constraints []: MarshalConstraints always sets it (marshal.go).
    golden(
        "file_rm",
        &head(&st),
        r#"
{
  "digest": "sha256:442ad1f53e7a937a255588f67907566f12de096a28c2147c2794fcf1690b4608",
  "inputs": [
    {
      "digest": "sha256:a7f9733e307dd352c82d43053b783dd17bb2ec2c36214908ce393e41545c8b51",
      "index": 0
    }
  ],
  "metadata": {
    "caps": [
      "file.base"
    ]
  },
  "op": {
    "actions": [
      {
        "input": 0,
        "output": 0,
        "rm": {
          "allow_not_found": true,
          "allow_wildcard": true,
          "path": "/var/cache/apk/*"
        },
        "secondary_input": -1
      }
    ],
    "kind": "file"
  },
  "worker_constraints": []
}
    "#,
    );
}

#[test]
fn symlink_action() {
    let st = scratch().symlink(Symlink::new("/usr/bin/app", "/app").owner(Chown::parse("1000")));
    // Go: llb.Scratch().File(llb.Symlink("/usr/bin/app", "/app", llb.WithUser("1000")))
    // - digest: sha256 of the op bytes, checked against the daemon separately (caps are metadata,
    //   not part of the digest).
    // - oldpath/newpath written as given (no normalizePath) — fileop.go
    //   (*fileActionSymlink).toProtoAction.
    // - owner user {"id": 1000}, group null: WithUser("1000") sets only User — fileop.go WithUser.
    // - timestamp -1: no created time — fileop.go marshalTime.
    // - input -1 (scratch), secondary -1, output 0 — fileop.go (*marshalState).add.
    // - caps: "file.base" only. Go v0.29.0's (*FileOp).Marshal runs the capAdder loop over
    //   `state.actions` of a marshalState it has just created (fileop.go, lines 844-849, before
    //   state.add fills it), so (*fileActionSymlink).addCaps never runs and "file.symlink.create"
    //   is never written. Kiln used to add it; FileOp::marshal now writes only file.base, so kiln
    //   matches Go (the digest, over the op bytes alone, did not change).
    // - no platform: fileop.go (*FileOp).Marshal sets pop.Platform = nil ("file op is not
    //   platform specific"); worker_constraints []: MarshalConstraints always sets it (marshal.go).
    golden(
        "file_symlink",
        &head(&st),
        r#"
{
  "digest": "sha256:c9e0517eaa15198cc494dd77e27aae5e17cffc6e409ecc258d07cca186b2f91d",
  "metadata": {
    "caps": [
      "file.base"
    ]
  },
  "op": {
    "actions": [
      {
        "input": -1,
        "output": 0,
        "secondary_input": -1,
        "symlink": {
          "newpath": "/app",
          "oldpath": "/usr/bin/app",
          "owner": {
            "group": null,
            "user": {
              "id": 1000
            }
          },
          "timestamp": -1
        }
      }
    ],
    "kind": "file"
  },
  "worker_constraints": []
}
    "#,
    );
}

#[test]
fn copy_action_with_every_option() {
    let ctx = local("context").dir("/repo");
    let st = image("alpine").expect("valid").dir("/work").copy(
        Copy::new(&ctx, "src/", "out/.")
            .mode(CopyMode::Bits(0o755))
            .follow_symlinks()
            .dir_contents_only()
            .include_patterns(["**/*.go"])
            .exclude_patterns(["vendor"])
            .attempt_unpack()
            .create_dest_path()
            .allow_wildcard()
            .allow_empty_wildcard()
            .owner(Chown::parse("1000:1000"))
            .created_time(42)
            .always_replace_existing_dest_paths(),
    );
    // Go: ctx := llb.Local("context").Dir("/repo")
    //     llb.Image("alpine").Dir("/work").File(llb.Copy(ctx, "src/", "out/.", &llb.CopyInfo{
    //         Mode: &llb.ChmodOpt{Mode: 0755}, FollowSymlinks: true, CopyDirContentsOnly: true,
    //         IncludePatterns: []string{"**/*.go"}, ExcludePatterns: []string{"vendor"},
    //         AttemptUnpack: true, CreateDestPath: true, AllowWildcard: true,
    //         AllowEmptyWildcard: true, AlwaysReplaceExistingDestPaths: true},
    //       llb.WithUser("1000:1000"), llb.WithCreatedTime(time.Unix(0, 42))))
    //   (CopyInfo replaces the whole info, so it goes first — fileop.go (*CopyInfo).SetCopyOption.)
    // - digest / input digests: sha256 of the op bytes, checked against the daemon separately.
    //   The local input 6051f8dd… has no local.unique; Go's would (see local_default).
    // - src "/repo/src": path.Clean, then joined with the SOURCE state's dir — fileop.go
    //   (*fileActionCopy).sourcePath.
    // - dest "/work/out/.": normalizePath(dest state dir, dest, keepSlash=true) keeps a trailing
    //   "/." — fileop.go normalizePath.
    // - mode "755": int32(ChmodOpt.Mode), no mask; -1 only when Mode is nil — fileop.go
    //   (*fileActionCopy).toProtoAction. Flags follow_symlink, dir_copy_contents,
    //   attempt_unpack (AttemptUnpackDockerCompatibility), create_dest_path, allow_wildcard,
    //   allow_empty_wildcard, include/exclude patterns, always_replace_existing_dest_paths:
    //   copied one to one from CopyInfo — same function.
    // - owner ids 1000/1000: WithUser parses numbers — fileop.go WithUser, parseUID.
    // - timestamp 42 — fileop.go marshalTime.
    // - input 0 (alpine, the dest state), secondary_input 1 (local, the copy source), output 0 —
    //   fileop.go (*marshalState).add / addInput (inputs deduplicated in that order).
    // - caps: "file.base" only. Go v0.29.0 never calls (*fileActionCopy).addCaps because
    //   (*FileOp).Marshal iterates the still-empty `state.actions` (fileop.go lines 844-849), so
    //   file.copy.includeexcludepatterns and file.copy.alwaysreplaceexistingdestpaths are not
    //   written. Kiln used to add them; FileOp::marshal now writes only file.base, so kiln
    //   matches Go (the digest, over the op bytes alone, did not change).
    // - no platform: fileop.go (*FileOp).Marshal sets pop.Platform = nil ("file op is not
    //   platform specific"); worker_constraints []: MarshalConstraints always sets it (marshal.go).
    golden(
        "file_copy",
        &head(&st),
        r#"
{
  "digest": "sha256:5eec542ea157f03916e07a909a1db11ca9487a649e8286cfa3e502180a458468",
  "inputs": [
    {
      "digest": "sha256:a7f9733e307dd352c82d43053b783dd17bb2ec2c36214908ce393e41545c8b51",
      "index": 0
    },
    {
      "digest": "sha256:6051f8ddb6bb186934458c24d3f25ea67f0bb779ba6d7a93533168cb80387115",
      "index": 0
    }
  ],
  "metadata": {
    "caps": [
      "file.base"
    ]
  },
  "op": {
    "actions": [
      {
        "copy": {
          "allow_empty_wildcard": true,
          "allow_wildcard": true,
          "always_replace_existing_dest_paths": true,
          "attempt_unpack": true,
          "create_dest_path": true,
          "dest": "/work/out/.",
          "dir_copy_contents": true,
          "exclude_patterns": [
            "vendor"
          ],
          "follow_symlink": true,
          "include_patterns": [
            "**/*.go"
          ],
          "mode": "755",
          "owner": {
            "group": {
              "id": 1000
            },
            "user": {
              "id": 1000
            }
          },
          "src": "/repo/src",
          "timestamp": 42
        },
        "input": 0,
        "output": 0,
        "secondary_input": 1
      }
    ],
    "kind": "file"
  },
  "worker_constraints": []
}
    "#,
    );
}

#[test]
fn copy_mode_string_declares_only_file_base_as_go_does() {
    // Go: llb.Scratch().File(llb.Copy(llb.Local("c"), "/a", "/b",
    //         &llb.CopyInfo{Mode: &llb.ChmodOpt{ModeStr: "u+x"}}))
    // - mode_str "u+x" and mode 0 (Mode is left unset when ModeStr is given) — fileop.go
    //   (*fileActionCopy).toProtoAction.
    // - caps: "file.base" only. (*fileActionCopy).addCaps would add file.copy.modestring, but
    //   Go v0.29.0 never calls it: (*FileOp).Marshal runs its capAdder loop over the actions of
    //   a marshalState it has just created, before state.add fills it (fileop.go, lines
    //   844-849). A daemon without mode strings therefore gets no cap to refuse the op by.
    let st =
        scratch().copy(Copy::new(local("c"), "/a", "/b").mode(CopyMode::Symbolic("u+x".into())));
    let h = head(&st);
    assert_eq!(h["op"]["actions"][0]["copy"]["mode_str"], "u+x");
    assert_eq!(h["op"]["actions"][0]["copy"]["mode"], "0");
    assert_eq!(h["metadata"]["caps"], json!(["file.base"]));
}

#[test]
fn file_op_caps_are_file_base_whatever_the_actions() {
    // Go v0.29.0 writes no per-action cap (fileop.go lines 844-849, see above): a chain with a
    // symlink and a copy using patterns, always-replace and a mode string still has file.base
    // alone; op-level caps and the marshal's metadata are kept.
    let src = local("c");
    let actions = FileAction::from(Symlink::new("/x", "/y"))
        .copy(
            Copy::new(&src, "/a", "/b")
                .include_patterns(["*.go"])
                .exclude_patterns(["vendor"])
                .always_replace_existing_dest_paths()
                .mode(CopyMode::Symbolic("g+r".into())),
        )
        .copy(Copy::new(&src, "/c", "/d").mode(CopyMode::Bits(0o600)));
    let h = head(&scratch().file(actions));
    assert_eq!(h["op"]["actions"].as_array().map(Vec::len), Some(3));
    assert_eq!(h["metadata"]["caps"], json!(["file.base"]));
}

#[test]
fn chained_actions_and_copy_from_another_chain() {
    // Go's example: b.Copy(a.WithState(llb.Scratch().Dir("/ced")), "./foo", "./baz")
    let a = FileAction::from(Mkdir::new("./foo", 0o755));
    let b = FileAction::from(Mkdir::new("./bar", 0o755));
    let c = b.copy(Copy::new(
        a.with_state(&scratch().dir("/ced")),
        "./foo",
        "./baz",
    ));
    let st = image("alpine").expect("valid").dir("/abc").file(c);
    // Go (the example in fileop.go's header comment):
    //   a := llb.Mkdir("./foo", 0755); b := llb.Mkdir("./bar", 0755)
    //   c := b.Copy(a.WithState(llb.Scratch().Dir("/ced")), "./foo", "./baz")
    //   llb.Image("alpine").Dir("/abc").File(c)
    // - digest / input digest: sha256 of the op bytes, checked against the daemon separately.
    // - action order b, a, c: (*marshalState).add visits prev first, then the copy source
    //   action, then appends itself — fileop.go (*marshalState).add.
    // - b: input 0 (alpine, its base), path "/abc/bar" (bound to the /abc state by NewFileOp →
    //   bind), output -1 (not last) — fileop.go NewFileOp, (*FileOp).Marshal.
    // - a: input -1 (bound to scratch: no output), path "/ced/foo" — WithState binds it to the
    //   /ced state — fileop.go (*FileAction).WithState.
    // - c: input 1 = len(inputs) + b's target 0, secondary_input 2 = 1 + a's target 1 — fileop.go
    //   getIndex; output 0 (last action).
    // - copy src "/ced/foo": relative src joined with the source action's state dir — fileop.go
    //   (*fileActionCopy).sourcePath; dest "/abc/baz" — normalizePath.
    // - mkdir mode "755"; copy mode -1 (no ChmodOpt); timestamps -1; no owner — fileop.go
    //   toProtoAction functions, marshalTime.
    // - caps: file.base — fileop.go (*FileOp).Marshal.
    // - no platform: fileop.go (*FileOp).Marshal sets pop.Platform = nil ("file op is not
    //   platform specific"); worker_constraints []: MarshalConstraints always sets it (marshal.go).
    golden(
        "file_chain",
        &head(&st),
        r#"
{
  "digest": "sha256:7070545994a86ea98f65b484ca069008867d8492d3af44669ed977f296b2e866",
  "inputs": [
    {
      "digest": "sha256:a7f9733e307dd352c82d43053b783dd17bb2ec2c36214908ce393e41545c8b51",
      "index": 0
    }
  ],
  "metadata": {
    "caps": [
      "file.base"
    ]
  },
  "op": {
    "actions": [
      {
        "input": 0,
        "mkdir": {
          "mode": "755",
          "path": "/abc/bar",
          "timestamp": -1
        },
        "output": -1,
        "secondary_input": -1
      },
      {
        "input": -1,
        "mkdir": {
          "mode": "755",
          "path": "/ced/foo",
          "timestamp": -1
        },
        "output": -1,
        "secondary_input": -1
      },
      {
        "copy": {
          "dest": "/abc/baz",
          "mode": -1,
          "src": "/ced/foo",
          "timestamp": -1
        },
        "input": 1,
        "output": 0,
        "secondary_input": 2
      }
    ],
    "kind": "file"
  },
  "worker_constraints": []
}
    "#,
    );
}

#[test]
fn one_op_for_a_chain_with_two_inputs() {
    let ctx = local("ctx");
    let actions = FileAction::from(Mkdir::new("/app", 0o755))
        .copy(Copy::new(&ctx, "/a", "/app/a"))
        .copy(Copy::new(&ctx, "/b", "/app/b"))
        .mkfile(Mkfile::new("/app/v", 0o600, "1"));
    let def = image("alpine")
        .expect("valid")
        .file(actions)
        .marshal(&amd64())
        .expect("marshal");
    // alpine, ctx, the file op, the terminal: inputs before users.
    let ops = def.ops().expect("decode");
    assert_eq!(ops.len(), 4);
    let h = head(
        &image("alpine").expect("valid").file(
            FileAction::from(Mkdir::new("/app", 0o755))
                .copy(Copy::new(&ctx, "/a", "/app/a"))
                .copy(Copy::new(&ctx, "/b", "/app/b")),
        ),
    );
    let idx: Vec<(i64, i64, i64)> = h["op"]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            (
                a["input"].as_i64().unwrap_or(-9),
                a["secondary_input"].as_i64().unwrap_or(-9),
                a["output"].as_i64().unwrap_or(-9),
            )
        })
        .collect();
    // Two inputs (alpine 0, ctx 1); action n's result is input 2+n.
    assert_eq!(idx, vec![(0, -1, -1), (2, 1, -1), (3, 1, 0)]);
}

#[test]
fn chown_parse_matches_go_with_user() {
    assert_eq!(
        Chown::parse("root"),
        Chown {
            user: Some(UserSpec::Id(0)),
            group: None
        }
    );
    assert_eq!(
        Chown::parse("app:1000"),
        Chown {
            user: Some(UserSpec::Name("app".into())),
            group: Some(UserSpec::Id(1000))
        }
    );
    assert_eq!(Chown::parse("1:root"), Chown::ids(1, 0));
}

#[test]
fn file_errors_are_typed() {
    let err = scratch()
        .copy(Copy::new(local("c"), "", "/x"))
        .marshal(&amd64())
        .expect_err("empty src");
    assert!(
        matches!(
            err,
            LlbError::EmptyField {
                op: OpKind::File,
                field: "copy source path"
            }
        ),
        "{err}"
    );
    let err = scratch()
        .mkdir(Mkdir::new("", 0o755))
        .marshal(&amd64())
        .expect_err("empty");
    assert!(
        matches!(
            err,
            LlbError::EmptyField {
                field: "mkdir path",
                ..
            }
        ),
        "{err}"
    );
    let err = scratch()
        .copy(Copy::new(local(""), "/a", "/b"))
        .marshal(&amd64())
        .expect_err("bad source");
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

#[test]
fn file_ops_carry_no_platform_and_keep_state_metadata() {
    let base = image("alpine").expect("valid").dir("/w").add_env("K", "V");
    let st = base.mkdir(Mkdir::new("d", 0o755));
    let h = head(&st);
    // Go's FileOp.Marshal drops the platform (a file op is not platform
    // specific), whatever the state's or the marshal's platform.
    assert!(h["platform"].is_null(), "{h}");
    let arm = base
        .platform(crate::Platform::linux_arm64())
        .mkdir(Mkdir::new("d", 0o755));
    assert!(head(&arm)["platform"].is_null());
    assert_eq!(
        head(&arm)["digest"],
        h["digest"],
        "same op on either platform"
    );
    assert_eq!(h["worker_constraints"], json!([]));
    assert_eq!(st.get_dir(), "/w");
    assert_eq!(st.get_env("K"), Some("V"));
}

#[test]
fn long_action_chains_do_not_overflow_the_stack() {
    let mut fa = FileAction::from(Mkdir::new("/d", 0o755));
    for i in 0..20_000 {
        fa = fa.mkfile(Mkfile::new(format!("/d/{i}"), 0o644, ""));
    }
    let st = scratch().file(fa.clone());
    let h = head(&st);
    assert_eq!(h["op"]["actions"].as_array().map(Vec::len), Some(20_001));
    assert_eq!(h["op"]["actions"][20_000]["input"], 19_999);
    drop(st);
    drop(fa);
}
