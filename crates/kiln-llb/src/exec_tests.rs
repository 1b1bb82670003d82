//! Golden tests of exec ops: options, mounts, secrets, outputs and errors.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::json;

use crate::testutil::{amd64, golden, head, head_with};
use crate::*;

fn base() -> State {
    image("alpine").expect("valid")
}

#[test]
fn exec_basic() {
    let st = base()
        .dir("/src")
        .add_env("GOFLAGS", "-mod=vendor")
        .user("1000:1000")
        .run(
            ExecOptions::new(["go", "build", "./..."])
                .env("CGO_ENABLED", "0")
                .dir("cmd")
                .hostname("builder"),
        );
    // Go (BuildKit v0.29.0 client/llb), marshaled with llb.LinuxAmd64:
    //   llb.Image("alpine").Dir("/src").AddEnv("GOFLAGS", "-mod=vendor").User("1000:1000").
    //       Run(llb.Args([]string{"go", "build", "./..."}), llb.AddEnv("CGO_ENABLED", "0"),
    //           llb.Dir("cmd"), llb.Hostname("builder"))
    // - digest / inputs[].digest: sha256 of the op bytes (kiln's encoding), checked against the
    //   daemon separately (tests/it/llb_digests.rs). The alpine input a7f9733e… was re-derived by
    //   hand: platform{amd64,linux} + empty WorkerConstraints + SourceOp{identifier}, the layout of
    //   the Go fixture /work/shared/llb-fixtures/image_run.pb (its golang source hashes to 325521c8…).
    // - inputs[0].index 0: a source output has no getIndex — state.go (*output).ToInput.
    // - caps exec.meta.base — exec.go (*ExecOp).Marshal, always; exec.mount.bind — same function,
    //   the root mount has a source. No network/security caps: both sandbox (the defaults).
    // - args from llb.Args; cwd "/src/cmd": a relative llb.Dir joins the previous dir — meta.go dirf.
    // - env order GOFLAGS, CGO_ENABLED: EnvList.ToArray keeps insertion order — meta.go; a
    //   StateOption given to Run applies to the exec's state — exec.go StateOption.SetRunOption.
    // - DIFFERS FROM GO: "PATH=…" last. Go adds it only when the marshal constraints carry daemon
    //   caps without exec.meta.setsdefaultpath (exec.go (*ExecOp).Marshal, `if c.Caps != nil`);
    //   with no caps (this test: amd64() has none) Go writes no PATH — see image_run.pb, whose
    //   exec env is just FOO=bar. The golden equals Go's output under llb.WithCaps(<old daemon>).
    //   Kiln's choice is in exec.rs (ExecOp marshal, "Unlike Go …"); the digest follows it.
    // - user, hostname: meta.go User/Hostname; remove_mount_stubs_recursive: always true — exec.go
    //   (*ExecOp).Marshal builds pb.Meta with RemoveMountStubsRecursive: true.
    // - mounts: only the root mount "/", input 0, output 0 (read-write root is output 0 —
    //   exec.go getMountIndexFn), type bind (MountType BIND = 0).
    // - platform linux/amd64: e.constraints.Platform and the image state's platform are nil, so
    //   MarshalConstraints takes the marshal platform — marshal.go MarshalConstraints.
    // - worker_constraints []: MarshalConstraints always sets an (empty) pb.WorkerConstraints.
    // - no description / ignore_cache: none given.
    golden(
        "exec_basic",
        &head(&st),
        r#"
{
  "digest": "sha256:52f62d2a2bee4fdb99d261a1c9d1f038e9b035864fa83af6514528bcd91af194",
  "inputs": [
    {
      "digest": "sha256:a7f9733e307dd352c82d43053b783dd17bb2ec2c36214908ce393e41545c8b51",
      "index": 0
    }
  ],
  "metadata": {
    "caps": [
      "exec.meta.base",
      "exec.mount.bind"
    ]
  },
  "op": {
    "kind": "exec",
    "meta": {
      "args": [
        "go",
        "build",
        "./..."
      ],
      "cwd": "/src/cmd",
      "env": [
        "GOFLAGS=-mod=vendor",
        "CGO_ENABLED=0",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
      ],
      "hostname": "builder",
      "remove_mount_stubs_recursive": true,
      "user": "1000:1000"
    },
    "mounts": [
      {
        "dest": "/",
        "input": 0,
        "output": 0,
        "type": "bind"
      }
    ]
  },
  "platform": {
    "architecture": "amd64",
    "os": "linux"
  },
  "worker_constraints": []
}
    "#,
    );
    // The result keeps the metadata of the state run on, not the exec's own.
    assert_eq!(st.get_dir(), "/src");
    assert_eq!(st.get_env("CGO_ENABLED"), None);
}

