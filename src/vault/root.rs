//! Root-key providers: where the key that wraps every tenant KEK comes from.
//!
//! - `file` (default): `D/keys/root.key` from `simvault init`, base64. Refused if readable by
//!   group or others.
//! - the same file **sealed** with a passphrase (`simvault keys seal`): the key is encrypted
//!   under a key derived with Argon2id (parameters stored in the file; 64 MiB, 3 passes, 1 lane
//!   by default; a file asking for more than 1 GiB, 10 passes or 16 lanes, or for less than
//!   OWASP's floor, is refused before anything is derived). The passphrase comes from `SIMVAULT_PASSPHRASE` or a terminal prompt, never
//!   a flag.
//! - `env`: `SIMVAULT_ROOT_KEY`, base64, for container platforms.
//!
//! The provider is a trait so a hardware module can wrap and unwrap without the root key ever
//! entering this process.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Key, VaultError, new_key, open, seal};

/// Wraps and unwraps tenant KEKs.
pub trait RootKey: Send + Sync + std::fmt::Debug {
    fn wrap(&self, key: &Key, aad: &[u8]) -> Result<Vec<u8>, VaultError>;
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Key, VaultError>;
    /// Whether the key can be used now (a hardware module may go away); for `/readyz`.
    fn available(&self) -> bool {
        true
    }
    /// How long unwrapped tenant KEKs may stay cached (`None`: for the process's life).
    fn cache_lifetime(&self) -> Option<std::time::Duration> {
        None
    }
}

/// A root key held in this process (file, sealed file or environment).
pub struct LocalRootKey(Key);

impl std::fmt::Debug for LocalRootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalRootKey([redacted])")
    }
}

impl LocalRootKey {
    pub fn new(key: Key) -> Self {
        Self(key)
    }
}

impl RootKey for LocalRootKey {
    fn wrap(&self, key: &Key, aad: &[u8]) -> Result<Vec<u8>, VaultError> {
        seal(&self.0, key.as_ref(), aad)
    }

    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Key, VaultError> {
        let bytes = open(&self.0, wrapped, aad, "a tenant key")?;
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::Integrity("a tenant key"))?;
        Ok(Zeroizing::new(arr))
    }
}

/// Where to load the root key from.
#[derive(Debug, Clone)]
pub enum RootKeySource {
    File(PathBuf),
    Env,
    /// A hardware module over PKCS#11; unwrapped KEKs are cached for the given lifetime.
    Pkcs11(super::pkcs11::Pkcs11Settings, std::time::Duration),
}

const SEALED_FORMAT: &str = "simvault-sealed-root-key";
const SEALED_AAD: &[u8] = b"simvault/v1/sealed-root-key";

/// A root key file sealed with a passphrase.
#[derive(Debug, Serialize, Deserialize)]
struct SealedFile {
    format: String,
    version: u32,
    kdf: String,
    /// Argon2id memory cost in KiB, passes, lanes.
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
    sealed: String,
}

/// Argon2id parameters for sealing (OWASP's stronger profile).
pub const ARGON2_M_KIB: u32 = 64 * 1024;
pub const ARGON2_T: u32 = 3;
pub const ARGON2_P: u32 = 1;

/// What a sealed file may ask of Argon2id. The ceilings stop a planted or corrupted file from
/// making every start allocate gigabytes or spin for minutes; the floors (OWASP's minimum
/// profile: 19 MiB, 2 passes) stop one that would make the passphrase cheap to guess.
const ARGON2_M_KIB_RANGE: std::ops::RangeInclusive<u32> = 19 * 1024..=1024 * 1024;
const ARGON2_T_RANGE: std::ops::RangeInclusive<u32> = 2..=10;
const ARGON2_P_RANGE: std::ops::RangeInclusive<u32> = 1..=16;
/// Salt lengths accepted, in bytes (we write 16).
const SALT_LEN_RANGE: std::ops::RangeInclusive<usize> = 16..=64;

/// Refuses a sealed file's Argon2id parameters outside the accepted ranges.
fn check_params(m_kib: u32, t: u32, p: u32, salt_len: usize) -> anyhow::Result<()> {
    for (name, value, range) in [
        ("memory (KiB)", m_kib, &ARGON2_M_KIB_RANGE),
        ("passes", t, &ARGON2_T_RANGE),
        ("lanes", p, &ARGON2_P_RANGE),
    ] {
        if !range.contains(&value) {
            bail!(
                "sealed root key: Argon2id {name} {value} is outside {}..={}",
                range.start(),
                range.end()
            );
        }
    }
    if !SALT_LEN_RANGE.contains(&salt_len) {
        bail!("sealed root key: the salt must be 16 to 64 bytes");
    }
    Ok(())
}

