//! `kiln info`.

use std::process::ExitCode;

use serde_json::json;

use crate::cli::{Format, FormatArgs, Global};

pub async fn run(global: &Global, args: &FormatArgs) -> anyhow::Result<ExitCode> {
    let (client, source) = super::connect(global).await?;
    let daemon = client.daemon_info().await?;
    let version = &daemon.buildkit;
    let workers = client.list_workers().await?;
    let exporters: Vec<&str> = daemon.exporters().iter().map(|e| e.name()).collect();
    match args.format {
        Format::Json => {
            let v = json!({
                "address": client.address().to_string(),
                "address_source": source,
                "daemon": daemon.kind,
                "image_store": daemon.image_store(),
                "exporters": exporters,
                "buildkit": version,
                "workers": workers,
            });
            outln!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Text => {
            outln!("Address:   {} ({source})", client.address());
            outln!("Daemon:    {}", daemon.describe());
            match version {
                Some(v) if !v.version.is_empty() => {
                    outln!("BuildKit:  {} {} {}", v.package, v.version, v.revision);
                }
                _ => outln!("BuildKit:  version not reported"),
            }
            outln!("Exporters: {}", exporters.join(", "));
            if let Some(store) = daemon.image_store() {
                let what = if daemon.stores_multi_platform() {
                    "multi-platform images load into it"
                } else {
                    "one platform per image; multi-platform builds push or write -o type=oci"
                };
                outln!("Images:    {} ({what})", store.describe());
            }
            outln!("Workers:   {}", workers.len());
            for w in &workers {
                outln!();
                outln!("  ID:         {}", w.id);
                outln!("  Platforms:  {}", w.platforms.join(", "));
                if !w.labels.is_empty() {
                    outln!("  Labels:");
                    for (k, v) in &w.labels {
                        outln!("    {k}={v}");
                    }
                }
                for g in &w.gc_policy {
                    outln!(
                        "  GC policy:  all={} keep={}s max-used={} filters=[{}]",
                        g.all,
                        g.keep_duration_seconds,
                        kiln_client::render::human_size(g.max_used_space),
                        g.filters.join(",")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
