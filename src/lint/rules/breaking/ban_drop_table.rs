//! `ban-drop-table`
//!
//! `DROP TABLE` removes the table and its data at once, while the application instances
//! still running the previous release go on querying it: every request that touches it
//! fails until the last old instance is gone, and nothing short of a restore brings the
//! data back. Contract in two releases: first deploy code that no longer uses the table,
//! then drop it in a later release's migration (after a backup, if the data may be
//! wanted). Dropping a table created earlier in the same migration breaks nothing and is
//! not reported.

use pg_query::protobuf::{ObjectType, RangeVar};
use pg_query::NodeEnum;

use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct BanDropTable;

static META: RuleMeta = RuleMeta {
    id: "ban-drop-table",
    category: Category::Breaking,
    default_level: Level::Error,
    summary: "DROP TABLE breaks code still running that uses the table, and loses its data",
    explanation: "DROP TABLE removes the table and its data at once, while the application instances still running the previous release go on querying it: every request that touches it fails until the last old instance is gone, and nothing short of a restore brings the data back. Contract in two releases: first deploy code that no longer uses the table, then drop it in a later release's migration.",
};

impl Rule for BanDropTable {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let NodeEnum::DropStmt(drop) = statement.node else {
            return Vec::new();
        };
        if drop.remove_type() != ObjectType::ObjectTable {
            return Vec::new();
        }
        drop.objects
            .iter()
            .filter_map(|object| table_of(object.node.as_ref()?))
            .filter(|table| ctx.existed_before_run(table, statement.index))
            .map(|table| {
                Hit::new(
                    format!(
                        "dropping table {} breaks code still running that uses it, and its data is gone",
                        ctx.key(&table)
                    ),
                    "first deploy code that no longer uses the table; drop it in a later release",
                )
            })
            .collect()
    }
}

/// A dropped table's name (`[catalog.][schema.]table`, as a list of strings).
fn table_of(object: &NodeEnum) -> Option<RangeVar> {
    let NodeEnum::List(list) = object else {
        return None;
    };
    crate::lint::nodes::qualified(&list.items)
}

#[cfg(test)]
mod tests {
    use super::BanDropTable as R;
    use crate::lint::rules::testing::{ids, input, lint, lint_with};

    #[test]
    fn each_dropped_table_is_found() {
        let found = lint(&R, "select 1;\n\ndrop table if exists orders, Shop.Carts;");
        assert_eq!(ids(&found), ["ban-drop-table", "ban-drop-table"]);
        assert_eq!(found[0].line, 3);
        assert!(
            found[0].message.contains("public.orders"),
            "{}",
            found[0].message
        );
        assert!(
            found[1].message.contains("shop.carts"),
            "{}",
            found[1].message
        );
    }

    #[test]
    fn the_configured_schema_names_unqualified_tables() {
        let found = lint_with(&R, input("drop table orders;"), None, Some("shop"));
        assert!(
            found[0].message.contains("shop.orders"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn a_table_new_in_the_migration_or_another_object_is_fine() {
        assert!(lint(&R, "create table scratch (id int);\ndrop table scratch;").is_empty());
        assert!(lint(
            &R,
            "create table public.scratch (id int);\ndrop table Scratch;"
        )
        .is_empty());
        assert!(lint(&R, "drop view orders_v;").is_empty());
        assert_eq!(
            lint(&R, "drop table scratch;\ncreate table scratch (id int);").len(),
            1,
            "created after the drop: the old one held data"
        );
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow ban-drop-table\ndrop table orders;";
        assert!(lint(&R, sql).is_empty());
    }
}