fn derive(passphrase: &SecretString, salt: &[u8], m: u32, t: u32, p: u32) -> anyhow::Result<Key> {
    let params = argon2::Params::new(m, t, p, Some(32))
        .map_err(|e| anyhow::anyhow!("Argon2 parameters: {e}"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.expose_secret().as_bytes(), salt, out.as_mut())
        .map_err(|e| anyhow::anyhow!("Argon2: {e}"))?;
    Ok(out)
}

fn decode_key(text: &str) -> anyhow::Result<Key> {
    let bytes = Zeroizing::new(
        B64.decode(text.trim())
            .map_err(|_| anyhow::anyhow!("the root key is not valid base64"))?,
    );
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("the root key must be 32 bytes (256 bits)"))?;
    Ok(Zeroizing::new(arr))
}

/// The plain file format written by `simvault init`.
pub fn encode_plain(key: &Key) -> Zeroizing<String> {
    Zeroizing::new(format!("{}\n", B64.encode(key.as_ref())))
}

/// Seals `key` under `passphrase`; the result is the sealed file's contents.
pub fn seal_with_passphrase(key: &Key, passphrase: &SecretString) -> anyhow::Result<String> {
    if passphrase.expose_secret().chars().count() < 12 {
        bail!("the passphrase must be at least 12 characters");
    }
    let salt = new_key()?;
    let kek = derive(passphrase, &salt[..16], ARGON2_M_KIB, ARGON2_T, ARGON2_P)?;
    let sealed = seal(&kek, key.as_ref(), SEALED_AAD)?;
    let file = SealedFile {
        format: SEALED_FORMAT.into(),
        version: 1,
        kdf: "argon2id".into(),
        m_kib: ARGON2_M_KIB,
        t: ARGON2_T,
        p: ARGON2_P,
        salt: B64.encode(&salt[..16]),
        sealed: B64.encode(sealed),
    };
    Ok(serde_json::to_string_pretty(&file)? + "\n")
}

fn unseal(text: &str, passphrase: &SecretString) -> anyhow::Result<Key> {
    let file: SealedFile =
        serde_json::from_str(text).context("the sealed root key file is malformed")?;
    if file.format != SEALED_FORMAT || file.version != 1 || file.kdf != "argon2id" {
        bail!("unsupported sealed root key format");
    }
    let salt = B64.decode(&file.salt).context("sealed root key: salt")?;
    let sealed = B64.decode(&file.sealed).context("sealed root key: body")?;
    check_params(file.m_kib, file.t, file.p, salt.len())?;
    let kek = derive(passphrase, &salt, file.m_kib, file.t, file.p)?;
    let bytes = open(&kek, &sealed, SEALED_AAD, "the sealed root key").map_err(|_| {
        anyhow::anyhow!("wrong passphrase for the sealed root key (or the file was altered)")
    })?;
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("sealed root key: wrong length"))?;
    Ok(Zeroizing::new(arr))
}

/// Where a root-key rotation writes the new key before switching to it.
pub fn next_path(path: &Path) -> PathBuf {
    path.with_extension("key.next")
}

/// Whether a root key file is sealed with a passphrase.
pub fn is_sealed(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

/// Refuses a key file that anyone but its owner can read.
pub fn check_private(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "the root key file {} is readable by group or others (mode {:o}); run: chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
    Ok(())
}

/// The passphrase for a sealed file: `SIMVAULT_PASSPHRASE`, else a prompt on a terminal.
pub fn passphrase(prompt: &str) -> anyhow::Result<SecretString> {
    if let Some(p) = std::env::var("SIMVAULT_PASSPHRASE")
        .ok()
        .filter(|p| !p.is_empty())
    {
        return Ok(SecretString::from(p));
    }
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(prompt).context("reading the passphrase")?;
        return Ok(SecretString::from(p));
    }
    bail!("the root key file is sealed: set SIMVAULT_PASSPHRASE or run on a terminal to be asked")
}

/// Reads a root key file (plain or sealed) with the given passphrase source.
pub fn read_file(
    path: &Path,
    passphrase_source: impl FnOnce() -> anyhow::Result<SecretString>,
) -> anyhow::Result<Key> {
    check_private(path)?;
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading the root key file {}", path.display()))?,
    );
    if is_sealed(&text) {
        unseal(&text, &passphrase_source()?)
    } else {
        decode_key(&text).with_context(|| format!("root key file {}", path.display()))
    }
}

