//! The values of `-o`, `--secret`, `--ssh`, `--cache-from`, `--cache-to`,
//! `--attest`/`--provenance`/`--sbom` and `--local`/`--oci-layout`, as
//! kiln-build parses them (the CLI only hands the strings over). The first
//! byte picks the flag, the rest is its value. Never a panic; what parses
//! means the same when written back with buildx's CSV quoting.
#![no_main]

use std::path::PathBuf;

use kiln_build::outputs::daemon_output;
use kiln_build::session::parse_named_dir;
use kiln_build::spec::{csv, parse_secret, parse_ssh, AttestFlags, CacheSpec, OutputSpec};
use kiln_image::ImageRef;
use libfuzzer_sys::fuzz_target;

/// One CSV line of `fields`, every field quoted (Go's `encoding/csv` reads it back).
fn quoted(fields: &[String]) -> String {
    fields
        .iter()
        .map(|f| format!("\"{}\"", f.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(",")
}

fn path_str(p: &PathBuf) -> String {
    p.to_str().expect("parsed from a str").to_string()
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(v) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 8 {
        0 => {
            let Ok(o) = v.parse::<OutputSpec>() else {
                return;
            };
            let out = daemon_output(&o);
            assert_eq!(out.exporter.kind, o.exporter_type());
            // The names BuildKit gets are references it can parse.
            if let Some(names) = out.exporter.attrs.get("name") {
                for n in names.split(',') {
                    ImageRef::parse_normalized_named(n)
                        .unwrap_or_else(|e| panic!("{v:?}: name {n:?} sent to BuildKit: {e}"));
                }
            }
        }
        1 => {
            let Ok(s) = parse_secret(v) else {
                return;
            };
            assert!(!s.id.as_str().is_empty());
            let mut fields = vec![format!("id={}", s.id.as_str())];
            if let Some(f) = &s.file {
                fields.push(format!("src={}", path_str(f)));
            }
            if let Some(e) = &s.env {
                fields.push(format!("env={e}"));
            }
            let line = quoted(&fields);
            assert_eq!(parse_secret(&line).as_ref(), Ok(&s), "{v:?} → {line:?}");
        }
        2 => {
            let Ok(s) = parse_ssh(v) else {
                return;
            };
            assert!(!s.id.is_empty() && s.paths.iter().all(|p| !p.as_os_str().is_empty()));
            let line = if s.paths.is_empty() {
                s.id.clone()
            } else {
                let paths: Vec<String> = s.paths.iter().map(path_str).collect();
                format!("{}={}", s.id, quoted(&paths))
            };
            assert_eq!(parse_ssh(&line).as_ref(), Ok(&s), "{v:?} → {line:?}");
        }
        3 => {
            if let Ok(c) = CacheSpec::import(v) {
                assert!(!c.kind.as_str().is_empty());
            }
        }
        4 => {
            if let Ok(c) = CacheSpec::export(v) {
                assert!(!c.kind.as_str().is_empty());
            }
        }
        5 => {
            // `--attest` values, one a line; the first line is also tried as
            // `--provenance`, `--sbom` and kiln.toml's `provenance`.
            let first = v.lines().next().unwrap_or_default();
            let flags = AttestFlags {
                provenance: Some(first.to_string()),
                sbom: Some(first.to_string()),
                attest: v.lines().map(str::to_string).collect(),
            };
            let _ = flags.resolve(Some(first), Some(true), true);
            let _ = flags.resolve(None, None, false);
        }
        6 => {
            let Ok(fields) = csv::fields(v) else {
                return;
            };
            let line = quoted(&fields);
            assert_eq!(csv::fields(&line).as_ref(), Ok(&fields), "{v:?} → {line:?}");
        }
        _ => {
            let _ = parse_named_dir("--local", v);
        }
    }
});
