//! Reading a module's `go.mod` from disk; kiln-go parses the text
//! ([`GoMod::parse`]).

use std::path::Path;

use kiln_go::GoMod;

use crate::error::BuildError;

/// Reads and parses `dir/go.mod`.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("go.mod"), "module example.com/app\ngo 1.24.1\n")?;
/// let go_mod = kiln_build::go_mod::read_dir(dir.path())?;
/// assert_eq!(go_mod.go.to_string(), "1.24.1");
/// assert_eq!(go_mod.path, dir.path().join("go.mod"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`BuildError::GoModNotFound`] if there is no `go.mod`,
/// [`BuildError::GoModRead`] if it cannot be read, and [`BuildError::Go`]
/// with the errors of [`GoMod::parse`].
pub fn read_dir(dir: &Path) -> Result<GoMod, BuildError> {
    let path = dir.join("go.mod");
    match std::fs::read(&path) {
        Ok(bytes) => Ok(GoMod::parse(&String::from_utf8_lossy(&bytes), &path)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BuildError::GoModNotFound {
            dir: dir.to_owned(),
        }),
        Err(source) => Err(BuildError::GoModRead { path, source }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn read_dir_reports_missing_and_reads_real_files() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_dir(dir.path()).unwrap_err();
        assert!(matches!(err, BuildError::GoModNotFound { .. }), "{err:?}");
        assert!(err.to_string().contains(&dir.path().display().to_string()));

        std::fs::write(dir.path().join("go.mod"), "module m\r\ngo 1.24.1\r\n").unwrap();
        let m = read_dir(dir.path()).unwrap();
        assert_eq!(m.go.to_string(), "1.24.1");
        assert_eq!(m.path, dir.path().join("go.mod"));

        // A directory named go.mod cannot be read.
        let odd = tempfile::tempdir().unwrap();
        std::fs::create_dir(odd.path().join("go.mod")).unwrap();
        let err = read_dir(odd.path()).unwrap_err();
        assert!(matches!(err, BuildError::GoModRead { .. }), "{err:?}");
    }
}
