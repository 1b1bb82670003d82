//! `kiln du` and `kiln prune`.

use std::process::ExitCode;

use kiln_client::render::cache as cache_render;
use kiln_client::PruneOptions;
use serde_json::json;

use crate::cli::{DuArgs, Format, Global, PruneArgs};
use kiln_client::render::human_size;

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
                    outln!("{}", cache_render::record(r));
                }
            } else if !records.is_empty() {
                outln!("{}", cache_render::table(&records).trim_end());
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
                    outln!("{}", cache_render::record(r));
                }
            } else if !removed.is_empty() {
                outln!("{}", cache_render::table(&removed).trim_end());
            }
            outln!("Total:\t{}", human_size(total));
        }
    }
    Ok(ExitCode::SUCCESS)
}
