//! `changing-column-type`
//!
//! `ALTER TABLE ... ALTER COLUMN ... TYPE` usually rewrites the whole table and rebuilds
//! every index on it, under an ACCESS EXCLUSIVE lock: no reads or writes until it
//! finishes, minutes or hours on a large table. Only binary-compatible changes (`varchar(n)`
//! to `text` or to a longer `varchar`, for example) skip the rewrite, and the lint cannot
//! see the old type. The safe path is a new column: add it with the new type, write to
//! both (a trigger or the application), backfill it in batches, switch reads to it, then
//! drop the old column in a later migration. A table created earlier in the same
//! migration, or one the database shows empty, is not reported.

use pg_query::protobuf::AlterTableType;
use pg_query::NodeEnum;

use super::{altered_table_with_data, is};
use crate::lint::context::type_name;
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct ChangingColumnType;

static META: RuleMeta = RuleMeta {
    id: "changing-column-type",
    category: Category::Lock,
    default_level: Level::Error,
    summary: "ALTER COLUMN ... TYPE usually rewrites the table and its indexes under an ACCESS EXCLUSIVE lock",
    explanation: "ALTER TABLE ... ALTER COLUMN ... TYPE usually rewrites the whole table and rebuilds every index on it, under an ACCESS EXCLUSIVE lock: no reads or writes until it finishes, minutes or hours on a large table. Only binary-compatible changes (varchar(n) to text or to a longer varchar, for example) skip the rewrite. The safe path is a new column: add it with the new type, write to both (a trigger or the application), backfill it in batches, switch reads to it, then drop the old column in a later migration.",
};

impl Rule for ChangingColumnType {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let Some((_, key, cmds)) = altered_table_with_data(statement, ctx) else {
            return Vec::new();
        };
        cmds.into_iter()
            .filter(|cmd| is(cmd, AlterTableType::AtAlterColumnType))
            .map(|cmd| {
                let new_type = match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                    Some(NodeEnum::ColumnDef(column)) => column
                        .type_name
                        .as_ref()
                        .map(type_name)
                        .unwrap_or_else(|| "the new type".to_string()),
                    _ => "the new type".to_string(),
                };
                let column = &cmd.name;
                Hit::new(
                    format!(
                        "ALTER COLUMN {column} TYPE {new_type} on {key} usually rewrites the table and every index on it under an ACCESS EXCLUSIVE lock: no reads or writes until it finishes (only a binary-compatible change, such as varchar(n) to text, skips the rewrite)"
                    ),
                    format!(
                        "add a new column of type {new_type}, keep it in step with {column} (trigger or application), backfill it in batches, switch reads to it, and drop {column} in a later migration"
                    ),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::ChangingColumnType as R;
    use crate::lint::rules::testing::{ids, input, lint, lint_with};
    use crate::lint::DbFacts;

    #[test]
    fn a_type_change_on_an_existing_table_is_found() {
        let found = lint(
            &R,
            "alter table orders\n  alter column total type numeric(12, 2),\n  alter customer_id type bigint using customer_id::bigint;",
        );
        assert_eq!(
            ids(&found),
            ["changing-column-type", "changing-column-type"]
        );
        assert_eq!(found[0].line, 1);
        assert!(found[0].message.contains("numeric"));
        assert!(found[1].message.contains("customer_id TYPE int8"));
    }

    #[test]
    fn the_new_column_path_or_a_new_or_empty_table_is_fine() {
        assert!(lint(
            &R,
            "alter table orders add column customer_id_new bigint;\n\
             update orders set customer_id_new = customer_id where id between 1 and 1000;"
        )
        .is_empty());
        assert!(lint(
            &R,
            "create table t (id int);\nalter table t alter column id type bigint;"
        )
        .is_empty());
        let facts = DbFacts {
            tables: [("public.orders".to_string(), false)].into_iter().collect(),
            ..Default::default()
        };
        let found = lint_with(
            &R,
            input("alter table orders alter column total type bigint;"),
            Some(&facts),
            None,
        );
        assert!(found.is_empty(), "empty per the database");
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow changing-column-type\nalter table orders alter column note type text;";
        assert!(lint(&R, sql).is_empty());
    }
}
