//! `-- ballast:allow rule-id[, rule-id]`: a person has reviewed this statement and
//! accepts the risk. The comment goes on the statement's own lines or right above it
//! (in an Alembic revision, `# ballast:allow rule-id` anywhere in the file covers the
//! revision).

/// Whether `statement` (its text, including the comments before it) allows `rule`.
pub fn allows(statement: &str, rule: &str) -> bool {
    statement.lines().any(|line| {
        let Some((_, rest)) = line.split_once("ballast:allow") else {
            return false;
        };
        // `ballast:allow missing-downgrade: nothing to undo`: the reason may follow a colon.
        rest.split(|c: char| c == ',' || c == ':' || c.is_whitespace())
            .map(str::trim)
            .any(|id| id == rule || id == "all")
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_the_rules_it_allows() {
        let sql =
            "-- ballast:allow index-not-concurrent, ban-drop-column\ncreate index i on t (a);";
        assert!(super::allows(sql, "index-not-concurrent"));
        assert!(super::allows(sql, "ban-drop-column"));
        assert!(!super::allows(sql, "adding-foreign-key"));
        assert!(super::allows(
            "# ballast:allow missing-downgrade: a backfill has nothing to undo",
            "missing-downgrade"
        ));
        assert!(!super::allows(
            "create index i on t (a);",
            "index-not-concurrent"
        ));
    }
}
