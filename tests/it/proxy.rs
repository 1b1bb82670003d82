//! `--proxy-from-env` behind a corporate proxy, as the seed's second
//! Dockerfile: a logging forward proxy on 127.0.0.1 that the build's apt and
//! `go mod download` must go through, with credentials that never leave the
//! secrets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::build::{app_requiring, build_args, plain_blobs};
use crate::common::*;

/// The GOPROXY host: it resolves nowhere, so Go can only reach it through
/// the proxy (which serves it itself).
const GOPROXY_HOST: &str = "goproxy.kiln.test";

/// One request the proxy saw.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    target: String,
    authorized: bool,
}

/// A forward HTTP proxy (absolute-URI requests and CONNECT) that logs every
/// request, checks its Proxy-Authorization, serves [`GOPROXY_HOST`] from
/// `files` and forwards everything else.
struct LoggingProxy {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LoggingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_proxy(auth: String, files: BTreeMap<String, Vec<u8>>) -> LoggingProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (log, files) = (seen.clone(), Arc::new(files));
    let task = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let (log, files, auth) = (log.clone(), files.clone(), auth.clone());
            tokio::spawn(async move {
                let _ = serve(conn, &log, &files, &auth).await;
            });
        }
    });
    LoggingProxy { port, seen, task }
}

/// One request per connection: the proxy answers with `Connection: close`.
async fn serve(
    conn: TcpStream,
    log: &Mutex<Vec<Seen>>,
    files: &BTreeMap<String, Vec<u8>>,
    auth: &str,
) -> std::io::Result<()> {
    let mut conn = BufReader::new(conn);
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    );
    let mut headers = Vec::new();
    let mut authorized = false;
    loop {
        let mut h = String::new();
        if conn.read_line(&mut h).await? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if lower.starts_with("proxy-authorization:") {
            authorized = h.split_once(':').map(|x| x.1.trim()) == Some(auth);
        } else if !lower.starts_with("proxy-connection:") && !lower.starts_with("connection:") {
            headers.push(h);
        }
    }
    log.lock().unwrap().push(Seen {
        method: method.clone(),
        target: target.clone(),
        authorized,
    });
    if !authorized {
        let msg = "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"kiln\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        return conn.get_mut().write_all(msg.as_bytes()).await;
    }
    if method == "CONNECT" {
        let mut upstream = TcpStream::connect(&target).await?;
        conn.get_mut()
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await?;
        let mut client = conn.into_inner();
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        return Ok(());
    }
    let Some(rest) = target.strip_prefix("http://") else {
        let msg = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        return conn.get_mut().write_all(msg.as_bytes()).await;
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    if host == GOPROXY_HOST {
        let (status, body) = match files.get(path) {
            Some(b) => ("200 OK", b.clone()),
            None => ("404 Not Found", b"not found".to_vec()),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let out = conn.get_mut();
        out.write_all(head.as_bytes()).await?;
        return out.write_all(&body).await;
    }
    let addr = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let mut upstream = TcpStream::connect(&addr).await?;
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for h in headers {
        req.push_str(&h);
    }
    req.push_str("Connection: close\r\n\r\n");
    upstream.write_all(req.as_bytes()).await?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response).await?;
    conn.get_mut().write_all(&response).await
}

