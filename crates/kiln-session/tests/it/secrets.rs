use kiln_proto::moby::buildkit::secrets::v1::secrets_client::SecretsClient;
use kiln_proto::moby::buildkit::secrets::v1::GetSecretRequest;
use kiln_session::{SecretId, SecretSource, SecretSpec, SecretStore, SecretValue, Session};

use crate::support::connect;

fn req(id: &str) -> GetSecretRequest {
    GetSecretRequest {
        id: id.to_owned(),
        ..GetSecretRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_found_not_found_and_read_at_call_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    std::fs::write(&file, "first").expect("write");

    let mut store = SecretStore::new();
    store
        .add_spec(SecretSpec {
            id: SecretId::new("tok").expect("id"),
            file: Some(file.clone()),
            env: None,
        })
        .expect("add");
    store
        .insert(
            SecretId::new("mem").expect("id"),
            SecretSource::Value(SecretValue::from(b"in memory".to_vec())),
        )
        .expect("insert");
    // `id=PATH` alone: no such environment variable, so the file named by the id.
    let by_id = dir.path().join("by-id");
    std::fs::write(&by_id, "by id").expect("write");
    store
        .add_spec(SecretSpec {
            id: SecretId::new(by_id.display().to_string()).expect("id"),
            file: None,
            env: None,
        })
        .expect("add");

    let session = Session::builder().secrets(store).build().expect("session");
    let mut client = SecretsClient::new(connect(&session).await);

    let got = client
        .get_secret(req("tok"))
        .await
        .expect("tok")
        .into_inner();
    assert_eq!(got.data, b"first");
    std::fs::write(&file, "second").expect("rewrite");
    let got = client
        .get_secret(req("tok"))
        .await
        .expect("tok")
        .into_inner();
    assert_eq!(got.data, b"second", "file secrets are read at call time");

    let got = client
        .get_secret(req("mem"))
        .await
        .expect("mem")
        .into_inner();
    assert_eq!(got.data, b"in memory");
    let got = client
        .get_secret(req(&by_id.display().to_string()))
        .await
        .expect("by id")
        .into_inner();
    assert_eq!(got.data, b"by id");

    let err = client
        .get_secret(req("missing"))
        .await
        .expect_err("unknown id");
    assert_eq!(err.code(), tonic::Code::NotFound);

    // A file that disappeared: an error that names the id and path, not a value.
    std::fs::remove_file(&file).expect("rm");
    let err = client.get_secret(req("tok")).await.expect_err("gone");
    assert_eq!(
        err.code(),
        tonic::Code::Unknown,
        "a broken source is not a missing secret"
    );
    assert!(err.message().contains("token"), "{err}");
    assert!(!err.message().contains("second"));
}

#[test]
fn secret_values_never_print() {
    let value = SecretValue::from(b"s3cr3t-value".to_vec());
    let source = SecretSource::Value(value.clone());
    let mut store = SecretStore::new();
    store
        .insert(SecretId::new("x").expect("id"), source.clone())
        .expect("insert");
    for printed in [
        format!("{value:?}"),
        format!("{source:?}"),
        format!("{store:?}"),
    ] {
        assert!(!printed.contains("s3cr3t"), "leaked in {printed}");
    }
}

#[test]
fn secret_file_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 600 * 1024]).expect("write");
    let mut store = SecretStore::new();
    let spec = SecretSpec {
        id: SecretId::new("big").expect("id"),
        file: Some(big.clone()),
        env: None,
    };
    let err = store.add_spec(spec).expect_err("too big");
    assert!(
        matches!(err, kiln_session::Error::SecretTooBig { .. }),
        "{err}"
    );
    let spec = SecretSpec {
        id: SecretId::new("nope").expect("id"),
        file: Some("/definitely/not/here".into()),
        env: None,
    };
    assert!(store.add_spec(spec).is_err());
}
