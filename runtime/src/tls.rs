//! The client TLS configuration that the rustls-based plugins share when the user gives none:
//! rustls with ring, trusting the system's root certificates (rustls-native-certs, which reads
//! the file `SSL_CERT_FILE` names instead when that variable is set).

use std::sync::Arc;

use crate::{Error, Result};

/// rustls with ring and the system's roots. `plugin` (`"mqtt"`) and `error_id`
/// (`"go.micro.broker"`) name the caller in the error, which says what to give instead.
pub(crate) fn system_roots(plugin: &str, error_id: &str) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        // A certificate the system has but rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(Error::internal_server_error(
            error_id,
            format!(
                "{plugin}: no usable system root certificates for TLS ({} errors); set SSL_CERT_FILE to a CA bundle or give the plugin's `tls` option",
                found.errors.len()
            ),
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::internal_server_error(error_id, format!("{plugin}: tls: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}
