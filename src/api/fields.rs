//! Reading request fields: the domain's field reader, used by the bodies parsed here.

pub use crate::domain::fields::{Fields, label};
