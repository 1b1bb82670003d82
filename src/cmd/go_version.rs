//! `kiln go-version`: the Go release a module builds with (what
//! `kiln build --go auto` uses).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use kiln_build::go_release::SourceKind;
use kiln_build::go_release::{go_version, GoVersionQuery};

use crate::cli::Format;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  kiln go-version                      # go 1.24.1 in ./go.mod -> 1.24.7\n  kiln go-version ./service --format json\n  kiln go-version --go-source git --refresh\n  kiln go-version --go 1.24.3          # pinned: printed as is\n\nEnvironment:\n  GOPROXY, GONOPROXY, GOPRIVATE  the module proxies (as for the go command)\n  KILN_GODEV_URL                 the go.dev JSON list (--go-source godev)\n  KILN_GO_GIT_URL                Go's repository (--go-source git)\n  XDG_CACHE_HOME                 the list is cached a day in $XDG_CACHE_HOME/kiln"
)]
pub struct GoVersionArgs {
    /// The module directory (the one holding go.mod).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// `auto`: the newest stable patch of go.mod's minor line; or a version
    /// (e.g. 1.24.3) to use as is.
    #[arg(long, value_name = "VERSION", default_value = "auto")]
    pub go: String,
    /// Where to list Go releases from.
    #[arg(long, value_enum, value_name = "SOURCE", default_value_t = GoSource::Proxy)]
    pub go_source: GoSource,
    /// Ask the source even if the cached list (kept for a day) is fresh.
    #[arg(long)]
    pub refresh: bool,
    /// Also check that the builder image exists and step back to an older
    /// patch if it does not yet: a template with {go} and {distro}, e.g.
    /// docker.io/library/golang:{go}-{distro}.
    #[arg(long, value_name = "TEMPLATE")]
    pub builder_image: Option<String>,
    /// The {distro} of --builder-image.
    #[arg(long, value_name = "NAME", default_value = "bookworm")]
    pub distro: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `--go-source`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum GoSource {
    /// $GOPROXY/golang.org/toolchain/@v/list.
    Proxy,
    /// go.dev/dl/?mode=json&include=all.
    Godev,
    /// git ls-remote --tags on go.googlesource.com/go.
    Git,
}

impl From<GoSource> for SourceKind {
    fn from(s: GoSource) -> Self {
        match s {
            GoSource::Proxy => SourceKind::Proxy,
            GoSource::Godev => SourceKind::Godev,
            GoSource::Git => SourceKind::Git,
        }
    }
}

pub async fn run(global: &crate::cli::Global, args: &GoVersionArgs) -> anyhow::Result<ExitCode> {
    let query = GoVersionQuery {
        dir: args.dir.clone(),
        go: args.go.clone(),
        source: args.go_source.into(),
        builder_image: args.builder_image.clone(),
        distro: args.distro.clone(),
        refresh: args.refresh,
    };
    // Only --builder-image needs the daemon: plain `kiln go-version` works offline.
    let client = if args.builder_image.is_some() && args.go == "auto" {
        Some(super::connect(global).await?.0)
    } else {
        None
    };
    let resolution = go_version(&query, client.as_ref()).await?;
    {
        let mut err = std::io::stderr().lock();
        for warning in &resolution.warnings {
            writeln!(err, "warning: {warning}")?;
        }
        if args.format == Format::Text {
            for note in &resolution.notes {
                writeln!(err, "note: {note}")?;
            }
        }
    }
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Text => writeln!(out, "{}", resolution.version)?,
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&resolution)?)?,
    }
    Ok(ExitCode::SUCCESS)
}
