//! A relay that accepts plain gRPC connections (unix socket, TCP, and TCP with
//! mutual TLS) and forwards each one to a daemon: the Docker Engine's
//! `POST /grpc` upgrade, or a standalone buildkitd's unix socket. To kiln it
//! looks exactly like a standalone buildkitd, so every transport is tested
//! against every daemon of the matrix, and the relay can cut or stall
//! connections to test faults.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kiln_client::transport::{docker, BoxIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::task::JoinHandle;

use crate::tls::TestPki;

/// What the relay should do besides forwarding.
#[derive(Clone, Debug, Default)]
pub struct RelayOptions {
    /// After forwarding this many bytes from the daemon, drop the connection
    /// (simulates a daemon that dies mid-call).
    pub drop_after_bytes: Option<u64>,
    /// Once set, nothing more is forwarded either way and the connections
    /// stay open: a daemon that stopped (SIGSTOP) or a dead network path.
    pub stall: Stall,
    /// Once set, every connection is closed at once (a daemon restarted, a
    /// load balancer dropping its flows); new ones are still accepted.
    pub cut: Cut,
    /// Where connections accepted after the cut go (another daemon behind
    /// the same address); `None`: the same upstream.
    pub after_cut: Option<Upstream>,
}

/// The switch that closes a relay's connections ([`RelayOptions::cut`]):
/// those open when it is thrown; later ones are served.
#[derive(Clone, Debug, Default)]
pub struct Cut(Arc<(std::sync::atomic::AtomicU64, tokio::sync::Notify)>);

impl Cut {
    /// Closes every connection open now.
    pub fn now(&self) {
        self.0 .0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0 .1.notify_waiters();
    }

