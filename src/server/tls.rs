//! The rustls server configuration: TLS 1.2 and 1.3 only, the server certificate, and client
//! certificates that are optional at the handshake but, when presented, must chain to the
//! configured client CA (and not be on its CRLs, when CRLs are configured).
//!
//! [`ServerTls`] holds the configuration in force and can load it again from its files (SIGHUP):
//! new connections get the new one, and files that do not load leave the old one in force. A
//! CRL past its `nextUpdate` is reported (readiness, log): an expired CRL may be missing
//! revocations, so the deployment must know, but it keeps being enforced as it is.

use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use x509_parser::prelude::FromDer as _;

/// Where the TLS material is.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_chain: std::path::PathBuf,
    pub private_key: std::path::PathBuf,
    pub client_ca: std::path::PathBuf,
    pub client_crls: Vec<std::path::PathBuf>,
}

pub fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificates in {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    Ok(certs)
}

pub fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = load_certs(&files.cert_chain)?;
    let key = PrivateKeyDer::from_pem_file(&files.private_key)
        .with_context(|| format!("reading private key {}", files.private_key.display()))?;

    let mut roots = RootCertStore::empty();
    for ca in load_certs(&files.client_ca)? {
        roots.add(ca).context("adding a client CA certificate")?;
    }
    let mut crls = Vec::new();
    for path in &files.client_crls {
        crls.push(
            CertificateRevocationListDer::from_pem_file(path)
                .with_context(|| format!("reading CRL {}", path.display()))?,
        );
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(crls)
        .allow_unauthenticated()
        .build()
        .context("building the client certificate verifier")?;

    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("choosing TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("loading the server certificate and key")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The earliest `nextUpdate` of the CRLs in `files` (Unix seconds), if any names one.
fn earliest_next_update(files: &TlsFiles) -> anyhow::Result<Option<i64>> {
    let mut earliest: Option<i64> = None;
    for path in &files.client_crls {
        let der = CertificateRevocationListDer::from_pem_file(path)
            .with_context(|| format!("reading CRL {}", path.display()))?;
        let (_, crl) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(der.as_ref())
                .map_err(|e| anyhow::anyhow!("parsing CRL {}: {e}", path.display()))?;
        if let Some(next) = crl.next_update() {
            let next = next.timestamp();
            earliest = Some(earliest.map_or(next, |e| e.min(next)));
        }
    }
    Ok(earliest)
}

/// The TLS configuration in force, reloadable from its files.
pub struct ServerTls {
    files: TlsFiles,
    current: RwLock<Loaded>,
}

#[derive(Clone)]
struct Loaded {
    config: Arc<rustls::ServerConfig>,
    /// When the first of the CRLs expires (Unix seconds).
    crls_valid_until: Option<i64>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the configuration from `files`.
    pub fn load(files: &TlsFiles) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            current: RwLock::new(Self::build(files)?),
            files: files.clone(),
        }))
    }

    fn build(files: &TlsFiles) -> anyhow::Result<Loaded> {
        Ok(Loaded {
            config: server_config(files)?,
            crls_valid_until: earliest_next_update(files)?,
        })
    }

    /// The configuration for a new connection.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        match self.current.read() {
            Ok(loaded) => loaded.config.clone(),
            Err(poisoned) => poisoned.into_inner().config.clone(),
        }
    }

    /// Loads the files again (certificate, key, client CA, CRLs) and puts them in force for new
    /// connections; if they do not load, the configuration in force stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let loaded = Self::build(&self.files)?;
        match self.current.write() {
            Ok(mut current) => *current = loaded,
            Err(poisoned) => *poisoned.into_inner() = loaded,
        }
        Ok(())
    }

    /// Whether a configured CRL is past its `nextUpdate` at `now` (Unix seconds).
    pub fn crl_expired(&self, now: i64) -> bool {
        let until = match self.current.read() {
            Ok(loaded) => loaded.crls_valid_until,
            Err(poisoned) => poisoned.into_inner().crls_valid_until,
        };
        until.is_some_and(|until| until <= now)
    }
}
