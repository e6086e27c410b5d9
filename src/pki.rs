//! Development key material made by `simvault init` and `simvault cert issue`: a CA, the
//! server certificate, client certificates, the JWT signing key pair and the root key.
//!
//! Private keys are written 0600 and never overwritten. Production deployments bring their
//! own CA and identity provider keys; this module only makes a working start easy.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// The files under `D/keys/`.
#[derive(Debug, Clone)]
pub struct KeyPaths {
    pub dir: PathBuf,
}

impl KeyPaths {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("keys"),
        }
    }
    pub fn root_key(&self) -> PathBuf {
        self.dir.join("root.key")
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    pub fn jwt_private(&self) -> PathBuf {
        self.dir.join("jwt-signing.key")
    }
    pub fn jwt_public(&self) -> PathBuf {
        self.dir.join("jwt-signing.pub.pem")
    }
    /// The Ed25519 key signing audit checkpoints (server only).
    pub fn audit_signing_key(&self) -> PathBuf {
        self.dir.join("audit-signing.key")
    }
    /// Its public half, for verifying checkpoints anywhere.
    pub fn audit_verifying_key(&self) -> PathBuf {
        self.dir.join("audit-signing.pub.pem")
    }
    /// Every file `init` makes, for the refuse-to-overwrite check.
    pub fn all(&self) -> Vec<PathBuf> {
        vec![
            self.root_key(),
            self.ca_cert(),
            self.ca_key(),
            self.server_cert(),
            self.server_key(),
            self.jwt_private(),
            self.jwt_public(),
            self.audit_signing_key(),
            self.audit_verifying_key(),
        ]
    }
}

/// Writes `contents` to a new file; refuses to replace an existing one. Private files are
/// created with mode 0600 from the start (no window where they are readable).
pub fn write_new(path: &Path, contents: &[u8], private: bool) -> anyhow::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

fn now() -> OffsetDateTime {
    use crate::clock::Clock as _;
    crate::clock::SystemClock.now_datetime()
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "simvault");
    dn.push(DnType::CommonName, cn);
    dn
}

/// Makes all key material in `paths.dir`. Fails, writing nothing, if any of it exists.
pub fn init_keys(paths: &KeyPaths) -> anyhow::Result<()> {
    let existing: Vec<_> = paths.all().into_iter().filter(|p| p.exists()).collect();
    if !existing.is_empty() {
        bail!(
            "key material already exists ({}); refusing to overwrite it",
            existing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    fs::create_dir_all(&paths.dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&paths.dir, fs::Permissions::from_mode(0o700))?;
    }

    // Root key: 256 bits from the OS, in the vault's plain key-file format.
    let root = crate::vault::new_key()?;
    write_new(
        &paths.root_key(),
        crate::vault::root::encode_plain(&root).as_bytes(),
        true,
    )?;

    // Development CA, signing both the server certificate and client certificates.
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = dn("simvault development CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now() - Duration::hours(1);
    ca.not_after = now() + Duration::days(3650);
    let ca_cert = ca.self_signed(&ca_key)?;
    write_new(&paths.ca_cert(), ca_cert.pem().as_bytes(), false)?;
    write_new(&paths.ca_key(), ca_key.serialize_pem().as_bytes(), true)?;

    let issuer = Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(vec!["localhost".to_owned()])?;
    server
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    server
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    server.distinguished_name = dn("localhost");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.not_before = now() - Duration::hours(1);
    server.not_after = now() + Duration::days(825);
    let server_cert = server.signed_by(&server_key, &issuer)?;
    write_new(&paths.server_cert(), server_cert.pem().as_bytes(), false)?;
    write_new(
        &paths.server_key(),
        server_key.serialize_pem().as_bytes(),
        true,
    )?;

    // JWT signing key pair (Ed25519). The server only reads the public half.
    let jwt = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    write_new(&paths.jwt_private(), jwt.serialize_pem().as_bytes(), true)?;
    write_new(&paths.jwt_public(), jwt.public_key_pem().as_bytes(), false)?;

    init_audit_key(paths)
}

/// Makes the audit checkpoint signing key pair (Ed25519), refusing to replace one.
pub fn init_audit_key(paths: &KeyPaths) -> anyhow::Result<()> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    write_new(
        &paths.audit_signing_key(),
        key.serialize_pem().as_bytes(),
        true,
    )?;
    write_new(
        &paths.audit_verifying_key(),
        key.public_key_pem().as_bytes(),
        false,
    )?;
    Ok(())
}

/// The identity URI a client certificate for `name` in `tenant` carries.
pub fn client_identity(tenant: &crate::domain::TenantId, name: &str) -> String {
    format!("urn:simvault:{tenant}:{name}")
}

/// A client certificate signed by the CA in `paths`: `(certificate PEM, private key PEM)`.
pub fn issue_client_cert(
    paths: &KeyPaths,
    identity: &str,
    common_name: &str,
    valid_days: i64,
) -> anyhow::Result<(String, String)> {
    let ca_pem = fs::read_to_string(paths.ca_cert())
        .with_context(|| format!("reading {}", paths.ca_cert().display()))?;
    let ca_key_pem = fs::read_to_string(paths.ca_key())
        .with_context(|| format!("reading {} (the CA key)", paths.ca_key().display()))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
    issue_client_cert_with(&issuer, identity, common_name, valid_days)
}

pub fn issue_client_cert_with(
    issuer: &Issuer<'_, KeyPair>,
    identity: &str,
    common_name: &str,
    valid_days: i64,
) -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = vec![SanType::URI(identity.try_into()?)];
    params.distinguished_name = dn(common_name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = now() - Duration::hours(1);
    params.not_after = now() + Duration::days(valid_days);
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A CRL signed by the CA in `paths` revoking the given client certificates (PEM), valid from
/// an hour ago until `next_update` (which may be in the past, for an expired CRL): PEM.
pub fn issue_crl(
    paths: &KeyPaths,
    revoked_pems: &[&str],
    next_update: OffsetDateTime,
) -> anyhow::Result<String> {
    let ca_pem = fs::read_to_string(paths.ca_cert())
        .with_context(|| format!("reading {}", paths.ca_cert().display()))?;
    let ca_key_pem = fs::read_to_string(paths.ca_key())
        .with_context(|| format!("reading {} (the CA key)", paths.ca_key().display()))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, KeyPair::from_pem(&ca_key_pem)?)?;
    let mut revoked_certs = Vec::new();
    for pem in revoked_pems {
        let (_, doc) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("parsing a certificate to revoke: {e}"))?;
        let cert = doc
            .parse_x509()
            .map_err(|e| anyhow::anyhow!("parsing a certificate to revoke: {e}"))?;
        revoked_certs.push(rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from_slice(cert.raw_serial()),
            revocation_time: now() - Duration::minutes(1),
            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
            invalidity_date: None,
        });
    }
    let this_update = (now() - Duration::hours(1)).min(next_update - Duration::hours(1));
    let params = rcgen::CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    Ok(params.signed_by(&issuer)?.pem()?)
}
