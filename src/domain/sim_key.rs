//! How a caller names a SIM.

use super::SimId;

/// How a caller names a SIM: by its UUID or by its ICCID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimKey {
    Id(SimId),
    Iccid(String),
}
