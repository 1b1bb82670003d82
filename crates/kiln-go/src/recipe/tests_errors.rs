//! Every validation error, named by field.

use kiln_image::{ImageRef, Platform};

use super::tests::{input, KEY};
use super::*;

fn plan_with(f: impl FnOnce(&mut RecipeInput)) -> Result<Recipe, RecipeError> {
    let mut i = input();
    f(&mut i);
    plan(&i)
}

fn err(f: impl FnOnce(&mut RecipeInput)) -> RecipeError {
    match plan_with(f) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn mains() {
    assert!(matches!(
        err(|i| i.options.mains.clear()),
        RecipeError::NoMains
    ));
    for (main, problem) in [
        ("", MainProblem::Empty),
        ("/abs/cmd", MainProblem::Absolute),
        ("../x", MainProblem::Escapes),
        ("./cmd/../../x", MainProblem::Escapes),
        ("./cmd/...", MainProblem::Pattern),
        ("cmd\\app", MainProblem::Characters),
        ("cmd/my app", MainProblem::Characters),
    ] {
        let e = err(|i| i.options.mains = vec![main.into()]);
        assert!(
            matches!(&e, RecipeError::InvalidMain { main: m, problem: p } if m == main && *p == problem),
            "{main:?}: {e}"
        );
    }
    // "." needs a module name; "-x" is not a file name.
    let e = err(|i| {
        i.options.mains = vec![".".into()];
        i.options.module_name = String::new();
    });
    assert!(matches!(e, RecipeError::InvalidBinaryName { .. }), "{e}");
    let e = err(|i| i.options.mains = vec!["./-x".into()]);
    assert!(
        matches!(e, RecipeError::InvalidBinaryName { ref name, .. } if name == "-x"),
        "{e}"
    );
    let e = err(|i| i.options.mains = vec!["./cmd/app".into(), "./tools/app".into()]);
    assert!(
        matches!(&e, RecipeError::DuplicateBinary { name, first, second }
            if name == "app" && first == "./cmd/app" && second == "./tools/app"),
        "{e}"
    );
    assert!(e.to_string().contains("./tools/app"));
}

#[test]
fn binary_names_follow_go() {
    use super::validate::main_package;
    let name = |main: &str, module: &str| main_package(main, module).map(|p| (p.arg, p.name));
    let ok = |main: &str, module: &str, arg: &str, bin: &str| {
        assert_eq!(
            name(main, module).expect("valid"),
            (arg.to_string(), bin.to_string()),
            "{main}"
        );
    };
    ok(".", "example.com/shop", ".", "shop");
    ok("./", "shop", ".", "shop");
    ok(".", "example.com/shop/v2", ".", "shop");
    ok("cmd/api", "m", "./cmd/api", "api");
    ok("./cmd/api/v3", "m", "./cmd/api/v3", "api");
    ok("./cmd/v1", "m", "./cmd/v1", "v1");
    ok("./cmd/x/../y", "m", "./cmd/y", "y");
}

#[test]
fn platforms() {
    let e = err(|i| i.target = Platform::parse("windows/amd64").expect("platform"));
    assert!(
        matches!(&e, RecipeError::UnsupportedOs { field: "target", platform } if platform == "windows/amd64"),
        "{e}"
    );
    let e = err(|i| i.build_platform = Platform::parse("darwin/arm64").expect("platform"));
    assert!(
        matches!(
            e,
            RecipeError::UnsupportedOs {
                field: "build-platform",
                ..
            }
        ),
        "{e}"
    );
    let e = err(|i| i.target = Platform::parse("linux/sparc64").expect("platform"));
    assert!(
        matches!(e, RecipeError::UnsupportedArch { variant: None, .. }),
        "{e}"
    );
    let e = err(|i| i.target = Platform::parse("linux/arm/v8").expect("platform"));
    assert!(
        matches!(&e, RecipeError::UnsupportedArch { variant: Some(v), .. } if v == "v8"),
        "{e}"
    );
    for ok in [
        "linux/amd64/v3",
        "linux/arm/v6",
        "linux/arm64/v8.2",
        "linux/riscv64",
        "linux/s390x",
    ] {
        let p = Platform::parse(ok).expect("platform");
        assert!(plan_with(|i| i.target = p).is_ok(), "{ok}");
    }
    let e = err(|i| i.options.cgo = true);
    assert!(matches!(e, RecipeError::CgoCrossCompile { .. }), "{e}");
}

#[test]
fn ssh_and_known_hosts() {
    let line = format!("github.com ssh-ed25519 {KEY}");
    let e = err(|i| i.options.known_hosts = vec![line.clone()]);
    assert!(matches!(e, RecipeError::KnownHostsUnmatched { .. }), "{e}");
    let e = err(|i| {
        i.options.ssh = vec!["default".into()];
        i.options.git_ssh_hosts = vec!["gitlab.com".into()];
        i.options.known_hosts = vec![line.clone()];
    });
    assert!(
        matches!(&e, RecipeError::KnownHostsUnmatched { line: l, hosts } if *l == line && hosts == "gitlab.com"),
        "{e}"
    );
    let e = err(|i| {
        i.options.ssh = vec!["default".into()];
        i.options.git_ssh_hosts = vec!["github.com".into()];
    });
    assert!(matches!(e, RecipeError::KnownHostsMissing { .. }), "{e}");
    let e = err(|i| {
        i.options.git_ssh_hosts = vec!["github.com".into()];
        i.options.known_hosts = vec![line.clone()];
    });
    assert!(matches!(e, RecipeError::SshHostsWithoutAgent { .. }), "{e}");
    let e = err(|i| {
        i.options.ssh = vec!["default".into()];
        i.options.git_ssh_hosts = vec!["github.com".into(), "GitHub.com:22".into()];
    });
    assert!(
        matches!(
            e,
            RecipeError::Duplicate {
                field: "git-ssh-hosts",
                ..
            }
        ),
        "{e}"
    );
    let e = err(|i| i.options.git_ssh_hosts = vec!["github.com; rm -rf /".into()]);
    assert!(
        matches!(
            e,
            RecipeError::Invalid {
                field: "git-ssh-hosts",
                ..
            }
        ),
        "{e}"
    );
    let e = err(|i| i.options.ssh = vec!["default".into(), "default".into()]);
    assert!(
        matches!(e, RecipeError::Duplicate { field: "ssh", .. }),
        "{e}"
    );
    let e = err(|i| i.options.ssh = vec![String::new()]);
    assert!(
        matches!(e, RecipeError::Invalid { field: "ssh", .. }),
        "{e}"
    );
}

#[test]
fn ids_names_and_packages() {
    let e = err(|i| i.options.goenv_secret = Some(String::new()));
    assert!(
        matches!(
            e,
            RecipeError::Invalid {
                field: "goenv-secret",
                ..
            }
        ),
        "{e}"
    );
    let e = err(|i| i.options.proxy_env_secrets = vec!["HTTP-PROXY".into()]);
    assert!(
        matches!(
            e,
            RecipeError::Invalid {
                field: "proxy-env-secrets",
                ..
            }
        ),
        "{e}"
    );
    let e = err(|i| i.options.proxy_env_secrets = vec!["HTTP_PROXY".into(), "HTTP_PROXY".into()]);
    assert!(
        matches!(
            e,
            RecipeError::Duplicate {
                field: "proxy-env-secrets",
                ..
            }
        ),
        "{e}"
    );
    for bad in ["Git", "git lfs", "x", "git;id", "git=", "git:", "$(id)"] {
        let e = err(|i| i.options.apt_packages = vec![bad.into()]);
        assert!(
            matches!(
                e,
                RecipeError::Invalid {
                    field: "apt-packages",
                    ..
                }
            ),
            "{bad}: {e}"
        );
    }
    for ok in ["git-lfs", "libc6:arm64", "g++", "curl=7.88.1-10+deb12u5"] {
        assert!(
            plan_with(|i| i.options.apt_packages = vec![ok.into()]).is_ok(),
            "{ok}"
        );
    }
    let e = err(|i| i.options.tags = vec!["a,b".into()]);
    assert!(
        matches!(e, RecipeError::Invalid { field: "tags", .. }),
        "{e}"
    );
    let e = err(|i| i.options.user = Some(String::new()));
    assert!(matches!(e, RecipeError::Empty { field: "user" }), "{e}");
    let e = err(|i| {
        i.options.labels.insert(String::new(), "x".into());
    });
    assert!(
        matches!(
            e,
            RecipeError::Invalid {
                field: "labels",
                ..
            }
        ),
        "{e}"
    );
    let e = err(|i| i.context_name = String::new());
    assert!(
        matches!(
            e,
            RecipeError::Empty {
                field: "context-name"
            }
        ),
        "{e}"
    );
    let e = err(|i| i.go_version = "latest".into());
    assert!(matches!(e, RecipeError::GoVersion(_)), "{e}");
    let e = err(|i| i.options.source_date_epoch = Some(u64::MAX));
    assert!(
        matches!(
            e,
            RecipeError::Invalid {
                field: "source-date-epoch",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn images() {
    let e = err(|i| {
        i.base.reference = ImageRef::parse("gcr.io/distroless/static-debian12").expect("ref");
    });
    assert!(matches!(e, RecipeError::BaseNotPinned { .. }), "{e}");
    let e = err(|i| i.base.config_json = b"{}".to_vec());
    assert!(
        matches!(
            e,
            RecipeError::ImageConfig {
                role: ImageRole::Base,
                ..
            }
        ),
        "{e}"
    );
    let e = err(|i| i.builder.config_json = b"not json".to_vec());
    assert!(
        matches!(
            e,
            RecipeError::ImageConfig {
                role: ImageRole::Builder,
                ..
            }
        ),
        "{e}"
    );
}