#[test]
fn exec_shell_form() {
    let h = head(&base().run(ExecOptions::shell("echo hi")).root());
    assert_eq!(h["op"]["meta"]["args"], json!(["/bin/sh", "-c", "echo hi"]));
    assert_eq!(h["op"]["meta"]["cwd"], "/");
}

#[test]
fn exec_mounts_outputs_and_inputs() {
    let src = local("context");
    let go_cache_base = image("golang:1.24").expect("valid");
    let e = base().run(
        ExecOptions::shell("build")
            .mount(Mount::bind("/src", &src).readonly().selector("app"))
            .mount(Mount::scratch("/out"))
            .mount(Mount::bind("/work", &src))
            .mount(
                Mount::cache("/root/.cache", "go")
                    .sharing(CacheSharing::Private)
                    .from(&go_cache_base),
            )
            .mount(Mount::tmpfs("/tmp").size(1 << 20))
            .mount(Mount::bind("/discard", &base()).no_output())
            .mount(Mount::bind("/cc", &src).content_cache(ContentCache::On)),
    );
    // Go (marshaled with llb.LinuxAmd64):
    //   src := llb.Local("context"); goBase := llb.Image("golang:1.24")
    //   e := llb.Image("alpine").Run(llb.Args([]string{"/bin/sh", "-c", "build"}),
    //     llb.AddMount("/src", src, llb.Readonly, llb.SourcePath("app")),
    //     llb.AddMount("/out", llb.Scratch()),
    //     llb.AddMount("/work", src),
    //     llb.AddMount("/root/.cache", goBase, llb.AsPersistentCacheDir("go", llb.CacheMountPrivate)),
    //     llb.AddMount("/tmp", llb.Scratch(), llb.Tmpfs(llb.TmpfsSize(1<<20))),
    //     llb.AddMount("/discard", llb.Image("alpine"), llb.ForceNoOutput),
    //     llb.AddMount("/cc", src, llb.ContentCache(llb.MountContentCacheOn)))
    //   e.GetMount("/out")
    // - digest / input digests: sha256 of the op bytes, checked against the daemon separately.
    //   alpine a7f9733e… and golang:1.24 114d1f0c… re-derived by hand (layout of the Go fixture
    //   image_run.pb). The local input 6051f8dd… is kiln's local source WITHOUT local.unique: Go
    //   adds local.unique=<random id> there (see the local_default golden), so Go's input digest
    //   (and therefore this exec's) would differ.
    // - mount order "/", "/cc", "/discard", "/out", "/root/.cache", "/src", "/tmp", "/work": sorted
    //   by target with strings.Compare — exec.go (*ExecOp).Marshal (slices.SortFunc).
    // - inputs deduplicated with Input.EqualVT, in mount order — exec.go (*ExecOp).Marshal: alpine 0
    //   ("/" and the second llb.Image("alpine") on "/discard": same digest), local 1 ("/cc", "/src",
    //   "/work"), golang 2. Scratch sources ("/out", "/tmp") get input -1 (pb.Empty).
    // - output: a counter over mounts that are not noOutput/readonly/cache/tmpfs — exec.go
    //   (*ExecOp).Marshal and getMountIndexFn: "/" 0, "/cc" 1, "/out" 2, "/work" 3; the others -1
    //   (pb.SkipOutput).
    // - cache mount: type cache, CacheOpt{ID "go", Sharing PRIVATE} — exec.go (*ExecOp).Marshal.
    // - tmpfs: type tmpfs, TmpfsOpt{Size 1048576}; content_cache ON only on "/cc" (DEFAULT = 0
    //   elsewhere, omitted); selector "app" + readonly on "/src" — exec.go (*ExecOp).Marshal.
    // - caps, all from exec.go (*ExecOp).Marshal: exec.meta.base (always); exec.mount.bind (a mount
    //   with a source); exec.mount.cache + exec.mount.cache.sharing (both whenever cacheID != "");
    //   exec.mount.cache.content (contentCache != default); exec.mount.selector (selector != "");
    //   exec.mount.tmpfs + exec.mount.tmpfs.size (tmpfs, size > 0).
    // - cwd "/": NewState sets Dir("/") — state.go NewState.
    // - DIFFERS FROM GO: env ["PATH=…"]; Go without daemon caps writes no env at all (exec.go
    //   (*ExecOp).Marshal, `if c.Caps != nil`) — same issue as exec_basic.
    // - platform linux/amd64 from the marshal constraints — marshal.go MarshalConstraints.
    golden(
        "exec_mounts",
        &head(&e.get_mount("/out")),
        r#"
{
  "digest": "sha256:e1b8d6d5d61cbc5e28088a7829a2160d9ac037d77b5372f242c44b0ae9a0d341",
  "inputs": [
    {
      "digest": "sha256:a7f9733e307dd352c82d43053b783dd17bb2ec2c36214908ce393e41545c8b51",
      "index": 0
    },
    {
      "digest": "sha256:6051f8ddb6bb186934458c24d3f25ea67f0bb779ba6d7a93533168cb80387115",
      "index": 0
    },
    {
      "digest": "sha256:114d1f0c16923ab7b8bd71d01d507e7c37761b639167bf48890ea316b50fe692",
      "index": 0
    }
  ],
  "metadata": {
    "caps": [
      "exec.meta.base",
      "exec.mount.bind",
      "exec.mount.cache",
      "exec.mount.cache.content",
      "exec.mount.cache.sharing",
      "exec.mount.selector",
      "exec.mount.tmpfs",
      "exec.mount.tmpfs.size"
    ]
  },
  "op": {
    "kind": "exec",
    "meta": {
      "args": [
        "/bin/sh",
        "-c",
        "build"
      ],
      "cwd": "/",
      "env": [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
      ],
      "remove_mount_stubs_recursive": true
    },
    "mounts": [
      {
        "dest": "/",
        "input": 0,
        "output": 0,
        "type": "bind"
      },
      {
        "content_cache": "on",
        "dest": "/cc",
        "input": 1,
        "output": 1,
        "type": "bind"
      },
      {
        "dest": "/discard",
        "input": 0,
        "output": -1,
        "type": "bind"
      },
      {
        "dest": "/out",
        "input": -1,
        "output": 2,
        "type": "bind"
      },
      {
        "cache": {
          "id": "go",
          "sharing": "private"
        },
        "dest": "/root/.cache",
        "input": 2,
        "output": -1,
        "type": "cache"
      },
      {
        "dest": "/src",
        "input": 1,
        "output": -1,
        "readonly": true,
        "selector": "app",
        "type": "bind"
      },
      {
        "dest": "/tmp",
        "input": -1,
        "output": -1,
        "tmpfs": {
          "size": 1048576
        },
        "type": "tmpfs"
      },
      {
        "dest": "/work",
        "input": 1,
        "output": 3,
        "type": "bind"
      }
    ]
  },
  "platform": {
    "architecture": "amd64",
    "os": "linux"
  },
  "worker_constraints": []
}
    "#,
    );

    // Outputs: sorted by target, counting only writable bind mounts.
    let index = |t: &str| head(&e.get_mount(t));
    let out = index("/out");
    let digest = out["digest"].clone();
    let def = e.get_mount("/work").marshal(&amd64()).expect("marshal");
    assert_eq!(def.head().expect("head").map(|h| h.1), Some(3)); // "/", "/cc", "/out", "/work"
    assert_eq!(
        dump::to_json(&def)["head"]["digest"],
        digest,
        "every output names the same exec"
    );
    // A read-only mount's state is its source.
    assert_eq!(index("/src")["op"]["identifier"], "local://context");
    for (t, kind) in [
        ("/tmp", "tmpfs"),
        ("/root/.cache", "cache"),
        ("/discard", "no-output"),
    ] {
        let err = e.get_mount(t).marshal(&amd64()).expect_err("no output");
        assert!(
            matches!(&err, LlbError::MountHasNoOutput { target, kind: k } if target == t && *k == kind),
            "{err}"
        );
    }
    let err = e.get_mount("/nope").marshal(&amd64()).expect_err("unknown");
    assert!(matches!(err, LlbError::NoSuchMount { .. }));
    // The root output is index 0 and has the state's metadata.
    assert_eq!(head(&e.root())["op"]["kind"], "exec");
}

