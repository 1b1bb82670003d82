//! `--secret` and `--ssh` values, parsed as buildx parses them.
//!
//! ```
//! use kiln_build::spec::{parse_secret, parse_ssh};
//! let s = parse_secret("id=npm,src=/home/me/.npmrc")?;
//! assert_eq!(s.id.as_str(), "npm");
//! let s = parse_ssh("gh=/run/agent.sock")?;
//! assert_eq!(s.id, "gh");
//! # Ok::<(), kiln_build::spec::SpecError>(())
//! ```

use std::path::PathBuf;

use kiln_client::kiln_proto::headers::SSH_DEFAULT_ID;
use kiln_client::kiln_session::{SecretId, SecretSpec, SshSpec};

use super::{csv, SpecError};

/// A `--secret` value: `id=ID[,src=PATH|,env=VAR][,type=file|env]`
/// (buildx's `util/buildflags/secrets.go`: CSV fields, keys case-insensitive,
/// `source` for `src`). Without `src` or `env` the source is decided when
/// the secret is served: the variable named like the id if set, else the file.
///
/// # Errors
/// [`SpecError`] naming the value and the problem.
pub fn parse_secret(spec: &str) -> Result<SecretSpec, SpecError> {
    let bad = |why: String| SpecError::new("--secret", spec, why);
    let mut typ = None;
    let (mut id, mut file, mut env) = (None, None, None);
    for field in csv::fields(spec).map_err(|e| bad(e.to_string()))? {
        let (key, value) = csv::key_value(&field)
            .ok_or_else(|| bad(format!("invalid field {field:?}: must be a key=value pair")))?;
        match key.to_ascii_lowercase().as_str() {
            "type" => match value {
                "file" | "env" => typ = Some(value.to_owned()),
                other => return Err(bad(format!("unsupported secret type {other:?}"))),
            },
            "id" => id = Some(value.to_owned()),
            "source" | "src" => file = Some(PathBuf::from(value)),
            "env" => env = Some(value.to_owned()),
            other => return Err(bad(format!("unexpected key {other:?} in {field:?}"))),
        }
    }
    if typ.as_deref() == Some("env") && env.is_none() {
        env = file.take().map(|p| p.to_string_lossy().into_owned());
    }
    let id = SecretId::new(id.unwrap_or_default()).map_err(|_| bad("missing id".to_owned()))?;
    Ok(SecretSpec { id, file, env })
}

/// An `--ssh` value: `ID[=PATH[,PATH…]]` (buildx); paths are agent sockets
/// or private key files, none means `$SSH_AUTH_SOCK`.
///
/// # Errors
/// [`SpecError`] for an empty path.
pub fn parse_ssh(spec: &str) -> Result<SshSpec, SpecError> {
    let (id, paths) = match spec.split_once('=') {
        Some((id, paths)) => {
            let fields =
                csv::fields(paths).map_err(|e| SpecError::new("--ssh", spec, e.to_string()))?;
            if fields.iter().any(String::is_empty) {
                return Err(SpecError::new(
                    "--ssh",
                    spec,
                    "an empty path (e.g. --ssh default=/path/to/agent.sock)",
                ));
            }
            (id, fields.into_iter().map(PathBuf::from).collect())
        }
        None => (spec, Vec::new()),
    };
    let id = if id.is_empty() { SSH_DEFAULT_ID } else { id };
    Ok(SshSpec {
        id: id.to_owned(),
        paths,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_buildx_forms() {
        let s = parse_secret("id=npm,src=/home/me/.npmrc").unwrap();
        assert_eq!(s.id.as_str(), "npm");
        assert_eq!(s.file, Some(PathBuf::from("/home/me/.npmrc")));
        assert_eq!(s.env, None);
        let s = parse_secret("id=tok,env=GITHUB_TOKEN").unwrap();
        assert_eq!(s.env.as_deref(), Some("GITHUB_TOKEN"));
        let s = parse_secret("type=env,id=tok,src=GITHUB_TOKEN").unwrap();
        assert_eq!((s.env.as_deref(), s.file), (Some("GITHUB_TOKEN"), None));
        let s = parse_secret("ID=x,Source=f").unwrap();
        assert_eq!((s.id.as_str(), s.file), ("x", Some(PathBuf::from("f"))));
        let s = parse_secret("\"id=a,b\",src=c").unwrap();
        assert_eq!(s.id.as_str(), "a,b");
        let s = parse_secret("id=only").unwrap();
        assert_eq!((s.file, s.env), (None, None));
    }

    #[test]
    fn bad_secrets_name_the_flag() {
        for bad in [
            "src=/x",
            "id=a,bogus=1",
            "id=a,type=ssh",
            "id",
            "id=a,\"src=b",
        ] {
            let e = parse_secret(bad).unwrap_err().to_string();
            assert!(e.starts_with("--secret"), "{bad}: {e}");
        }
    }

    #[test]
    fn ssh_in_buildx_forms() {
        let s = parse_ssh("default").unwrap();
        assert_eq!((s.id.as_str(), s.paths.len()), ("default", 0));
        let s = parse_ssh("gh=/run/agent.sock").unwrap();
        assert_eq!(s.paths, [PathBuf::from("/run/agent.sock")]);
        let s = parse_ssh("keys=/a/id_ed25519,/b/id_rsa").unwrap();
        assert_eq!(s.paths.len(), 2);
        let s = parse_ssh("=/x").unwrap();
        assert_eq!(s.id, "default");
        assert!(parse_ssh("x=/a,").is_err());
    }
}
