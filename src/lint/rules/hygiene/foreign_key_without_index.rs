//! `foreign-key-without-index`
//!
//! PostgreSQL indexes the referenced side of a foreign key (it must be a primary key or
//! unique) but not the referencing columns. Without an index whose leading columns are
//! those columns, every `DELETE` or key `UPDATE` on the referenced table scans the whole
//! referencing table to check for rows that still point at it (under a lock, once per
//! row deleted), and joins along the key are slow. Index the referencing columns: `CREATE
//! INDEX ON orders (customer_id)` next to a new table, or `CREATE INDEX CONCURRENTLY`, in
//! a migration of its own, on a table that holds data. An index (not partial), primary
//! key or unique constraint on the table that starts with the same columns in the same
//! order counts, whether it is created anywhere in the same migration, by an earlier
//! migration, or (with a database) already exists.

use pg_query::protobuf::{ConstrType, Constraint, RangeVar};
use pg_query::NodeEnum;

use super::{at, columns, foreign_keys, is, names, table_constraints, written, Change};
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct ForeignKeyWithoutIndex;

static META: RuleMeta = RuleMeta {
    id: "foreign-key-without-index",
    category: Category::Hygiene,
    default_level: Level::Warning,
    summary: "a foreign key whose columns no index leads with makes deletes on the referenced table scan",
    explanation: "PostgreSQL indexes the referenced side of a foreign key but not the referencing columns. Without an index whose leading columns are those columns, every DELETE or key UPDATE on the referenced table scans the whole referencing table to check for rows that still point at it, and joins along the key are slow. Index the referencing columns: CREATE INDEX ON orders (customer_id) next to a new table, or CREATE INDEX CONCURRENTLY in a migration of its own on a table that holds data. An index (not partial), primary key or unique constraint on the table that starts with the same columns in the same order counts, whether it is created anywhere in the same migration, by an earlier migration, or (with a database) already exists.",
};

/// The column lists a statement indexes on a table: (table, leading plain columns).
/// An expression ends the list; a partial index gives none.
fn indexed(node: &NodeEnum) -> Vec<(&RangeVar, Vec<String>)> {
    let mut found = Vec::new();
    if let NodeEnum::IndexStmt(index) = node {
        if let (Some(table), None) = (&index.relation, &index.where_clause) {
            let cols = index
                .index_params
                .iter()
                .map_while(|n| match &n.node {
                    Some(NodeEnum::IndexElem(e)) if !e.name.is_empty() => Some(e.name.clone()),
                    _ => None,
                })
                .collect();
            found.push((table, cols));
        }
    }
    let unique =
        |c: &Constraint| is(c, ConstrType::ConstrPrimary) || is(c, ConstrType::ConstrUnique);
    for column in columns(node) {
        if column.change != Change::AlterType && column.constraints().any(unique) {
            found.push((column.table, vec![column.name.to_string()]));
        }
    }
    for (table, c) in table_constraints(node) {
        if unique(c) && c.where_clause.is_none() {
            found.push((
                table,
                names(&c.keys).into_iter().map(String::from).collect(),
            ));
        }
    }
    found
}