#[test]
fn exec_secrets_and_ssh() {
    let st = base().run(
        ExecOptions::shell("npm ci")
            .secret(
                SecretMount::file("npmrc", "/root/.npmrc")
                    .uid(1)
                    .gid(2)
                    .mode(0o440)
                    .optional(),
            )
            .secret(SecretMount::env("token", "NPM_TOKEN"))
            .secret(SecretMount::file("both", "/run/both").also_env("BOTH"))
            .ssh(SshMount::new())
            .ssh(
                SshMount::new()
                    .id("deploy")
                    .target("/run/deploy.sock")
                    .optional(),
            ),
    );
    // Go (marshaled with llb.LinuxAmd64):
    //   llb.Image("alpine").Run(llb.Args([]string{"/bin/sh", "-c", "npm ci"}),
    //     llb.AddSecret("/root/.npmrc", llb.SecretID("npmrc"), llb.SecretFileOpt(1, 2, 0440), llb.SecretOptional),
    //     llb.AddSecretWithDest("token", nil, llb.SecretAsEnvName("NPM_TOKEN")),
    //     llb.AddSecret("/run/both", llb.SecretID("both"), llb.SecretAsEnvName("BOTH")),
    //     llb.AddSSHSocket(),
    //     llb.AddSSHSocket(llb.SSHID("deploy"), llb.SSHSocketTarget("/run/deploy.sock"), llb.SSHOptional))
    // - digest / input digest: sha256 of the op bytes, checked against the daemon separately.
    // - secret mounts come after the sorted regular mounts, in secret order, then SSH mounts in
    //   order — exec.go (*ExecOp).Marshal (loops over e.secrets, then e.ssh, after peo.Mounts).
    // - secret/ssh mounts: input -1 (pb.Empty), output 0 (Output never set), type secret/ssh.
    // - secret mode default 0400 ("400") — exec.go AddSecret/AddSecretWithDest; uid/gid 0 unless
    //   SecretFileOpt; "npmrc" 0440/1/2/optional from SecretFileOpt + SecretOptional.
    // - secretenv in secret order (token, both), optional false omitted — exec.go (*ExecOp).Marshal.
    // - ssh: mode default 0600 ("600") — exec.go AddSSHSocket; empty target becomes
    //   "/run/buildkit/ssh_agent.<index>" (index 0) and SSH_AUTH_SOCK is set to the first target
    //   when unset — exec.go (*ExecOp).Marshal, before the PATH default (so it comes first).
    // - caps: exec.meta.base, exec.mount.bind (root), exec.mount.secret (any secret),
    //   exec.secretenv (a secret with Env), exec.mount.ssh (any ssh) — exec.go (*ExecOp).Marshal.
    // - DIFFERS FROM GO: "PATH=…" in env; Go without daemon caps writes only SSH_AUTH_SOCK (same
    //   issue as exec_basic).
    // - platform linux/amd64 from the marshal constraints — marshal.go MarshalConstraints.
    golden(
        "exec_secrets_ssh",
        &head(&st),
        r#"
{
  "digest": "sha256:db58136e99dc78239eee27c74df132a9b08efe9f962bb76406c24c493eb207ec",
  "inputs": [
    {
      "digest": "sha256:a7f9733e307dd352c82d43053b783dd17bb2ec2c36214908ce393e41545c8b51",
      "index": 0
    }
  ],
  "metadata": {
    "caps": [
      "exec.meta.base",
      "exec.mount.bind",
      "exec.mount.secret",
      "exec.mount.ssh",
      "exec.secretenv"
    ]
  },
  "op": {
    "kind": "exec",
    "meta": {
      "args": [
        "/bin/sh",
        "-c",
        "npm ci"
      ],
      "cwd": "/",
      "env": [
        "SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
      ],
      "remove_mount_stubs_recursive": true
    },
    "mounts": [
      {
        "dest": "/",
        "input": 0,
        "output": 0,
        "type": "bind"
      },
      {
        "dest": "/root/.npmrc",
        "input": -1,
        "output": 0,
        "secret": {
          "gid": 2,
          "id": "npmrc",
          "mode": "440",
          "optional": true,
          "uid": 1
        },
        "type": "secret"
      },
      {
        "dest": "/run/both",
        "input": -1,
        "output": 0,
        "secret": {
          "gid": 0,
          "id": "both",
          "mode": "400",
          "optional": false,
          "uid": 0
        },
        "type": "secret"
      },
      {
        "dest": "/run/buildkit/ssh_agent.0",
        "input": -1,
        "output": 0,
        "ssh": {
          "gid": 0,
          "id": "",
          "mode": "600",
          "optional": false,
          "uid": 0
        },
        "type": "ssh"
      },
      {
        "dest": "/run/deploy.sock",
        "input": -1,
        "output": 0,
        "ssh": {
          "gid": 0,
          "id": "deploy",
          "mode": "600",
          "optional": true,
          "uid": 0
        },
        "type": "ssh"
      }
    ],
    "secretenv": [
      {
        "id": "token",
        "name": "NPM_TOKEN"
      },
      {
        "id": "both",
        "name": "BOTH"
      }
    ]
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
fn exec_meta_options_and_caps() {
    let st = base()
        .add_extra_host("db", IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)))
        .run(
            ExecOptions::shell("true")
                .network(NetMode::Host)
                .security(SecurityMode::Insecure)
                .valid_exit_codes([0, 1])
                .proxy_env(ProxyEnv {
                    http_proxy: "http://proxy:3128".into(),
                    ..Default::default()
                })
                .add_ulimit("nofile", 1024, 4096)
                .cgroup_parent("kiln")
                .add_extra_host("cache", "::1".parse().expect("ip"))
                .ignore_cache()
                .custom_name("privileged step"),
        );
    // Go (marshaled with llb.LinuxAmd64):
    //   llb.Image("alpine").AddExtraHost("db", net.ParseIP("10.0.0.2")).Run(
    //     llb.Args([]string{"/bin/sh", "-c", "true"}),
    //     llb.Network(llb.NetModeHost), llb.Security(llb.SecurityModeInsecure),
    //     llb.ValidExitCodes(0, 1), llb.WithProxy(llb.ProxyEnv{HTTPProxy: "http://proxy:3128"}),
    //     llb.AddUlimit(llb.UlimitNofile, 1024, 4096), llb.WithCgroupParent("kiln"),
    //     llb.AddExtraHost("cache", net.ParseIP("::1")),
    //     llb.IgnoreCache, llb.WithCustomName("privileged step"))
    // - digest / input digest: sha256 of the op bytes, checked against the daemon separately.
    // - caps, all from exec.go (*ExecOp).Marshal: exec.meta.base; exec.meta.network (network !=
    //   sandbox); exec.meta.security (security != sandbox); exec.meta.proxyenv (proxyEnv != nil);
    //   exec.meta.ulimit (any ulimit); exec.validexitcode (codes != nil); exec.mount.bind (root).
    //   No cap for cgroup_parent or extra hosts: Go adds none (exec.meta.cgroup.parent exists in
    //   caps.go but the client never sets it).
    // - ignore_cache / description{"llb.customname"}: constraints options given to Run land in the
    //   exec's constraints — state.go IgnoreCache, WithCustomName; exec.go NewExecOp.
    // - extra_hosts in insertion order, ip as net.IP.String() — meta.go extraHost; exec.go
    //   (*ExecOp).Marshal.
    // - proxy_env: all five fields present (empty strings) because the message is set — exec.go
    //   (*ExecOp).Marshal.
    // - network "HOST", security "INSECURE": pb.NetMode / pb.SecurityMode names.
    // - DIFFERS FROM GO: env ["PATH=…"]; Go without daemon caps writes no env (same issue as
    //   exec_basic).
    // - platform linux/amd64 from the marshal constraints — marshal.go MarshalConstraints.
    golden(
        "exec_meta",
        &head(&st),
        r#"
{
  "digest": "sha256:59279b64a1dca89fc1cb139938a9c9ada32dca8562fe0b894fb61ea51393a861",
  "inputs": [
    {
      "digest": "sha256:a7f9733e307dd352c82d43053b783dd17bb2ec2c36214908ce393e41545c8b51",
      "index": 0
    }
  ],
  "metadata": {
    "caps": [
      "exec.meta.base",
      "exec.meta.network",
      "exec.meta.proxyenv",
      "exec.meta.security",
      "exec.meta.ulimit",
      "exec.mount.bind",
      "exec.validexitcode"
    ],
    "description": {
      "llb.customname": "privileged step"
    },
    "ignore_cache": true
  },
  "op": {
    "kind": "exec",
    "meta": {
      "args": [
        "/bin/sh",
        "-c",
        "true"
      ],
      "cgroup_parent": "kiln",
      "cwd": "/",
      "env": [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
      ],
      "extra_hosts": [
        {
          "host": "db",
          "ip": "10.0.0.2"
        },
        {
          "host": "cache",
          "ip": "::1"
        }
      ],
      "proxy_env": {
        "all": "",
        "ftp": "",
        "http": "http://proxy:3128",
        "https": "",
        "no": ""
      },
      "remove_mount_stubs_recursive": true,
      "ulimit": [
        {
          "hard": 4096,
          "name": "nofile",
          "soft": 1024
        }
      ],
      "valid_exit_codes": [
        0,
        1
      ]
    },
    "mounts": [
      {
        "dest": "/",
        "input": 0,
        "output": 0,
        "type": "bind"
      }
    ],
    "network": "HOST",
    "security": "INSECURE"
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
fn exec_network_none() {
    let h = head(
        &base()
            .network(NetMode::None)
            .run(ExecOptions::shell("true")),
    );
    assert_eq!(h["op"]["network"], "NONE");
}

#[test]
fn default_path_follows_daemon_caps() {
    let st = base().run(ExecOptions::shell("true"));
    // Without daemon caps kiln writes the default PATH (Go writes nothing
    // and lets the daemon add it, which rewrites the op).
    let h = head(&st);
    assert_eq!(
        h["op"]["meta"]["env"],
        json!([format!("PATH={DEFAULT_PATH_UNIX}")])
    );
    // A daemon without exec.meta.setsdefaultpath: the client sets PATH.
    let old = amd64().daemon_caps(["exec.meta.base"]);
    let h = head_with(&st, &old);
    assert_eq!(
        h["op"]["meta"]["env"],
        json!([format!("PATH={DEFAULT_PATH_UNIX}")])
    );
    // A daemon with it: the op declares the cap and leaves PATH alone.
    let new = amd64().daemon_caps(["exec.meta.setsdefaultpath"]);
    let h = head_with(&st, &new);
    assert!(h["op"]["meta"].get("env").is_none());
    assert!(h["metadata"]["caps"]
        .as_array()
        .expect("caps")
        .contains(&json!("exec.meta.setsdefaultpath")));
    // An explicit PATH is kept.
    let h = head_with(
        &base()
            .add_env("PATH", "/bin")
            .run(ExecOptions::shell("true")),
        &old,
    );
    assert_eq!(h["op"]["meta"]["env"], json!(["PATH=/bin"]));
}

#[test]
fn exec_platform_precedence() {
    let arm = Platform::parse("linux/arm64").expect("platform");
    // Marshal default.
    assert_eq!(
        head(&base().run(ExecOptions::shell("x")))["platform"]["architecture"],
        "amd64"
    );
    // The state's platform.
    let h = head(&base().platform(arm.clone()).run(ExecOptions::shell("x")));
    assert_eq!(h["platform"]["architecture"], "arm64");
    // An image with an explicit platform passes it on to execs on it.
    let img = image_with("alpine", ImageOptions::new().platform(arm.clone())).expect("valid");
    assert_eq!(
        head(&img.run(ExecOptions::shell("x")))["platform"]["architecture"],
        "arm64"
    );
    // The exec's own platform wins, and states built on it inherit it.
    let e =
        base().run(ExecOptions::shell("x").platform(Platform::parse("linux/arm/v7").expect("p")));
    let h = head(&e);
    assert_eq!(
        h["platform"],
        json!({"os": "linux", "architecture": "arm", "variant": "v7"})
    );
    assert_eq!(
        e.get_platform().map(ToString::to_string).as_deref(),
        Some("linux/arm/v7")
    );
}

#[test]
fn readonly_rootfs_root_is_the_input() {
    let e = base().run(
        ExecOptions::shell("x")
            .readonly_rootfs()
            .mount(Mount::scratch("/out")),
    );
    assert_eq!(head(&e.root())["op"]["kind"], "source");
    let h = head(&e.get_mount("/out"));
    assert_eq!(h["op"]["mounts"][0]["readonly"], true);
    assert_eq!(h["op"]["mounts"][0]["output"], -1);
    assert_eq!(h["op"]["mounts"][1]["output"], 0);
}

#[test]
fn exec_on_scratch_has_no_input() {
    let h = head(&scratch().run(ExecOptions::new(["/bin/true"])).root());
    assert!(h.get("inputs").is_none());
    assert_eq!(h["op"]["mounts"][0]["input"], -1);
    assert_eq!(h["metadata"]["caps"], json!(["exec.meta.base"]));
}

#[test]
fn structural_errors_are_typed() {
    let err = base()
        .run(ExecOptions::default())
        .marshal(&amd64())
        .expect_err("no args");
    assert!(
        matches!(
            err,
            LlbError::EmptyField {
                op: OpKind::Exec,
                field: "args"
            }
        ),
        "{err}"
    );
    let err = base()
        .run(ExecOptions::shell("x").mount(Mount::scratch("out")))
        .marshal(&amd64())
        .expect_err("relative");
    assert!(
        matches!(&err, LlbError::NotAbsolute { path, .. } if path == "out"),
        "{err}"
    );
    let err = base()
        .run(
            ExecOptions::shell("x")
                .mount(Mount::scratch("/o"))
                .mount(Mount::tmpfs("/o")),
        )
        .marshal(&amd64())
        .expect_err("duplicate");
    assert!(matches!(err, LlbError::DuplicateMount { .. }), "{err}");
    let err = base()
        .run(ExecOptions::shell("x").secret(SecretMount::file("", "/s")))
        .marshal(&amd64())
        .expect_err("secret id");
    assert!(
        matches!(
            err,
            LlbError::EmptyField {
                field: "secret id",
                ..
            }
        ),
        "{err}"
    );
    // An error in an input surfaces through its users.
    let bad = local("");
    let err = base()
        .run(ExecOptions::shell("x").add_mount("/in", &bad))
        .marshal(&amd64())
        .expect_err("bad input");
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
fn cache_mount_with_empty_id_uses_the_target() {
    let h = head(
        &base()
            .run(ExecOptions::shell("x").mount(Mount::cache("/c", "")))
            .root(),
    );
    assert_eq!(h["op"]["mounts"][1]["cache"]["id"], "/c");
}
