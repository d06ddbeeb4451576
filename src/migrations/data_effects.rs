//! What a migration's up SQL does to data, as opposed to structure: the rows and state
//! it destroys (which no down file can bring back) and the rows it changes in place
//! (which a down may or may not undo). The recovery ladder proves a downgrade by
//! comparing structure; this tells it what that proof cannot see.
//!
//! Only top-level statements are read, as the migration runs them: a function body is
//! not run by creating the function. What cannot be read (a `DO` block, a `CALL`, a
//! `SELECT` calling functions, a type change `USING` an expression) is reported as
//! opaque: it may have destroyed data, so the ladder proves nothing about it.

use pg_query::protobuf::{
    AlterTableType, CmdType, DropBehavior, DropStmt, Node, ObjectType, RangeVar, WithClause,
};
use pg_query::NodeEnum;

use crate::lint::context::parse;
use crate::lint::nodes::{alter_commands, option_on, strings, written};

/// What one statement of a migration does to data (not structure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataEffect {
    /// Data no down migration can bring back: `DROP TABLE`, `DROP SEQUENCE` (its
    /// position is state), `DROP EXTENSION` (its member tables), `DROP SCHEMA`, `TYPE`
    /// or `DOMAIN ... CASCADE` (the tables and columns that go with them), `ALTER TABLE
    /// ... DROP COLUMN`, `TRUNCATE`, `DELETE`, `MERGE ... THEN DELETE`, `DROP DATABASE`,
    /// `DROP OWNED`. Indexes, views and materialized views are rebuilt from what
    /// remains, and `ALTER COLUMN ... TYPE` keeps the rows: none of them is counted.
    Destroys(String),
    /// Rows changed in place (`UPDATE`, `INSERT`, `MERGE`, `COPY ... FROM`, values
    /// converted by `ALTER COLUMN ... TYPE`): a down may or may not undo them.
    Writes(String),
    /// Code whose effect on rows cannot be read from the SQL (`DO`, `CALL`, a `SELECT`
    /// calling functions such as `setval`, `ALTER COLUMN ... TYPE ... USING`, SQL that
    /// does not parse): it may have destroyed data, so nothing is proven about it.
    Opaque(String),
}

/// The data effects of a migration's statements, in order. SQL that does not parse
/// yields one [`DataEffect::Writes`] so the caller stays conservative.
pub fn data_effects(sql: &str) -> Vec<DataEffect> {
    let Ok(parsed) = parse(sql) else {
        return vec![DataEffect::Opaque("SQL that does not parse".into())];
    };
    let mut found = Vec::new();
    for node in parsed.nodes() {
        statement(node, &mut found);
    }
    found
}

