//! The root key in a hardware security module, over PKCS#11 (`SIMVAULT_ROOT_KEY_PROVIDER=
//! pkcs11`).
//!
//! The root key is an AES-256 secret key object created inside the token (`simvault keys
//! hsm-init`) as sensitive and non-extractable: it can be used, never read. Tenant KEKs are
//! encrypted and decrypted *by the token* with `CKM_AES_GCM`, a fresh random 96-bit IV each
//! time and the same associated data as the file provider (tenant and KEK version), so a
//! wrapped KEK moved to another tenant or version fails to open, exactly as with a file root
//! key. GCM rather than `CKM_AES_KEY_WRAP(_PAD)`: key wrap takes no associated data, and the
//! binding is what stops a database writer from swapping tenants' keys. The blob layout is the
//! file provider's (`iv ‖ ciphertext ‖ tag`).
//!
//! The session is re-established when the token goes away and comes back (the library is
//! re-initialised, so a token that reappears is found again); while it is gone, operations
//! fail with [`VaultError::Unavailable`] (answered `503`), and the keyring keeps serving the
//! KEKs it has cached until they expire.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use secrecy::SecretString;
use zeroize::Zeroizing;

use super::{Key, RootKey, VaultError};

const IV_LEN: usize = 12;
const TAG_BITS: u64 = 128;
/// Shortest wait between two attempts to reach a token that went away.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// Where the root key is: module, token, user PIN and key label.
#[derive(Clone)]
pub struct Pkcs11Settings {
    pub module: std::path::PathBuf,
    pub token_label: String,
    pub pin: SecretString,
    pub key_label: String,
}

impl std::fmt::Debug for Pkcs11Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Settings")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &"[redacted]")
            .field("key_label", &self.key_label)
            .finish()
    }
}

/// Why the token could not be used. Texts never hold the PIN.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    #[error("cannot load the PKCS#11 module {0}: {1}")]
    Module(String, String),
    #[error("no token labelled {0:?} (is the module configured, and the token initialised?)")]
    NoToken(String),
    #[error("the token refused the user PIN (SIMVAULT_PKCS11_PIN)")]
    WrongPin,
    #[error("no AES key labelled {0:?} in the token: create it with `simvault keys hsm-init`")]
    NoKey(String),
    #[error("a key labelled {0:?} exists already in the token")]
    KeyExists(String),
    #[error("PKCS#11: {0}")]
    Token(String),
}

/// An open, logged-in session and the root key's handle in it.
struct Connection {
    session: Session,
    key: ObjectHandle,
    // Keeps the library initialised for as long as the session lives.
    _context: Pkcs11,
}

/// The PKCS#11 root-key provider.
pub struct Pkcs11RootKey {
    settings: Pkcs11Settings,
    conn: Mutex<(Option<Connection>, Option<Instant>)>,
    cache_lifetime: Duration,
}

impl std::fmt::Debug for Pkcs11RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11RootKey")
            .field("token_label", &self.settings.token_label)
            .field("key_label", &self.settings.key_label)
            .finish()
    }
}

fn token_error(e: CkError) -> HsmError {
    match e {
        CkError::Pkcs11(RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange, _) => {
            HsmError::WrongPin
        }
        other => HsmError::Token(other.to_string()),
    }
}

/// Loads the module, finds the token by label, and opens a logged-in read-write session.
fn open_session(settings: &Pkcs11Settings) -> Result<(Pkcs11, Session), HsmError> {
    let context = Pkcs11::new(&settings.module)
        .map_err(|e| HsmError::Module(settings.module.display().to_string(), e.to_string()))?;
    context
        .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(token_error)?;
    let slots = context.get_slots_with_token().map_err(token_error)?;
    let slot = slots
        .into_iter()
        .find(|s| {
            context
                .get_token_info(*s)
                .map(|t| t.label().trim_end() == settings.token_label)
                .unwrap_or(false)
        })
        .ok_or_else(|| HsmError::NoToken(settings.token_label.clone()))?;
    let session = context.open_rw_session(slot).map_err(token_error)?;
    match session.login(UserType::User, Some(&settings.pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => return Err(token_error(e)),
    }
    Ok((context, session))
}

fn key_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

fn find_key(session: &Session, label: &str) -> Result<Option<ObjectHandle>, HsmError> {
    let found = session
        .find_objects(&key_template(label))
        .map_err(token_error)?;
    Ok(found.into_iter().next())
}

fn connect(settings: &Pkcs11Settings) -> Result<Connection, HsmError> {
    let (context, session) = open_session(settings)?;
    let key = find_key(&session, &settings.key_label)?
        .ok_or_else(|| HsmError::NoKey(settings.key_label.clone()))?;
    Ok(Connection {
        session,
        key,
        _context: context,
    })
}

/// `simvault keys hsm-init`: creates the root key in the token — AES-256, sensitive, not
/// extractable, a token object usable only to encrypt and decrypt. Refuses if the label
/// exists.
pub fn create_root_key(settings: &Pkcs11Settings) -> Result<(), HsmError> {
    let (_context, session) = open_session(settings)?;
    if find_key(&session, &settings.key_label)?.is_some() {
        return Err(HsmError::KeyExists(settings.key_label.clone()));
    }
    let mut template = key_template(&settings.key_label);
    template.extend([
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::ValueLen(32.into()),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
    ]);
    session
        .generate_key(&Mechanism::AesKeyGen, &template)
        .map_err(token_error)?;
    Ok(())
}

/// The root key object's security attributes: (sensitive, extractable, always sensitive,
/// never extractable), as the token reports them.
pub fn key_attributes(settings: &Pkcs11Settings) -> Result<[bool; 4], HsmError> {
    let conn = connect(settings)?;
    let attrs = conn
        .session
        .get_attributes(
            conn.key,
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
            ],
        )
        .map_err(token_error)?;
    let mut out = [false; 4];
    for a in attrs {
        match a {
            Attribute::Sensitive(v) => out[0] = v,
            Attribute::Extractable(v) => out[1] = v,
            Attribute::AlwaysSensitive(v) => out[2] = v,
            Attribute::NeverExtractable(v) => out[3] = v,
            _ => {}
        }
    }
    Ok(out)
}

