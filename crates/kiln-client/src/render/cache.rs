//! `kiln du` / `kiln prune` listings: a table like `buildctl du`, or one
//! block per record.

use std::fmt::Write as _;

use super::units::human_size;
use crate::CacheRecord;

/// The records as a table (ID, reclaimable, size, description); empty for
/// no records.
#[must_use]
pub fn table(records: &[CacheRecord]) -> String {
    let mut out = String::new();
    if records.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:<28} {:<9} {:>10}  DESCRIPTION",
        "ID", "RECLAIM", "SIZE"
    );
    for r in records {
        let id = if r.mutable {
            format!("{}*", short(&r.id))
        } else {
            short(&r.id).to_string()
        };
        let _ = writeln!(
            out,
            "{:<28} {:<9} {:>10}  {}",
            id,
            if r.in_use { "false" } else { "true" },
            human_size(r.size),
            one_line(&r.description, 60)
        );
    }
    out
}

/// One record, field by field, ending with a blank line.
#[must_use]
pub fn record(r: &CacheRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "ID:\t\t{}", r.id);
    if !r.parents.is_empty() {
        let _ = writeln!(out, "Parents:\t{}", r.parents.join(", "));
    }
    let _ = writeln!(out, "Type:\t\t{}", r.record_type);
    let _ = writeln!(out, "Created at:\t{}", ago(r.created_at));
    let _ = writeln!(out, "Mutable:\t{}", r.mutable);
    let _ = writeln!(out, "Reclaimable:\t{}", !r.in_use);
    let _ = writeln!(out, "Shared:\t\t{}", r.shared);
    let _ = writeln!(out, "Size:\t\t{}", human_size(r.size));
    if !r.description.is_empty() {
        let _ = writeln!(out, "Description:\t{}", r.description);
    }
    let _ = writeln!(out, "Usage count:\t{}", r.usage_count);
    let _ = writeln!(out, "Last used:\t{}", ago(r.last_used_at));
    out
}

fn short(id: &str) -> &str {
    id.get(..25).unwrap_or(id)
}

fn one_line(s: &str, max: usize) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() > max {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    } else {
        s
    }
}

fn ago(t: Option<i64>) -> String {
    match t {
        Some(secs) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(secs);
            format!("{} ago", super::units::human_duration((now - secs).max(0)))
        }
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_and_a_record() {
        let r = CacheRecord {
            id: "abcdefghijklmnopqrstuvwxyz0123".into(),
            mutable: true,
            size: 1500,
            description: "mount /src\nfrom exec".into(),
            ..Default::default()
        };
        let t = table(std::slice::from_ref(&r));
        assert!(t.starts_with("ID "), "{t}");
        assert!(t.contains("abcdefghijklmnopqrstuvwxy* "), "{t}");
        assert!(t.contains("1.50kB  mount /src from exec"), "{t}");
        assert!(table(&[]).is_empty());
        let v = record(&r);
        assert!(
            v.contains("Mutable:\ttrue") && v.contains("Created at:\t-"),
            "{v}"
        );
    }
}
