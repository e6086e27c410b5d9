//! Web console sign-in as stored: console links (tickets) and sessions, exactly as read from
//! storage and not yet believed (the service checks each row's MAC before obeying it).

use super::Timestamp;

/// A console link's ticket as stored. Only the SHA-256 of its token is ever stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTicket {
    pub id: String,
    pub token_hash: Vec<u8>,
    /// As stored: parsed only once the MAC has been checked on the text as read.
    pub tenant_id: String,
    pub subject: String,
    /// Comma-separated role names.
    pub roles: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    pub mac: Vec<u8>,
}

/// A console session as stored. Only the SHA-256 of its token is ever stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub id: String,
    pub token_hash: Vec<u8>,
    /// As stored: parsed only once the MAC has been checked on the text as read.
    pub tenant_id: String,
    pub subject: String,
    /// Comma-separated role names.
    pub roles: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub mac: Vec<u8>,
}

/// A console sign-in through the identity provider, begun and not yet finished, as stored.
/// Found by the SHA-256 of its state; the state itself is not stored.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredOidcLogin {
    pub id: String,
    pub state_hash: Vec<u8>,
    /// SHA-256 of the browser cookie's value that began it.
    pub binding_hash: Vec<u8>,
    pub nonce: String,
    pub verifier: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub mac: Vec<u8>,
}

impl std::fmt::Debug for StoredOidcLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredOidcLogin")
            .field("id", &self.id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}
