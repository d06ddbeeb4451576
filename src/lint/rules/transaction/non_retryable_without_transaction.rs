//! `non-retryable-without-transaction`
//!
//! A `-- no-transaction` migration is not recorded until its last statement succeeds, so
//! after a failure or an interruption the retry runs it again from the top. A `CREATE`
//! without `IF NOT EXISTS` (or `OR REPLACE`), or a `DROP` without `IF EXISTS`, then fails
//! on the object the first run already made or removed, and the migration is stuck until
//! someone fixes the database by hand. Write every statement so that running it twice is
//! harmless. For indexes, `CREATE INDEX CONCURRENTLY IF NOT EXISTS name`: a failed
//! concurrent build leaves an INVALID index of that name behind, which `IF NOT EXISTS`
//! would then keep as it is, so drop the INVALID leftover first (`DROP INDEX CONCURRENTLY
//! IF EXISTS name`). An unnamed index is worse: each retry builds another copy under a
//! new name. Objects with no such clause (types, domains) belong in a transactional
//! migration. `DETACH PARTITION ... CONCURRENTLY` has no such form: interrupted after its
//! first transaction, it leaves the partition "pending detach", and running it again
//! fails until `ALTER TABLE parent DETACH PARTITION child FINALIZE` completes the detach
//! (after which the statement has nothing left to do); keep it alone in its migration and
//! finalize by hand when a run was interrupted.

use pg_query::protobuf::{AlterTableCmd, AlterTableType, Node, ObjectType, RangeVar};
use pg_query::NodeEnum;

use crate::lint::context::type_name;
use crate::lint::nodes::written;
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct NonRetryableWithoutTransaction;

static META: RuleMeta = RuleMeta {
    id: "non-retryable-without-transaction",
    category: Category::Transaction,
    default_level: Level::Error,
    summary: "CREATE without IF NOT EXISTS, DROP without IF EXISTS, or DETACH PARTITION CONCURRENTLY in a -- no-transaction migration fails when retried",
    explanation: "A -- no-transaction migration is not recorded until its last statement succeeds, so after a failure or an interruption the retry runs it again from the top. A CREATE without IF NOT EXISTS (or OR REPLACE), or a DROP without IF EXISTS, then fails on the object the first run already made or removed. Write every statement so that running it twice is harmless. For indexes, CREATE INDEX CONCURRENTLY IF NOT EXISTS name: a failed concurrent build leaves an INVALID index of that name behind, which IF NOT EXISTS would then keep, so drop the INVALID leftover first (DROP INDEX CONCURRENTLY IF EXISTS name). Objects with no such clause (types, domains) belong in a transactional migration. DETACH PARTITION ... CONCURRENTLY has no such form: interrupted after its first transaction, it leaves the partition \"pending detach\", and running it again fails until ALTER TABLE parent DETACH PARTITION child FINALIZE completes the detach (after which the statement has nothing left to do); keep it alone in its migration and finalize by hand when a run was interrupted.",
};

