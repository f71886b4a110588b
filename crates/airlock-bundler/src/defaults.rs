//! What a bundle gets when neither `bundle create`'s flags nor the offline manifest's
//! `[bundle]` table say: its expiry, sequence and file name. The CLI only passes both along.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a bundle stays importable when nothing says.
pub const DEFAULT_EXPIRY: &str = "90d";
/// The shortest expiry accepted: anything less cannot be carried anywhere.
pub const MIN_EXPIRY: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ExpiryError {
    #[error("--expires `{value}` is not a duration such as 30d or 12h: {source}")]
    NotADuration { value: String, source: humantime::DurationError },
    #[error("--expires {value} is too short to carry a bundle anywhere")]
    TooShort { value: String },
}

/// The expiry from the flag, else the manifest's `[bundle] expires`, else [`DEFAULT_EXPIRY`].
pub fn expiry(flag: Option<&str>, manifest: Option<&str>) -> Result<Duration, ExpiryError> {
    let value = flag.or(manifest).unwrap_or(DEFAULT_EXPIRY);
    let duration = humantime::parse_duration(value).map_err(|source| ExpiryError::NotADuration { value: value.to_string(), source })?;
    if duration < MIN_EXPIRY {
        return Err(ExpiryError::TooShort { value: value.to_string() });
    }
    Ok(duration)
}

/// The sequence from the flag, else the manifest's, else the creation time in seconds (so
/// later bundles of a channel get higher numbers).
pub fn sequence(flag: Option<u64>, manifest: Option<u64>, created: SystemTime) -> u64 {
    flag.or(manifest).unwrap_or_else(|| created.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

/// The bundle's file when `--out` is not given: `<name>.airlock.tar.zst`.
pub fn output_path(name: &str) -> PathBuf {
    PathBuf::from(format!("{name}.airlock.tar.zst"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_then_the_manifest_then_ninety_days() {
        assert_eq!(expiry(Some("12h"), Some("30d")).unwrap(), Duration::from_secs(12 * 3600));
        assert_eq!(expiry(None, Some("30d")).unwrap(), Duration::from_secs(30 * 86400));
        assert_eq!(expiry(None, None).unwrap(), Duration::from_secs(90 * 86400));
        assert!(expiry(Some("soon"), None).unwrap_err().to_string().contains("not a duration such as 30d"));
        assert!(expiry(Some("30s"), None).unwrap_err().to_string().contains("too short"));
        let created = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(sequence(Some(7), Some(9), created), 7);
        assert_eq!(sequence(None, Some(9), created), 9);
        assert_eq!(sequence(None, None, created), 1_800_000_000);
        assert_eq!(output_path("platform"), PathBuf::from("platform.airlock.tar.zst"));
    }
}
