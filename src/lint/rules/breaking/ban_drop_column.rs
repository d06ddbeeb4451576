//! `ban-drop-column`
//!
//! `ALTER TABLE ... DROP COLUMN` removes the column at once, while the application
//! instances still running the previous release go on naming it: their SELECTs, INSERTs
//! and UPDATEs that mention it fail until the last old instance is gone (and an ORM that
//! lists every column of its model fails on every query of the table). Contract in two
//! releases: first deploy code that no longer reads or writes the column (remove it from
//! models and queries), then drop it in a later release's migration. Dropping a column
//! of a table created earlier in the same migration breaks nothing and is not reported.

use pg_query::protobuf::AlterTableType::AtDropColumn;
use pg_query::NodeEnum;

use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct BanDropColumn;

static META: RuleMeta = RuleMeta {
    id: "ban-drop-column",
    category: Category::Breaking,
    default_level: Level::Error,
    summary: "DROP COLUMN breaks code still running that reads or writes the column",
    explanation: "ALTER TABLE ... DROP COLUMN removes the column at once, while the application instances still running the previous release go on naming it: their queries that mention it fail until the last old instance is gone (and an ORM that lists every column of its model fails on every query of the table). Contract in two releases: first deploy code that no longer reads or writes the column, then drop it in a later release's migration.",
};

impl Rule for BanDropColumn {
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
        if !ctx.existed_before_run(table, statement.index) {
            return Vec::new();
        }
        alter
            .cmds
            .iter()
            .filter_map(|cmd| match &cmd.node {
                Some(NodeEnum::AlterTableCmd(cmd)) if cmd.subtype() == AtDropColumn => {
                    Some(cmd)
                }
                _ => None,
            })
            .map(|cmd| {
                Hit::new(
                    format!(
                        "dropping column {} of {} breaks code still running that reads or writes it",
                        cmd.name,
                        ctx.key(table)
                    ),
                    "first deploy code that no longer uses the column; drop it in a later release",
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::BanDropColumn as R;
    use crate::lint::rules::testing::{ids, lint};

    #[test]
    fn dropping_a_column_is_found() {
        let found = lint(
            &R,
            "select 1;\nalter table orders drop column note, drop column legacy;",
        );
        assert_eq!(ids(&found), ["ban-drop-column", "ban-drop-column"]);
        assert_eq!(found[0].line, 2);
        assert!(found[1].message.contains("legacy"), "{}", found[1].message);
    }

    #[test]
    fn other_changes_or_a_new_table_are_fine() {
        assert!(lint(&R, "alter table orders add column note text;").is_empty());
        assert!(lint(
            &R,
            "create table t (id int, x int);\nalter table t drop column x;"
        )
        .is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow ban-drop-column\nalter table orders drop column note;";
        assert!(lint(&R, sql).is_empty());
    }

    #[test]
    fn with_a_database_only_a_table_that_exists_before_the_run_counts() {
        use crate::lint::rules::testing::{input, lint_with};
        use crate::lint::DbFacts;
        let sql = "alter table orders drop column note;";
        // A deploy from an empty database: an earlier pending migration creates it.
        let empty = DbFacts {
            search_path: vec!["public".into()],
            ..Default::default()
        };
        assert!(lint_with(&R, input(sql), Some(&empty), None).is_empty());
        // There already, even empty: running code may name the column.
        let there = DbFacts {
            tables: [("public.orders".to_string(), false)].into(),
            search_path: vec!["public".into()],
            ..Default::default()
        };
        assert_eq!(
            ids(&lint_with(&R, input(sql), Some(&there), None)),
            ["ban-drop-column"]
        );
    }
}
