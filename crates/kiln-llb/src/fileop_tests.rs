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
    golden(
        "file_symlink",
        &head(&st),
        r#"
{
  "digest": "sha256:c9e0517eaa15198cc494dd77e27aae5e17cffc6e409ecc258d07cca186b2f91d",
  "metadata": {
    "caps": [
      "file.base",
      "file.symlink.create"
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
      "file.base",
      "file.copy.alwaysreplaceexistingdestpaths",
      "file.copy.includeexcludepatterns"
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
fn copy_mode_string_needs_a_cap() {
    let st =
        scratch().copy(Copy::new(local("c"), "/a", "/b").mode(CopyMode::Symbolic("u+x".into())));
    let h = head(&st);
    assert_eq!(h["op"]["actions"][0]["copy"]["mode_str"], "u+x");
    assert_eq!(h["op"]["actions"][0]["copy"]["mode"], "0");
    assert_eq!(
        h["metadata"]["caps"],
        json!(["file.base", "file.copy.modestring"])
    );
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
