//! `set-not-null`
//!
//! `ALTER TABLE ... ALTER COLUMN ... SET NOT NULL` (and PostgreSQL 18's
//! `ADD CONSTRAINT ... NOT NULL` without `NOT VALID`) scans every row to prove the column
//! has no NULLs, holding an ACCESS EXCLUSIVE lock for the whole scan: no reads or writes
//! until it ends. Prove it first without blocking: `ADD CONSTRAINT ... CHECK (col IS NOT
//! NULL) NOT VALID`, then `VALIDATE CONSTRAINT` in a later migration (a scan that lets
//! reads and writes through), then `SET NOT NULL`, which on PostgreSQL 12+ sees the valid
//! check and skips the scan, and finally drop the check. It is not reported when a
//! validated `CHECK (col IS NOT NULL)` on that very column is known just before it: in the
//! database, from an earlier migration of the run, or added or validated by an earlier
//! statement of this one (a `VALIDATE CONSTRAINT` of some other check proves nothing).
//! Without a database, a check added by a migration outside the run cannot be read: a
//! `VALIDATE CONSTRAINT` before it, on the table, of a check the run does not know and
//! whose name holds the column's (`orders_created_at_not_null`) is taken as the proof.
//! Nor is it on a table created earlier in the same migration, or one the database shows
//! empty.

use pg_query::protobuf::{AlterTableType, ConstrType, RangeVar};

use super::{added_constraint, alter_table, altered_table_with_data, contype, is};
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct SetNotNull;

static META: RuleMeta = RuleMeta {
    id: "set-not-null",
    category: Category::Lock,
    default_level: Level::Error,
    summary: "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock",
    explanation: "ALTER TABLE ... ALTER COLUMN ... SET NOT NULL (and PostgreSQL 18's ADD CONSTRAINT ... NOT NULL without NOT VALID) scans every row to prove the column has no NULLs, holding an ACCESS EXCLUSIVE lock for the whole scan: no reads or writes until it ends. Prove it first without blocking: ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT in a later migration (a scan that lets reads and writes through), then SET NOT NULL, which on PostgreSQL 12+ sees the valid check and skips the scan, and finally drop the check.",
};

impl Rule for SetNotNull {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let Some((table, key, cmds)) = altered_table_with_data(statement, ctx) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for cmd in cmds {
            if is(cmd, AlterTableType::AtSetNotNull) {
                if !proven(ctx, table, &cmd.name, statement.index) {
                    found.push((
                        format!("ALTER COLUMN {} SET NOT NULL", cmd.name),
                        cmd.name.clone(),
                    ));
                }
            } else if let Some(c) = added_constraint(cmd) {
                if contype(c) == ConstrType::ConstrNotnull && !c.skip_validation {
                    for column in strings(&c.keys) {
                        if proven(ctx, table, &column, statement.index) {
                            continue;
                        }
                        let what = match c.conname.as_str() {
                            "" => format!("ADD NOT NULL {column}"),
                            name => format!("ADD CONSTRAINT {name} NOT NULL {column}"),
                        };
                        found.push((what, column));
                    }
                }
            }
        }
        found
            .into_iter()
            .map(|(what, column)| {
                let name = format!("{}_{column}_not_null", table.relname);
                Hit::new(
                    format!(
                        "{what} on {key} scans every row for NULLs while holding an ACCESS EXCLUSIVE lock: no reads or writes until the scan ends"
                    ),
                    format!(
                        "ALTER TABLE {key} ADD CONSTRAINT {name} CHECK ({column} IS NOT NULL) NOT VALID; in a later migration ALTER TABLE {key} VALIDATE CONSTRAINT {name} (no blocking scan), then ALTER COLUMN {column} SET NOT NULL (PostgreSQL 12+ uses the valid check and skips the scan) and DROP CONSTRAINT {name}"
                    ),
                )
            })
            .collect()
    }
}

fn strings(nodes: &[pg_query::protobuf::Node]) -> impl Iterator<Item = String> + '_ {
    crate::lint::nodes::strings(nodes)
        .into_iter()
        .map(str::to_string)
}

/// Whether a validated `CHECK (column IS NOT NULL)` exists just before `statement`.
/// Known for sure with a database, or when the run declares the check. Without a
/// database, a check added by a migration outside the run cannot be read: an earlier
/// `VALIDATE CONSTRAINT` on the table of a constraint the run does not know, named
/// after the column (`orders_created_at_not_null`), is taken as that proof.
fn proven(ctx: &Context<'_>, table: &RangeVar, column: &str, statement: usize) -> bool {
    if ctx.not_null_proven_before(table, column, statement) {
        return true;
    }
    if ctx.db.is_some() {
        return false;
    }
    let (_, known) = ctx.known_before(table, statement);
    let key = ctx.key(table);
    ctx.statements
        .iter()
        .take_while(|s| s.index < statement)
        .filter_map(|s| alter_table(s.node))
        .filter(|(t, _)| ctx.key(t) == key)
        .flat_map(|(_, cmds)| cmds)
        .filter(|cmd| is(cmd, AlterTableType::AtValidateConstraint))
        .any(|cmd| {
            let declared = known.checks.values().flatten().any(|c| c.name == cmd.name);
            !declared && cmd.name.contains(column)
        })
}

#[cfg(test)]
mod tests {
    use super::SetNotNull as R;
    use crate::lint::catalog::{Catalog, Check};
    use crate::lint::rules::testing::{ids, input, lint, lint_after, lint_with};
    use crate::lint::DbFacts;