/// CRC-32 (IEEE), for the module zip.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// A zip of stored (uncompressed) entries, as a Go module proxy serves.
fn zip_stored(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let (crc, len, n) = (crc32(data), data.len() as u32, name.len() as u16);
        let fixed = |sig: u32, v: &mut Vec<u8>| {
            v.extend(sig.to_le_bytes());
            if sig == 0x0201_4b50 {
                v.extend(20u16.to_le_bytes()); // made by
            }
            v.extend(20u16.to_le_bytes()); // needed
            v.extend(0u16.to_le_bytes()); // flags
            v.extend(0u16.to_le_bytes()); // stored
            v.extend(0u32.to_le_bytes()); // time and date
            v.extend(crc.to_le_bytes());
            v.extend(len.to_le_bytes());
            v.extend(len.to_le_bytes());
            v.extend(n.to_le_bytes());
            v.extend(0u16.to_le_bytes()); // extra
        };
        fixed(0x0403_4b50, &mut out);
        out.extend(name.as_bytes());
        out.extend(data);
        fixed(0x0201_4b50, &mut central);
        central.extend([0u8; 6]); // comment length, disk, internal attrs
        central.extend(0u32.to_le_bytes()); // external attrs
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let (start, size) = (out.len() as u32, central.len() as u32);
    out.extend(central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]); // disk numbers
    let count = entries.len() as u16;
    out.extend(count.to_le_bytes());
    out.extend(count.to_le_bytes());
    out.extend(size.to_le_bytes());
    out.extend(start.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_from_env_reaches_apt_and_go_mod_download_as_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let u = unique();
    // The module the app needs, served by the proxy as GOPROXY.
    let module = format!("{GOPROXY_HOST}/hello{u}");
    let go_mod = format!("module {module}\n\ngo 1.24\n");
    let lib_go = format!("// Package hello greets.\npackage hello\n\n// Hello greets.\nfunc Hello() string {{ return \"hello through the proxy {u}\" }}\n");
    let prefix = format!("{module}@v0.1.0");
    let zip = zip_stored(&[
        (format!("{prefix}/go.mod"), go_mod.clone().into_bytes()),
        (format!("{prefix}/hello.go"), lib_go.clone().into_bytes()),
    ]);
    let mut files = BTreeMap::new();
    let at = format!("/{module}/@v");
    files.insert(format!("{at}/list"), b"v0.1.0\n".to_vec());
    files.insert(
        format!("{at}/v0.1.0.info"),
        br#"{"Version":"v0.1.0","Time":"2024-01-01T00:00:00Z"}"#.to_vec(),
    );
    files.insert(format!("{at}/v0.1.0.mod"), go_mod.clone().into_bytes());
    files.insert(format!("{at}/v0.1.0.zip"), zip);

    let password = format!("pr0xy-{u}");
    let proxy = start_proxy(
        format!(
            "Basic {}",
            crate::session_common::base64(format!("kiln:{password}").as_bytes())
        ),
        files,
    )
    .await;
    let proxy_url = format!("http://kiln:{password}@127.0.0.1:{}", proxy.port);

    // The app, with the go.sum a developer would have committed.
    let app = app_requiring(tmp.path(), &module, &go_mod, ("hello.go", &lib_go));
    let goenv = tmp.path().join("goenv");
    std::fs::write(
        &goenv,
        format!("GOPROXY=http://{GOPROXY_HOST}\nGOSUMDB=off\n"),
    )
    .unwrap();

    // Only the upper-case HTTP_PROXY is set: apt reads only http_proxy, so
    // the lower-case form must be passed too.
    let with_env = |mut c: tokio::process::Command| {
        for v in kiln_go::recipe::PROXY_ENV_NAMES {
            c.env_remove(v);
        }
        c.env("HTTP_PROXY", &proxy_url).env("GOENV", &goenv);
        c
    };
    // The two buildkitd rows share one daemon, which runs an identical
    // step of two concurrent builds once (through one row's session and
    // proxy): give each row its own apt step.
    let package = if daemon().kind == kiln_test_support::DaemonKind::BuildkitdTls {
        "less"
    } else {
        "tree"
    };
    let flags = [
        "--proxy-from-env",
        "--goenv",
        "--apt",
        package,
        "--network",
        "host",
        "--no-cache",
        "--progress",
        "plain",
    ];
    // The graph carries the proxy only as secret ids.
    let mut args = build_args(&app, &flags);
    args.push("--print-llb=json".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let p = run(with_env(kiln()), &refs).await;
    p.success();
    assert!(!p.stdout.contains(&password), "proxy password in the LLB");
    for id in ["\"HTTP_PROXY\"", "\"http_proxy\""] {
        assert!(p.stdout.contains(id), "secret {id} not mounted");
    }

    let oci = tmp.path().join("app.tar");
    let mut args = build_args(&app, &flags);
    args.extend(["-o".to_string(), format!("type=oci,dest={}", oci.display())]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(with_env(kiln()), &refs).await;
    r.success();
    let seen = proxy.seen.lock().unwrap().clone();
    let summary: Vec<String> = seen
        .iter()
        .map(|s| format!("{} {} auth={}", s.method, s.target, s.authorized))
        .collect();
    assert!(
        seen.iter()
            .any(|s| s.authorized && s.target.starts_with("http://deb.debian.org/")),
        "apt did not go through the proxy: {summary:#?}\n{}",
        r.stderr
    );
    assert!(
        seen.iter().any(|s| s.authorized
            && s.target
                .starts_with(&format!("http://{GOPROXY_HOST}/{module}/@v/v0.1.0.zip"))),
        "go mod download did not go through the proxy: {summary:#?}\n{}",
        r.stderr
    );
    // The credential is in no log and no layer.
    assert!(!r.stderr.contains(&password) && !r.stdout.contains(&password));
    // Every blob, layers decompressed.
    let image = plain_blobs(&oci, &tmp.path().join("img"));
    assert!(
        !image
            .windows(password.len())
            .any(|w| w == password.as_bytes()),
        "proxy password in the image"
    );
}
