//! Checks of the options that do not need the graph: main packages and
//! binary names, platforms, ids, package names and build tags.

use std::collections::BTreeSet;

use kiln_image::Platform;

use super::error::{MainProblem, RecipeError};

/// One main package to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MainPackage {
    /// The entry of `mains` as given (for messages).
    pub given: String,
    /// The argument for `go build`: `.` or `./a/b`.
    pub arg: String,
    /// The binary's file name.
    pub name: String,
}

/// Cleans `main` to a `go build` argument and names its binary the way
/// `go build` would (`load.DefaultExecName`): the last element, skipping a
/// major-version element such as `v2`; `.` takes the module's name.
pub(crate) fn main_package(main: &str, module_name: &str) -> Result<MainPackage, RecipeError> {
    let invalid = |problem| RecipeError::InvalidMain {
        main: main.to_string(),
        problem,
    };
    if main.is_empty() {
        return Err(invalid(MainProblem::Empty));
    }
    if main
        .chars()
        .any(|c| c == '\\' || c.is_whitespace() || c.is_control())
    {
        return Err(invalid(MainProblem::Characters));
    }
    if main.starts_with('/') {
        return Err(invalid(MainProblem::Absolute));
    }
    if main.contains("...") {
        return Err(invalid(MainProblem::Pattern));
    }
    let mut elems: Vec<&str> = Vec::new();
    for part in main.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if elems.pop().is_none() {
                    return Err(invalid(MainProblem::Escapes));
                }
            }
            p => elems.push(p),
        }
    }
    let (arg, name) = if elems.is_empty() {
        let module: Vec<&str> = module_name.split('/').filter(|e| !e.is_empty()).collect();
        (".".to_string(), exec_name(&module))
    } else {
        (format!("./{}", elems.join("/")), exec_name(&elems))
    };
    if !is_file_name(&name) {
        return Err(RecipeError::InvalidBinaryName {
            main: main.to_string(),
            name,
        });
    }
    Ok(MainPackage {
        given: main.to_string(),
        arg,
        name,
    })
}

/// Go's `DefaultExecName` on path elements: `a/b/v2` → `b`.
fn exec_name(elems: &[&str]) -> String {
    match elems {
        [] => String::new(),
        [.., prev, last] if is_major_version(last) => (*prev).to_string(),
        [.., last] => (*last).to_string(),
    }
}

/// `v2`, `v3`, …: a module major-version suffix (Go's `isVersionElement`).
fn is_major_version(elem: &str) -> bool {
    match elem.strip_prefix('v') {
        Some(n) => {
            !n.is_empty()
                && !n.starts_with('0')
                && n.bytes().all(|b| b.is_ascii_digit())
                && n != "1"
        }
        None => false,
    }
}

/// A plain file name: `[A-Za-z0-9._-]+`, not starting with `.` or `-`.
fn is_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// All mains, with unique binary names.
pub(crate) fn main_packages(
    mains: &[String],
    module_name: &str,
) -> Result<Vec<MainPackage>, RecipeError> {
    if mains.is_empty() {
        return Err(RecipeError::NoMains);
    }
    let mut out: Vec<MainPackage> = Vec::with_capacity(mains.len());
    for m in mains {
        let pkg = main_package(m, module_name)?;
        if let Some(first) = out.iter().find(|p| p.name == pkg.name) {
            return Err(RecipeError::DuplicateBinary {
                name: pkg.name,
                first: first.given.clone(),
                second: pkg.given,
            });
        }
        out.push(pkg);
    }
    Ok(out)
}

/// The Linux `GOARCH` values of `go tool dist list`.
const LINUX_GOARCH: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64",
    "ppc64le", "riscv64", "s390x",
];

