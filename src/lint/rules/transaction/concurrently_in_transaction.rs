//! `concurrently-in-transaction`
//!
//! `CREATE INDEX CONCURRENTLY`, `DROP INDEX CONCURRENTLY`, `REINDEX ... CONCURRENTLY` and
//! `ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY` cannot run inside a transaction
//! block: PostgreSQL refuses them ("cannot run inside a transaction block"), so a
//! migration that runs in the deploy transaction fails, and the deploy with it. Move the
//! statement to a migration of its own whose first line is `-- no-transaction` (in
//! Alembic, run it inside `op.get_context().autocommit_block()`).

use pg_query::protobuf::{AlterTableType, Node};
use pg_query::NodeEnum;

use crate::lint::nodes::option_on;
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct ConcurrentlyInTransaction;

static META: RuleMeta = RuleMeta {
    id: "concurrently-in-transaction",
    category: Category::Transaction,
    default_level: Level::Error,
    summary: "a CONCURRENTLY statement in a migration that runs inside a transaction fails",
    explanation: "CREATE INDEX CONCURRENTLY, DROP INDEX CONCURRENTLY, REINDEX ... CONCURRENTLY and ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY cannot run inside a transaction block: PostgreSQL refuses them, so a migration that runs in the deploy transaction fails, and the deploy with it. Move the statement to a migration of its own whose first line is -- no-transaction (in Alembic, run it inside op.get_context().autocommit_block()).",
};

impl Rule for ConcurrentlyInTransaction {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        if !ctx.input.transactional {
            return Vec::new();
        }
        let what = match statement.node {
            NodeEnum::IndexStmt(index) if index.concurrent => "CREATE INDEX CONCURRENTLY",
            NodeEnum::DropStmt(drop) if drop.concurrent => "DROP INDEX CONCURRENTLY",
            NodeEnum::ReindexStmt(reindex) if option_on(&reindex.params, "concurrently") => {
                "REINDEX ... CONCURRENTLY"
            }
            NodeEnum::AlterTableStmt(alter) if alter.cmds.iter().any(detaches_concurrently) => {
                "DETACH PARTITION ... CONCURRENTLY"
            }
            _ => return Vec::new(),
        };
        vec![Hit::new(
            format!("{what} cannot run inside a transaction block, and this migration runs in one: PostgreSQL refuses it"),
            "move it to a migration of its own whose first line is -- no-transaction (Alembic: op.get_context().autocommit_block())",
        )]
    }
}

/// `DETACH PARTITION ... CONCURRENTLY` (not `FINALIZE`, which may run in a transaction).
fn detaches_concurrently(cmd: &Node) -> bool {
    let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node else {
        return false;
    };
    cmd.subtype() == AlterTableType::AtDetachPartition
        && matches!(
            cmd.def.as_ref().and_then(|d| d.node.as_ref()),
            Some(NodeEnum::PartitionCmd(p)) if p.concurrent
        )
}

#[cfg(test)]
mod tests {
    use super::ConcurrentlyInTransaction as R;
    use crate::lint::rules::testing::{ids, input, lint, lint_with};

    #[test]
    fn concurrently_in_a_transaction_is_found() {
        let found = lint(
            &R,
            "select 1;\n\ncreate index concurrently i on orders (customer_id);",
        );
        assert_eq!(ids(&found), ["concurrently-in-transaction"]);
        assert_eq!(found[0].line, 3);
        for sql in [
            "drop index concurrently i;",
            "reindex table concurrently orders;",
            "reindex (concurrently) index i;",
            "alter table events detach partition events_2020 concurrently;",
        ] {
            assert_eq!(
                ids(&lint(&R, sql)),
                ["concurrently-in-transaction"],
                "{sql}"
            );
        }
    }

    #[test]
    fn no_transaction_or_no_concurrently_is_fine() {
        let mut i =
            input("-- no-transaction\ncreate index concurrently i on orders (customer_id);");
        i.transactional = false;
        assert!(lint_with(&R, i, None, None).is_empty());
        for sql in [
            "create index i on orders (customer_id);",
            "reindex (concurrently false) index i;",
            "alter table events detach partition events_2020;",
        ] {
            assert!(lint(&R, sql).is_empty(), "{sql}");
        }
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow concurrently-in-transaction\ncreate index concurrently i on orders (customer_id);";
        assert!(lint(&R, sql).is_empty());
    }
}
