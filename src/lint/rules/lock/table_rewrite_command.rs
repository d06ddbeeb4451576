//! `table-rewrite-command`
//!
//! `VACUUM FULL` and `CLUSTER` write a new copy of the table and all its indexes while
//! holding an ACCESS EXCLUSIVE lock: no reads or writes until the copy is done, and twice
//! the table's disk space meanwhile. Without a table list they do it to every table
//! (`VACUUM FULL`) or every table clustered before (`CLUSTER`). Maintenance does not
//! belong in a deploy: reclaim space or re-order rows with `pg_repack` or `pg_squeeze`,
//! which rewrite online, scheduled outside the deploy. `ALTER TABLE ... SET LOGGED`,
//! `SET UNLOGGED` and `SET ACCESS METHOD` rewrite the table and its indexes the same way
//! (`SET LOGGED` also writes all of it to the WAL), `SET TABLESPACE` copies the table's
//! files under the same lock, and `ALTER TABLE ALL IN TABLESPACE ... SET TABLESPACE` does
//! that to every table it moves: choose persistence, tablespace and access method when the
//! table is created; move a table to another tablespace online with `pg_repack
//! --tablespace`; otherwise build a new table, fill it in batches and swap names, or run
//! the command in a maintenance window outside the deploy. (A partitioned table holds no
//! rows of its own: on it these copy nothing, and are not reported.) A table created
//! earlier in the same migration, or one the database shows empty, is not reported.

use pg_query::protobuf::{AlterTableMoveAllStmt, AlterTableType, ObjectType};
use pg_query::NodeEnum;

use super::{altered_table_with_data, option_on};
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct TableRewriteCommand;

static META: RuleMeta = RuleMeta {
    id: "table-rewrite-command",
    category: Category::Lock,
    default_level: Level::Error,
    summary: "VACUUM FULL, CLUSTER and ALTER TABLE ... SET LOGGED / UNLOGGED / TABLESPACE / ACCESS METHOD rewrite the table under an ACCESS EXCLUSIVE lock",
    explanation: "VACUUM FULL and CLUSTER write a new copy of the table and all its indexes while holding an ACCESS EXCLUSIVE lock: no reads or writes until the copy is done, and twice the table's disk space meanwhile. Without a table list they do it to every table (VACUUM FULL) or every table clustered before (CLUSTER). Maintenance does not belong in a deploy: reclaim space or re-order rows with pg_repack or pg_squeeze, which rewrite online, scheduled outside the deploy. ALTER TABLE ... SET LOGGED, SET UNLOGGED and SET ACCESS METHOD rewrite the table and its indexes the same way (SET LOGGED also writes all of it to the WAL), SET TABLESPACE copies the table's files under the same lock, and ALTER TABLE ALL IN TABLESPACE ... SET TABLESPACE does that to every table it moves: choose persistence, tablespace and access method when the table is created; move a table to another tablespace online with pg_repack --tablespace; otherwise build a new table, fill it in batches and swap names, or run the command in a maintenance window outside the deploy. (A partitioned table holds no rows of its own: on it these copy nothing, and are not reported.)",
};

const REWRITES: &str = "writes a new copy of the table and its indexes under an ACCESS EXCLUSIVE lock: no reads or writes until it finishes";
const REWRITES_WITH_WAL: &str = "writes a new copy of the table and its indexes, all of it to the WAL too, under an ACCESS EXCLUSIVE lock: no reads or writes until it finishes";
const COPIES: &str = "copies every file of the table to the new tablespace under an ACCESS EXCLUSIVE lock: no reads or writes until it finishes";
const FIX: &str = "take it out of the migration; run pg_repack (or pg_squeeze) outside the deploy, which rewrites the table online";

