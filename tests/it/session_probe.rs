use kiln_llb::{ExecOptions, Mount};
use kiln_session::{ExportTarget, Session};
use tokio::io::AsyncWriteExt;

use crate::common::*;
use crate::session_common::*;

#[tokio::test(flavor = "multi_thread")]
async fn session_probe() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let _ = s.write_all(b"hello-from-host\n").await;
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let st = go_env(go_image())
        .run(ExecOptions::new(["bash", "-c", &format!("set -x; echo {} ; id; echo $HOME; env > /out/env; ls / /usr/local /usr/local/go* /go > /out/which 2>&1; find / -name go -type f -xdev 2>/dev/null >> /out/which; ls -la /root /run >> /out/which; ip addr > /out/ip 2>&1; timeout 5 bash -c 'cat < /dev/tcp/127.0.0.1/{port}' > /out/net 2>&1; true", unique())]).mount(Mount::scratch("/out")).network(kiln_llb::NetMode::Host))
        .get_mount("/out");
    let session = Session::builder()
        .export(0, ExportTarget::directory(&out))
        .build()
        .unwrap();
    let c = client().await;
    solve_entitled(
        &c,
        &session,
        kiln_client::SessionTransport::Auto,
        &st,
        vec![exporter("local")],
        &["network.host"],
    )
    .await
    .unwrap();
    for f in ["env", "which", "ip", "net"] {
        println!(
            "== {f}\n{}",
            std::fs::read_to_string(out.join(f)).unwrap_or_default()
        );
    }
}
