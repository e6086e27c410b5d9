//! Background tasks as clients see them.

use super::Timestamp;

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: uuid::Uuid,
    pub kind: String,
    /// `pending`, `running`, `completed` or `failed`.
    pub status: String,
    pub total_items: i64,
    pub completed_items: i64,
    pub failed_items: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Task {
    pub fn pending_items(&self) -> i64 {
        (self.total_items - self.completed_items - self.failed_items).max(0)
    }
}

/// One version of a tenant's key-encryption key, for `GET /v1/admin/keys`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyVersion {
    pub version: i64,
    /// `active`, `retiring` (being replaced) or `retired` (nothing uses it).
    pub state: String,
    /// DEKs ever wrapped under this version (AES-GCM usage limits).
    pub wrapped_deks: i64,
    /// DEKs wrapped under it now.
    pub deks_in_use: i64,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
}

/// Well before AES-GCM's limit of 2^32 random-nonce encryptions under one key.
pub const KEK_ROTATION_DUE_AT: i64 = 1 << 30;