    /// How many cuts so far.
    fn generation(&self) -> u64 {
        self.0 .0.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn is_set(&self) -> bool {
        self.generation() > 0
    }

    /// Returns at the first cut after generation `since`.
    async fn wait(&self, since: u64) {
        loop {
            let notified = self.0 .1.notified();
            if self.generation() > since {
                return;
            }
            notified.await;
        }
    }
}

/// The switch that stalls a relay's connections ([`RelayOptions::stall`]).
#[derive(Clone, Debug, Default)]
pub struct Stall(Arc<std::sync::atomic::AtomicBool>);

impl Stall {
    /// Stops forwarding, on every connection, from now on.
    pub fn now(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Where a relay forwards its connections.
#[derive(Clone, Debug)]
pub enum Upstream {
    /// A Docker Engine socket: each connection is upgraded with `POST /grpc`.
    Docker(PathBuf),
    /// A unix socket that speaks BuildKit's gRPC itself (buildkitd).
    Grpc(PathBuf),
}

impl crate::Daemon {
    /// Where a relay in front of this daemon forwards to.
    ///
    /// # Panics
    /// When the daemon has neither socket (the harness always writes one).
    #[must_use]
    pub fn upstream(&self) -> Upstream {
        match (&self.docker_sock, &self.grpc_sock) {
            (Some(d), _) => Upstream::Docker(d.clone()),
            (None, Some(g)) => Upstream::Grpc(g.clone()),
            (None, None) => panic!("the {} daemon has no socket to relay to", self.kind),
        }
    }
}

/// A running relay; its listeners stop when it is dropped.
pub struct Relay {
    /// Plain gRPC on a unix socket.
    pub unix: PathBuf,
    /// Plain gRPC on TCP.
    pub tcp: std::net::SocketAddr,
    /// gRPC over TLS that requires a client certificate signed by `pki.ca_cert`.
    pub tls: std::net::SocketAddr,
    /// gRPC over TLS like `tls`, with a server certificate that expired.
    pub tls_expired: std::net::SocketAddr,
    /// The certificates for `tls`.
    pub pki: TestPki,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    _dir: tempfile::TempDir,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Relay {
    /// Starts a relay in front of this test run's daemon.
    pub async fn for_daemon(opts: RelayOptions) -> Relay {
        Relay::start(crate::daemon().upstream(), opts).await
    }

    /// How many connections the relay has accepted so far (all listeners).
    #[must_use]
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Starts the relay in the current tokio runtime, forwarding to `upstream`.
    pub async fn start(upstream: Upstream, opts: RelayOptions) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(dir.path());
        let unix_path = dir.path().join("buildkitd.sock");
        let unix = UnixListener::bind(&unix_path).unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls_expired = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp_addr = tcp.local_addr().unwrap();
        let tls_addr = tls.local_addr().unwrap();
        let tls_expired_addr = tls_expired.local_addr().unwrap();
        let acceptor =
            tokio_rustls::TlsAcceptor::from(server_config(&pki, &pki.server_cert, &pki.server_key));
        let expired_acceptor = tokio_rustls::TlsAcceptor::from(server_config(
            &pki,
            &pki.expired_server_cert,
            &pki.expired_server_key,
        ));
        let sock = Arc::new(upstream);
        let opts = Arc::new(opts);
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = |a: &Arc<std::sync::atomic::AtomicUsize>| {
            a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        };

        let mut tasks = Vec::new();
        {
            let (sock, opts, accepted) = (sock.clone(), opts.clone(), accepted.clone());
            tasks.push(tokio::spawn(async move {
                while let Ok((c, _)) = unix.accept().await {
                    count(&accepted);
                    tokio::spawn(forward(Box::new(c), sock.clone(), opts.clone()));
                }
            }));
        }
        {
            let (sock, opts, accepted) = (sock.clone(), opts.clone(), accepted.clone());
            tasks.push(tokio::spawn(async move {
                while let Ok((c, _)) = tcp.accept().await {
                    count(&accepted);
                    tokio::spawn(forward(Box::new(c), sock.clone(), opts.clone()));
                }
            }));
        }
        for (listener, acceptor) in [(tls, acceptor), (tls_expired, expired_acceptor)] {
            let (sock, opts, accepted) = (sock.clone(), opts.clone(), accepted.clone());
            tasks.push(tokio::spawn(async move {
                while let Ok((c, _)) = listener.accept().await {
                    count(&accepted);
                    let acceptor = acceptor.clone();
                    let (sock, opts) = (sock.clone(), opts.clone());
                    tokio::spawn(async move {
                        // A refused handshake (no or wrong client cert) just ends here.
                        if let Ok(s) = acceptor.accept(c).await {
                            forward(Box::new(s), sock, opts).await;
                        }
                    });
                }
            }));
        }
        Relay {
            unix: unix_path,
            tcp: tcp_addr,
            tls: tls_addr,
            tls_expired: tls_expired_addr,
            pki,
            accepted,
            _dir: dir,
            tasks,
        }
    }
}

fn server_config(pki: &TestPki, cert: &Path, key: &Path) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let read = |p: &Path| std::fs::read(p).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile_certs(&read(&pki.ca_cert)) {
        roots.add(c).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let certs = rustls_pemfile_certs(&read(cert));
    use rustls::pki_types::pem::PemObject;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&read(key)).unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(cfg)
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

async fn forward(client: BoxIo, upstream: Arc<Upstream>, opts: Arc<RelayOptions>) {
    let born = opts.cut.generation();
    let upstream = match &opts.after_cut {
        Some(other) if opts.cut.is_set() => other,
        _ => upstream.as_ref(),
    };
    let daemon: BoxIo = match upstream {
        Upstream::Docker(sock) => {
            let Ok(d) = UnixStream::connect(sock).await else {
                return;
            };
            let Ok(up) = docker::upgrade(Box::new(d), docker::GRPC_PATH, &[]).await else {
                return;
            };
            Box::new(up)
        }
        Upstream::Grpc(sock) => {
            let Ok(d) = UnixStream::connect(sock).await else {
                return;
            };
            Box::new(d)
        }
    };
    let (cr, cw) = tokio::io::split(client);
    let (dr, dw) = tokio::io::split(daemon);
    let up = tokio::spawn(pipe(cr, dw, None, opts.stall.clone()));
    let abort = up.abort_handle();
    tokio::select! {
        _ = pipe(dr, cw, opts.drop_after_bytes, opts.stall.clone()) => {}
        () = opts.cut.wait(born) => {}
    }
    // Either way both directions end here: the halves are dropped.
    abort.abort();
}

/// Copies until EOF or error; with a limit, stops (dropping both halves)
/// once that many bytes have passed.
async fn pipe<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut r: R,
    mut w: W,
    limit: Option<u64>,
    stall: Stall,
) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if stall.is_set() {
            // Hold the bytes and the connection: nothing arrives, nothing fails.
            std::future::pending::<()>().await;
        }
        let n = match limit {
            Some(l) if total + n as u64 >= l => {
                let keep = (l - total) as usize;
                let _ = w.write_all(&buf[..keep]).await;
                let _ = w.flush().await;
                // Give the peer a moment to read, then vanish.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return total + keep as u64;
            }
            _ => n,
        };
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
        total += n as u64;
    }
    let _ = w.shutdown().await;
    total
}