/// Whether a token error means "the token is not there now" (as opposed to a bad blob).
fn is_outage(e: &CkError) -> bool {
    !matches!(
        e,
        CkError::Pkcs11(
            RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::DataInvalid
                | RvError::DataLenRange
                | RvError::ArgumentsBad
                | RvError::MechanismParamInvalid,
            _
        )
    )
}

impl Pkcs11RootKey {
    /// Connects at start: a missing module, token or key, or a wrong PIN, is an error (the
    /// server refuses to start).
    pub fn open(settings: Pkcs11Settings, cache_lifetime: Duration) -> Result<Self, HsmError> {
        let conn = connect(&settings)?;
        Ok(Self {
            settings,
            conn: Mutex::new((Some(conn), None)),
            cache_lifetime,
        })
    }

    /// Runs `op` on a live connection, reconnecting (at most once a second) when the token
    /// went away. An outage is [`VaultError::Unavailable`].
    fn with_connection<T>(
        &self,
        what: &'static str,
        op: impl Fn(&Connection) -> Result<T, CkError>,
    ) -> Result<T, VaultError> {
        let mut guard = self.conn.lock().map_err(|_| VaultError::Unavailable)?;
        let (conn, last_try) = &mut *guard;
        for attempt in 0..2 {
            if conn.is_none() {
                if attempt == 0 && last_try.is_some_and(|t| t.elapsed() < RECONNECT_EVERY) {
                    return Err(VaultError::Unavailable);
                }
                *last_try = Some(Instant::now());
                match connect(&self.settings) {
                    Ok(c) => {
                        tracing::info!(token = %self.settings.token_label, "reconnected to the HSM");
                        *conn = Some(c);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the HSM is unavailable");
                        return Err(VaultError::Unavailable);
                    }
                }
            }
            let Some(c) = conn.as_ref() else {
                return Err(VaultError::Unavailable);
            };
            // The key must still be in the token: some modules (SoftHSM among them) keep
            // serving a session from memory after the token itself is gone.
            let present = match c
                .session
                .find_objects(&key_template(&self.settings.key_label))
            {
                Ok(found) => found.contains(&c.key),
                Err(e) => {
                    tracing::warn!(error = %e, "the HSM did not list the root key");
                    false
                }
            };
            if !present {
                tracing::warn!("the root key is not in the token now; reconnecting");
                *conn = None;
                continue;
            }
            match op(c) {
                Ok(v) => return Ok(v),
                Err(e) if is_outage(&e) => {
                    tracing::warn!(error = %e, "HSM operation failed; reconnecting");
                    *conn = None;
                }
                Err(_) => return Err(VaultError::Integrity(what)),
            }
        }
        Err(VaultError::Unavailable)
    }
}

impl RootKey for Pkcs11RootKey {
    fn wrap(&self, key: &Key, aad: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut iv = [0u8; IV_LEN];
        rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut iv)
            .map_err(|_| VaultError::Random)?;
        let body = self.with_connection("a tenant key", |c| {
            let mut iv = iv;
            let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())?;
            c.session
                .encrypt(&Mechanism::AesGcm(params), c.key, key.as_ref())
        })?;
        let mut out = Vec::with_capacity(IV_LEN + body.len());
        out.extend_from_slice(&iv);
        out.extend_from_slice(&body);
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Key, VaultError> {
        if wrapped.len() < IV_LEN + 16 {
            return Err(VaultError::Integrity("a tenant key"));
        }
        let (iv, body) = wrapped.split_at(IV_LEN);
        let plain = Zeroizing::new(self.with_connection("a tenant key", |c| {
            let mut iv: [u8; IV_LEN] = iv.try_into().unwrap_or([0; IV_LEN]);
            let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())?;
            c.session.decrypt(&Mechanism::AesGcm(params), c.key, body)
        })?);
        let arr: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::Integrity("a tenant key"))?;
        Ok(Zeroizing::new(arr))
    }

    fn cache_lifetime(&self) -> Option<Duration> {
        Some(self.cache_lifetime)
    }

    fn available(&self) -> bool {
        self.with_connection("the token", |_| Ok(())).is_ok()
    }
}