impl Rule for TableRewriteCommand {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        match statement.node {
            NodeEnum::VacuumStmt(vacuum) => {
                if !vacuum.is_vacuumcmd || !option_on(&vacuum.options, "full") {
                    return Vec::new();
                }
                if vacuum.rels.is_empty() {
                    return vec![Hit::new(
                        "VACUUM FULL without a table rewrites every table in the database, each under an ACCESS EXCLUSIVE lock: no reads or writes of a table until its copy is done",
                        FIX,
                    )];
                }
                let tables: Vec<String> = vacuum
                    .rels
                    .iter()
                    .filter_map(|n| match &n.node {
                        Some(NodeEnum::VacuumRelation(r)) => r.relation.as_ref(),
                        _ => None,
                    })
                    .filter(|t| ctx.holds_data(t, statement.index))
                    .map(|t| ctx.key(t))
                    .collect();
                if tables.is_empty() {
                    return Vec::new();
                }
                vec![Hit::new(
                    format!("VACUUM FULL {} {REWRITES}", tables.join(", ")),
                    FIX,
                )]
            }
            NodeEnum::AlterTableStmt(_) => altered(statement, ctx),
            NodeEnum::AlterTableMoveAllStmt(moving) => moved(moving),
            NodeEnum::ClusterStmt(cluster) => match &cluster.relation {
                None => vec![Hit::new(
                    "CLUSTER without a table rewrites every table clustered before, each under an ACCESS EXCLUSIVE lock: no reads or writes of a table until its copy is done",
                    FIX,
                )],
                Some(table) if ctx.holds_data(table, statement.index) => vec![Hit::new(
                    format!("CLUSTER {} {REWRITES}", ctx.key(table)),
                    FIX,
                )],
                Some(_) => Vec::new(),
            },
            _ => Vec::new(),
        }
    }
}

/// `ALTER TABLE ... SET LOGGED / UNLOGGED / TABLESPACE / ACCESS METHOD` on a table that
/// holds data, each with its own way out.
fn altered(statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
    let Some((table, key, cmds)) = altered_table_with_data(statement, ctx) else {
        return Vec::new();
    };
    // A partitioned table has no rows of its own to copy.
    let (known_key, known) = ctx.known_before(table, statement.index);
    if known.partitioned.contains(&known_key) {
        return Vec::new();
    }
    let swap = "build a new table, fill it in batches and swap names";
    cmds.into_iter()
        .filter_map(|cmd| {
            let (what, how, fix) = match cmd.subtype() {
                AlterTableType::AtSetLogged => (
                    "SET LOGGED".to_string(),
                    REWRITES_WITH_WAL,
                    format!("create {key} logged from the start; for this one, run ALTER TABLE {key} SET LOGGED in a maintenance window outside the deploy, or {swap} (a logged copy)"),
                ),
                AlterTableType::AtSetUnLogged => (
                    "SET UNLOGGED".to_string(),
                    REWRITES,
                    format!("create {key} UNLOGGED from the start (an unlogged table is emptied after a crash and not replicated); for this one, run ALTER TABLE {key} SET UNLOGGED in a maintenance window outside the deploy, or {swap} (an unlogged copy)"),
                ),
                AlterTableType::AtSetTableSpace => (
                    format!("SET TABLESPACE {}", cmd.name),
                    COPIES,
                    format!("take it out of the migration and move the table online with pg_repack --table={key} --tablespace={} --moveidx, outside the deploy; or {swap} (CREATE TABLE ... TABLESPACE {})", cmd.name, cmd.name),
                ),
                AlterTableType::AtSetAccessMethod => {
                    let method = match cmd.name.as_str() {
                        "" => "DEFAULT",
                        name => name,
                    };
                    (
                        format!("SET ACCESS METHOD {method}"),
                        REWRITES,
                        format!("{swap} (CREATE TABLE ... USING {method}); or run it in a maintenance window outside the deploy"),
                    )
                }
                _ => return None,
            };
            Some(Hit::new(format!("ALTER TABLE {key} {what} {how}"), fix))
        })
        .collect()
}

/// `ALTER TABLE | INDEX | MATERIALIZED VIEW ALL IN TABLESPACE ... SET TABLESPACE`.
fn moved(moving: &AlterTableMoveAllStmt) -> Vec<Hit> {
    let kind = match ObjectType::try_from(moving.objtype) {
        Ok(ObjectType::ObjectIndex) => "index",
        Ok(ObjectType::ObjectMatview) => "materialized view",
        _ => "table",
    };
    let (from, to) = (&moving.orig_tablespacename, &moving.new_tablespacename);
    let statement = kind.to_uppercase();
    vec![Hit::new(
        format!(
            "ALTER {statement} ALL IN TABLESPACE {from} SET TABLESPACE {to} copies every {kind} in {from} to {to}, each under an ACCESS EXCLUSIVE lock: every query that uses it waits until its copy is done"
        ),
        format!(
            "take it out of the migration; move the tables one at a time online with pg_repack --table=<table> --tablespace={to} --moveidx, outside the deploy"
        ),
    )]
}

