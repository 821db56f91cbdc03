//! A counting hyper origin on `127.0.0.1:0` that answers its name on every path, over plain
//! HTTP or TLS, and the certificates for it.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

/// A counting origin answering `name` (cacheable for a minute) on every path, over plain
/// HTTP or, with `tls`, over TLS with that certificate.
pub struct Origin {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub hosts: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Origin {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

pub async fn start_origin(name: &'static str, tls: Option<tokio_rustls::TlsAcceptor>) -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let addr = listener.local_addr().expect("origin address");
    let hits = Arc::new(AtomicUsize::new(0));
    let hosts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (task_hits, task_hosts) = (Arc::clone(&hits), Arc::clone(&hosts));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (hits, hosts, tls) = (Arc::clone(&task_hits), Arc::clone(&task_hosts), tls.clone());
            let service = service_fn(move |req: Request<Incoming>| {
                hits.fetch_add(1, Ordering::SeqCst);
                let host = req.headers().get("host").and_then(|h| h.to_str().ok());
                hosts
                    .lock()
                    .expect("hosts lock")
                    .push(host.unwrap_or("").to_owned());
                async move {
                    let response = Response::builder()
                        .header("cache-control", "max-age=60")
                        .body(Full::<Bytes>::from(name))
                        .expect("valid response");
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(async move {
                let http = hyper::server::conn::http1::Builder::new();
                let _ = match tls {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(stream) => http.serve_connection(TokioIo::new(stream), service).await,
                        Err(_) => return,
                    },
                    None => http.serve_connection(TokioIo::new(stream), service).await,
                };
            });
        }
    });
    Origin { addr, hits, hosts }
}

/// A self-signed certificate for `127.0.0.1` and the acceptor serving it.
pub fn tls_pair() -> (CertificateDer<'static>, tokio_rustls::TlsAcceptor) {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("generate a certificate");
    let cert = key.cert.der().clone();
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.key_pair.serialize_der()));
    (cert.clone(), acceptor(vec![cert], private))
}

/// A certificate authority, and a certificate for `127.0.0.1` it signed with the acceptor
/// serving it: (the CA's PEM, the acceptor).
pub fn private_ca_pair() -> (String, tokio_rustls::TlsAcceptor) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tower-cache-layer test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca, &ca_key)
        .expect("leaf certificate");
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    (ca.pem(), acceptor(vec![leaf.der().clone()], private))
}

/// A TLS acceptor serving `chain` with `key`, offering HTTP/1.1.
fn acceptor(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> tokio_rustls::TlsAcceptor {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
