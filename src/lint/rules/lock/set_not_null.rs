//! `set-not-null`
//!
//! `ALTER TABLE ... ALTER COLUMN ... SET NOT NULL` (and PostgreSQL 18's
//! `ADD CONSTRAINT ... NOT NULL` without `NOT VALID`) scans every row to prove the column
//! has no NULLs, holding an ACCESS EXCLUSIVE lock for the whole scan: no reads or writes
//! until it ends. Prove it first without blocking: `ADD CONSTRAINT ... CHECK (col IS NOT
//! NULL) NOT VALID`, then `VALIDATE CONSTRAINT` in a later migration (a scan that lets
//! reads and writes through), then `SET NOT NULL`, which on PostgreSQL 12+ sees the valid
//! check and skips the scan, and finally drop the check. `SET NOT NULL` after a
//! `VALIDATE CONSTRAINT` (or a validated `CHECK (col IS NOT NULL)`) on the same table
//! earlier in the migration is taken to be that last step and not reported; so is a table
//! created earlier in the same migration, or one the database shows empty.

use pg_query::protobuf::{AlterTableType, ConstrType, NullTestType, RangeVar};
use pg_query::NodeEnum;

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
                if !proven_before(ctx, table, &cmd.name, statement.index) {
                    found.push((
                        format!("ALTER COLUMN {} SET NOT NULL", cmd.name),
                        cmd.name.clone(),
                    ));
                }
            } else if let Some(c) = added_constraint(cmd) {
                if contype(c) == ConstrType::ConstrNotnull && !c.skip_validation {
                    for column in strings(&c.keys) {
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

/// Whether an earlier statement of this migration already proved `column` of `table`
/// NOT NULL with a valid check: it validated a constraint on the table (the usual
/// `VALIDATE CONSTRAINT` of the `CHECK (col IS NOT NULL) NOT VALID` added before), or it
/// added `CHECK (col IS NOT NULL)` without `NOT VALID`.
fn proven_before(ctx: &Context<'_>, table: &RangeVar, column: &str, statement: usize) -> bool {
    let key = ctx.key(table);
    ctx.statements
        .iter()
        .take_while(|s| s.index < statement)
        .filter_map(|s| alter_table(s.node))
        .filter(|(t, _)| ctx.key(t) == key)
        .flat_map(|(_, cmds)| cmds)
        .any(|cmd| {
            if is(cmd, AlterTableType::AtValidateConstraint) {
                return true;
            }
            let Some(c) = added_constraint(cmd) else {
                return false;
            };
            contype(c) == ConstrType::ConstrCheck
                && !c.skip_validation
                && matches!(
                    c.raw_expr.as_ref().and_then(|e| e.node.as_ref()),
                    Some(NodeEnum::NullTest(test))
                        if test.nulltesttype == NullTestType::IsNotNull as i32
                            && matches!(
                                test.arg.as_ref().and_then(|a| a.node.as_ref()),
                                Some(NodeEnum::ColumnRef(r)) if strings(&r.fields).last().as_deref() == Some(column)
                            )
                )
        })
}

#[cfg(test)]
mod tests {
    use super::SetNotNull as R;
    use crate::lint::rules::testing::{ids, input, lint, lint_with};
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
        assert!(lint(
            &R,
            "alter table orders add constraint orders_note_not_null check (note is not null) not valid;"
        )
        .is_empty());
        // Later migration: validate, then SET NOT NULL skips its scan.
        assert!(lint(
            &R,
            "alter table orders validate constraint orders_note_not_null;\n\
             alter table orders alter column note set not null;\n\
             alter table orders drop constraint orders_note_not_null;"
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
