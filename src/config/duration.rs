//! Human durations in config values: `"5s"`, `"15m"`, `"1h 30m"`, `"0"` (no limit).

use std::time::Duration;

/// A value that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a duration ({reason}); write e.g. \"5s\", \"15m\", \"1h\"")]
pub struct DurationError {
    text: String,
    reason: String,
}

/// Parses a duration such as `"5s"` or `"15m"`. `"0"` means "no limit" to PostgreSQL.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|e| DurationError {
        text: text.to_string(),
        reason: e.to_string(),
    })
}

/// The value PostgreSQL's `SET lock_timeout = ...` expects: whole milliseconds.
pub fn to_pg_millis(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_bare_numbers_with_a_hint() {
        let err = parse_duration("5").unwrap_err().to_string();
        assert!(err.contains("\"5s\""), "{err}");
    }

    #[test]
    fn renders_millis_for_postgres() {
        assert_eq!(to_pg_millis(Duration::from_secs(5)), "5000ms");
    }
}
