//! Migration versions and their order.
//!
//! sqlx reads the leading digits as an integer (`1_init.sql` < `2_x.sql` < `10_y.sql`);
//! diesel writes `2019-01-01-000000_name` and compares the digits with the dashes
//! removed. Both are numeric orders, so a version here is its digits, compared as a
//! number of any length. Naive string order would run `10_` before `2_`. Flyway's
//! versions have parts (`1.2`, written `V1_2__` or `V1.2__`), compared part by part
//! as numbers, a missing part as 0 (`1.1` < `1.2` < `1.10` < `2`); its repeatable
//! migrations (`R__<description>.sql`) have none: they come after every versioned
//! one, in the order of their descriptions.

use std::cmp::Ordering;
use std::fmt;

/// The canonical version: decimal digits, no leading zeros (`"0"` for zero); for
/// Flyway, such parts joined by `.`, without trailing `.0` parts (Flyway reads `1.0`
/// as `1`); for a repeatable migration, `R__` and its description.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Version(String);

/// What marks a repeatable migration's version.
const REPEATABLE: &str = "R__";

impl Version {
    /// Reads a version prefix such as `20240101120000`, `0001` or `2019-01-01-000000`,
    /// or a version as [`Version::as_str`] writes it (`1.2`, `R__views`).
    pub fn parse(text: &str) -> Option<Version> {
        if let Some(description) = text.strip_prefix(REPEATABLE) {
            return Version::repeatable(description);
        }
        if text.contains('.') {
            return Version::parts(text, '.');
        }
        Version::from_prefix(text)
    }

    /// A file name's version prefix as sqlx, diesel, dbmate and golang-migrate read it:
    /// digits, and dashes that do not count (`2019-01-01-000000`).
    pub fn from_prefix(prefix: &str) -> Option<Version> {
        if prefix.starts_with('-') {
            // `-1`: golang-migrate's "no version", or a relative step; never a version.
            return None;
        }
        let digits: String = prefix.chars().filter(|c| *c != '-').collect();
        digits_only(&digits).then(|| Version(trim_zeros(&digits).into()))
    }

    /// A Flyway version, `1`, `1.2` or `1_2` (Flyway reads `_` as `.`).
    pub fn flyway(text: &str) -> Option<Version> {
        Version::parts(&text.replace('_', "."), '.')
    }

    /// A Flyway repeatable migration's version, from its description as its file
    /// names it (`views_and_grants`) or as Flyway's history writes it (`views and
    /// grants`): Flyway matches the two by description.
    pub fn repeatable(description: &str) -> Option<Version> {
        (!description.is_empty())
            .then(|| Version(format!("{REPEATABLE}{}", description.replace(' ', "_"))))
    }

    fn parts(text: &str, separator: char) -> Option<Version> {
        let parts: Vec<&str> = text.split(separator).collect();
        if !parts.iter().all(|p| digits_only(p)) {
            return None;
        }
        let mut parts: Vec<&str> = parts.into_iter().map(trim_zeros).collect();
        while parts.len() > 1 && parts.last() == Some(&"0") {
            parts.pop();
        }
        Some(Version(parts.join(".")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a Flyway repeatable migration's (no version: it runs again
    /// whenever its file changes).
    pub fn is_repeatable(&self) -> bool {
        self.0.starts_with(REPEATABLE)
    }
}

fn digits_only(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_digit())
}

/// `"0042"` → `"42"`, `"000"` → `"0"`.
fn trim_zeros(digits: &str) -> &str {
    match digits.trim_start_matches('0') {
        "" => "0",
        trimmed => trimmed,
    }
}

/// Two numbers written without leading zeros, compared as numbers of any length.
fn cmp_number(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        match (
            self.0.strip_prefix(REPEATABLE),
            other.0.strip_prefix(REPEATABLE),
        ) {
            // Flyway orders them by description, `_` read as a space.
            (Some(a), Some(b)) => a.replace('_', " ").cmp(&b.replace('_', " ")),
            (Some(_), None) => Ordering::Greater,
            (None, Some(_)) => Ordering::Less,
            (None, None) => {
                let (mut a, mut b) = (self.0.split('.'), other.0.split('.'));
                loop {
                    match (a.next(), b.next()) {
                        (None, None) => return Ordering::Equal,
                        (x, y) => match cmp_number(x.unwrap_or("0"), y.unwrap_or("0")) {
                            Ordering::Equal => continue,
                            unequal => return unequal,
                        },
                    }
                }
            }
        }
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
    fn flyway_versions_compare_part_by_part() {
        let f = |s: &str| Version::flyway(s).unwrap();
        let mut versions = vec![f("2"), f("1.10"), f("1_2"), f("1.1"), f("1")];
        versions.sort();
        assert_eq!(
            versions,
            vec![f("1"), f("1.1"), f("1.2"), f("1.10"), f("2")]
        );
        assert_eq!(f("1.0"), f("1"), "Flyway reads 1.0 as 1");
        assert_eq!(f("1.01").as_str(), "1.1");
        assert_eq!(v("1.2"), f("1_2"), "read back as written");
        assert!(f("20240101") > f("3.5"));
        assert!(Version::flyway("1a").is_none());
        assert!(Version::flyway("1..2").is_none());
        assert!(Version::from_prefix("1.2").is_none(), "sqlx reads no dots");
    }

    #[test]
    fn repeatables_come_after_every_version_in_description_order() {
        let r = |d: &str| Version::repeatable(d).unwrap();
        let mut versions = vec![r("views"), v("99999999999999"), r("functions"), v("1.5")];
        versions.sort();
        assert_eq!(
            versions,
            vec![v("1.5"), v("99999999999999"), r("functions"), r("views")]
        );
        assert!(r("views").is_repeatable() && !v("1").is_repeatable());
        assert_eq!(v("R__views"), r("views"));
        // As Flyway compares descriptions, `_` read as a space: "v 1" < "v1".
        assert!(r("v_1") < r("v1"));
    }

    #[test]
    fn rejects_non_digits() {
        assert!(Version::parse("v1").is_none());
        assert!(Version::parse("").is_none());
        assert!(Version::parse("--").is_none());
        assert!(
            Version::parse("-1").is_none(),
            "golang-migrate's no version"
        );
    }
}
