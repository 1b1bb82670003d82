//! `.dockerignore` files (they come with the context being built) and the
//! include/exclude patterns of a file sync: never a panic and never a
//! match that takes long (libFuzzer's -timeout catches runaway
//! backtracking). Each line of the input is also a path to match.
#![no_main]

use kiln_session::filesync::{clean_path, parse_ignore_file, Filter, PatternMatcher};
use libfuzzer_sys::fuzz_target;

const PATHS: [&str; 6] = [
    "a",
    "a/b/c",
    ".git/config",
    "node_modules/pkg/index.js",
    "a/a/a/a/a/a/a/a/a/a/a/a/b",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
];

fuzz_target!(|data: &[u8]| {
    // As read_dockerignore reads the file.
    let text = String::from_utf8_lossy(data);
    let patterns = parse_ignore_file(&text);
    let paths: Vec<String> = text
        .lines()
        .map(clean_path)
        .chain(PATHS.iter().map(|p| p.to_string()))
        .collect();
    for p in &paths {
        assert_eq!(&clean_path(p), p, "clean_path is not idempotent");
    }
    if let Ok(pm) = PatternMatcher::new(&patterns) {
        for p in &paths {
            let _ = pm.matches_or_parent_matches(p);
        }
    }
    // The same lines as the include and exclude patterns of a sync.
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let root = std::path::Path::new("/nonexistent");
    if let Ok(f) = Filter::new(root, &lines, &[], &[]) {
        for p in &paths {
            let _ = f.allows(p);
        }
    }
    if let Ok(f) = Filter::new(root, &[], &lines, &[]) {
        for p in &paths {
            let _ = f.allows(p);
        }
    }
});
