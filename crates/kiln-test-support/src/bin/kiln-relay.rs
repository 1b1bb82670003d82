//! `kiln-relay DOCKER_SOCK` or `kiln-relay --grpc BUILDKITD_SOCK`: serve a
//! daemon's BuildKit as if it were a standalone buildkitd (unix, tcp,
//! tcp+mTLS) until interrupted. For manual testing; the integration tests
//! start the same relay in-process.

use std::path::PathBuf;

use kiln_test_support::{Relay, RelayOptions, Upstream};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let upstream = match args.as_slice() {
        [flag, sock] if flag == "--grpc" => Upstream::Grpc(PathBuf::from(sock)),
        [sock] if !sock.starts_with('-') => Upstream::Docker(PathBuf::from(sock)),
        _ => {
            eprintln!("usage: kiln-relay /path/to/docker.sock | kiln-relay --grpc /path/to/buildkitd.sock");
            std::process::exit(2);
        }
    };
    let opts = RelayOptions {
        drop_after_bytes: std::env::var("KILN_RELAY_DROP_AFTER")
            .ok()
            .and_then(|v| v.parse().ok()),
        ..Default::default()
    };
    let relay = Relay::start(upstream, opts).await;
    println!("unix://{}", relay.unix.display());
    println!("tcp://{}", relay.tcp);
    println!(
        "tcp://{} --tlscacert {} --tlscert {} --tlskey {}",
        relay.tls,
        relay.pki.ca_cert.display(),
        relay.pki.client_cert.display(),
        relay.pki.client_key.display()
    );
    let _ = tokio::signal::ctrl_c().await;
}
