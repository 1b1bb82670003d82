//! A podman that answers the calls a load makes, remembers them, and
//! refuses the ones `fail` picks: to see what a load undoes when a late
//! step fails (the daemon tests cannot make a real podman fail there).

use std::convert::Infallible;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use percent_encoding::percent_decode_str;

use crate::digest::Digest;

pub(crate) struct Fake {
    pub(crate) calls: Mutex<Vec<String>>,
    /// What `GET /images/json` lists: (ID, names).
    pub(crate) images: Vec<(String, Vec<String>)>,
    /// The manifests loaded: (name, digest, platform JSON).
    loaded: Mutex<Vec<(String, String, serde_json::Value)>>,
    fail: Box<dyn Fn(&str) -> bool + Send + Sync>,
}

/// A made-up image ID for `name`.
pub(crate) fn id(name: &str) -> String {
    Digest::sha256_of(name.as_bytes()).hex().to_string()
}

pub(crate) fn start(
    sock: &Path,
    images: Vec<(String, Vec<String>)>,
    fail: impl Fn(&str) -> bool + Send + Sync + 'static,
) -> Arc<Fake> {
    let fake = Arc::new(Fake {
        calls: Mutex::default(),
        images,
        loaded: Mutex::default(),
        fail: Box::new(fail),
    });
    let listener = tokio::net::UnixListener::bind(sock).expect("bind");
    let served = fake.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let fake = served.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let fake = fake.clone();
                    async move { Ok::<_, Infallible>(fake.answer(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    fake
}

impl Fake {
    pub(crate) fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("calls").clone()
    }

    async fn answer(&self, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let path = path
            .strip_prefix("/v4.0.0/libpod")
            .unwrap_or(&path)
            .to_string();
        let path = percent_decode_str(&path).decode_utf8_lossy().to_string();
        let query = percent_decode_str(req.uri().query().unwrap_or(""))
            .decode_utf8_lossy()
            .to_string();
        let body = req.into_body().collect().await.expect("body").to_bytes();
        let call = if query.is_empty() {
            format!("{method} {path}")
        } else {
            format!("{method} {path}?{query}")
        };
        self.calls.lock().expect("calls").push(call.clone());
        let reply = |status: u16, body: serde_json::Value| {
            hyper::Response::builder()
                .status(status)
                .header("Libpod-Api-Version", "4.3.1")
                .body(Full::new(Bytes::from(body.to_string())))
                .expect("response")
        };
        if (self.fail)(&call) {
            return reply(500, serde_json::json!({"message": "boom", "response": 500}));
        }
        let ok = || reply(200, serde_json::json!({}));
        match (method.as_str(), path.as_str()) {
            ("GET", "/_ping") => ok(),
            ("GET", "/images/json") => {
                // What was there, and what this load added.
                let mut images = self.images.clone();
                for call in self.calls() {
                    if let Some(list) = call.strip_prefix("POST /manifests/") {
                        images.push((id(list), vec![list.to_string()]));
                    }
                }
                for (name, _, _) in self.loaded.lock().expect("loaded").iter() {
                    images.push((id(name), vec![name.clone()]));
                }
                let list: Vec<serde_json::Value> = images
                    .iter()
                    .map(|(id, names)| {
                        serde_json::json!({"Id": id, "Names": names,
                            "Digest": Digest::sha256_of(id.as_bytes()).to_string()})
                    })
                    .collect();
                reply(200, serde_json::Value::Array(list))
            }
            ("POST", "/images/load") => {
                let (name, digest, platform) = archive_name(&body);
                self.loaded
                    .lock()
                    .expect("loaded")
                    .push((name.clone(), digest, platform));
                reply(200, serde_json::json!({"Names": [name]}))
            }
            ("GET", p) if p.starts_with("/images/") && p.ends_with("/json") => {
                let name = &p["/images/".len()..p.len() - "/json".len()];
                reply(200, serde_json::json!({"Id": id(name)}))
            }
            ("POST", p) if p.starts_with("/manifests/") => reply(
                200,
                serde_json::json!({"Id": id(&p["/manifests/".len()..])}),
            ),
            ("GET", p) if p.starts_with("/manifests/") => {
                let manifests: Vec<serde_json::Value> = self
                    .loaded
                    .lock()
                    .expect("loaded")
                    .iter()
                    .map(|(_, d, p)| serde_json::json!({"digest": d, "platform": p}))
                    .collect();
                reply(
                    200,
                    serde_json::json!({"schemaVersion": 2, "manifests": manifests}),
                )
            }
            _ => ok(),
        }
    }
}

/// The name, manifest digest and platform of a single-image archive.
fn archive_name(body: &[u8]) -> (String, String, serde_json::Value) {
    let mut archive = tar::Archive::new(body);
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        if entry.path().expect("path").to_string_lossy() == "index.json" {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("read");
            let index: serde_json::Value = serde_json::from_slice(&data).expect("json");
            let m = &index["manifests"][0];
            let name = m["annotations"]["io.containerd.image.name"]
                .as_str()
                .expect("name")
                .to_string();
            let digest = m["digest"].as_str().expect("digest").to_string();
            return (name, digest, m["platform"].clone());
        }
    }
    panic!("no index.json in the archive");
}
