//! Timestamps (milliseconds since the Unix epoch, RFC 3339 on the wire) and an injectable
//! clock, so tests can move time forward to expire tokens without sleeping.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn from_system(t: SystemTime) -> Self {
        Timestamp(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64)
    }

    pub fn to_system(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }

    pub fn plus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(d.as_millis() as u64))
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    pub fn parse(text: &str) -> Result<Self, humantime::TimestampError> {
        humantime::parse_rfc3339_weak(text).map(Timestamp::from_system)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_millis(self.to_system()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not an RFC 3339 time such as 2024-05-01T12:00:00Z: {e}"
            ))
        })
    }
}

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
