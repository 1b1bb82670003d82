//! known_hosts files (`~/.ssh/known_hosts`, `--known-hosts`) and the SSH
//! hosts they are searched for. The first line of the input holds the
//! hosts (comma-separated, as `--git-ssh-host` values), the rest is the
//! file. Never a panic; the lines kiln picks for the hosts are ones the
//! recipe then accepts for them.
#![no_main]

#[path = "common/recipe.rs"]
mod recipe;

use kiln_go::recipe::select_known_hosts;
use kiln_go::{GoBuildOptions, RecipeError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (first, file) = s.split_once('\n').unwrap_or((s, ""));
    let hosts: Vec<String> = first
        .split(',')
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect();
    let Ok(lines) = select_known_hosts(file, &hosts) else {
        return;
    };
    let options = GoBuildOptions {
        module_name: "example.com/app".into(),
        ssh: vec!["default".into()],
        git_ssh_hosts: hosts.clone(),
        known_hosts: lines.clone(),
        ..GoBuildOptions::default()
    };
    match kiln_go::plan(&recipe::input(options)) {
        Ok(_) => {}
        // Two spellings of one host (`git.corp`, `git@git.corp:22`).
        Err(RecipeError::Duplicate {
            field: "git-ssh-hosts",
            ..
        }) => {}
        Err(e) => panic!("hosts {hosts:?}: lines {lines:?} were picked but refused: {e}"),
    }
});
