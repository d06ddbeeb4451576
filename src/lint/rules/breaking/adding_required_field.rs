//! `adding-required-field`
//!
//! `ALTER TABLE ... ADD COLUMN ... NOT NULL` without a default fails outright on a table
//! that has any row (the existing rows would be NULL), and once it succeeds the
//! application instances still running the previous release, which insert without the
//! column, fail on every INSERT. Add the column nullable or with a DEFAULT (a constant
//! default is instant since PostgreSQL 11), deploy code that writes it, backfill the old
//! rows in batches, then make it required in a later migration (`ADD CONSTRAINT ... CHECK
//! (col IS NOT NULL) NOT VALID`, `VALIDATE CONSTRAINT`, then `SET NOT NULL`, which uses
//! the validated check instead of scanning under lock). Columns filled by PostgreSQL
//! (identity, generated, serial) and tables created in the same migration or empty in
//! the database are not reported.

use pg_query::protobuf::AlterTableType::AtAddColumn;
use pg_query::protobuf::{ColumnDef, ConstrType};
use pg_query::NodeEnum;

use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct AddingRequiredField;

static META: RuleMeta = RuleMeta {
    id: "adding-required-field",
    category: Category::Breaking,
    default_level: Level::Error,
    summary: "ADD COLUMN ... NOT NULL without a default fails on a table with rows and breaks old inserts",
    explanation: "ALTER TABLE ... ADD COLUMN ... NOT NULL without a default fails outright on a table that has any row, and once it succeeds the application instances still running the previous release, which insert without the column, fail on every INSERT. Add the column nullable or with a DEFAULT, deploy code that writes it, backfill the old rows in batches, then make it required in a later migration (ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT, then SET NOT NULL).",
};

impl Rule for AddingRequiredField {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let NodeEnum::AlterTableStmt(alter) = statement.node else {
            return Vec::new();
        };
        let Some(table) = &alter.relation else {
            return Vec::new();
        };
        if !ctx.holds_data(table, statement.index) {
            return Vec::new();
        }
        alter
            .cmds
            .iter()
            .filter_map(|cmd| match &cmd.node {
                Some(NodeEnum::AlterTableCmd(cmd)) if cmd.subtype() == AtAddColumn => {
                    match cmd.def.as_ref()?.node.as_ref()? {
                        NodeEnum::ColumnDef(column) => Some(column),
                        _ => None,
                    }
                }
                _ => None,
            })
            .filter(|column| required_without_default(column))
            .map(|column| {
                Hit::new(
                    format!(
                        "adding NOT NULL column {} without a default to {} fails if the table has any row, and breaks inserts from code that does not know the column",
                        column.colname,
                        ctx.key(table)
                    ),
                    "add it nullable or with a DEFAULT; backfill; SET NOT NULL in a later migration",
                )
            })
            .collect()
    }
}

/// NOT NULL (or PRIMARY KEY), and nothing that fills the existing rows.
fn required_without_default(column: &ColumnDef) -> bool {
    let serial = column
        .type_name
        .as_ref()
        .and_then(|t| t.names.last())
        .is_some_and(|n| match &n.node {
            Some(NodeEnum::String(s)) => matches!(
                s.sval.to_lowercase().as_str(),
                "serial" | "serial2" | "serial4" | "serial8" | "smallserial" | "bigserial"
            ),
            _ => false,
        });
    let mut not_null = column.is_not_null;
    let mut filled = serial
        || column.raw_default.is_some()
        || !column.identity.is_empty()
        || !column.generated.is_empty();
    for constraint in &column.constraints {
        let Some(NodeEnum::Constraint(c)) = &constraint.node else {
            continue;
        };
        match c.contype() {
            ConstrType::ConstrNotnull | ConstrType::ConstrPrimary => not_null = true,
            ConstrType::ConstrIdentity | ConstrType::ConstrGenerated => filled = true,
            ConstrType::ConstrDefault => {
                // DEFAULT NULL fills nothing.
                let null = matches!(
                    c.raw_expr.as_ref().and_then(|e| e.node.as_ref()),
                    Some(NodeEnum::AConst(a)) if a.isnull
                );
                filled |= !null;
            }
            _ => {}
        }
    }
    not_null && !filled
}

#[cfg(test)]
mod tests {
    use super::AddingRequiredField as R;
    use crate::lint::rules::testing::{ids, input, lint, lint_with};
    use crate::lint::DbFacts;

    #[test]
    fn a_required_column_without_default_is_found() {
        let found = lint(&R, "alter table orders add column region text not null;");
        assert_eq!(ids(&found), ["adding-required-field"]);
        assert!(found[0].message.contains("region"));
        for sql in [
            "alter table orders add column region text not null default null;",
            "alter table orders add column id bigint primary key;",
        ] {
            assert_eq!(ids(&lint(&R, sql)), ["adding-required-field"], "{sql}");
        }
    }

    #[test]
    fn a_default_a_nullable_column_or_an_empty_table_is_fine() {
        for sql in [
            "alter table orders add column region text not null default 'eu';",
            "alter table orders add column region text;",
            "alter table orders add column n bigint generated always as identity;",
            "alter table orders add column n bigserial not null;",
            "alter table orders add column total int not null generated always as (a + b) stored;",
            "create table t (id int);\nalter table t add column region text not null;",
        ] {
            assert!(lint(&R, sql).is_empty(), "{sql}");
        }
        let facts = DbFacts {
            tables: [("shop.orders".to_string(), false)].into_iter().collect(),
            ..Default::default()
        };
        let sql = "alter table orders add column region text not null;";
        assert!(lint_with(&R, input(sql), Some(&facts), Some("shop")).is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow adding-required-field\nalter table orders add column region text not null;";
        assert!(lint(&R, sql).is_empty());
    }
}
