//! Choosing the newest stable patch of the minor line go.mod asks for.

use super::GoVersion;

/// The releases that satisfy a `go.mod`, newest first, and notes on how the
/// `toolchain` line was used.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Candidates {
    /// Stable releases of the go directive's minor line at or above it,
    /// newest first (possibly headed by the `toolchain` version).
    pub versions: Vec<GoVersion>,
    /// What was done with the `toolchain` line, for the user.
    pub notes: Vec<String>,
}

/// Picks the releases that can build a module whose go directive is
/// `minimum` (`1.24`, `1.24.1` or `1.24rc2` all mean "a 1.24 release at or
/// above this"), from everything a source `listed` (any order, any
/// duplicates, pre-releases included).
///
/// A `toolchain` of the same minor line that is newer than every listed
/// release goes first (the list may lag behind a release the module's author
/// already uses); one of another minor line is ignored with a note, since
/// the go directive decides the line.
///
/// ```
/// use kiln_go::version::patch_candidates;
/// use kiln_go::GoVersion;
///
/// let listed: Vec<GoVersion> = ["1.24.2", "1.25rc1", "1.24.3", "1.24rc1", "1.23.9"]
///     .iter().map(|s| s.parse().unwrap()).collect();
/// let c = patch_candidates(&"1.24.1".parse()?, None, &listed);
/// assert_eq!(c.versions[0].to_string(), "1.24.3");
/// assert_eq!(c.versions.len(), 2);
/// # Ok::<(), kiln_go::VersionError>(())
/// ```
pub fn patch_candidates(
    minimum: &GoVersion,
    toolchain: Option<&GoVersion>,
    listed: &[GoVersion],
) -> Candidates {
    let line = minimum.minor_line();
    let mut versions: Vec<GoVersion> = listed
        .iter()
        .filter(|v| v.is_release() && v.minor_line() == line && *v >= minimum)
        .cloned()
        .collect();
    versions.sort_by(|a, b| b.cmp(a));
    versions.dedup();

    let mut notes = Vec::new();
    if let Some(t) = toolchain {
        if t.minor_line() != line {
            notes.push(format!(
                "go.mod's toolchain go{t} is for Go {}, not {line}: using the newest {line} patch",
                t.minor_line()
            ));
        } else if !t.is_release() {
            notes.push(format!(
                "go.mod's toolchain go{t} is not a stable release: ignoring it"
            ));
        } else if t >= minimum && versions.first().is_none_or(|newest| t > newest) {
            match versions.first() {
                Some(newest) => notes.push(format!(
                    "go.mod's toolchain go{t} is newer than the newest {line} release listed ({newest}): using it"
                )),
                None => notes.push(format!(
                    "no {line} release is listed; using go.mod's toolchain go{t}"
                )),
            }
            versions.insert(0, t.clone());
        }
    }
    Candidates { versions, notes }
}

/// The newest pre-release of `minimum`'s minor line in `listed`, for errors
/// ("no stable Go 1.26 release yet; newest pre-release: 1.26rc2").
///
/// ```
/// use kiln_go::version::newest_pre_release;
/// use kiln_go::GoVersion;
///
/// let listed: Vec<GoVersion> = ["1.26rc1", "1.26rc2", "1.25.3"]
///     .iter().map(|s| s.parse().unwrap()).collect();
/// assert_eq!(newest_pre_release(&"1.26".parse()?, &listed), Some("1.26rc2".parse()?));
/// assert_eq!(newest_pre_release(&"1.25".parse()?, &listed), None);
/// # Ok::<(), kiln_go::VersionError>(())
/// ```
pub fn newest_pre_release(minimum: &GoVersion, listed: &[GoVersion]) -> Option<GoVersion> {
    listed
        .iter()
        .filter(|v| v.is_pre_release() && v.minor_line() == minimum.minor_line())
        .max()
        .cloned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v(s: &str) -> GoVersion {
        s.parse().unwrap()
    }

    fn vs(list: &[&str]) -> Vec<GoVersion> {
        list.iter().map(|s| v(s)).collect()
    }

    fn names(c: &Candidates) -> Vec<String> {
        c.versions.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn duplicates_across_platforms_and_spellings_collapse() {
        let listed = vs(&["1.24.3", "1.24.3", "1.20", "1.20.0", "1.24.2", "1.24.3"]);
        assert_eq!(
            names(&patch_candidates(&v("1.24"), None, &listed)),
            ["1.24.3", "1.24.2"]
        );
        assert_eq!(
            patch_candidates(&v("1.20"), None, &listed).versions.len(),
            1
        );
    }

    #[test]
    fn toolchain_newer_than_the_list_of_the_same_minor_wins() {
        let listed = vs(&["1.24.7", "1.24.6", "1.25.1"]);
        let c = patch_candidates(&v("1.24.1"), Some(&v("1.24.9")), &listed);
        assert_eq!(names(&c), ["1.24.9", "1.24.7", "1.24.6"]);
        assert!(
            c.notes[0].contains("go1.24.9") && c.notes[0].contains("1.24.7"),
            "{:?}",
            c.notes
        );

        // Older than the newest listed: the list wins, silently.
        let c = patch_candidates(&v("1.24.1"), Some(&v("1.24.3")), &listed);
        assert_eq!(c.versions[0].to_string(), "1.24.7");
        assert!(c.notes.is_empty());

        // The only candidate when the list has none of that line.
        let c = patch_candidates(&v("1.24"), Some(&v("1.24.2")), &vs(&["1.23.4"]));
        assert_eq!(names(&c), ["1.24.2"]);
        assert_eq!(c.notes.len(), 1);
    }

    #[test]
    fn toolchain_of_another_minor_or_a_pre_release_is_ignored() {
        let listed = vs(&["1.24.7", "1.25.1", "1.25.2"]);
        let c = patch_candidates(&v("1.24.1"), Some(&v("1.25.2")), &listed);
        assert_eq!(c.versions[0].to_string(), "1.24.7");
        assert!(c.notes[0].contains("Go 1.25, not 1.24"), "{:?}", c.notes);

        let c = patch_candidates(&v("1.25rc1"), Some(&v("1.25rc2")), &listed);
        assert_eq!(c.versions[0].to_string(), "1.25.2");
        assert!(c.notes[0].contains("not a stable release"), "{:?}", c.notes);

        // A toolchain below the go directive cannot build the module.
        let c = patch_candidates(&v("1.24.5"), Some(&v("1.24.4")), &vs(&["1.24.3"]));
        assert!(c.versions.is_empty());
    }
}
