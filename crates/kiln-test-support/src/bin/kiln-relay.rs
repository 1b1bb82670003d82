//! `kiln-relay DOCKER_SOCK`: serve the Docker Engine's BuildKit as if it were a
//! standalone buildkitd (unix, tcp, tcp+mTLS) until interrupted. For manual
//! testing; the integration tests start the same relay in-process.

use kiln_test_support::{Relay, RelayOptions};

#[tokio::main]
async fn main() {
    let Some(sock) = std::env::args().nth(1) else {
        eprintln!("usage: kiln-relay /path/to/docker.sock");
        std::process::exit(2);
    };
    let opts = RelayOptions {
        drop_after_bytes: std::env::var("KILN_RELAY_DROP_AFTER")
            .ok()
            .and_then(|v| v.parse().ok()),
    };
    let relay = Relay::start(std::path::Path::new(&sock), opts).await;
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
