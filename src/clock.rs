//! Time, injected so expiry and rotation can be tested without sleeping.

use std::sync::Arc;

use crate::domain::Timestamp;

pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Microseconds since the Unix epoch.
    fn now(&self) -> Timestamp;

    fn now_secs(&self) -> i64 {
        self.now().div_euclid(1_000_000)
    }

    /// The current instant as a UTC date-time (microsecond precision).
    fn now_datetime(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.now()) * 1000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The crate's one read of the wall clock (clippy.toml forbids it everywhere else).
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> Timestamp {
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        i64::try_from(nanos / 1000).unwrap_or(i64::MAX)
    }
}

pub type SharedClock = Arc<dyn Clock>;
