//! `require-schema-qualified`
//!
//! An unqualified name resolves through `search_path`: `CREATE TABLE orders` creates the
//! table in the first schema on the path of whatever session runs the migration (often
//! `public`, or a schema named after the user), and `ALTER TABLE orders` changes whichever
//! `orders` the path finds first. When the project keeps its objects in a schema of their
//! own (`[database] schema`, not `public`), name it: `CREATE TABLE marketplace.orders`.
//! Reported for `CREATE TABLE` (and `CREATE TABLE AS`, `CREATE MATERIALIZED VIEW`), the
//! table of `CREATE INDEX`, `CREATE SEQUENCE`, `CREATE VIEW` and `ALTER TABLE` (and
//! `ALTER INDEX`/`SEQUENCE`/`VIEW`); never when no schema is configured or it is
//! `public`, and not for temporary tables, which live in a schema of their own.

use pg_query::protobuf::{ObjectType, RangeVar};
use pg_query::NodeEnum;

use super::at;
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct RequireSchemaQualified;

static META: RuleMeta = RuleMeta {
    id: "require-schema-qualified",
    category: Category::Hygiene,
    default_level: Level::Warning,
    summary: "an unqualified name lands wherever search_path points, not in the project's schema",
    explanation: "An unqualified name resolves through search_path: CREATE TABLE orders creates the table in the first schema on the path of whatever session runs the migration (often public), and ALTER TABLE orders changes whichever orders the path finds first. When the project keeps its objects in a schema of their own, name it: CREATE TABLE marketplace.orders.",
};

/// The object a statement creates or alters, and the words for it.
fn target(node: &NodeEnum) -> Option<(&RangeVar, &'static str)> {
    match node {
        NodeEnum::CreateStmt(c) => Some((c.relation.as_ref()?, "CREATE TABLE")),
        NodeEnum::CreateTableAsStmt(c) => {
            let words = if c.objtype() == ObjectType::ObjectMatview {
                "CREATE MATERIALIZED VIEW"
            } else {
                "CREATE TABLE AS"
            };
            Some((c.into.as_ref()?.rel.as_ref()?, words))
        }
        NodeEnum::IndexStmt(i) => Some((i.relation.as_ref()?, "CREATE INDEX on")),
        NodeEnum::CreateSeqStmt(s) => Some((s.sequence.as_ref()?, "CREATE SEQUENCE")),
        NodeEnum::ViewStmt(v) => Some((v.view.as_ref()?, "CREATE VIEW")),
        NodeEnum::AlterTableStmt(a) => {
            let words = match a.objtype() {
                ObjectType::ObjectIndex => "ALTER INDEX",
                ObjectType::ObjectSequence => "ALTER SEQUENCE",
                ObjectType::ObjectView => "ALTER VIEW",
                ObjectType::ObjectMatview => "ALTER MATERIALIZED VIEW",
                ObjectType::ObjectForeignTable => "ALTER FOREIGN TABLE",
                _ => "ALTER TABLE",
            };
            Some((a.relation.as_ref()?, words))
        }
        _ => None,
    }
}

impl Rule for RequireSchemaQualified {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let Some(schema) = ctx.schema.filter(|s| !s.eq_ignore_ascii_case("public")) else {
            return Vec::new();
        };
        let Some((rv, words)) = target(statement.node) else {
            return Vec::new();
        };
        // Temporary objects live in pg_temp, whatever the path says.
        if !rv.schemaname.is_empty() || rv.relpersistence == "t" {
            return Vec::new();
        }
        let mut hit = Hit::new(
            format!(
                "{words} {} names no schema: it resolves through search_path, not necessarily to {schema}",
                rv.relname
            ),
            format!("qualify it: {schema}.{}", rv.relname),
        );
        hit.at = at(rv.location);
        vec![hit]
    }
}

#[cfg(test)]
mod tests {
    use super::RequireSchemaQualified as R;
    use crate::lint::rules::testing::{ids, input, lint, lint_with};

    fn in_marketplace(sql: &str) -> Vec<crate::lint::Finding> {
        lint_with(&R, input(sql), None, Some("marketplace"))
    }

    #[test]
    fn unqualified_names_are_found() {
        let found = in_marketplace(
            "create table marketplace.sellers (id bigint);\n\ncreate table orders (id bigint);",
        );
        assert_eq!(ids(&found), ["require-schema-qualified"]);
        assert_eq!(found[0].line, 3);
        assert!(found[0].fix.contains("marketplace.orders"));
        for sql in [
            "create index on orders (id);",
            "create sequence order_numbers;",
            "create view open_orders as select 1;",
            "alter table orders add column note text;",
            "create materialized view totals as select 1;",
        ] {
            assert_eq!(
                ids(&in_marketplace(sql)),
                ["require-schema-qualified"],
                "{sql}"
            );
        }
    }

    #[test]
    fn qualified_names_public_or_no_schema_are_fine() {
        let sql = "create table orders (id bigint);\ncreate index on orders (id);";
        assert!(lint(&R, sql).is_empty());
        assert!(lint_with(&R, input(sql), None, Some("public")).is_empty());
        assert!(in_marketplace(
            "create table marketplace.orders (id bigint);\ncreate index i on marketplace.orders (id);\nalter table marketplace.orders add column note text;\ncreate temp table scratch (id int);"
        )
        .is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow require-schema-qualified\ncreate table orders (id bigint);";
        assert!(in_marketplace(sql).is_empty());
    }
}
