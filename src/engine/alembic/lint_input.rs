//! What the lint reads of an Alembic revision: offline mode's SQL without Alembic's
//! own bookkeeping, and how its downgrade looks.

use super::graph::{Downgrade as Alembic, Revision};
use super::reach::VersionTable;
use crate::lint::input::{Downgrade, LintInput};
use crate::plan::PlannedMigration;

/// An Alembic revision (`source`: its Python file): offline mode's SQL without Alembic's own bookkeeping
/// (its BEGIN/COMMIT around the run and the version table's statements), so rules
/// see only what the revision itself does.
pub fn lint_input(
    planned: &PlannedMigration,
    revision: Option<&Revision>,
    version_table: &VersionTable,
    source: String,
) -> LintInput {
    let downgrade = match revision.map(|r| (r.downgrade, r.is_merge)) {
        Some((_, true)) => Downgrade::NotNeeded,
        Some((Alembic::Ok, _)) | None => Downgrade::Present,
        Some((Alembic::Missing, _)) => Downgrade::Missing,
        Some((Alembic::Empty, _)) => Downgrade::Empty,
        Some((Alembic::Raises, _)) | Some((Alembic::Unreadable, _)) => Downgrade::Raises,
    };
    LintInput {
        label: format!("{} ({})", planned.version, planned.name),
        file: planned.file.clone(),
        sql: without_alembic_bookkeeping(&planned.sql, version_table),
        // Per revision or for the whole upgrade, it runs in a transaction unless it
        // is an autocommit block.
        transactional: !source.contains("autocommit_block"),
        downgrade,
        whole_allows: source,
        phase: planned.phase,
    }
}

/// Offline SQL comes in blank-line-separated statements; drop BEGIN/COMMIT and the
/// version table's, keeping line count (blank lines) so lines still match the render.
fn without_alembic_bookkeeping(sql: &str, version_table: &VersionTable) -> String {
    let mut out = Vec::new();
    let mut chunk: Vec<&str> = Vec::new();
    let flush = |chunk: &mut Vec<&str>, out: &mut Vec<String>| {
        let text = chunk.join("\n");
        let trimmed = text.trim();
        let bookkeeping =
            matches!(trimmed, "BEGIN;" | "COMMIT;") || names_table(trimmed, version_table);
        for line in chunk.iter() {
            out.push(if bookkeeping {
                String::new()
            } else {
                line.to_string()
            });
        }
        chunk.clear();
    };
    for line in sql.lines() {
        if line.trim().is_empty() {
            flush(&mut chunk, &mut out);
            out.push(String::new());
        } else {
            chunk.push(line);
        }
    }
    flush(&mut chunk, &mut out);
    out.join("\n")
}

/// Whether a statement names the version table, in whatever schema env.py's offline
/// configuration puts it (`status` and `plan` never run env.py online, so the schema
/// found may not be the one rendered): the bare name, or any `schema.` before it.
fn names_table(statement: &str, version_table: &VersionTable) -> bool {
    let in_a_schema = format!(".{}", version_table.table);
    statement
        .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ';' | ','))
        .map(|word| word.replace('"', "").to_lowercase())
        .any(|word| word == version_table.table || word.ends_with(&in_a_schema))
}

#[cfg(test)]
mod tests {
    #[test]
    fn alembic_bookkeeping_is_blanked_and_lines_are_kept() {
        let sql = "BEGIN;\n\nCREATE TABLE marketplace.alembic_version (\n    version_num VARCHAR(32) NOT NULL\n);\n\nCREATE TABLE marketplace.sellers (id int);\n\nINSERT INTO marketplace.alembic_version (version_num) VALUES ('a1');\n\nCOMMIT;";
        let clean = super::without_alembic_bookkeeping(sql, &version_table("public"));
        assert_eq!(clean.split('\n').count(), sql.split('\n').count());
        assert_eq!(clean.trim(), "CREATE TABLE marketplace.sellers (id int);");
        assert_eq!(clean.lines().position(|l| l.contains("sellers")), Some(6));
    }

    fn version_table(schema: &str) -> super::VersionTable {
        super::VersionTable {
            guessed: false,
            schema: schema.into(),
            table: "alembic_version".into(),
        }
    }

    #[test]
    fn an_unqualified_version_table_is_bookkeeping_too() {
        // env.py without version_table_schema: offline mode writes the bare name. A
        // lone CREATE INDEX CONCURRENTLY is then one statement, not two.
        let sql = "CREATE INDEX CONCURRENTLY ix_a ON a (x);\n\nUPDATE alembic_version SET version_num='b2' WHERE alembic_version.version_num = 'a1';";
        let clean = super::without_alembic_bookkeeping(sql, &version_table("public"));
        assert_eq!(clean.trim(), "CREATE INDEX CONCURRENTLY ix_a ON a (x);");
        // A table that merely starts with the name is the project's own.
        let own = "INSERT INTO alembic_version_notes VALUES (1);";
        assert_eq!(
            super::without_alembic_bookkeeping(own, &version_table("public")).trim(),
            own
        );
    }
}
