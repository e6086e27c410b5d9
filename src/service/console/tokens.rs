//! The console's bearer secrets: session tokens (the cookie) and console-link tickets, each
//! 32 random bytes in base64url, held as secrets (no `Debug` content, zeroed on drop); and
//! the CSRF value derived from a session's token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::service::{ServiceError, ServiceResult};

/// Length of a token's text: 32 bytes in unpadded base64url.
const TOKEN_LEN: usize = 43;

fn random_text() -> ServiceResult<SecretString> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut *bytes)
        .map_err(|e| ServiceError::internal_because("the system random source", e))?;
    Ok(SecretString::from(URL_SAFE_NO_PAD.encode(*bytes)))
}

/// Whether `raw` has a token's shape (so nothing else is ever hashed and looked up).
fn well_formed(raw: &str) -> bool {
    raw.len() == TOKEN_LEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

macro_rules! token {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        pub struct $name(SecretString);

        impl $name {
            pub(crate) fn new() -> ServiceResult<Self> {
                random_text().map(Self)
            }

            /// A token as presented; `None` when it cannot be one.
            pub fn parse(raw: &str) -> Option<Self> {
                well_formed(raw).then(|| Self(SecretString::from(raw.to_owned())))
            }

            /// The token's text, for the one place it goes (a cookie, a link).
            pub fn expose(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

token!(
    /// A console session's token: the cookie's value, and nothing else.
    SessionToken
);
token!(
    /// A console link's ticket: the last segment of the link.
    TicketToken
);
token!(
    /// The value of the cookie binding an identity-provider sign-in to the browser that
    /// began it.
    BindingToken
);

/// The CSRF value of session `id` opened by `token`: SHA-256 over a label, the token and the
/// id (each length-prefixed). Only the token's holder can compute it; the database, which
/// holds only the token's hash, cannot.
pub(super) fn csrf(token: &SessionToken, id: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        b"simvault/v1/console-csrf".as_slice(),
        token.expose().as_bytes(),
        id.as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    URL_SAFE_NO_PAD.encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_well_formed_and_redacted() {
        let a = SessionToken::new().unwrap();
        let b = SessionToken::new().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert!(SessionToken::parse(a.expose()).is_some());
        assert_eq!(format!("{a:?}"), "SessionToken([redacted])");
        for bad in [
            "",
            "short",
            &format!("{}=", &a.expose()[..42]),
            &"a".repeat(44),
        ] {
            assert!(SessionToken::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn csrf_values_are_bound_to_token_and_session() {
        let a = SessionToken::new().unwrap();
        let b = SessionToken::new().unwrap();
        assert_eq!(csrf(&a, "s1"), csrf(&a, "s1"));
        assert_ne!(csrf(&a, "s1"), csrf(&b, "s1"));
        assert_ne!(csrf(&a, "s1"), csrf(&a, "s2"));
    }
}