    #[test]
    fn set_not_null_on_an_existing_table_is_found() {
        let found = lint(
            &R,
            "select 1;\nalter table orders alter column note set not null;",
        );
        assert_eq!(ids(&found), ["set-not-null"]);
        assert_eq!(found[0].line, 2);
        assert!(found[0]
            .message
            .contains("ALTER COLUMN note SET NOT NULL on public.orders"));
        assert!(found[0]
            .fix
            .contains("ADD CONSTRAINT orders_note_not_null CHECK (note IS NOT NULL) NOT VALID"));
        let found = lint(
            &R,
            "alter table orders add constraint orders_note_nn not null note;",
        );
        assert_eq!(ids(&found), ["set-not-null"]);
        assert!(found[0]
            .message
            .contains("ADD CONSTRAINT orders_note_nn NOT NULL note on"));
    }

    #[test]
    fn the_safe_rewrite_is_fine() {
        // First migration: the check, not validated.
        let first = "alter table orders add constraint orders_note_not_null check (note is not null) not valid;";
        assert!(lint(&R, first).is_empty());
        // Later migration: validate, then SET NOT NULL skips its scan.
        let found = lint_after(
            &R,
            &[first],
            "alter table orders validate constraint orders_note_not_null;\n\
             alter table orders alter column note set not null;\n\
             alter table orders drop constraint orders_note_not_null;",
        );
        assert!(found.is_empty(), "{found:?}");
        // Or all in one migration, validated as it is added (a scan, but not this rule's).
        assert!(lint(
            &R,
            "alter table orders add constraint orders_note_not_null check (note is not null);\n\
             alter table orders alter column note set not null;"
        )
        .is_empty());
        // PostgreSQL 18's NOT NULL constraint uses the valid check the same way.
        assert!(lint_after(
            &R,
            &[first],
            "alter table orders validate constraint orders_note_not_null;\n\
             alter table orders add constraint orders_note_nn not null note;"
        )
        .is_empty());
        assert!(lint(
            &R,
            "alter table orders add constraint n not null note not valid;"
        )
        .is_empty());
    }

    #[test]
    fn a_new_or_empty_table_is_fine() {
        assert!(lint(
            &R,
            "create table t (id int, note text);\nalter table t alter column note set not null;"
        )
        .is_empty());
        let facts = DbFacts {
            tables: [("public.orders".to_string(), false)].into_iter().collect(),
            ..Default::default()
        };
        let found = lint_with(
            &R,
            input("alter table orders alter column note set not null;"),
            Some(&facts),
            None,
        );
        assert!(found.is_empty(), "empty per the database");
    }

    #[test]
    fn a_check_the_database_has_validated_is_proof() {
        let facts = DbFacts {
            tables: [("public.accounts".to_string(), true)]
                .into_iter()
                .collect(),
            catalog: Catalog {
                checks: [(
                    "public.accounts".to_string(),
                    vec![Check {
                        name: "accounts_email_not_null".into(),
                        not_null: Some("email".into()),
                        validated: true,
                    }],
                )]
                .into_iter()
                .collect(),
                ..Default::default()
            },
            ..Default::default()
        };
        let sql = "alter table accounts alter column email set not null;";
        assert!(lint_with(&R, input(sql), Some(&facts), None).is_empty());
        // Not yet validated, it proves nothing.
        let mut facts = facts;
        facts.catalog.checks.get_mut("public.accounts").unwrap()[0].validated = false;
        let found = lint_with(&R, input(sql), Some(&facts), None);
        assert_eq!(ids(&found), ["set-not-null"]);
    }

    #[test]
    fn validating_an_unrelated_constraint_proves_nothing() {
        let found = lint(
            &R,
            "alter table accounts validate constraint accounts_phone_length;\n\
             alter table accounts alter column email set not null;",
        );
        assert_eq!(ids(&found), ["set-not-null"]);
        assert_eq!(found[0].line, 2);
        let found = lint_after(
            &R,
            &["alter table accounts add constraint accounts_phone_length check (length(phone) > 3) not valid;"],
            "alter table accounts validate constraint accounts_phone_length;\n\
             alter table accounts alter column email set not null;",
        );
        assert_eq!(ids(&found), ["set-not-null"]);
    }

    #[test]
    fn without_a_database_a_validate_named_for_the_column_is_taken_as_proof() {
        let sql = "alter table orders validate constraint orders_created_at_not_null;\n\
                   alter table orders alter column created_at set not null;";
        assert!(lint(&R, sql).is_empty());
        // The run knows that check: it is about another column.
        let found = lint_after(
            &R,
            &["alter table orders add constraint orders_created_at_not_null check (length(note) > 0) not valid;"],
            sql,
        );
        assert_eq!(ids(&found), ["set-not-null"]);
        // With a database, only what it holds counts.
        let facts = DbFacts {
            tables: [("public.orders".to_string(), true)].into_iter().collect(),
            ..Default::default()
        };
        let found = lint_with(&R, input(sql), Some(&facts), None);
        assert_eq!(ids(&found), ["set-not-null"]);
    }

    #[test]
    fn a_check_on_another_column_proves_nothing() {
        let found = lint(
            &R,
            "alter table orders add constraint c check (other is not null);\n\
             alter table orders alter column note set not null;",
        );
        assert_eq!(ids(&found), ["set-not-null"]);
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql =
            "-- ballast:allow set-not-null\nalter table orders alter column note set not null;";
        assert!(lint(&R, sql).is_empty());
    }
}
