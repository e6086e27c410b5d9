//! Time, injected so expiry and rotation can be tested without sleeping.

use std::sync::Arc;

use crate::domain::Timestamp;

pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Microseconds since the Unix epoch.
    fn now(&self) -> Timestamp;

    fn now_secs(&self) -> i64 {
        self.now().div_euclid(1_000_000)
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        i64::try_from(nanos / 1000).unwrap_or(i64::MAX)
    }
}

pub type SharedClock = Arc<dyn Clock>;
