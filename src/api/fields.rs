//! Reading request fields: the domain's field reader, used by the bodies parsed here.

pub(crate) use crate::domain::fields::{Fields, data_limit, label};
