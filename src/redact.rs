//! Keeping secrets out of everything ballast prints, logs or records.
//!
//! Every database URL that leaves the process (terminal, JSON events, journal,
//! manifest, error messages) goes through [`redact_url`] first.

/// A database URL with its password replaced by `***`.
///
/// Falls back to a fully masked string when the URL cannot be parsed: an unparsable
/// URL may still hold a password, so nothing of it is shown.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            let mut query: Vec<(String, String)> = Vec::new();
            let mut changed = false;
            for (key, value) in parsed.query_pairs() {
                if key.eq_ignore_ascii_case("password") {
                    changed = true;
                    query.push((key.into_owned(), "***".into()));
                } else {
                    query.push((key.into_owned(), value.into_owned()));
                }
            }
            if changed {
                parsed.query_pairs_mut().clear().extend_pairs(query);
            }
            parsed.to_string()
        }
        Err(_) => "<unparsable database url>".to_string(),
    }
}

/// Replaces every occurrence of `secret` in `text` (for subprocess stderr, driver errors).
pub fn scrub(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() => text.replace(s, "***"),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_password_in_userinfo() {
        let shown = redact_url("postgres://app:s3cret@db.example:5432/shop");
        assert_eq!(shown, "postgres://app:***@db.example:5432/shop");
    }

    #[test]
    fn hides_password_in_query() {
        let shown = redact_url("postgres://db/shop?user=app&password=s3cret");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn keeps_url_without_password() {
        assert_eq!(
            redact_url("postgres://app@db/shop"),
            "postgres://app@db/shop"
        );
    }

    #[test]
    fn masks_unparsable_urls_entirely() {
        assert_eq!(
            redact_url("not a url :s3cret@"),
            "<unparsable database url>"
        );
    }

    #[test]
    fn scrub_replaces_secret() {
        assert_eq!(
            scrub("auth failed for s3cret", Some("s3cret")),
            "auth failed for ***"
        );
    }
}
