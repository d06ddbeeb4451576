//! `table-rewrite-command`
//!
//! `VACUUM FULL` and `CLUSTER` write a new copy of the table and all its indexes while
//! holding an ACCESS EXCLUSIVE lock: no reads or writes until the copy is done, and twice
//! the table's disk space meanwhile. Without a table list they do it to every table
//! (`VACUUM FULL`) or every table clustered before (`CLUSTER`). Maintenance does not
//! belong in a deploy: reclaim space or re-order rows with `pg_repack` or `pg_squeeze`,
//! which rewrite online, scheduled outside the deploy. A table created earlier in the same
//! migration, or one the database shows empty, is not reported.

use pg_query::NodeEnum;

use super::option_on;
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct TableRewriteCommand;

static META: RuleMeta = RuleMeta {
    id: "table-rewrite-command",
    category: Category::Lock,
    default_level: Level::Error,
    summary: "VACUUM FULL and CLUSTER rewrite the table under an ACCESS EXCLUSIVE lock",
    explanation: "VACUUM FULL and CLUSTER write a new copy of the table and all its indexes while holding an ACCESS EXCLUSIVE lock: no reads or writes until the copy is done, and twice the table's disk space meanwhile. Without a table list they do it to every table (VACUUM FULL) or every table clustered before (CLUSTER). Maintenance does not belong in a deploy: reclaim space or re-order rows with pg_repack or pg_squeeze, which rewrite online, scheduled outside the deploy.",
};

const REWRITES: &str = "writes a new copy of the table and its indexes under an ACCESS EXCLUSIVE lock: no reads or writes until it finishes";
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

#[cfg(test)]
mod tests {
    use super::TableRewriteCommand as R;
    use crate::lint::rules::testing::{ids, input, lint, lint_with};
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
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow table-rewrite-command\nvacuum full orders;";
        assert!(lint(&R, sql).is_empty());
    }
}
