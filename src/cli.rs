//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const ADDR_HELP: &str = "BuildKit address: unix:///run/buildkit/buildkitd.sock, tcp://HOST:PORT, \
docker:// (DOCKER_HOST or /var/run/docker.sock), docker:///path/docker.sock, \
docker-container://NAME, podman-container://NAME, nerdctl-container://NAME?namespace=NS, \
kube-pod://POD?namespace=NS, ssh://USER@HOST. \
Default: docker:// if a Docker Engine answers, else the buildkitd socket";

#[derive(Parser, Debug)]
#[command(
    name = "kiln",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("KILN_GIT_COMMIT"), ")"),
    about = "A daemon-less BuildKit client: Go modules to small, reproducible images",
    after_help = "Examples:\n  kiln info\n  kiln --addr tcp://127.0.0.1:1234 --tlscacert ca.pem --tlscert cert.pem --tlskey key.pem info\n  kiln du --verbose\n  kiln prune --keep-duration 24h\n\nEnvironment:\n  BUILDKIT_HOST   daemon address when --addr is not given\n  DOCKER_HOST     Docker Engine used by docker://\n  KILN_PROGRESS   default --progress (auto, tty, plain, rawjson, quiet)\n  NO_COLOR        no colours\n  DOCKER_CONFIG   folder of Docker's config.json (registry credentials)\n  KILN_LOG        tracing filter (e.g. kiln_client=debug)"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// BuildKit daemon address.
    #[arg(long, global = true, value_name = "ADDRESS", help = ADDR_HELP)]
    pub addr: Option<String>,
    /// CA certificate that signed the daemon's certificate (enables TLS on tcp://).
    #[arg(long, global = true, value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// Client certificate for mutual TLS.
    #[arg(long, global = true, value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// Client key for mutual TLS.
    #[arg(long, global = true, value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
    /// Name to verify in the daemon's certificate (default: the host).
    #[arg(long, global = true, value_name = "NAME")]
    pub tlsservername: Option<String>,
    /// Show the full error chain and debug logs.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Cancel a build when the daemon shows no sign of life for this many
    /// seconds (it checks on the session every 5 s; a stopped daemon or a
    /// dead network path stops the checks). 0 waits forever. Default 30.
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        env = "KILN_STALL_TIMEOUT"
    )]
    pub stall_timeout: Option<u64>,
}

impl Global {
    /// `--stall-timeout` as kiln-build takes it (`None`: its default).
    pub fn stall_timeout(&self) -> Option<std::time::Duration> {
        self.stall_timeout.map(std::time::Duration::from_secs)
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build a Go module into a small image, no Dockerfile needed.
    Build(crate::cmd::build::BuildArgs),
    /// Write a commented kiln.toml into DIR.
    Init {
        /// The Go module root.
        #[arg(default_value = ".")]
        dir: std::path::PathBuf,
        /// Overwrite an existing kiln.toml.
        #[arg(long)]
        force: bool,
    },
    /// Pin the Go version and the builder and base image digests in kiln.lock.
    Lock(crate::cmd::build::LockArgs),
    /// Show the daemon address used, its BuildKit version and its workers.
    Info(FormatArgs),
    /// Show build cache usage.
    Du(DuArgs),
    /// Remove build cache.
    Prune(PruneArgs),
    /// Solve a marshaled LLB Definition (the format `buildctl build` reads).
    Solve(crate::cmd::solve::SolveArgs),
    /// Print the Go release a module builds with: the newest patch of its go.mod's minor line.
    GoVersion(crate::cmd::go_version::GoVersionArgs),
    /// Join images into one index in a registry; inspect an index.
    Imagetools(crate::cmd::imagetools::ImagetoolsArgs),
    /// Print a marshaled LLB Definition as JSON or Graphviz DOT.
    Llb(crate::cmd::llb::LlbArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  kiln completion bash > ~/.local/share/bash-completion/completions/kiln\n  kiln completion zsh > ~/.zfunc/_kiln    # with fpath+=(~/.zfunc) in ~/.zshrc\n  kiln completion fish > ~/.config/fish/completions/kiln.fish"
    )]
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug, Clone)]
pub struct FormatArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct DuArgs {
    #[command(flatten)]
    pub format: FormatArgs,
    /// List every cache record with its details.
    #[arg(long, short)]
    pub verbose: bool,
    /// BuildKit filter (repeatable), e.g. type==regular.
    #[arg(long, value_name = "FILTER")]
    pub filter: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct PruneArgs {
    #[command(flatten)]
    pub format: FormatArgs,
    /// Also remove records shared with the image store and internal ones (default: only unshared, unused records).
    #[arg(long, short)]
    pub all: bool,
    /// Keep cache used within this long (e.g. 30m, 24h, 7d).
    #[arg(long, value_name = "DURATION", value_parser = kiln_client::render::parse_duration)]
    pub keep_duration: Option<std::time::Duration>,
    /// Keep this much cache (e.g. 10GB, 512MiB).
    #[arg(long, value_name = "SIZE", value_parser = kiln_client::render::parse_size)]
    pub keep_storage: Option<i64>,
    /// BuildKit filter (repeatable), e.g. type==regular, until=24h.
    #[arg(long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// List each removed record.
    #[arg(long, short)]
    pub verbose: bool,
}
