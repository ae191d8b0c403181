//! `[server.tls]`: the certificate chain and private key, read and checked while the config is
//! validated, so a missing, unreadable or mismatched file is reported with its key before the
//! server starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pgwire::tokio::tokio_rustls::rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    cert: PathBuf,
    key: PathBuf,
    /// Checked here rather than by serde, whose error for a bad value names no key.
    mode: Option<String>,
}

/// Whether a client may also connect without TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS for clients that ask for it (SSLRequest), plaintext for the others.
    Prefer,
    /// A plaintext startup is refused with FATAL 28000.
    Require,
}

/// TLS as the server runs it.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub mode: TlsMode,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub server_config: Arc<rustls::ServerConfig>,
}

/// Loads the files of `raw` (relative paths are relative to `data_dir`); every problem goes to
/// `problem` with the key it concerns.
pub(super) fn load(
    raw: RawTls,
    data_dir: &Path,
    problem: &mut impl FnMut(&str, String),
) -> Option<TlsConfig> {
    let mode = match raw.mode.as_deref() {
        None | Some("prefer") => Some(TlsMode::Prefer),
        Some("require") => Some(TlsMode::Require),
        Some(other) => {
            problem(
                "server.tls.mode",
                format!("{other:?} is not \"prefer\" or \"require\""),
            );
            None
        }
    };
    let cert = data_dir.join(&raw.cert);
    let key = data_dir.join(&raw.key);
    let chain = match CertificateDer::pem_file_iter(&cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
    {
        Ok(chain) if chain.is_empty() => {
            problem(
                "server.tls.cert",
                format!("{} holds no PEM certificate", cert.display()),
            );
            None
        }
        Ok(chain) => Some(chain),
        Err(e) => {
            problem(
                "server.tls.cert",
                format!("cannot read a PEM certificate from {}: {e}", cert.display()),
            );
            None
        }
    };
    let private_key = match PrivateKeyDer::from_pem_file(&key) {
        Ok(private_key) => Some(private_key),
        Err(e) => {
            problem(
                "server.tls.key",
                format!("cannot read a PEM private key from {}: {e}", key.display()),
            );
            None
        }
    };
    let (mode, chain, private_key) = (mode?, chain?, private_key?);
    // Chosen explicitly: with more than one provider compiled in, rustls has no default.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let built = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(chain, private_key)
        });
    match built {
        Ok(mut server_config) => {
            // PostgreSQL 17's direct TLS (sslnegotiation=direct) insists on this ALPN name.
            server_config.alpn_protocols = vec![b"postgresql".to_vec()];
            Some(TlsConfig {
                mode,
                cert,
                key,
                server_config: Arc::new(server_config),
            })
        }
        Err(e) => {
            problem(
                "server.tls.key",
                format!(
                    "{} does not go with the certificate in {}: {e}",
                    key.display(),
                    cert.display()
                ),
            );
            None
        }
    }
}
