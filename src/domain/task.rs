//! Background tasks: as clients see them, as the engine keeps them, and their vocabulary.

use super::names::named_enum;
use super::{TaskId, TenantId, Timestamp};

named_enum! {
    /// What a background task does.
    pub enum TaskKind ("task kind") {
        /// A batch import of SIMs.
        Import => "import",
        /// Link provisioning over many SIMs.
        ProvisionLinks => "provision_links",
        /// Re-wrapping a tenant's DEKs under a new KEK version.
        KeyRotation => "key_rotation",
        /// One lifecycle state change over many SIMs.
        BulkState => "bulk_state",
        /// One `PATCH /v1/sims/{sim}` change over many SIMs.
        BulkPatch => "bulk_patch",
    }
}

named_enum! {
    /// Where a task is in its life.
    pub enum TaskStatus ("task status") {
        Pending => "pending",
        Running => "running",
        Completed => "completed",
        Failed => "failed",
        /// Stopped by its owner: what was done stays done, the rest was never done.
        Cancelled => "cancelled",
    }
}

impl TaskStatus {
    /// Whether the task has ended (nothing more will be done).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

named_enum! {
    /// Where one item of a bulk task is.
    pub enum ItemStatus ("task item status") {
        Pending => "pending",
        Succeeded => "succeeded",
        Failed => "failed",
        /// Still pending when its task was cancelled: never done.
        Cancelled => "cancelled",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub kind: TaskKind,
    pub status: TaskStatus,
    pub total_items: i64,
    pub completed_items: i64,
    pub failed_items: i64,
    pub cancelled_items: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Task {
    pub fn pending_items(&self) -> i64 {
        (self.total_items - self.completed_items - self.failed_items - self.cancelled_items).max(0)
    }
}

/// One version of a tenant's key-encryption key, for `GET /v1/admin/keys`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyVersion {
    pub version: i64,
    pub state: super::keys::KeyState,
    /// DEKs ever wrapped under this version (AES-GCM usage limits).
    pub wrapped_deks: i64,
    /// DEKs wrapped under it now.
    pub deks_in_use: i64,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
}

/// Well before AES-GCM's limit of 2^32 random-nonce encryptions under one key.
pub const KEK_ROTATION_DUE_AT: i64 = 1 << 30;

/// A background task as the engine keeps it: its kind, state, parameters, counts and, for a
/// bulk task, its own data key (sealing import items), wrapped under a tenant KEK version.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub id: TaskId,
    pub tenant_id: TenantId,
    pub kind: TaskKind,
    pub status: TaskStatus,
    pub params: serde_json::Value,
    pub total_items: i64,
    pub completed_items: i64,
    pub failed_items: i64,
    pub cancelled_items: i64,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub kek_version: Option<i64>,
    pub wrapped_key: Option<Vec<u8>>,
}

/// One unit of a bulk task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskItem {
    pub task_id: TaskId,
    /// Position in the request, from 1.
    pub seq: i64,
    /// The line of the source file (imports), if any.
    pub line: Option<i64>,
    pub status: ItemStatus,
    /// Sealed input (imports), the SIM as the request named it (bulk changes) or the SIM's id
    /// (link provisioning), cleared once the item is done.
    pub input: Option<Vec<u8>>,
    pub sim_id: Option<String>,
    /// JSON text.
    pub result: Option<String>,
    pub error: Option<String>,
}
