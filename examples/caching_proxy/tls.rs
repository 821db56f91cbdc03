//! TLS to `https://` origins: rustls with the Mozilla root certificates (`webpki-roots`),
//! plus the certificate authorities of `--origin-ca` for origins with a private CA.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

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