/// Loads the configured root key.
pub fn load(source: &RootKeySource) -> anyhow::Result<Arc<dyn RootKey>> {
    let key = match source {
        RootKeySource::Pkcs11(settings, lifetime) => {
            let hsm = super::pkcs11::Pkcs11RootKey::open(settings.clone(), *lifetime)
                .context("SIMVAULT_ROOT_KEY_PROVIDER=pkcs11: the HSM is not usable")?;
            return Ok(Arc::new(hsm));
        }
        RootKeySource::File(path) => read_file(path, || passphrase("Root key passphrase: "))?,
        RootKeySource::Env => {
            let text = Zeroizing::new(std::env::var("SIMVAULT_ROOT_KEY").map_err(|_| {
                anyhow::anyhow!("SIMVAULT_ROOT_KEY_PROVIDER=env but SIMVAULT_ROOT_KEY is not set")
            })?);
            decode_key(&text).context("SIMVAULT_ROOT_KEY")?
        }
    };
    Ok(Arc::new(LocalRootKey::new(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_files_open_only_with_their_passphrase() {
        let key = new_key().unwrap();
        let pass = SecretString::from("correct horse battery staple");
        let text = seal_with_passphrase(&key, &pass).unwrap();
        assert!(is_sealed(&text));
        assert!(!text.contains(&B64.encode(key.as_ref())));
        assert_eq!(*unseal(&text, &pass).unwrap(), *key);
        let err = unseal(&text, &SecretString::from("wrong horse battery staple")).unwrap_err();
        assert!(err.to_string().contains("wrong passphrase"));
        assert!(seal_with_passphrase(&key, &SecretString::from("short")).is_err());
    }

    /// A sealed file with its parameters replaced (the seal itself is not reached).
    fn with_params(text: &str, m_kib: u32, t: u32, p: u32) -> String {
        let mut file: SealedFile = serde_json::from_str(text).unwrap();
        (file.m_kib, file.t, file.p) = (m_kib, t, p);
        serde_json::to_string(&file).unwrap()
    }

    #[test]
    fn argon2_parameters_out_of_bounds_are_refused_before_deriving() {
        let key = new_key().unwrap();
        let pass = SecretString::from("correct horse battery staple");
        let text = seal_with_passphrase(&key, &pass).unwrap();
        for (m, t, p, what) in [
            (4 * 1024 * 1024, ARGON2_T, ARGON2_P, "memory (KiB)"), // 4 GiB: would be allocated
            (1024 * 1024 + 1, ARGON2_T, ARGON2_P, "memory (KiB)"),
            (8, ARGON2_T, ARGON2_P, "memory (KiB)"),
            (ARGON2_M_KIB, 11, ARGON2_P, "passes"),
            (ARGON2_M_KIB, u32::MAX, ARGON2_P, "passes"),
            (ARGON2_M_KIB, 1, ARGON2_P, "passes"),
            (ARGON2_M_KIB, ARGON2_T, 17, "lanes"),
            (ARGON2_M_KIB, ARGON2_T, 0, "lanes"),
        ] {
            let err = unseal(&with_params(&text, m, t, p), &pass).unwrap_err();
            assert!(err.to_string().contains(what), "{m} {t} {p}: {err}");
        }
        // Within bounds, the same file opens.
        assert_eq!(
            *unseal(&with_params(&text, ARGON2_M_KIB, ARGON2_T, ARGON2_P), &pass).unwrap(),
            *key
        );
        assert!(check_params(1024 * 1024, 10, 16, 16).is_ok());
        assert!(check_params(19 * 1024, 2, 1, 64).is_ok());
        assert!(check_params(ARGON2_M_KIB, ARGON2_T, ARGON2_P, 8).is_err());
    }

    #[test]
    fn plain_keys_must_be_256_bits() {
        let key = new_key().unwrap();
        assert_eq!(*decode_key(&encode_plain(&key)).unwrap(), *key);
        assert!(decode_key(&B64.encode([0u8; 16])).is_err());
        assert!(decode_key("not base64!").is_err());
    }

    #[test]
    fn wrapping_round_trips_and_is_bound_to_its_aad() {
        let root = LocalRootKey::new(new_key().unwrap());
        let kek = new_key().unwrap();
        let wrapped = root.wrap(&kek, b"a").unwrap();
        assert_eq!(*root.unwrap(&wrapped, b"a").unwrap(), *kek);
        assert!(root.unwrap(&wrapped, b"b").is_err());
        assert_eq!(format!("{root:?}"), "LocalRootKey([redacted])");
    }
}
