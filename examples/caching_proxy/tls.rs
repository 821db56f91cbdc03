//! TLS to `https://` origins: rustls with the Mozilla root certificates (`webpki-roots`),
//! plus the certificate authorities of `--origin-ca` for origins with a private CA.
//!
//! Only with the cargo feature `https`. Without it the proxy's origin connector is plain TCP
//! (which refuses `https://` URIs itself), and every place an https URL can come in
//! (`--origin`, `--origin-ca`, a forward proxy's absolute-form target) is refused with
//! [`NO_TLS`].

#[cfg(not(feature = "https"))]
pub(crate) use self::plain::*;
#[cfg(feature = "https")]
pub(crate) use self::rustls_tls::*;

/// Why an https URL is refused by a build without the `https` feature.
#[cfg_attr(feature = "https", allow(dead_code))]
pub(crate) const NO_TLS: &str = "https needs TLS, and this build of caching_proxy has none: \
     build it with `--features https`";

/// A build without TLS: plain TCP connections only.
#[cfg(not(feature = "https"))]
mod plain {
    use hyper_util::client::legacy::connect::HttpConnector;

    use super::NO_TLS;

    /// `--origin-ca` in a build without TLS: never parsed, always refused.
    #[derive(Clone, Debug)]
    pub(crate) enum CaFile {}

    /// Clap value parser for `--origin-ca`: refused, there is no TLS.
    pub(crate) fn parse_ca_file(_path: &str) -> Result<CaFile, String> {
        Err(NO_TLS.to_owned())
    }

    /// The TLS settings of a build without TLS: none.
    #[derive(Clone, Debug)]
    pub(crate) struct ClientConfig;

    /// The client configuration for origin connections: nothing to configure.
    #[allow(clippy::unnecessary_wraps)]
    pub(crate) fn client_config(_extra: &[CaFile]) -> Result<ClientConfig, String> {
        Ok(ClientConfig)
    }

    /// The origin connector: plain TCP.
    pub(crate) type Connector = HttpConnector;

    /// The origin connector over `http`. `enforce_http` stays on: an `https://` URI that got
    /// this far fails to connect rather than going out in clear text.
    pub(crate) fn connector(mut http: HttpConnector, _tls: ClientConfig) -> Connector {
        http.enforce_http(true);
        http
    }

    /// Whether this build can reach `https://` URLs.
    pub(crate) const HAS_TLS: bool = false;
}

/// A build with TLS: rustls over ring.
#[cfg(feature = "https")]
mod rustls_tls {
    use std::path::Path;
    use std::sync::Arc;

    use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
    use hyper_util::client::legacy::connect::HttpConnector;
    pub(crate) use rustls::ClientConfig;
    use rustls::RootCertStore;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    /// Whether this build can reach `https://` URLs.
    pub(crate) const HAS_TLS: bool = true;

    /// The origin connector: TLS for `https://`, plain TCP for `http://`, HTTP/2 by ALPN.
    pub(crate) type Connector = HttpsConnector<HttpConnector>;

    /// The origin connector over `http` with the TLS settings `tls`.
    pub(crate) fn connector(mut http: HttpConnector, tls: ClientConfig) -> Connector {
        http.enforce_http(false);
        HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http)
    }

    /// Certificate authorities read from a PEM file (`--origin-ca`).
    #[derive(Clone, Debug)]
    pub(crate) struct CaFile(Vec<CertificateDer<'static>>);

    /// Clap value parser for `--origin-ca`: a readable PEM file with at least one certificate.
    pub(crate) fn parse_ca_file(path: &str) -> Result<CaFile, String> {
        let certs = CertificateDer::pem_file_iter(Path::new(path))
            .map_err(|e| format!("cannot read `{path}` ({e})"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("`{path}` is not a PEM certificate file ({e})"))?;
        if certs.is_empty() {
            return Err(format!("`{path}` holds no PEM certificate"));
        }
        Ok(CaFile(certs))
    }

    /// The client configuration for origin connections: the webpki roots and every certificate
    /// authority in `extra`. ALPN is set by the connector.
    ///
    /// # Errors
    ///
    /// A certificate in `extra` that rustls cannot use as a trust anchor.
    pub(crate) fn client_config(extra: &[CaFile]) -> Result<ClientConfig, String> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for cert in extra.iter().flat_map(|file| file.0.iter()) {
            roots
                .add(cert.clone())
                .map_err(|e| format!("--origin-ca: unusable certificate authority ({e})"))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed ({e})"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(config)
    }
}