impl Rule for NonRetryableWithoutTransaction {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        if ctx.input.transactional {
            return Vec::new();
        }
        let created = |subject: String, safe: &str| {
            Hit::new(
                format!("{subject} cannot be retried: if the run stops after it, running the migration again fails because it already exists"),
                format!("write {safe}"),
            )
        };
        let dropped = |subject: String, safe: &str| {
            Hit::new(
                format!("{subject} cannot be retried: if the run stops after it, running the migration again fails because it is already gone"),
                format!("write {safe}"),
            )
        };
        let no_clause = |what: &str, name: String| {
            Hit::new(
                format!("{what} {name} cannot be retried: if the run stops after it, running the migration again fails because it already exists"),
                format!("{what} has no IF NOT EXISTS: put it in a transactional migration"),
            )
        };
        let key = |rv: Option<&RangeVar>| rv.map(|t| ctx.key(t)).unwrap_or_default();
        match statement.node {
            NodeEnum::IndexStmt(index) if !index.if_not_exists => {
                let what = if index.concurrent {
                    "CREATE INDEX CONCURRENTLY"
                } else {
                    "CREATE INDEX"
                };
                let name = &index.idxname;
                if name.is_empty() {
                    vec![Hit::new(
                        format!("{what} on {} has no name: if the run stops after it, running the migration again builds a second copy of the index under another name", key(index.relation.as_ref())),
                        "name it and write CREATE INDEX CONCURRENTLY IF NOT EXISTS name; after a failed build, drop the INVALID leftover (DROP INDEX CONCURRENTLY IF EXISTS name) before retrying",
                    )]
                } else if index.concurrent {
                    // ballast makes this rerun safe: before the statement runs, it
                    // drops the INVALID index of that name a failed build left
                    // (db::index_leftover). Only a run stopped after a finished
                    // build and before its record still trips it.
                    vec![Hit::new(
                        format!("{what} {name}: ballast drops the INVALID {name} a failed build leaves before running it again, but if a run stops after the build finished and before the migration is recorded, running it again fails because {name} already exists"),
                        format!("nothing to do for a migration with this one statement; to be safe from that last case too, write DROP INDEX CONCURRENTLY IF EXISTS {name} on an INVALID leftover by hand, or CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} (which keeps a leftover: check it is valid)"),
                    ).advisory()]
                } else {
                    let mut hit = created(format!("{what} {name}"), "");
                    hit.fix = format!("write CREATE INDEX CONCURRENTLY IF NOT EXISTS {name}; a failed build leaves an INVALID {name} that IF NOT EXISTS would keep, so drop it first (DROP INDEX CONCURRENTLY IF EXISTS {name})");
                    vec![hit]
                }
            }
            NodeEnum::CreateStmt(create) if !create.if_not_exists => vec![created(
                format!("CREATE TABLE {}", key(create.relation.as_ref())),
                "CREATE TABLE IF NOT EXISTS",
            )],
            NodeEnum::CreateTableAsStmt(create) if !create.if_not_exists => {
                let name = key(create.into.as_ref().and_then(|i| i.rel.as_ref()));
                vec![if create.objtype() == ObjectType::ObjectMatview {
                    created(
                        format!("CREATE MATERIALIZED VIEW {name}"),
                        "CREATE MATERIALIZED VIEW IF NOT EXISTS",
                    )
                } else {
                    created(
                        format!("CREATE TABLE {name} AS"),
                        "CREATE TABLE IF NOT EXISTS ... AS",
                    )
                }]
            }
            NodeEnum::CreateSeqStmt(create) if !create.if_not_exists => vec![created(
                format!("CREATE SEQUENCE {}", key(create.sequence.as_ref())),
                "CREATE SEQUENCE IF NOT EXISTS",
            )],
            NodeEnum::CreateSchemaStmt(create) if !create.if_not_exists => vec![created(
                format!("CREATE SCHEMA {}", create.schemaname),
                "CREATE SCHEMA IF NOT EXISTS",
            )],
            NodeEnum::CreateExtensionStmt(create) if !create.if_not_exists => vec![created(
                format!("CREATE EXTENSION {}", create.extname),
                "CREATE EXTENSION IF NOT EXISTS",
            )],
            NodeEnum::ViewStmt(view) if !view.replace => vec![created(
                format!("CREATE VIEW {}", key(view.view.as_ref())),
                "CREATE OR REPLACE VIEW",
            )],
            NodeEnum::CreateFunctionStmt(function) if !function.replace => {
                let what = if function.is_procedure {
                    "PROCEDURE"
                } else {
                    "FUNCTION"
                };
                vec![created(
                    format!("CREATE {what} {}", strings(&function.funcname)),
                    &format!("CREATE OR REPLACE {what}"),
                )]
            }
            NodeEnum::CreateTrigStmt(trigger) if !trigger.replace => vec![created(
                format!("CREATE TRIGGER {}", trigger.trigname),
                "CREATE OR REPLACE TRIGGER",
            )],
            NodeEnum::CreateEnumStmt(create) => {
                vec![no_clause("CREATE TYPE", strings(&create.type_name))]
            }
            NodeEnum::CompositeTypeStmt(create) => {
                vec![no_clause("CREATE TYPE", key(create.typevar.as_ref()))]
            }
            NodeEnum::CreateDomainStmt(create) => {
                vec![no_clause("CREATE DOMAIN", strings(&create.domainname))]
            }
            NodeEnum::DropStmt(drop) if !drop.missing_ok => {
                let kind = match drop.remove_type() {
                    ObjectType::ObjectMatview => "MATERIALIZED VIEW".to_string(),
                    other => other
                        .as_str_name()
                        .trim_start_matches("OBJECT_")
                        .replace('_', " "),
                };
                let what = if drop.concurrent {
                    format!("DROP {kind} CONCURRENTLY")
                } else {
                    format!("DROP {kind}")
                };
                let names: Vec<String> = drop.objects.iter().map(object_name).collect();
                let hit = dropped(
                    format!("{what} {}", names.join(", ")),
                    &format!("{what} IF EXISTS"),
                );
                // A failed DROP INDEX CONCURRENTLY leaves the index there (INVALID),
                // and the rerun drops it: only a run stopped after the drop and
                // before the record trips it.
                vec![match drop.concurrent {
                    true => hit.advisory(),
                    false => hit,
                }]
            }
            NodeEnum::DropdbStmt(drop) if !drop.missing_ok => vec![dropped(
                format!("DROP DATABASE {}", drop.dbname),
                "DROP DATABASE IF EXISTS",
            )],
            NodeEnum::AlterTableStmt(alter) => {
                let table = key(alter.relation.as_ref());
                alter
                    .cmds
                    .iter()
                    .filter_map(|c| match &c.node {
                        Some(NodeEnum::AlterTableCmd(cmd)) if !cmd.missing_ok => Some(cmd),
                        _ => None,
                    })
                    .filter_map(|cmd| match cmd.subtype() {
                        AlterTableType::AtAddColumn => {
                            let column = match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                                Some(NodeEnum::ColumnDef(c)) => c.colname.as_str(),
                                _ => "",
                            };
                            Some(created(
                                format!("ADD COLUMN {column} to {table}"),
                                "ADD COLUMN IF NOT EXISTS",
                            ))
                        }
                        AlterTableType::AtDropColumn => Some(dropped(
                            format!("DROP COLUMN {} of {table}", cmd.name),
                            "DROP COLUMN IF EXISTS",
                        )),
                        AlterTableType::AtDropConstraint => Some(dropped(
                            format!("DROP CONSTRAINT {} of {table}", cmd.name),
                            "DROP CONSTRAINT IF EXISTS",
                        )),
                        AlterTableType::AtDetachPartition => {
                            detached_concurrently(alter.relation.as_ref()?, cmd, &table)
                        }
                        _ => None,
                    })
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

/// `DETACH PARTITION ... CONCURRENTLY` of `parent` (known as `table`): interrupted
/// between its two transactions, it leaves the partition pending detach, and only
/// `FINALIZE` moves it on.
fn detached_concurrently(parent: &RangeVar, cmd: &AlterTableCmd, table: &str) -> Option<Hit> {
    let Some(NodeEnum::PartitionCmd(p)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) else {
        return None;
    };
    if !p.concurrent {
        return None;
    }
    let (parent, child) = (written(parent), written(p.name.as_ref()?));
    Some(Hit::new(
        format!("DETACH PARTITION {child} CONCURRENTLY of {table} cannot be retried: if the run is interrupted after its first transaction, {child} is left pending detach, and running the migration again fails until the detach is finalized"),
        format!("keep it alone in its migration; if a run was interrupted, complete the detach by hand with ALTER TABLE {parent} DETACH PARTITION {child} FINALIZE (after that the statement has nothing left to do: running it again fails because {child} is no longer a partition)"),
    ).advisory())
}

/// The name in a DROP's object list: `schema.table`, `schema`, a type, a function.
fn object_name(object: &Node) -> String {
    match &object.node {
        Some(NodeEnum::List(list)) => strings(&list.items),
        Some(NodeEnum::String(s)) => s.sval.clone(),
        Some(NodeEnum::TypeName(t)) => type_name(t),
        Some(NodeEnum::ObjectWithArgs(f)) => strings(&f.objname),
        _ => "?".into(),
    }
}

/// A qualified name given as a list of strings, dotted.
fn strings(items: &[Node]) -> String {
    crate::lint::nodes::strings(items).join(".")
}

#[cfg(test)]
mod tests {
    use super::NonRetryableWithoutTransaction as R;
    use crate::lint::rules::testing::{ids, lint, lint_no_transaction};
    use crate::lint::Finding;

    fn no_transaction(sql: &str) -> Vec<Finding> {
        lint_no_transaction(&R, sql)
    }

    #[test]
    fn a_create_index_without_if_not_exists_is_found() {
        let found =
            no_transaction("-- no-transaction\ncreate index concurrently orders_customer_idx on orders (customer_id);");
        assert_eq!(ids(&found), ["non-retryable-without-transaction"]);
        assert_eq!(found[0].line, 2);
        // How most projects write it, and ballast drops a failed build's INVALID
        // leftover before a rerun: a warning, not a refusal.
        assert_eq!(found[0].level, crate::lint::Level::Warning);
        assert!(
            found[0]
                .message
                .contains("ballast drops the INVALID orders_customer_idx"),
            "{}",
            found[0].message
        );
        // A blocking build is not the concurrent one: its advice stays an error.
        let blocking = no_transaction("create index orders_customer_idx on orders (customer_id);");
        assert_eq!(blocking[0].level, crate::lint::Level::Error);
        assert!(
            blocking[0]
                .fix
                .contains("CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer_idx")
                && blocking[0].fix.contains("INVALID"),
            "{}",
            blocking[0].fix
        );
        let unnamed = no_transaction("create index concurrently on orders (customer_id);");
        assert!(
            unnamed[0].message.contains("second copy"),
            "{}",
            unnamed[0].message
        );
        assert_eq!(unnamed[0].level, crate::lint::Level::Error);
    }

    #[test]
    fn other_creates_and_drops_are_found() {
        for sql in [
            "create table t (id int);",
            "create sequence s;",
            "create schema reports;",
            "create extension pg_trgm;",
            "create view v as select 1;",
            "create function f() returns int language sql as 'select 1';",
            "create type mood as enum ('ok', 'sad');",
            "drop index concurrently orders_customer_idx;",
            "drop table t;",
            "drop type mood;",
            "drop function f(int);",
            "alter table orders add column note text;",
            "alter table orders drop column note;",
            "alter table orders drop constraint orders_note_check;",
        ] {
            assert_eq!(
                ids(&no_transaction(sql)),
                ["non-retryable-without-transaction"],
                "{sql}"
            );
        }
    }

    #[test]
    fn a_concurrent_detach_is_found_with_its_finalize() {
        let found = no_transaction(
            "-- no-transaction\nalter table measurements detach partition measurements_2024 concurrently;",
        );
        assert_eq!(ids(&found), ["non-retryable-without-transaction"]);
        assert_eq!(found[0].line, 2);
        // No rewrite avoids it (it is the advised form of a detach): a warning.
        assert_eq!(found[0].level, crate::lint::Level::Warning);
        assert!(
            found[0].message.contains("pending detach"),
            "{}",
            found[0].message
        );
        assert!(
            found[0]
                .fix
                .contains("ALTER TABLE measurements DETACH PARTITION measurements_2024 FINALIZE"),
            "{}",
            found[0].fix
        );
        let qualified = no_transaction(
            "alter table metrics.measurements detach partition metrics.measurements_2024 concurrently;",
        );
        assert!(
            qualified[0].fix.contains(
                "ALTER TABLE metrics.measurements DETACH PARTITION metrics.measurements_2024 FINALIZE"
            ),
            "{}",
            qualified[0].fix
        );
    }

    #[test]
    fn retryable_statements_or_a_transaction_are_fine() {
        for sql in [
            "create index concurrently if not exists orders_customer_idx on orders (customer_id);",
            "drop index concurrently if exists orders_customer_idx;",
            "create table if not exists t (id int);",
            "create or replace view v as select 1;",
            "alter table orders add column if not exists note text, drop column if exists legacy;",
            "reindex index concurrently orders_customer_idx;",
        ] {
            assert!(no_transaction(sql).is_empty(), "{sql}");
        }
        assert!(lint(&R, "create table t (id int);\ndrop table u;").is_empty());
        assert!(lint(
            &R,
            "alter table measurements detach partition measurements_2024 concurrently;"
        )
        .is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- no-transaction\n-- ballast:allow non-retryable-without-transaction\ncreate index concurrently i on orders (customer_id);";
        assert!(no_transaction(sql).is_empty());
        let sql = "-- no-transaction\n-- ballast:allow non-retryable-without-transaction\nalter table measurements detach partition measurements_2024 concurrently;";
        assert!(no_transaction(sql).is_empty());
    }
}
