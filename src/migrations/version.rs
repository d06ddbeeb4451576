//! Migration versions and their order.
//!
//! sqlx reads the leading digits as an integer (`1_init.sql` < `2_x.sql` < `10_y.sql`);
//! diesel writes `2019-01-01-000000_name` and compares the digits with the dashes
//! removed. Both are numeric orders, so a version here is its digits, compared as a
//! number of any length. Naive string order would run `10_` before `2_`.

use std::cmp::Ordering;
use std::fmt;

/// The canonical version: decimal digits, no leading zeros (`"0"` for zero).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Version(String);

impl Version {
    /// Reads a version prefix such as `20240101120000`, `0001` or `2019-01-01-000000`.
    pub fn parse(prefix: &str) -> Option<Version> {
        let digits: String = prefix.chars().filter(|c| *c != '-').collect();
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let trimmed = digits.trim_start_matches('0');
        Some(Version(if trimmed.is_empty() {
            "0".into()
        } else {
            trimmed.into()
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `-N` (N ≥ 1): "N migrations back", as a downgrade's `to` (Alembic's relative
/// revision). Checked before a version is read: `Version::parse` drops dashes.
pub fn steps_back(to: &str) -> Option<usize> {
    to.strip_prefix('-')?
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_back_is_a_dash_and_a_positive_count() {
        assert_eq!(steps_back("-1"), Some(1));
        assert_eq!(steps_back("-12"), Some(12));
        assert_eq!(steps_back("-0"), None);
        assert_eq!(steps_back("1"), None);
        assert_eq!(steps_back("--1"), None);
        assert_eq!(steps_back("2019-01-01-000000"), None);
    }

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn orders_numerically_not_as_strings() {
        let mut versions = vec![v("10"), v("2"), v("1")];
        versions.sort();
        assert_eq!(versions, vec![v("1"), v("2"), v("10")]);
    }

    #[test]
    fn leading_zeros_do_not_change_the_version() {
        assert_eq!(v("0001"), v("1"));
        assert_eq!(v("000"), v("0"));
    }

    #[test]
    fn diesel_dashes_are_ignored() {
        assert_eq!(v("2019-01-01-000000"), v("20190101000000"));
        assert!(v("2019-01-01-000000") < v("2019-01-02-000000"));
    }

    #[test]
    fn timestamps_sort_after_small_sequence_numbers() {
        assert!(v("0042") < v("20240101120000"));
    }

    #[test]
    fn versions_longer_than_i64_still_order() {
        assert!(v("99999999999999999999") < v("100000000000000000000"));
    }

    #[test]
    fn rejects_non_digits() {
        assert!(Version::parse("v1").is_none());
        assert!(Version::parse("").is_none());
        assert!(Version::parse("--").is_none());
    }
}
