//! Wrapped keys as they are kept: tenant KEK versions (wrapped by the root key), per-SIM DEKs
//! (wrapped by a KEK version) and sealed secret fields. Only ciphertext: nothing here opens.

use super::names::named_enum;
use super::{TenantId, Timestamp};

named_enum! {
    /// Where a tenant KEK version is in its life.
    pub enum KeyState ("key state") {
        /// Wraps new DEKs (the newest active version does).
        Active => "active",
        /// Being replaced: its DEKs are being re-wrapped under a newer version.
        Retiring => "retiring",
        /// Nothing uses it any more.
        Retired => "retired",
    }
}

/// A tenant KEK version, wrapped by the root key, with the state that decides which version
/// wraps new DEKs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantKey {
    pub tenant_id: TenantId,
    pub version: i64,
    pub format: i64,
    pub wrapped_key: Vec<u8>,
    pub state: KeyState,
    pub wrapped_deks: i64,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
}

/// A SIM's DEK, wrapped under a tenant KEK version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedDek {
    pub kek_version: i64,
    pub format: i64,
    pub wrapped_dek: Vec<u8>,
}

/// A DEK still wrapped under an older KEK version, with the SIM it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleDek {
    pub sim_id: String,
    pub kek_version: i64,
    pub format: i64,
    pub wrapped_dek: Vec<u8>,
}

/// One sealed secret field of a SIM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub field: String,
    pub format: i64,
    pub ciphertext: Vec<u8>,
}