/// A Linux platform Go can build for, with a variant Go understands.
pub(crate) fn check_platform(field: &'static str, p: &Platform) -> Result<(), RecipeError> {
    if p.os != "linux" {
        return Err(RecipeError::UnsupportedOs {
            field,
            platform: p.to_string(),
        });
    }
    let unsupported = |variant: Option<&str>| RecipeError::UnsupportedArch {
        field,
        platform: p.to_string(),
        variant: variant.map(str::to_string),
    };
    if !LINUX_GOARCH.contains(&p.architecture.as_str()) {
        return Err(unsupported(None));
    }
    let Some(variant) = p.variant.as_deref() else {
        return Ok(());
    };
    let ok = match p.architecture.as_str() {
        "arm" => matches!(variant, "v5" | "v6" | "v7"),
        "amd64" => matches!(variant, "v2" | "v3" | "v4"),
        // GOARM64 = v8.0 … v8.9, v9.0 … v9.5 (platform variants v8.x, v9, v9.x).
        "arm64" => {
            let v = variant.strip_prefix('v').unwrap_or(variant);
            let (major, minor) = v.split_once('.').unwrap_or((v, "0"));
            let minor_ok = minor.len() == 1 && minor.bytes().all(|b| b.is_ascii_digit());
            minor_ok && (major == "8" || (major == "9" && minor <= "5"))
        }
        "riscv64" => matches!(variant, "rva20u64" | "rva22u64" | "rva23u64"),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(unsupported(Some(variant)))
    }
}

/// A non-empty id (secret or SSH agent) without white space or control
/// characters.
pub(crate) fn check_id(field: &'static str, id: &str) -> Result<(), RecipeError> {
    if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(RecipeError::Invalid {
            field,
            value: id.to_string(),
            expected: "a non-empty id without white space",
        });
    }
    Ok(())
}

/// Refuses a list that names the same entry twice.
pub(crate) fn check_unique(field: &'static str, values: &[String]) -> Result<(), RecipeError> {
    let mut seen = BTreeSet::new();
    for v in values {
        if !seen.insert(v.as_str()) {
            return Err(RecipeError::Duplicate {
                field,
                value: v.clone(),
            });
        }
    }
    Ok(())
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn check_env_name(field: &'static str, name: &str) -> Result<(), RecipeError> {
    let ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RecipeError::Invalid {
            field,
            value: name.to_string(),
            expected: "an environment variable name such as HTTPS_PROXY",
        })
    }
}

/// A Debian package, optionally with `:arch` and/or `=version` (Debian
/// policy §5.6.1 and §5.6.12), so it is safe in a shell command.
pub(crate) fn check_apt_package(pkg: &str) -> Result<(), RecipeError> {
    let invalid = || RecipeError::Invalid {
        field: "apt-packages",
        value: pkg.to_string(),
        expected: "a Debian package name such as git-lfs, optionally pkg:arch or pkg=version",
    };
    let (name_arch, version) = match pkg.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (pkg, None),
    };
    let (name, arch) = match name_arch.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (name_arch, None),
    };
    let name_ok = name.len() >= 2
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        });
    let arch_ok = arch.is_none_or(|a| {
        !a.is_empty()
            && a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    let version_ok = version.is_none_or(|v| {
        v.bytes().next().is_some_and(|b| b.is_ascii_digit())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'~' | b'-' | b':'))
    });
    if name_ok && arch_ok && version_ok {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// A Go build tag: letters, digits, `_` and `.` (`go help buildconstraint`).
pub(crate) fn check_tag(tag: &str) -> Result<(), RecipeError> {
    let ok = !tag.is_empty()
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(RecipeError::Invalid {
            field: "tags",
            value: tag.to_string(),
            expected: "a build tag of letters, digits, '_' and '.'",
        })
    }
}

/// Quotes `s` for `/bin/sh` (single quotes; `'` as `'\''`).
pub(crate) fn sh_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'=' | b'+')
        });
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `linux/arm/v7` → `linux-arm-v7`, for cache ids.
pub(crate) fn platform_slug(p: &Platform) -> String {
    p.to_string().replace('/', "-")
}
