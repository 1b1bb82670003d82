//! The `Control.Session` shape: the nested HTTP/2 connection carried in
//! `BytesMessage` frames, adapted on both ends.

use kiln_proto::control::BytesMessage;
use kiln_proto::health::health_check_response::ServingStatus;
use kiln_proto::health::health_client::HealthClient;
use kiln_proto::health::HealthCheckRequest;
use kiln_session::{bytes_stream_io, Session};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::support::channel_over;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_through_bytes_messages() {
    // Frames kiln writes go to the daemon and vice versa.
    let (to_daemon, from_kiln) = mpsc::channel::<BytesMessage>(8);
    let (to_kiln, from_daemon) = mpsc::channel::<BytesMessage>(8);
    let kiln_io = bytes_stream_io(to_daemon, ReceiverStream::new(from_daemon).map(Ok));
    let daemon_io = bytes_stream_io(to_kiln, ReceiverStream::new(from_kiln).map(Ok));

    let session = Session::builder().build().expect("session");
    let serving = tokio::spawn(async move { session.serve(kiln_io).await });

    let channel = channel_over(daemon_io).await;
    let mut health = HealthClient::new(channel.clone());
    for _ in 0..3 {
        let resp = health
            .check(HealthCheckRequest::default())
            .await
            .expect("check")
            .into_inner();
        assert_eq!(resp.status, ServingStatus::Serving as i32);
    }
    drop(health);
    drop(channel);
    // Closing the daemon's side ends the session cleanly.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), serving)
        .await
        .expect("serve ends when the connection closes")
        .expect("join");
    assert!(ended.is_ok(), "{ended:?}");
}

#[tokio::test]
async fn stream_errors_read_as_io_errors() {
    use tokio::io::AsyncReadExt;
    let (tx, _rx) = mpsc::channel::<BytesMessage>(1);
    let inbound = tokio_stream::iter(vec![
        Ok(BytesMessage {
            data: b"ab".to_vec(),
        }),
        Err(tonic::Status::unavailable("gone")),
    ]);
    let mut io = bytes_stream_io(tx, inbound);
    let mut buf = [0u8; 8];
    assert_eq!(io.read(&mut buf).await.expect("first frame"), 2);
    assert!(io.read(&mut buf).await.is_err());
}
