//! A throwaway CA with server and client certificates, for mutual-TLS tests.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

/// PEM files of a test PKI, written to a folder.
#[derive(Clone, Debug)]
pub struct TestPki {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A server certificate (and key) from the same CA whose validity ended
    /// in 2021.
    pub expired_server_cert: PathBuf,
    pub expired_server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A second, unrelated CA (for "wrong CA" tests).
    pub other_ca_cert: PathBuf,
    /// A client certificate signed by the other CA.
    pub rogue_client_cert: PathBuf,
    pub rogue_client_key: PathBuf,
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

fn leaf(ca: &Ca, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
    leaf_with(ca, names, usage, |_| {})
}

fn leaf_with(
    ca: &Ca,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    adjust: impl FnOnce(&mut CertificateParams),
) -> (String, String) {
    let mut p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    adjust(&mut p);
    p.distinguished_name.push(DnType::CommonName, names[0]);
    p.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl TestPki {
    /// Generates the PKI into `dir`. The server certificate is valid for
    /// `localhost`, `127.0.0.1` and `buildkitd.test`.
    pub fn generate(dir: &Path) -> TestPki {
        let main = ca("kiln test CA");
        let other = ca("unrelated CA");
        let (server_cert, server_key) = leaf(
            &main,
            &["localhost", "127.0.0.1", "buildkitd.test"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (expired_cert, expired_key) = leaf_with(
            &main,
            &["localhost", "127.0.0.1", "buildkitd.test"],
            ExtendedKeyUsagePurpose::ServerAuth,
            |p| {
                p.not_before = rcgen::date_time_ymd(2020, 1, 1);
                p.not_after = rcgen::date_time_ymd(2021, 1, 1);
            },
        );
        let (client_cert, client_key) =
            leaf(&main, &["kiln-client"], ExtendedKeyUsagePurpose::ClientAuth);
        let (rogue_cert, rogue_key) = leaf(&other, &["rogue"], ExtendedKeyUsagePurpose::ClientAuth);
        let w = |name: &str, body: &str| {
            let p = dir.join(name);
            std::fs::write(&p, body).unwrap();
            p
        };
        TestPki {
            ca_cert: w("ca.pem", &main.cert.pem()),
            server_cert: w("server.pem", &server_cert),
            server_key: w("server-key.pem", &server_key),
            expired_server_cert: w("expired-server.pem", &expired_cert),
            expired_server_key: w("expired-server-key.pem", &expired_key),
            client_cert: w("client.pem", &client_cert),
            client_key: w("client-key.pem", &client_key),
            other_ca_cert: w("other-ca.pem", &other.cert.pem()),
            rogue_client_cert: w("rogue.pem", &rogue_cert),
            rogue_client_key: w("rogue-key.pem", &rogue_key),
        }
    }
}
