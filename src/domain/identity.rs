//! Registered client-certificate identities: the mapping of a certificate's identity to a
//! tenant, a name and roles.

use super::{TenantId, Timestamp};

/// A client identity's registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub identity: String,
    pub tenant_id: TenantId,
    pub name: String,
    /// Comma-separated role names.
    pub roles: String,
}

/// A registered identity exactly as stored, with its lifecycle and MAC: not verified, so
/// not to be obeyed before its MAC is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedIdentity {
    pub identity: String,
    /// As stored: it is parsed only once the MAC has been checked on the text as read.
    pub tenant_id: String,
    pub name: String,
    /// Comma-separated role names.
    pub roles: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub mac: Option<Vec<u8>>,
}
