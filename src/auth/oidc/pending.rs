//! What a sign-in keeps between its start and the provider's callback.

use secrecy::{ExposeSecret as _, SecretString};

/// What a sign-in keeps between [`super::OidcClient::begin`] and [`super::OidcClient::finish`]:
/// the state, the nonce and the PKCE verifier. The console keeps it server-side (never in the
/// browser), keyed by its state, and removes it at the callback whatever the outcome, so that
/// one sign-in is finished at most once. It serializes, and zeroizes on drop; `Debug` shows
/// nothing of it.
#[derive(Clone)]
pub struct PendingLogin {
    pub(super) state: SecretString,
    pub(super) nonce: SecretString,
    pub(super) verifier: SecretString,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingLogin(..)")
    }
}

/// The serialized form: plain strings, zeroized when dropped.
#[derive(serde::Serialize, serde::Deserialize, zeroize::ZeroizeOnDrop, zeroize::Zeroize)]
struct PendingWire {
    state: String,
    nonce: String,
    verifier: String,
}

impl serde::Serialize for PendingLogin {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        PendingWire {
            state: self.state.expose_secret().to_owned(),
            nonce: self.nonce.expose_secret().to_owned(),
            verifier: self.verifier.expose_secret().to_owned(),
        }
        .serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for PendingLogin {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = PendingWire::deserialize(deserializer)?;
        Ok(PendingLogin {
            state: SecretString::from(wire.state.as_str()),
            nonce: SecretString::from(wire.nonce.as_str()),
            verifier: SecretString::from(wire.verifier.as_str()),
        })
    }
}

impl PendingLogin {
    /// The state sent to the provider: the console may key its server-side record by it.
    pub fn state(&self) -> &SecretString {
        &self.state
    }

    /// The PKCE verifier (kept server-side; tests play the token endpoint's other side).
    pub fn verifier(&self) -> &SecretString {
        &self.verifier
    }

    /// The nonce the ID token must carry (kept server-side).
    pub fn nonce(&self) -> &SecretString {
        &self.nonce
    }

    /// A sign-in as kept server-side, brought back at the callback: the state the browser
    /// returned (which found the record), and the nonce and verifier the record held.
    pub fn restore(state: SecretString, nonce: SecretString, verifier: SecretString) -> Self {
        PendingLogin {
            state,
            nonce,
            verifier,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> PendingLogin {
        PendingLogin {
            state: SecretString::from("state-secret-1"),
            nonce: SecretString::from("nonce-secret-2"),
            verifier: SecretString::from("verifier-secret-3"),
        }
    }

    #[test]
    fn a_pending_login_shows_nothing_in_debug_and_survives_serialization() {
        let p = pending();
        let shown = format!("{p:?}");
        assert!(!shown.contains("secret"), "{shown}");
        let json = serde_json::to_string(&p).unwrap();
        let back: PendingLogin = serde_json::from_str(&json).unwrap();
        assert_eq!(back.state.expose_secret(), "state-secret-1");
        assert_eq!(back.nonce.expose_secret(), "nonce-secret-2");
        assert_eq!(back.verifier.expose_secret(), "verifier-secret-3");
    }
}
