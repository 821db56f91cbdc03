//! A counting hyper origin on `127.0.0.1:0` that answers its name on every path, over plain
//! HTTP or TLS, and the certificates for it (TLS with the cargo feature `https` only).
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
use tokio::net::TcpListener;

#[cfg(feature = "https")]
pub use self::tls::TlsAcceptor;

/// Without the `https` feature there is no TLS: `None` is the only `Option<TlsAcceptor>`.
#[cfg(not(feature = "https"))]
pub type TlsAcceptor = std::convert::Infallible;

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

pub async fn start_origin(name: &'static str, tls: Option<TlsAcceptor>) -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let addr = listener.local_addr().expect("origin address");
    let hits = Arc::new(AtomicUsize::new(0));
    let hosts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (task_hits, task_hosts) = (Arc::clone(&hits), Arc::clone(&hosts));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            // Without TLS, `tls` is an `Option<Infallible>`, which is `Copy`.
            #[cfg_attr(not(feature = "https"), allow(clippy::clone_on_copy))]
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
                    #[cfg(not(feature = "https"))]
                    Some(never) => match never {},
                    #[cfg(feature = "https")]
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

/// Certificates and acceptors for TLS origins.
#[cfg(feature = "https")]
pub mod tls {
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    pub use tokio_rustls::TlsAcceptor;

    /// The PEM file `tests/certs/<name>`, built into the test (see tests/certs/README.md).
    macro_rules! cert_file {
        ($name:literal) => {
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/certs/", $name)).as_slice()
        };
    }

    /// The certificate in a PEM file's contents.
    fn certificate(pem: &[u8]) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem).expect("a PEM certificate")
    }

    /// The private key in a PEM file's contents.
    fn private_key(pem: &[u8]) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(pem).expect("a PEM private key")
    }

    /// A self-signed certificate for `127.0.0.1` and the acceptor serving it
    /// (tests/certs/self-signed.pem).
    pub fn tls_pair() -> (CertificateDer<'static>, TlsAcceptor) {
        let cert = certificate(cert_file!("self-signed.pem"));
        let key = private_key(cert_file!("self-signed.key"));
        (cert.clone(), acceptor(vec![cert], key))
    }

    /// A certificate authority, and a certificate for `127.0.0.1` it signed with the acceptor
    /// serving it: (the CA's PEM, the acceptor). The CA is tests/certs/ca.pem, the certificate
    /// tests/certs/leaf.pem; neither is the self-signed one of [`tls_pair`].
    pub fn private_ca_pair() -> (String, TlsAcceptor) {
        let ca_pem = String::from_utf8(cert_file!("ca.pem").to_vec()).expect("a UTF-8 PEM file");
        let leaf = certificate(cert_file!("leaf.pem"));
        let key = private_key(cert_file!("leaf.key"));
        (ca_pem, acceptor(vec![leaf], key))
    }

    /// A TLS acceptor serving `chain` with `key`, offering HTTP/1.1.
    fn acceptor(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> TlsAcceptor {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }
}
