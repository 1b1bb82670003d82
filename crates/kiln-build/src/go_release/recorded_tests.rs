//! kiln-go's picking rules on the recorded answer of each source, read by
//! the parsers in `fetch`: what a real list yields, not a hand-made one.
#![allow(clippy::unwrap_used)]

use kiln_go::version::{newest_pre_release, patch_candidates, Candidates};
use kiln_go::GoVersion;

use super::fetch::{parse_godev, parse_ls_remote, parse_toolchain_list};

fn v(s: &str) -> GoVersion {
    s.parse().unwrap()
}

fn vs(list: &[&str]) -> Vec<GoVersion> {
    list.iter().map(|s| v(s)).collect()
}

fn names(c: &Candidates) -> Vec<String> {
    c.versions.iter().map(ToString::to_string).collect()
}

fn recorded_toolchains() -> Vec<GoVersion> {
    parse_toolchain_list(include_bytes!("../../testdata/toolchain-list.txt"))
}

#[test]
fn newest_patch_from_the_recorded_toolchain_list() {
    let listed = recorded_toolchains();
    for (go, newest, count) in [
        ("1.24.1", "1.24.7", 7),
        ("1.24", "1.24.7", 8),
        ("1.24.0", "1.24.7", 8),
        ("1.24rc1", "1.24.7", 8),
        ("1.24.7", "1.24.7", 1),
        ("1.21rc2", "1.21.13", 14),
        ("1.21", "1.21.13", 14),
        ("1.22.5", "1.22.12", 8),
        ("1.23.12", "1.23.12", 1),
        ("1.25.0", "1.25.1", 2),
        ("1.25rc2", "1.25.1", 2),
    ] {
        let c = patch_candidates(&v(go), None, &listed);
        assert_eq!(c.versions[0].to_string(), newest, "go {go}");
        assert_eq!(c.versions.len(), count, "go {go}: {:?}", names(&c));
        assert!(c.versions.iter().all(GoVersion::is_release), "go {go}");
        assert!(c.versions.windows(2).all(|w| w[0] > w[1]), "go {go}");
        assert!(c.notes.is_empty());
    }
}

#[test]
fn nothing_when_the_line_has_no_release_yet_or_go_mod_is_ahead() {
    let listed = recorded_toolchains();
    assert!(patch_candidates(&v("1.26"), None, &listed)
        .versions
        .is_empty());
    assert!(patch_candidates(&v("1.24.8"), None, &listed)
        .versions
        .is_empty());
    // 1.20 has no toolchain module: the proxy only lists go1.21rc2 and later.
    assert!(patch_candidates(&v("1.20"), None, &listed)
        .versions
        .is_empty());
    let listed = vs(&["1.26rc1", "1.26rc2", "1.25.3"]);
    assert!(patch_candidates(&v("1.26"), None, &listed)
        .versions
        .is_empty());
    assert_eq!(newest_pre_release(&v("1.26"), &listed), Some(v("1.26rc2")));
    assert_eq!(newest_pre_release(&v("1.25"), &listed), None);
}

#[test]
fn old_lines_from_git_and_godev_where_1_n_is_1_n_0() {
    let git = parse_ls_remote(include_bytes!("../../testdata/git-ls-remote.txt"));
    let godev = parse_godev(include_bytes!("../../testdata/godev.json")).unwrap();
    for listed in [&git, &godev] {
        let c = patch_candidates(&v("1.20"), None, listed);
        assert_eq!(c.versions[0].to_string(), "1.20.14");
        // `go1.20` is the 1.20.0 release and counts; 1.20rc1..3 do not.
        assert_eq!(c.versions.last().unwrap().to_string(), "1.20");
        assert_eq!(c.versions.len(), 15);
        let c = patch_candidates(&v("1.9"), None, listed);
        assert_eq!(names(&c).first().map(String::as_str), Some("1.9.7"));
        assert!(!names(&c).contains(&"1.9.2rc2".to_string()));
        assert!(!names(&c).contains(&"1.9beta1".to_string()));
        let c = patch_candidates(&v("1.24.1"), None, listed);
        assert_eq!(c.versions[0].to_string(), "1.24.7");
    }
    // `1.20.0` in go.mod means the same release as `1.20`.
    let c = patch_candidates(&v("1.20.0"), None, &git);
    assert_eq!(c.versions.len(), 15);
}
