//! Checksums of migration text, normalized so that editors cannot cause false drift.
//!
//! Normalization: a leading byte-order mark is dropped, CRLF and CR become LF,
//! trailing whitespace is stripped from each line, and trailing blank lines are
//! removed. Any other change, even inside a comment, changes the checksum.

use sha2::{Digest, Sha256};

pub fn normalize(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out: Vec<&str> = text.lines().map(str::trim_end).collect();
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

/// Hex SHA-256 of the normalized text.
pub fn checksum(text: &str) -> String {
    hex::encode(Sha256::digest(normalize(text).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_and_trailing_space_do_not_matter() {
        assert_eq!(
            checksum("create table a (id int);\n"),
            checksum("create table a (id int);  \r\n\r\n")
        );
        assert_eq!(checksum("\u{feff}select 1;"), checksum("select 1;"));
    }

    #[test]
    fn content_changes_do() {
        assert_ne!(
            checksum("create table a (id int);"),
            checksum("create table a (id bigint);")
        );
        assert_ne!(checksum("-- a\nselect 1;"), checksum("-- b\nselect 1;"));
    }
}
