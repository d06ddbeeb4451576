//! `renaming-table`
//!
//! `ALTER TABLE ... RENAME TO` changes the name at once, while the application instances
//! still running the previous release go on querying the old one: every request that
//! touches the table fails until the last old instance is gone. Keep the old name working
//! while both releases run: in the same migration, right after the rename, create a view
//! with the old name (`CREATE VIEW old AS SELECT * FROM new`; a simple view like this
//! also takes INSERT, UPDATE and DELETE), then drop the view in a later release once no
//! code uses the old name. A rename followed by that view, or of a table created earlier
//! in the same migration, is not reported.

use pg_query::protobuf::{ObjectType, RangeVar};
use pg_query::NodeEnum;

use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct RenamingTable;

static META: RuleMeta = RuleMeta {
    id: "renaming-table",
    category: Category::Breaking,
    default_level: Level::Error,
    summary: "RENAME TO breaks code still running that uses the table's old name",
    explanation: "ALTER TABLE ... RENAME TO changes the name at once, while the application instances still running the previous release go on querying the old one: every request that touches the table fails until the last old instance is gone. Keep the old name working while both releases run: in the same migration, right after the rename, create a view with the old name (CREATE VIEW old AS SELECT * FROM new; a simple view like this also takes INSERT, UPDATE and DELETE), then drop the view in a later release once no code uses the old name.",
};

impl Rule for RenamingTable {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let NodeEnum::RenameStmt(rename) = statement.node else {
            return Vec::new();
        };
        if rename.rename_type() != ObjectType::ObjectTable {
            return Vec::new();
        }
        let Some(table) = &rename.relation else {
            return Vec::new();
        };
        if !ctx.existed_before_run(table, statement.index) || old_name_kept(table, statement, ctx) {
            return Vec::new();
        }
        let renamed = RangeVar {
            schemaname: table.schemaname.clone(),
            relname: rename.newname.clone(),
            ..Default::default()
        };
        vec![Hit::new(
            format!(
                "renaming table {} to {} breaks code still running that uses the old name",
                ctx.key(table),
                rename.newname
            ),
            format!(
                "right after the rename, CREATE VIEW {} AS SELECT * FROM {}; drop the view in a later release",
                ctx.key(table),
                ctx.key(&renamed)
            ),
        )]
    }
}

/// A later statement of the migration creates a view with the old name.
fn old_name_kept(table: &RangeVar, statement: &Statement<'_>, ctx: &Context<'_>) -> bool {
    let old = ctx.key(table);
    ctx.statements[statement.index + 1..]
        .iter()
        .any(|s| match s.node {
            NodeEnum::ViewStmt(view) => view.view.as_ref().is_some_and(|v| ctx.key(v) == old),
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::RenamingTable as R;
    use crate::lint::rules::testing::{ids, lint};

    #[test]
    fn renaming_a_table_is_found() {
        let found = lint(&R, "alter table shop.orders rename to purchases;");
        assert_eq!(ids(&found), ["renaming-table"]);
        assert!(
            found[0]
                .fix
                .contains("CREATE VIEW shop.orders AS SELECT * FROM shop.purchases"),
            "{}",
            found[0].fix
        );
    }

    #[test]
    fn a_view_with_the_old_name_or_a_new_table_is_fine() {
        assert!(lint(
            &R,
            "alter table orders rename to purchases;\ncreate view orders as select * from purchases;"
        )
        .is_empty());
        assert!(lint(&R, "create table t (a int);\nalter table t rename to u;").is_empty());
        assert!(lint(&R, "alter table orders rename column a to b;").is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow renaming-table\nalter table orders rename to purchases;";
        assert!(lint(&R, sql).is_empty());
    }
}