impl Rule for ForeignKeyWithoutIndex {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let fks = foreign_keys(statement.node);
        if fks.is_empty() {
            return Vec::new();
        }
        let indexes: Vec<(String, Vec<String>)> = ctx
            .statements
            .iter()
            .flat_map(|s| indexed(s.node))
            .map(|(table, cols)| (ctx.key(table), cols))
            .collect();
        let new_tables = ctx.created_tables();
        let mut hits = Vec::new();
        for (table, cols, c) in fks {
            if cols.is_empty() {
                continue;
            }
            let key = ctx.key(table);
            let covered = indexes
                .iter()
                .any(|(t, lead)| *t == key && lead.starts_with(&cols))
                || ctx.catalog.indexed(&ctx.catalog_key(table), &cols);
            if covered {
                continue;
            }
            let list = cols.join(", ");
            let referenced = c.pktable.as_ref().map(written).unwrap_or_default();
            let mut hit = Hit::new(
                format!(
                    "the foreign key {}({list}) → {referenced} has no index on {list}: deleting or updating a {referenced} row scans {}",
                    written(table),
                    written(table)
                ),
                if new_tables.contains(key.as_str()) {
                    format!("add CREATE INDEX ON {} ({list}) to this migration", written(table))
                } else {
                    format!(
                        "CREATE INDEX CONCURRENTLY ON {} ({list}), in a -- no-transaction migration",
                        written(table)
                    )
                },
            );
            hit.at = at(c.location);
            hits.push(hit);
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::ForeignKeyWithoutIndex as R;
    use crate::lint::catalog::Catalog;
    use crate::lint::rules::testing::{ids, input, lint, lint_after, lint_with};
    use crate::lint::DbFacts;

    #[test]
    fn an_unindexed_foreign_key_is_found() {
        let found = lint(
            &R,
            "create table orders (\n  id bigint primary key,\n  customer_id bigint not null references customers\n);",
        );
        assert_eq!(ids(&found), ["foreign-key-without-index"]);
        assert_eq!(found[0].line, 3);
        assert!(
            found[0]
                .fix
                .contains("CREATE INDEX ON orders (customer_id)"),
            "{}",
            found[0].fix
        );
        for sql in [
            "alter table orders add column seller_id bigint references sellers (id);",
            "alter table orders add constraint orders_seller_fk foreign key (seller_id) references sellers;",
            "create table lines (order_id bigint, n int, primary key (n, order_id), foreign key (order_id) references orders);",
            "create table t (a bigint, b bigint, foreign key (a, b) references p);\ncreate index on t (b, a);",
            "create table t (a bigint references p);\ncreate index on t (a) where a is not null;",
            "create table t (a bigint references p);\ncreate index on other (a);",
        ] {
            assert_eq!(ids(&lint(&R, sql)), ["foreign-key-without-index"], "{sql}");
        }
        let found = lint(
            &R,
            "alter table orders add column seller_id bigint references sellers;",
        );
        assert!(found[0].fix.contains("CONCURRENTLY"));
    }

    #[test]
    fn an_index_in_the_same_migration_covers_it() {
        for sql in [
            "create table orders (id bigint primary key, customer_id bigint references customers);\ncreate index on orders (customer_id, id);",
            "alter table orders add column seller_id bigint references sellers;\ncreate index concurrently orders_seller_idx on orders (seller_id);",
            "create index orders_seller_idx on orders (seller_id);\nalter table orders add constraint fk foreign key (seller_id) references sellers not valid;",
            "create table lines (order_id bigint, n int, primary key (order_id, n), foreign key (order_id) references orders);",
            "create table profiles (user_id bigint unique references users);",
            "create table t (a bigint, b bigint, foreign key (a, b) references p, unique (a, b));",
            "create table orders (id bigint primary key);",
        ] {
            assert!(lint(&R, sql).is_empty(), "{sql}");
        }
    }

    #[test]
    fn an_index_from_an_earlier_migration_covers_it() {
        let fk = "alter table orders add constraint orders_seller_fk foreign key (seller_id) references sellers not valid;";
        for earlier in [
            "create index concurrently orders_seller_idx on orders (seller_id, created_at);",
            "create table orders (id bigint primary key, seller_id bigint unique);",
        ] {
            assert!(lint_after(&R, &[earlier], fk).is_empty(), "{earlier}");
        }
        for earlier in [
            "create index orders_seller_idx on orders (created_at, seller_id);",
            "create index orders_seller_idx on orders (seller_id) where seller_id is not null;",
            "create index sellers_id_idx on sellers (seller_id);",
        ] {
            assert_eq!(
                ids(&lint_after(&R, &[earlier], fk)),
                ["foreign-key-without-index"],
                "{earlier}"
            );
        }
    }

    #[test]
    fn an_index_in_the_database_covers_it() {
        let fk = "alter table orders add constraint orders_seller_fk foreign key (seller_id) references sellers not valid;";
        let mut catalog = Catalog::default();
        catalog
            .indexes
            .insert("public.orders".into(), vec![vec!["seller_id".into()]]);
        catalog.column_types.insert(
            "public.orders".into(),
            [("seller_id".to_string(), "int8".to_string())].into(),
        );
        let db = DbFacts {
            tables: [("public.orders".to_string(), true)].into(),
            search_path: vec!["public".into()],
            catalog,
            ..Default::default()
        };
        assert!(lint_with(&R, input(fk), Some(&db), None).is_empty());
        // An unqualified name is found along the search_path, as PostgreSQL will.
        assert!(lint_with(&R, input(fk), Some(&db), Some("app")).is_empty());
        let other = "alter table orders add constraint orders_buyer_fk foreign key (buyer_id) references buyers not valid;";
        assert_eq!(
            ids(&lint_with(&R, input(other), Some(&db), None)),
            ["foreign-key-without-index"]
        );
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow foreign-key-without-index\nalter table orders add constraint fk foreign key (seller_id) references sellers;";
        assert!(lint(&R, sql).is_empty());
    }
}
