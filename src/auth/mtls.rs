//! Reading the identity out of a verified TLS client certificate.
//!
//! The certificate has already been verified by rustls against the configured client CA when
//! this runs: a certificate from any other CA, however alike, never gets here. The identity is
//! the first SAN URI, else the subject CN; it is looked up in the registry of identities
//! issued for a tenant. Serial numbers and key identifiers are never used to match.

use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// SAN URI, else subject CN.
    pub identity: String,
    /// SHA-256 of the DER certificate, lower-case hex, for the audit trail.
    pub fingerprint: String,
}

/// The identity a leaf certificate asserts, or `None` if it names none.
pub fn certificate_identity(der: &[u8]) -> Option<CertIdentity> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let san_uri = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|n| match n {
                GeneralName::URI(u) => Some((*u).to_owned()),
                _ => None,
            })
        });
    let identity = match san_uri {
        Some(uri) => uri,
        None => cert
            .subject()
            .iter_common_name()
            .next()?
            .as_str()
            .ok()?
            .to_owned(),
    };
    if identity.is_empty() {
        return None;
    }
    Some(CertIdentity {
        identity,
        fingerprint: hex::encode(Sha256::digest(der)),
    })
}
