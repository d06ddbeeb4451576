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
                if SECRET_PARAMS.contains(&key.to_ascii_lowercase().as_str()) {
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

/// Query parameters libpq treats as secrets.
const SECRET_PARAMS: &[&str] = &["password", "sslpassword"];

/// A database URL split for handing to a subprocess: the URL with every secret
/// removed (safe on a command line) and the password itself (for `PGPASSWORD`).
#[derive(Debug, Clone)]
pub struct SplitUrl {
    pub public: String,
    pub password: Option<String>,
    /// Every secret found, decoded, for scrubbing from error text.
    pub secrets: Vec<String>,
}

pub fn split_secrets(url: &str) -> Result<SplitUrl, url::ParseError> {
    let mut parsed = url::Url::parse(url)?;
    let mut secrets = Vec::new();
    let mut password = parsed.password().map(percent_decode);
    if let Some(raw) = parsed.password() {
        secrets.push(raw.to_string());
    }
    let _ = parsed.set_password(None);
    let mut kept: Vec<(String, String)> = Vec::new();
    let mut had_query = false;
    for (key, value) in parsed.query_pairs() {
        had_query = true;
        let key_lower = key.to_ascii_lowercase();
        if SECRET_PARAMS.contains(&key_lower.as_str()) {
            secrets.push(value.to_string());
            if key_lower == "password" && password.is_none() {
                password = Some(value.to_string());
            }
        } else {
            kept.push((key.into_owned(), value.into_owned()));
        }
    }
    if had_query {
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    secrets.extend(password.clone());
    secrets.retain(|s| !s.is_empty());
    Ok(SplitUrl {
        public: parsed.to_string(),
        password,
        secrets,
    })
}

/// URL userinfo is percent-encoded; libpq wants the password itself.
fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_string())
}

/// Replaces every occurrence of each secret in `text` (subprocess stderr, driver errors).
pub fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_string(), |t, s| t.replace(s.as_str(), "***"))
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
    fn split_removes_every_secret_and_decodes_the_password() {
        let split =
            split_secrets("postgres://app:p%40ss@db/shop?sslmode=require&sslpassword=k3y").unwrap();
        assert_eq!(split.public, "postgres://app@db/shop?sslmode=require");
        assert_eq!(split.password.as_deref(), Some("p@ss"));
        assert!(split.secrets.contains(&"k3y".to_string()));

        let split = split_secrets("postgres://db/shop?user=app&password=s3cret").unwrap();
        assert_eq!(split.public, "postgres://db/shop?user=app");
        assert_eq!(split.password.as_deref(), Some("s3cret"));
    }

    #[test]
    fn passwords_are_percent_decoded() {
        assert_eq!(percent_decode("p%40ss%2Fw+rd"), "p@ss/w+rd");
    }

    #[test]
    fn scrub_replaces_secret() {
        assert_eq!(
            scrub("auth failed for s3cret", &["s3cret".to_string()]),
            "auth failed for ***"
        );
    }
}
