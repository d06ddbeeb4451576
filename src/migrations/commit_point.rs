//! Statements whose effect the rest of their own transaction cannot use, so the deploy
//! transaction must commit right after the migration that has one.
//!
//! PostgreSQL's rule: a value added to an enum that existed before the transaction
//! (`ALTER TYPE ... ADD VALUE`) cannot be used until that transaction commits (SQLSTATE
//! 55P04, "unsafe use of new value"). psql per file never meets it; one transaction for
//! the whole plan does, as soon as a later migration uses the value. It is the one
//! statement of its kind in PostgreSQL 12 to 18: the others that change what a
//! transaction may do next cannot run in a transaction block at all (`CREATE INDEX
//! CONCURRENTLY`, `VACUUM`, `ALTER SYSTEM`, `CREATE DATABASE`, ...), which is what
//! `-- no-transaction` and the lint's `not-allowed-in-transaction` are for.

use pg_query::NodeEnum;

/// Why the transaction must commit after this migration's SQL (the statement, in
/// words), or `None`. SQL the parser cannot read is `None`: the lint reports it.
pub fn commit_after(sql: &str) -> Option<String> {
    // Cheap first: most migrations add no enum value.
    if !sql.to_ascii_lowercase().contains("value") {
        return None;
    }
    let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).ok()?;
    parsed.protobuf.stmts.iter().find_map(|raw| {
        let node = raw.stmt.as_ref()?.node.as_ref()?;
        let NodeEnum::AlterEnumStmt(alter) = node else {
            return None;
        };
        // RENAME VALUE sets old_val; ADD VALUE only new_val.
        if alter.new_val.is_empty() || !alter.old_val.is_empty() {
            return None;
        }
        let name: Vec<String> = alter
            .type_name
            .iter()
            .filter_map(|n| match n.node.as_ref()? {
                NodeEnum::String(s) => Some(s.sval.clone()),
                _ => None,
            })
            .collect();
        Some(format!(
            "ALTER TYPE {} ADD VALUE '{}': a new enum value cannot be used until its transaction commits",
            name.join("."),
            alter.new_val
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::commit_after;

    #[test]
    fn adding_an_enum_value_commits_the_batch() {
        let why = commit_after(
            "-- a new mood\nALTER TYPE public.mood ADD VALUE IF NOT EXISTS 'calm' AFTER 'sad';",
        )
        .unwrap();
        assert!(
            why.starts_with("ALTER TYPE public.mood ADD VALUE 'calm'"),
            "{why}"
        );
    }

    #[test]
    fn renaming_a_value_or_anything_else_does_not() {
        assert_eq!(
            commit_after("alter type mood rename value 'a' to 'b';"),
            None
        );
        assert_eq!(commit_after("create type mood as enum ('value');"), None);
        assert_eq!(commit_after("update t set value = 1;"), None);
        assert_eq!(commit_after("not sql at all value"), None);
    }
}