/// One statement's effects. Also called on the query of a `WITH` entry, of `EXPLAIN
/// ANALYZE` (which runs it) and of `PREPARE` (counted as if executed: cheaper than
/// matching `EXECUTE`s, and errs toward reporting).
fn statement(node: &NodeEnum, found: &mut Vec<DataEffect>) {
    use DataEffect::{Destroys, Writes};
    match node {
        NodeEnum::DropStmt(drop) => dropped(drop, found),
        NodeEnum::AlterTableStmt(alter) if alter.objtype() == ObjectType::ObjectTable => {
            let table = alter.relation.as_ref().map(written).unwrap_or_default();
            for (subtype, cmd) in alter_commands(&alter.cmds) {
                if subtype == AlterTableType::AtDropColumn {
                    found.push(Destroys(format!("DROP COLUMN {table}.{}", cmd.name)));
                }
                // A plain type change casts (and fails rather than lose a value that
                // does not fit); USING rewrites values by any expression.
                let using = subtype == AlterTableType::AtAlterColumnType
                    && matches!(
                        cmd.def.as_deref().and_then(|d| d.node.as_ref()),
                        Some(NodeEnum::ColumnDef(def)) if def.raw_default.is_some()
                    );
                if using {
                    found.push(DataEffect::Opaque(format!(
                        "ALTER COLUMN {table}.{} TYPE ... USING (values rewritten)",
                        cmd.name
                    )));
                }
            }
        }
        NodeEnum::AlterSeqStmt(seq) if option_on(&seq.options, "restart") => {
            found.push(Destroys(format!(
                "ALTER SEQUENCE {} RESTART",
                table(&seq.sequence)
            )));
        }
        NodeEnum::TruncateStmt(truncate) => {
            let tables: Vec<String> = truncate.relations.iter().filter_map(range_var).collect();
            found.push(Destroys(format!("TRUNCATE {}", tables.join(", "))));
        }
        NodeEnum::DeleteStmt(delete) => {
            with(delete.with_clause.as_ref(), found);
            found.push(Destroys(format!("DELETE FROM {}", table(&delete.relation))));
        }
        NodeEnum::UpdateStmt(update) => {
            with(update.with_clause.as_ref(), found);
            found.push(Writes(format!("UPDATE {}", table(&update.relation))));
        }
        NodeEnum::InsertStmt(insert) => {
            with(insert.with_clause.as_ref(), found);
            found.push(Writes(format!("INSERT INTO {}", table(&insert.relation))));
        }
        NodeEnum::MergeStmt(merge) => {
            with(merge.with_clause.as_ref(), found);
            let deletes = merge.merge_when_clauses.iter().any(|n| {
                matches!(&n.node, Some(NodeEnum::MergeWhenClause(w))
                    if w.command_type() == CmdType::CmdDelete)
            });
            let target = table(&merge.relation);
            found.push(if deletes {
                Destroys(format!("MERGE INTO {target} (deletes rows)"))
            } else {
                Writes(format!("MERGE INTO {target}"))
            });
        }
        NodeEnum::SelectStmt(select) => {
            with(select.with_clause.as_ref(), found);
            // `SELECT setval(...)`, `SELECT purge_old_rows()`: a migration's SELECT
            // changes nothing unless it calls something that does.
            let calls: Vec<String> = node
                .nodes()
                .into_iter()
                .filter_map(|(n, ..)| match n {
                    pg_query::NodeRef::FuncCall(f) => Some(strings(&f.funcname).join(".")),
                    _ => None,
                })
                .filter(|name| !PURE.contains(&name.trim_start_matches("pg_catalog.")))
                .collect();
            if !calls.is_empty() {
                found.push(DataEffect::Opaque(format!(
                    "SELECT {}(...)",
                    calls.join("(...), ")
                )));
            }
        }
        NodeEnum::CopyStmt(copy) if copy.is_from => {
            found.push(Writes(format!("COPY {} FROM", table(&copy.relation))));
        }
        NodeEnum::DoStmt(_) => found.push(DataEffect::Opaque("DO block".into())),
        NodeEnum::CallStmt(call) => {
            let name = call
                .funccall
                .as_ref()
                .map(|f| strings(&f.funcname).join("."))
                .unwrap_or_default();
            found.push(DataEffect::Opaque(format!("CALL {name}")));
        }
        NodeEnum::ExplainStmt(explain) if option_on(&explain.options, "analyze") => {
            inner(explain.query.as_deref(), found);
        }
        NodeEnum::PrepareStmt(prepare) => inner(prepare.query.as_deref(), found),
        NodeEnum::CreateTableAsStmt(create) => inner(create.query.as_deref(), found),
        NodeEnum::DropdbStmt(db) => found.push(Destroys(format!("DROP DATABASE {}", db.dbname))),
        NodeEnum::DropOwnedStmt(owned) => {
            let roles: Vec<&str> = owned
                .roles
                .iter()
                .filter_map(|n| match &n.node {
                    Some(NodeEnum::RoleSpec(r)) => Some(r.rolename.as_str()),
                    _ => None,
                })
                .collect();
            found.push(Destroys(format!("DROP OWNED BY {}", roles.join(", "))));
        }
        _ => {}
    }
}

/// Whether `sql` holds a statement at all: an Alembic revision offline mode could not
/// render comes as comments only, and nothing can be read from it.
pub fn has_statements(sql: &str) -> bool {
    parse(sql).is_ok_and(|p| p.nodes().next().is_some())
}

