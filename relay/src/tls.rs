//! TLS for `wss://` without a reverse proxy: a rustls acceptor from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;

use crate::RelayError;

/// Builds the acceptor for the certificate chain at `cert` and the private key at `key`.
pub(crate) fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, RelayError> {
    let tls_error = |what, path: &Path, detail: String| RelayError::Tls {
        what,
        path: path.to_owned(),
        detail,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_error("certificate", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(tls_error(
            "certificate",
            cert,
            "it holds no certificate".into(),
        ));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| tls_error("key", key, e.to_string()))?;
    let config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(chain, private)
        })
        .map_err(|e| tls_error("key", key, e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
