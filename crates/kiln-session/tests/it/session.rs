use kiln_proto::health::health_check_response::ServingStatus;
use kiln_proto::health::health_client::HealthClient;
use kiln_proto::health::HealthCheckRequest;
use kiln_proto::{headers, methods};
use kiln_session::{ExportTarget, SecretStore, Session, SshAgents, SyncDirOptions};

use crate::support::connect;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_is_serving() {
    let session = Session::builder().build().expect("session");
    let mut health = HealthClient::new(connect(&session).await);
    let resp = health
        .check(HealthCheckRequest::default())
        .await
        .expect("check")
        .into_inner();
    assert_eq!(resp.status, ServingStatus::Serving as i32);
    let err = health
        .check(HealthCheckRequest {
            service: "nope".to_owned(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[test]
fn methods_follow_registrations() {
    let bare = Session::builder().build().expect("session");
    assert_eq!(bare.methods(), [methods::HEALTH_CHECK]);

    let dir = tempfile::tempdir().expect("tempdir");
    let full = Session::builder()
        .id("abc")
        .name("test")
        .shared_key("key")
        .sync_dir("context", dir.path(), SyncDirOptions::default())
        .export(0, ExportTarget::file(dir.path().join("out.tar")))
        .secrets(SecretStore::new())
        .ssh(SshAgents::new())
        .build()
        .expect("session");
    assert_eq!(
        full.methods(),
        [
            methods::HEALTH_CHECK,
            methods::FILESYNC_DIFFCOPY,
            methods::FILESEND_DIFFCOPY,
            methods::SECRETS_GET_SECRET,
            methods::SSH_CHECK_AGENT,
            methods::SSH_FORWARD_AGENT,
        ]
    );
    let hdrs = full.headers();
    assert_eq!(hdrs[0], (headers::SESSION_UUID, "abc".to_owned()));
    assert_eq!(hdrs[1], (headers::SESSION_NAME, "test".to_owned()));
    assert_eq!(hdrs[2], (headers::SESSION_SHARED_KEY, "key".to_owned()));
    let advertised: Vec<_> = hdrs
        .iter()
        .filter(|(k, _)| *k == headers::SESSION_GRPC_METHOD)
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(advertised, full.methods());
}

#[test]
fn builder_reports_registration_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("f");
    std::fs::write(&file, "x").expect("write");
    let err = Session::builder()
        .sync_dir("context", &file, SyncDirOptions::default())
        .build()
        .expect_err("not a directory");
    assert!(
        matches!(err, kiln_session::Error::NotADirectory { .. }),
        "{err}"
    );
    let err = Session::builder()
        .export(1, ExportTarget::file("a"))
        .export(1, ExportTarget::file("b"))
        .build()
        .expect_err("duplicate");
    assert!(
        matches!(err, kiln_session::Error::Duplicate { .. }),
        "{err}"
    );
}
