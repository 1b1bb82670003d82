//! `kiln du` and `kiln prune`.

use std::process::ExitCode;

use kiln_client::{CacheRecord, PruneOptions};
use serde_json::json;

use crate::cli::{DuArgs, Format, Global, PruneArgs};
use crate::output::human_size;

pub async fn du(global: &Global, args: &DuArgs) -> anyhow::Result<ExitCode> {
    let (client, _) = super::connect(global).await?;
    let records = client.disk_usage(args.filter.clone()).await?;
    let total: i64 = records.iter().map(|r| r.size).sum();
    let reclaimable: i64 = records.iter().filter(|r| !r.in_use).map(|r| r.size).sum();
    match args.format.format {
        Format::Json => {
            let v = json!({
                "records": records,
                "total": total,
                "reclaimable": reclaimable,
            });
            outln!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Text => {
            if args.verbose {
                for r in &records {
                    print_verbose(r)?;
                }
            } else {
                print_table(&records)?;
            }
            outln!("Reclaimable:\t{}", human_size(reclaimable));
            outln!("Total:\t\t{}", human_size(total));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn prune(global: &Global, args: &PruneArgs) -> anyhow::Result<ExitCode> {
    let (client, _) = super::connect(global).await?;
    let removed = client
        .prune(PruneOptions {
            all: args.all,
            keep_duration: args.keep_duration.unwrap_or_default(),
            keep_storage: args.keep_storage,
            filter: args.filter.clone(),
        })
        .await?;
    let total: i64 = removed.iter().map(|r| r.size).sum();
    match args.format.format {
        Format::Json => {
            let v = json!({ "removed": removed, "total": total });
            outln!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Text => {
            if args.verbose {
                for r in &removed {
                    print_verbose(r)?;
                }
            } else if !removed.is_empty() {
                print_table(&removed)?;
            }
            outln!("Total:\t{}", human_size(total));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(records: &[CacheRecord]) -> anyhow::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    outln!(
        "{:<28} {:<9} {:>10}  {}",
        "ID",
        "RECLAIM",
        "SIZE",
        "DESCRIPTION"
    );
    for r in records {
        let id = if r.mutable {
            format!("{}*", short(&r.id))
        } else {
            short(&r.id).to_string()
        };
        outln!(
            "{:<28} {:<9} {:>10}  {}",
            id,
            if r.in_use { "false" } else { "true" },
            human_size(r.size),
            one_line(&r.description, 60)
        );
    }
    Ok(())
}

fn print_verbose(r: &CacheRecord) -> anyhow::Result<()> {
    outln!("ID:\t\t{}", r.id);
    if !r.parents.is_empty() {
        outln!("Parents:\t{}", r.parents.join(", "));
    }
    outln!("Type:\t\t{}", r.record_type);
    outln!("Created at:\t{}", fmt_time(r.created_at));
    outln!("Mutable:\t{}", r.mutable);
    outln!("Reclaimable:\t{}", !r.in_use);
    outln!("Shared:\t\t{}", r.shared);
    outln!("Size:\t\t{}", human_size(r.size));
    if !r.description.is_empty() {
        outln!("Description:\t{}", r.description);
    }
    outln!("Usage count:\t{}", r.usage_count);
    outln!("Last used:\t{}", fmt_time(r.last_used_at));
    outln!();
    Ok(())
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

fn fmt_time(t: Option<i64>) -> String {
    match t {
        Some(secs) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(secs);
            format!("{} ago", crate::output::human_duration((now - secs).max(0)))
        }
        None => "-".into(),
    }
}
