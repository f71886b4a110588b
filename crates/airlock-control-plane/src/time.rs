//! Timestamps (milliseconds since the Unix epoch, RFC 3339 on the wire) and an injectable
//! clock, so tests can move time forward to expire tokens without sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use airlock_api::Timestamp;

/// The system clock, or a manual one that tests advance.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    pub fn system() -> Self {
        Clock { manual: None }
    }

    pub fn manual(start: Timestamp) -> Self {
        Clock {
            manual: Some(Arc::new(AtomicU64::new(start.0))),
        }
    }

    pub fn now(&self) -> Timestamp {
        match &self.manual {
            Some(ms) => Timestamp(ms.load(Ordering::SeqCst)),
            None => Timestamp::from_system(SystemTime::now()),
        }
    }

    /// Moves a manual clock forward; does nothing to the system clock.
    pub fn advance(&self, d: Duration) {
        if let Some(ms) = &self.manual {
            ms.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
        }
    }
}
