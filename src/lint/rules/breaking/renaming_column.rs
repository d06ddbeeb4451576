//! `renaming-column`
//!
//! `ALTER TABLE ... RENAME COLUMN` changes the name at once, while the application
//! instances still running the previous release go on using the old one: every query
//! that names it fails until the last old instance is gone, and new code deployed before
//! the migration fails the same way the other way round. Rename by expand and contract:
//! add the new column, write both from code (or keep them in step with a trigger),
//! backfill, move the reads to the new column, and drop the old one in a later release.
//! Renaming a column of a table created earlier in the same migration is not reported.

use pg_query::protobuf::ObjectType;
use pg_query::NodeEnum;

use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct RenamingColumn;

static META: RuleMeta = RuleMeta {
    id: "renaming-column",
    category: Category::Breaking,
    default_level: Level::Error,
    summary: "RENAME COLUMN breaks code still running that uses the old name",
    explanation: "ALTER TABLE ... RENAME COLUMN changes the name at once, while the application instances still running the previous release go on using the old one: every query that names it fails until the last old instance is gone. Rename by expand and contract: add the new column, write both from code (or keep them in step with a trigger), backfill, move the reads to the new column, and drop the old one in a later release.",
};

impl Rule for RenamingColumn {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let NodeEnum::RenameStmt(rename) = statement.node else {
            return Vec::new();
        };
        if rename.rename_type() != ObjectType::ObjectColumn {
            return Vec::new();
        }
        let Some(table) = &rename.relation else {
            return Vec::new();
        };
        if !ctx.existed_before_run(table, statement.index) {
            return Vec::new();
        }
        vec![Hit::new(
            format!(
                "renaming column {} of {} to {} breaks code still running that uses the old name",
                rename.subname,
                ctx.key(table),
                rename.newname
            ),
            "add the new column, write both, backfill, move reads to it; drop the old column in a later release",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::RenamingColumn as R;
    use crate::lint::rules::testing::{ids, lint};

    #[test]
    fn renaming_a_column_is_found() {
        let found = lint(&R, "alter table orders rename column note to comment;");
        assert_eq!(ids(&found), ["renaming-column"]);
        assert!(found[0].message.contains("note"));
        assert_eq!(
            ids(&lint(
                &R,
                "alter view orders_v rename column note to comment;"
            )),
            ["renaming-column"]
        );
    }

    #[test]
    fn adding_the_new_column_or_a_new_table_is_fine() {
        assert!(lint(&R, "alter table orders add column comment text;").is_empty());
        assert!(lint(&R, "alter table orders rename to orders_old;").is_empty());
        assert!(lint(
            &R,
            "create table t (a int);\nalter table t rename column a to b;"
        )
        .is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql =
            "-- ballast:allow renaming-column\nalter table orders rename column note to comment;";
        assert!(lint(&R, sql).is_empty());
    }
}
