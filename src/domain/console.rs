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