/// Whether the SQL drops or truncates with `CASCADE`, taking objects it never names
/// with it (another schema's view on a dropped one, say). SQL that does not parse
/// counts as cascading: nothing is known of what it reaches.
pub fn cascades(sql: &str) -> bool {
    let Ok(parsed) = parse(sql) else {
        return true;
    };
    let cascade = |b: i32| b == DropBehavior::DropCascade as i32;
    let found = parsed.nodes().any(|node| match node {
        NodeEnum::DropStmt(d) => cascade(d.behavior),
        NodeEnum::TruncateStmt(t) => cascade(t.behavior),
        NodeEnum::AlterTableStmt(a) => a.cmds.iter().any(
            |c| matches!(&c.node, Some(NodeEnum::AlterTableCmd(cmd)) if cascade(cmd.behavior)),
        ),
        _ => false,
    });
    found
}

/// Functions that only compute: a `SELECT` calling nothing else changes nothing.
const PURE: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "bool_and",
    "bool_or",
    "string_agg",
    "array_agg",
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "lower",
    "upper",
    "length",
    "format",
    "concat",
    "substr",
    "substring",
    "trim",
    "replace",
    "now",
    "current_date",
    "current_timestamp",
    "to_char",
    "to_date",
    "to_timestamp",
    "md5",
    "abs",
    "round",
    "jsonb_build_object",
    "json_build_object",
    "exists",
    "version",
];

/// `DROP TABLE a, b` is one effect per object. A schema, type or domain can only be
/// dropped with what depends on it by `CASCADE` (PostgreSQL refuses otherwise, and
/// anything dropped first is reported on its own), so only that form counts. An
/// extension's member tables go with it either way.
fn dropped(drop: &DropStmt, found: &mut Vec<DataEffect>) {
    let cascade = drop.behavior() == DropBehavior::DropCascade;
    let kind = match drop.remove_type() {
        ObjectType::ObjectTable => "TABLE",
        ObjectType::ObjectSequence => "SEQUENCE",
        ObjectType::ObjectExtension => "EXTENSION",
        ObjectType::ObjectSchema if cascade => "SCHEMA",
        ObjectType::ObjectType if cascade => "TYPE",
        ObjectType::ObjectDomain if cascade => "DOMAIN",
        _ => return,
    };
    let suffix = if cascade { " CASCADE" } else { "" };
    for object in &drop.objects {
        let name = object_name(object).unwrap_or_default();
        found.push(DataEffect::Destroys(format!("DROP {kind} {name}{suffix}")));
    }
}

/// A dropped object's name: `[schema.]name` as a `List` (tables, sequences), a bare
/// `String` (schemas, extensions) or a `TypeName` (types, domains).
fn object_name(object: &Node) -> Option<String> {
    match object.node.as_ref()? {
        NodeEnum::List(list) => Some(strings(&list.items).join(".")),
        NodeEnum::String(s) => Some(s.sval.clone()),
        NodeEnum::TypeName(t) => Some(strings(&t.names).join(".")),
        _ => None,
    }
}

/// The data-modifying entries of a `WITH` clause (`WITH gone AS (DELETE ...) SELECT`).
fn with(clause: Option<&WithClause>, found: &mut Vec<DataEffect>) {
    for cte in clause.into_iter().flat_map(|w| &w.ctes) {
        if let Some(NodeEnum::CommonTableExpr(cte)) = &cte.node {
            inner(cte.ctequery.as_deref(), found);
        }
    }
}

fn inner(query: Option<&Node>, found: &mut Vec<DataEffect>) {
    if let Some(node) = query.and_then(|q| q.node.as_ref()) {
        statement(node, found);
    }
}

fn range_var(node: &Node) -> Option<String> {
    match &node.node {
        Some(NodeEnum::RangeVar(rv)) => Some(written(rv)),
        _ => None,
    }
}