#[cfg(test)]
mod tests {
    use super::TableRewriteCommand as R;
    use crate::lint::rules::testing::{ids, input, lint, lint_after, lint_with};
    use crate::lint::DbFacts;

    #[test]
    fn vacuum_full_and_cluster_are_found() {
        let found = lint(
            &R,
            "vacuum full orders;\ncluster orders using orders_created_idx;\nvacuum (full, analyze);\ncluster;",
        );
        assert_eq!(
            ids(&found),
            [
                "table-rewrite-command",
                "table-rewrite-command",
                "table-rewrite-command",
                "table-rewrite-command"
            ]
        );
        assert_eq!(found[1].line, 2);
        assert!(found[0].message.contains("VACUUM FULL public.orders"));
        assert!(found[2].message.contains("every table in the database"));
    }

    #[test]
    fn plain_vacuum_or_a_new_or_empty_table_is_fine() {
        assert!(lint(&R, "vacuum orders;").is_empty());
        assert!(lint(&R, "vacuum (analyze, full false) orders;").is_empty());
        assert!(lint(&R, "analyze orders;").is_empty());
        assert!(lint(
            &R,
            "create table t (id int primary key);\nvacuum full t;\ncluster t using t_pkey;"
        )
        .is_empty());
        let facts = DbFacts {
            tables: [
                ("public.orders".to_string(), false),
                ("public.items".to_string(), true),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let found = lint_with(&R, input("vacuum full orders, items;"), Some(&facts), None);
        assert_eq!(ids(&found), ["table-rewrite-command"]);
        assert!(found[0].message.contains("VACUUM FULL public.items writes"));
    }

    #[test]
    fn alter_table_rewrites_are_found_each_with_its_fix() {
        let found = lint(
            &R,
            "alter table staging_orders set logged;\n\
             alter table staging_orders set unlogged;\n\
             alter table staging_orders set tablespace fast_ssd;\n\
             alter table staging_orders set access method heap2;\n\
             alter table all in tablespace slow set tablespace fast_ssd;",
        );
        assert_eq!(found.len(), 5);
        assert_eq!(found[2].line, 3);
        assert!(found[0]
            .message
            .contains("ALTER TABLE public.staging_orders SET LOGGED writes a new copy"));
        assert!(found[0].message.contains("WAL"));
        assert!(found[0]
            .fix
            .contains("create public.staging_orders logged from the start"));
        assert!(found[1]
            .fix
            .contains("create public.staging_orders UNLOGGED from the start"));
        assert!(found[2].message.contains("SET TABLESPACE fast_ssd copies"));
        assert!(found[2]
            .fix
            .contains("pg_repack --table=public.staging_orders --tablespace=fast_ssd --moveidx"));
        assert!(found[3].fix.contains("CREATE TABLE ... USING heap2"));
        assert!(found[4]
            .message
            .contains("copies every table in slow to fast_ssd"));
        // Several at once: one finding each.
        let found = lint(
            &R,
            "alter table orders set logged, set tablespace fast_ssd;",
        );
        assert_eq!(found.len(), 2);
    }

    #[test]
    fn alter_table_on_a_new_empty_or_partitioned_table_is_fine() {
        assert!(lint(
            &R,
            "create unlogged table t (id int);\nalter table t set logged;"
        )
        .is_empty());
        let facts = DbFacts {
            tables: [("public.staging_orders".to_string(), false)]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let found = lint_with(
            &R,
            input("alter table staging_orders set tablespace fast_ssd;"),
            Some(&facts),
            None,
        );
        assert!(found.is_empty(), "empty per the database");
        // A partitioned table holds no rows of its own to copy.
        let found = lint_after(
            &R,
            &["create table m (at date) partition by range (at);"],
            "alter table m set tablespace fast_ssd;",
        );
        assert!(found.is_empty());
        // Other ALTER TABLE commands are other rules' business.
        assert!(lint(&R, "alter table orders add column note text;").is_empty());
    }

    #[test]
    fn the_allow_comment_silences_an_alter_table() {
        let sql = "-- ballast:allow table-rewrite-command\nalter table orders set unlogged;";
        assert!(lint(&R, sql).is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow table-rewrite-command\nvacuum full orders;";
        assert!(lint(&R, sql).is_empty());
    }
}
