//! `kiln build` flags.

use std::path::PathBuf;

use clap::Args;

use crate::cmd::session_opts::OutputArgs;
use crate::progress::Mode;

#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  kiln build -t my-service                     # ./ → an image in the daemon's store
  kiln build ./svc -t 127.0.0.1:5000/svc:1 --push
  kiln build --platform linux/amd64,linux/arm64 -o type=oci,dest=svc.tar
  kiln build --ssh default --goprivate 'git.corp/*' --git-ssh-host git.corp
  kiln build --print-llb=dot > build.dot        # render: dot -Tsvg build.dot > build.svg
  kiln build -o type=oci,dest=svc.tar --metadata-file build.json --iidfile build.iid

Options can also live in DIR/kiln.toml (see `kiln init`); flags override it.")]
pub struct BuildArgs {
    /// The Go module root.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Target platforms (comma-separated or repeated), e.g. linux/amd64,linux/arm64. Default: the daemon's.
    #[arg(
        help_heading = "Platforms and builders",
        long = "platform",
        value_delimiter = ',',
        value_name = "PLATFORM"
    )]
    pub platforms: Vec<String>,
    /// Go version: auto (newest patch of go.mod's minor) or X.Y.Z.
    #[arg(help_heading = "Go", long = "go", value_name = "auto|VERSION")]
    pub go: Option<String>,
    /// Where auto looks up Go releases.
    #[arg(help_heading = "Go", long = "go-source", value_enum)]
    pub go_source: Option<crate::cmd::go_version::GoSource>,
    /// Builder image; {go} and {distro} are replaced. Default
    /// docker.io/library/golang:{go}-{distro}. Without {go} the image is used
    /// as named and its GOLANG_VERSION is the Go release (--go and go.mod's
    /// toolchain must agree).
    #[arg(help_heading = "Images", long = "builder-image", value_name = "REF")]
    pub builder_image: Option<String>,
    /// Debian release of the builder image.
    #[arg(help_heading = "Images", long)]
    pub distro: Option<String>,
    /// Final-stage base image (pinned by its index digest at build time).
    #[arg(help_heading = "Images", long = "base-image", value_name = "REF")]
    pub base_image: Option<String>,
    /// Main package (repeatable); default `.`.
    #[arg(help_heading = "Go", long = "main", value_name = "PKG")]
    pub mains: Vec<String>,
    /// Build with cgo (CGO_ENABLED=1).
    #[arg(help_heading = "Go", long)]
    pub cgo: bool,
    /// -ldflags for go build.
    #[arg(help_heading = "Go", long)]
    pub ldflags: Option<String>,
    /// Build tags (comma-separated).
    #[arg(help_heading = "Go", long = "tags", value_delimiter = ',')]
    pub go_tags: Vec<String>,
    /// Debian packages to install in the builder (comma-separated).
    #[arg(
        help_heading = "Images",
        long = "apt",
        value_delimiter = ',',
        value_name = "PKG"
    )]
    pub apt: Vec<String>,
    /// GOPRIVATE (and GONOSUMDB) patterns.
    #[arg(help_heading = "Go", long)]
    pub goprivate: Option<String>,
    /// SSH agent to forward into module-fetching steps: default, ID=SOCKET, ID=KEYFILE.
    #[arg(help_heading = "Secrets and ssh", long = "ssh", value_name = "SPEC")]
    pub ssh: Vec<String>,
    /// Git host reached over ssh: [USER@]HOST[:PORT] (repeatable; user git by default).
    #[arg(
        help_heading = "Secrets and ssh",
        long = "git-ssh-host",
        value_name = "[USER@]HOST[:PORT]"
    )]
    pub git_ssh_hosts: Vec<String>,
    /// known_hosts file for --git-ssh-host (default ~/.ssh/known_hosts).
    #[arg(
        help_heading = "Secrets and ssh",
        long = "known-hosts",
        value_name = "FILE"
    )]
    pub known_hosts: Option<PathBuf>,
    /// Network of the steps that fetch (apt, go mod download, go build): sandbox (default) or
    /// host (for git servers or a proxy only this host reaches; the daemon must allow network.host).
    #[arg(help_heading = "Secrets and ssh", long, value_parser = ["sandbox", "host"])]
    pub network: Option<String>,
    /// Mount the host's `go env GOENV` file as a secret at the builder's GOENV
    /// path. (Go itself records GOFLAGS' -tags and -ldflags in the binary's
    /// build info: keep secrets out of GOFLAGS.)
    #[arg(help_heading = "Secrets and ssh", long)]
    pub goenv: bool,
    /// Mount a .netrc as a secret (default ~/.netrc).
    #[arg(help_heading = "Secrets and ssh", long, value_name = "FILE", num_args = 0..=1, default_missing_value = "")]
    pub netrc: Option<String>,
    /// Pass HTTP_PROXY, HTTPS_PROXY, NO_PROXY and ALL_PROXY from the environment, each in both cases
    /// (the other case filled in from whichever you set), as secret env vars of the apt, go mod
    /// download and go build steps; never in the graph or the image.
    #[arg(help_heading = "Secrets and ssh", long = "proxy-from-env")]
    pub proxy_from_env: bool,
    /// A CA bundle for apt, git and Go (mounted as a secret; SSL_CERT_FILE points at it).
    #[arg(
        help_heading = "Secrets and ssh",
        long = "ca-bundle",
        value_name = "FILE"
    )]
    pub ca_bundle: Option<PathBuf>,
    /// Default arguments of the image (Cmd), repeatable.
    #[arg(help_heading = "Images", long = "cmd", value_name = "ARG")]
    pub cmd: Vec<String>,
    /// User the image runs as (default: the base image's).
    #[arg(help_heading = "Images", long)]
    pub user: Option<String>,
    /// Image label KEY=VALUE (repeatable).
    #[arg(help_heading = "Images", long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// SOURCE_DATE_EPOCH: the image's created time and its files' times.
    /// Default: $SOURCE_DATE_EPOCH, else the last git commit's time; outside
    /// git the image is created now, so its digest changes with every build.
    /// For a reproducible digest, build in a git checkout or set this.
    #[arg(
        help_heading = "Images",
        long = "source-date-epoch",
        value_name = "SECONDS"
    )]
    pub source_date_epoch: Option<u64>,
    /// Run every builder step again.
    #[arg(help_heading = "Cache", long = "no-cache")]
    pub no_cache: bool,
    /// Image name(s) for the image exporter (repeatable).
    #[arg(
        help_heading = "Outputs",
        short = 't',
        long = "tag",
        value_name = "REF"
    )]
    pub image_tags: Vec<String>,
    /// Push the tagged image to its registry.
    #[arg(help_heading = "Outputs", long)]
    pub push: bool,
    /// Build PLATFORM on the BuildKit at ADDR (repeatable), e.g.
    /// `--builder linux/arm64=tcp://arm-host:1234`: one build per endpoint,
    /// joined by kiln into one OCI index under the -t names (with --push)
    /// and/or in -o type=oci tarballs. Platforms without a --builder use
    /// --addr; the --tls* flags apply to every endpoint.
    #[arg(
        help_heading = "Platforms and builders",
        long = "builder",
        value_name = "PLATFORM=ADDR"
    )]
    pub builders: Vec<String>,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Print the build graph instead of building: json, dot, or pb (the
    /// binary Definition, e.g. for `buildctl build`; first platform).
    #[arg(help_heading = "Outputs", long = "print-llb", value_name = "FORMAT", num_args = 0..=1, default_missing_value = "json")]
    pub print_llb: Option<crate::cmd::llb::LlbFormat>,
    /// Import layer cache (repeatable), as buildx: type=registry,ref=IMAGE (or just IMAGE),
    /// type=local,src=DIR[,tag=T]; an image pushed with --cache-to type=inline is a registry source too.
    #[arg(help_heading = "Cache", long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Export layer cache (repeatable), as buildx: type=registry,ref=IMAGE[,mode=min|max]
    /// [,image-manifest=true][,oci-mediatypes=true][,compression=gzip|zstd][,ignore-error=true],
    /// type=local,dest=DIR[,mode=max][,tag=T], or type=inline; type=gha|s3|azblob go to BuildKit as given. Cache mounts (Go's module
    /// and build caches) are never exported by BuildKit.
    #[arg(help_heading = "Cache", long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// SLSA v1 provenance from BuildKit (true, false, mode=min, mode=max). Default: mode=min when
    /// pushing (not on Docker's classic image store, which cannot keep attestations).
    #[arg(help_heading = "Attestations", long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true")]
    pub provenance: Option<String>,
    /// An SPDX 2.3 SBOM of each platform's binary (its Go module, every dependency with its
    /// hash, Go itself, the base image by digest), written by kiln from the binary's build info.
    #[arg(help_heading = "Attestations", long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub sbom: Option<String>,
    /// buildx's spelling (repeatable): type=provenance[,mode=min|max], type=sbom, or either with disabled=true.
    #[arg(help_heading = "Attestations", long, value_name = "SPEC")]
    pub attest: Vec<String>,
    /// Import Go's build cache (repeatable; the first that has one for the platform wins):
    /// type=registry,ref=IMAGE or type=local,src=DIR. Filled into the build cache mount before
    /// go build where that is empty or older; missing is a note, never a failure.
    #[arg(help_heading = "Cache", long = "go-cache-from", value_name = "SPEC")]
    pub go_cache_from: Vec<String>,
    /// Export Go's build cache after the build (repeatable): type=registry,ref=IMAGE (pushed as
    /// IMAGE:TAG-<platform>, zstd) or type=local,dest=DIR (DIR/<platform>), [,ignore-error=true]
    /// [,modules=true] (the module cache's downloads too).
    /// Entries used in the last five days; never secrets; nothing when the build fails.
    #[arg(help_heading = "Cache", long = "go-cache-to", value_name = "SPEC")]
    pub go_cache_to: Vec<String>,
    /// Write what the build produced as JSON, as buildx does (containerimage.digest,
    /// containerimage.descriptor, containerimage.config.digest, image.name, and kiln.* facts).
    #[arg(help_heading = "Outputs", long = "metadata-file", value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Write the image ID (its config digest, else its manifest or index digest) to FILE.
    #[arg(help_heading = "Outputs", long = "iidfile", value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Fail if kiln.lock is missing or does not match the inputs.
    #[arg(help_heading = "Go", long)]
    pub locked: bool,
    /// Progress output.
    #[arg(help_heading = "Progress", long, value_enum, default_value_t = Mode::Auto, env = "KILN_PROGRESS")]
    pub progress: Mode,
}