fn table(rv: &Option<RangeVar>) -> String {
    rv.as_ref().map(written).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::data_effects;
    use super::DataEffect::{self, Destroys, Writes};

    fn destroys(s: &str) -> DataEffect {
        Destroys(s.into())
    }

    fn writes(s: &str) -> DataEffect {
        Writes(s.into())
    }

    #[test]
    fn structure_only_migration_has_no_data_effects() {
        let sql = "CREATE TABLE shop.orders (id bigint PRIMARY KEY, note text);\n\
                   CREATE INDEX orders_note ON shop.orders (note);\n\
                   ALTER TABLE shop.orders ADD COLUMN placed_at timestamptz;\n\
                   ALTER TABLE shop.orders ALTER COLUMN note TYPE varchar(200);\n\
                   CREATE VIEW open_orders AS SELECT * FROM shop.orders;\n\
                   SELECT 1;";
        assert_eq!(data_effects(sql), Vec::<DataEffect>::new());
    }

    #[test]
    fn empty_and_comment_only_sql_has_no_data_effects() {
        assert!(data_effects("").is_empty());
        assert!(data_effects("  -- nothing here\n/* nor here */\n").is_empty());
    }

    #[test]
    fn drop_table_destroys_each_table_as_written() {
        assert_eq!(
            data_effects("DROP TABLE shop.orders, items;"),
            vec![
                destroys("DROP TABLE shop.orders"),
                destroys("DROP TABLE items")
            ]
        );
    }

    #[test]
    fn drop_table_if_exists_still_destroys() {
        assert_eq!(
            data_effects("DROP TABLE IF EXISTS orders CASCADE;"),
            vec![destroys("DROP TABLE orders CASCADE")]
        );
    }

    #[test]
    fn drop_sequence_destroys_its_position() {
        assert_eq!(
            data_effects("DROP SEQUENCE shop.order_ids;"),
            vec![destroys("DROP SEQUENCE shop.order_ids")]
        );
    }

    #[test]
    fn drop_schema_cascade_destroys_what_it_holds() {
        assert_eq!(
            data_effects("DROP SCHEMA shop CASCADE;"),
            vec![destroys("DROP SCHEMA shop CASCADE")]
        );
    }

    #[test]
    fn drop_schema_without_cascade_can_only_drop_an_empty_schema() {
        assert!(data_effects("DROP SCHEMA shop;").is_empty());
    }

    #[test]
    fn drop_type_or_domain_cascade_destroys_the_columns_using_it() {
        assert_eq!(
            data_effects("DROP TYPE shop.mood CASCADE; DROP DOMAIN email CASCADE; DROP TYPE calm;"),
            vec![
                destroys("DROP TYPE shop.mood CASCADE"),
                destroys("DROP DOMAIN email CASCADE"),
            ]
        );
    }

    #[test]
    fn drop_extension_destroys_its_member_tables() {
        assert_eq!(
            data_effects("DROP EXTENSION IF EXISTS pg_cron;"),
            vec![destroys("DROP EXTENSION pg_cron")]
        );
    }

    #[test]
    fn dropping_indexes_views_and_materialized_views_loses_no_data() {
        let sql = "DROP INDEX orders_note; DROP INDEX CONCURRENTLY shop.orders_placed;\n\
                   DROP VIEW open_orders; DROP MATERIALIZED VIEW order_totals;\n\
                   DROP FUNCTION total(bigint);";
        assert!(data_effects(sql).is_empty());
    }

    #[test]
    fn each_dropped_column_is_destroyed() {
        let sql = "ALTER TABLE shop.orders DROP COLUMN note, ADD COLUMN memo text, \
                   DROP COLUMN IF EXISTS legacy_id;";
        assert_eq!(
            data_effects(sql),
            vec![
                destroys("DROP COLUMN shop.orders.note"),
                destroys("DROP COLUMN shop.orders.legacy_id"),
            ]
        );
    }

    #[test]
    fn dropping_a_foreign_tables_column_loses_no_local_data() {
        assert!(data_effects("ALTER FOREIGN TABLE remote_orders DROP COLUMN note;").is_empty());
    }

    #[test]
    fn truncate_names_every_table_in_one_effect() {
        assert_eq!(
            data_effects("TRUNCATE orders, shop.items RESTART IDENTITY;"),
            vec![destroys("TRUNCATE orders, shop.items")]
        );
    }

    #[test]
    fn delete_destroys_rows() {
        assert_eq!(
            data_effects("DELETE FROM orders WHERE placed_at < now() - interval '1 year';"),
            vec![destroys("DELETE FROM orders")]
        );
    }

    #[test]
    fn update_and_insert_write_rows() {
        let sql = "UPDATE shop.orders SET note = '' WHERE note IS NULL;\n\
                   INSERT INTO orders (id) VALUES (1);\n\
                   INSERT INTO orders (id) VALUES (2) ON CONFLICT (id) DO UPDATE SET note = 'x';";
        assert_eq!(
            data_effects(sql),
            vec![
                writes("UPDATE shop.orders"),
                writes("INSERT INTO orders"),
                writes("INSERT INTO orders"),
            ]
        );
    }

    #[test]
    fn merge_writes_unless_it_deletes() {
        let upsert = "MERGE INTO orders o USING staged s ON o.id = s.id \
                      WHEN MATCHED THEN UPDATE SET note = s.note \
                      WHEN NOT MATCHED THEN INSERT (id, note) VALUES (s.id, s.note);";
        assert_eq!(data_effects(upsert), vec![writes("MERGE INTO orders")]);
        let prune = "MERGE INTO orders o USING gone g ON o.id = g.id WHEN MATCHED THEN DELETE;";
        assert_eq!(
            data_effects(prune),
            vec![destroys("MERGE INTO orders (deletes rows)")]
        );
    }

    #[test]
    fn copy_from_writes_but_copy_to_does_not() {
        assert_eq!(
            data_effects("COPY shop.orders (id, note) FROM STDIN;"),
            vec![writes("COPY shop.orders FROM")]
        );
        assert!(data_effects("COPY orders TO STDOUT; COPY (SELECT 1) TO STDOUT;").is_empty());
    }

    #[test]
    fn do_block_is_opaque() {
        let sql = "DO $$ BEGIN DELETE FROM orders; END $$;";
        assert_eq!(
            data_effects(sql),
            vec![DataEffect::Opaque("DO block".into())]
        );
    }

    #[test]
    fn call_is_opaque() {
        assert_eq!(
            data_effects("CALL shop.archive_orders(30);"),
            vec![DataEffect::Opaque("CALL shop.archive_orders".into())]
        );
    }

    #[test]
    fn cascades_are_drops_and_truncates_that_reach_further() {
        use super::cascades;
        assert!(cascades("DROP VIEW a_v CASCADE;"));
        assert!(cascades("TRUNCATE a CASCADE;"));
        assert!(cascades("ALTER TABLE a DROP CONSTRAINT a_pkey CASCADE;"));
        assert!(cascades("this is not sql"));
        assert!(!cascades(
            "CREATE TABLE b (a_id int REFERENCES a (id) ON DELETE CASCADE);\nDROP VIEW a_v;"
        ));
    }

    #[test]
    fn calls_sequence_resets_and_rewriting_type_changes_are_not_proven() {
        let sql = "SELECT setval('kept_id_seq', 1, false);\n\
                   SELECT count(*) FROM kept;\n\
                   ALTER SEQUENCE kept_id_seq RESTART;\n\
                   ALTER TABLE kept ALTER COLUMN status TYPE varchar(3) USING left(status, 3);\n\
                   ALTER TABLE kept ALTER COLUMN id TYPE bigint;";
        assert_eq!(
            data_effects(sql),
            vec![
                DataEffect::Opaque("SELECT setval(...)".into()),
                destroys("ALTER SEQUENCE kept_id_seq RESTART"),
                DataEffect::Opaque(
                    "ALTER COLUMN kept.status TYPE ... USING (values rewritten)".into()
                ),
            ],
            "a SELECT of pure functions and a plain type change are left out"
        );
    }

    #[test]
    fn function_bodies_are_not_run_by_the_migration() {
        let sql =
            "CREATE FUNCTION purge() RETURNS void LANGUAGE sql AS $$ DELETE FROM orders $$;\n\
                   CREATE OR REPLACE FUNCTION wipe() RETURNS void LANGUAGE plpgsql AS \
                   $$ BEGIN TRUNCATE orders; END $$;";
        assert!(data_effects(sql).is_empty());
    }

    #[test]
    fn data_modifying_cte_in_a_select_counts() {
        let sql = "WITH gone AS (DELETE FROM orders WHERE id < 10 RETURNING id), \
                   touched AS (UPDATE items SET qty = 0 RETURNING id), \
                   plain AS (SELECT 1) \
                   SELECT count(*) FROM gone;";
        assert_eq!(
            data_effects(sql),
            vec![destroys("DELETE FROM orders"), writes("UPDATE items")]
        );
    }

    #[test]
    fn data_modifying_cte_in_a_write_counts_alongside_it() {
        let sql = "WITH moved AS (DELETE FROM orders RETURNING *) \
                   INSERT INTO archived_orders SELECT * FROM moved;";
        assert_eq!(
            data_effects(sql),
            vec![
                destroys("DELETE FROM orders"),
                writes("INSERT INTO archived_orders")
            ]
        );
        let sql = "WITH fresh AS (INSERT INTO log (msg) VALUES ('x') RETURNING id) \
                   UPDATE orders SET log_id = (SELECT id FROM fresh);";
        assert_eq!(
            data_effects(sql),
            vec![writes("INSERT INTO log"), writes("UPDATE orders")]
        );
    }

    #[test]
    fn explain_analyze_runs_its_statement_but_explain_does_not() {
        assert_eq!(
            data_effects("EXPLAIN ANALYZE DELETE FROM orders;"),
            vec![destroys("DELETE FROM orders")]
        );
        assert!(data_effects("EXPLAIN DELETE FROM orders;").is_empty());
    }

    #[test]
    fn prepared_statement_counts_as_run() {
        let sql = "PREPARE purge AS DELETE FROM orders; EXECUTE purge;";
        assert_eq!(data_effects(sql), vec![destroys("DELETE FROM orders")]);
    }

    #[test]
    fn lowercase_sql_reads_the_same() {
        let sql = "drop table shop.orders; alter table items drop column note; \
                   truncate carts; delete from users; update items set qty = 1; \
                   insert into items (qty) values (1); do $$ begin end $$;";
        assert_eq!(
            data_effects(sql),
            vec![
                destroys("DROP TABLE shop.orders"),
                destroys("DROP COLUMN items.note"),
                destroys("TRUNCATE carts"),
                destroys("DELETE FROM users"),
                writes("UPDATE items"),
                writes("INSERT INTO items"),
                DataEffect::Opaque("DO block".into()),
            ]
        );
    }

    #[test]
    fn effects_follow_statement_order_among_ddl_and_comments() {
        let sql = "-- move notes out\n\
                   CREATE TABLE notes (order_id bigint, body text);\n\n\
                   /* copy them */\n\
                   INSERT INTO notes SELECT id, note FROM orders;\n\
                   -- then drop the column\n\
                   ALTER TABLE orders DROP COLUMN note;\n\
                   CREATE INDEX notes_order ON notes (order_id);\n";
        assert_eq!(
            data_effects(sql),
            vec![
                writes("INSERT INTO notes"),
                destroys("DROP COLUMN orders.note")
            ]
        );
    }

    #[test]
    fn drop_database_and_drop_owned_destroy() {
        assert_eq!(
            data_effects("DROP DATABASE IF EXISTS scratch;"),
            vec![destroys("DROP DATABASE scratch")]
        );
        assert_eq!(
            data_effects("DROP OWNED BY app_user;"),
            vec![destroys("DROP OWNED BY app_user")]
        );
    }

    #[test]
    fn unparseable_sql_is_one_opaque_effect() {
        assert_eq!(
            data_effects("DROP TABLE orders; DELET FROM items;"),
            vec![DataEffect::Opaque("SQL that does not parse".into())]
        );
    }
}
