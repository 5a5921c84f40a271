//! TLS towards `https` upstreams (rustls with the ring provider).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use futures_rustls::rustls::pki_types::CertificateDer;
use futures_rustls::rustls::pki_types::pem::PemObject;
use futures_rustls::rustls::{self, ClientConfig, RootCertStore};

/// Which trust anchors verify upstream certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Roots {
    /// Mozilla's roots, compiled in (webpki-roots): the same everywhere.
    #[default]
    Webpki,
    /// The operating system's store.
    System,
}

/// A client configuration trusting `roots` (none: only the CA file) plus every certificate in
/// `ca_file` (PEM), speaking HTTP/1.1 over ALPN. Trusting nothing at all is an error, not a
/// configuration that refuses every upstream.
pub fn client_config(
    roots: Option<Roots>,
    ca_file: Option<&Path>,
) -> anyhow::Result<Arc<ClientConfig>> {
    let mut store = RootCertStore::empty();
    match roots {
        None => {}
        Some(Roots::Webpki) => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(Roots::System) => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = store.add(cert);
            }
            if store.is_empty() {
                bail!("the system certificate store holds no usable certificate");
            }
        }
    }
    if roots.is_none() && ca_file.is_none() {
        bail!("no trust anchors: choose webpki or system roots, or give a CA file");
    }
    if let Some(path) = ca_file {
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("cannot read CA file {}", path.display()))?
        {
            let cert = cert.with_context(|| format!("bad PEM in CA file {}", path.display()))?;
            store
                .add(cert)
                .with_context(|| format!("unusable certificate in {}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            bail!("CA file {} holds no certificate", path.display());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
