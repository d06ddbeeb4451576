//! `require-concurrent-index-creation`
//!
//! `CREATE INDEX` without `CONCURRENTLY` holds a SHARE lock on the table for the whole
//! build: every INSERT, UPDATE and DELETE waits, for minutes on a large table. Build it
//! with `CREATE INDEX CONCURRENTLY` in a migration of its own that runs outside a
//! transaction (`-- no-transaction`; in Alembic, inside `autocommit_block()`). On a table
//! created in the same migration, or one the database shows empty, there is nothing to
//! wait for and no finding. A partitioned table (known from the database, an earlier
//! migration or this one) is different: PostgreSQL refuses `CONCURRENTLY` on it ("cannot
//! create index on partitioned table concurrently", reported too), and a plain
//! `CREATE INDEX` on it builds an index on every partition under SHARE locks held until
//! the last is built. There,
//! create the index `ON ONLY` the parent (instant, and invalid for now), build the same
//! index `CONCURRENTLY` on each partition, and `ALTER INDEX ... ATTACH PARTITION` each one:
//! the parent's index becomes valid when every partition has one attached. `CREATE INDEX
//! ... ON ONLY` a partitioned table is that first step and not reported.

use pg_query::protobuf::{IndexStmt, RangeVar};
use pg_query::NodeEnum;

use super::{keyed, sql};
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct RequireConcurrentIndexCreation;

static META: RuleMeta = RuleMeta {
    id: "require-concurrent-index-creation",
    category: Category::Lock,
    default_level: Level::Error,
    summary: "CREATE INDEX without CONCURRENTLY blocks writes to the table while it builds",
    explanation: "CREATE INDEX without CONCURRENTLY holds a SHARE lock on the table for the whole build: every INSERT, UPDATE and DELETE waits, for minutes on a large table. Build it with CREATE INDEX CONCURRENTLY in a migration of its own that runs outside a transaction (-- no-transaction; in Alembic, inside autocommit_block()). A partitioned table is different: PostgreSQL refuses CONCURRENTLY on it (\"cannot create index on partitioned table concurrently\", reported too), and a plain CREATE INDEX on it builds an index on every partition under SHARE locks held until the last is built. There, create the index ON ONLY the parent (instant, and invalid for now), build the same index CONCURRENTLY on each partition, and ALTER INDEX ... ATTACH PARTITION each one: the parent's index becomes valid when every partition has one attached.",
};

impl Rule for RequireConcurrentIndexCreation {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let NodeEnum::IndexStmt(index) = statement.node else {
            return Vec::new();
        };
        let Some(table) = &index.relation else {
            return Vec::new();
        };
        let key = ctx.key(table);
        let (known_key, known) = ctx.known_before(table, statement.index);
        let partitioned = known.partitioned.contains(&known_key);
        let named = match index.idxname.as_str() {
            "" => String::new(),
            name => format!("{name} "),
        };
        if partitioned && index.concurrent {
            // Refused whether or not the table holds data.
            return vec![Hit::new(
                format!(
                    "CREATE INDEX CONCURRENTLY {named}on {key} fails: {key} is partitioned, and PostgreSQL refuses CONCURRENTLY on a partitioned table (\"cannot create index on partitioned table concurrently\")"
                ),
                partitioned_fix(ctx, index, table),
            )];
        }
        // `ON ONLY` a partitioned table creates the parent's index alone, at once.
        if index.concurrent
            || (partitioned && !table.inh)
            || !ctx.holds_data(table, statement.index)
        {
            return Vec::new();
        }
        if partitioned {
            return vec![Hit::new(
                format!(
                    "CREATE INDEX {named}on {key} builds an index on every partition of {key} under SHARE locks held to the end: writes to the table wait until every partition's index is built"
                ),
                partitioned_fix(ctx, index, table),
            )];
        }
        vec![Hit::new(
            format!(
                "CREATE INDEX {named}on {key} blocks writes to the table until the index is built"
            ),
            "use CREATE INDEX CONCURRENTLY, alone in a -- no-transaction migration",
        )]
    }
}

/// The way to index a partitioned table without blocking writes, with the user's
/// index definition: `ON ONLY` the parent, `CONCURRENTLY` on each partition, attach each.
fn partitioned_fix(ctx: &Context<'_>, index: &IndexStmt, table: &RangeVar) -> String {
    let key = ctx.key(table);
    let name = match index.idxname.as_str() {
        "" => default_name(index, &table.relname),
        name => name.to_string(),
    };
    // The index's schema is its table's.
    let qualified_name = match key.strip_suffix(table.relname.as_str()) {
        Some(schema) => format!("{schema}{name}"),
        None => name.clone(),
    };
    let statement = |idxname: String, relation: RangeVar, concurrent: bool| {
        let mut index = index.clone();
        index.idxname = idxname;
        index.relation = Some(relation);
        index.concurrent = concurrent;
        index.if_not_exists = false;
        // btree is the default; the deparser prints it only when named.
        if index.access_method == "btree" {
            index.access_method.clear();
        }
        sql(NodeEnum::IndexStmt(Box::new(index)))
    };
    let parent = RangeVar {
        inh: false,
        ..keyed(ctx, table)
    };
    let partition = RangeVar {
        schemaname: String::new(),
        relname: PARTITION.to_string(),
        inh: true,
        ..table.clone()
    };
    let on_only = statement(name, parent, false)
        .unwrap_or_else(|| format!("CREATE INDEX {qualified_name} ON ONLY {key} (...)"));
    let each = statement(String::new(), partition, true)
        .map(|s| s.replace(&format!("\"{PARTITION}\""), PARTITION))
        .unwrap_or_else(|| format!("CREATE INDEX CONCURRENTLY ON {PARTITION} (...)"));
    format!(
        "{on_only} (instant; the index is invalid until every partition has one); then for each partition, {each}, alone in a -- no-transaction migration; then ALTER INDEX {qualified_name} ATTACH PARTITION <that index> for each (the index on {key} becomes valid when all are attached)"
    )
}

/// What stands for each partition in the fix.
const PARTITION: &str = "<partition>";

/// PostgreSQL's name for an unnamed index: the table, the columns (`expr` for an
/// expression), `idx`.
fn default_name(index: &IndexStmt, table: &str) -> String {
    let mut parts = vec![table.to_string()];
    for param in &index.index_params {
        if let Some(NodeEnum::IndexElem(elem)) = &param.node {
            parts.push(match elem.name.as_str() {
                "" => "expr".to_string(),
                name => name.to_string(),
            });
        }
    }
    parts.push("idx".to_string());
    parts.join("_")
}

#[cfg(test)]
mod tests {
    use super::RequireConcurrentIndexCreation as R;
    use crate::lint::input::LintInput;
    use crate::lint::rules::testing::{ids, input, lint, lint_after, lint_after_with, lint_with};
    use crate::lint::DbFacts;

    #[test]
    fn a_plain_index_on_an_existing_table_is_found() {
        let found = lint(
            &R,
            "create index orders_customer_idx on orders (customer_id);",
        );
        assert_eq!(ids(&found), ["require-concurrent-index-creation"]);
        assert_eq!(found[0].line, 1);
    }

    #[test]
    fn concurrently_or_a_new_table_is_fine() {
        assert!(lint(&R, "create index concurrently i on orders (customer_id);").is_empty());
        assert!(lint(&R, "create table t (id int);\ncreate index i on t (id);").is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow require-concurrent-index-creation\ncreate index i on orders (customer_id);";
        assert!(lint(&R, sql).is_empty());
    }

    const PARTITIONED: &str = "create table measurements (taken_at timestamptz, value float8) partition by range (taken_at);";

    #[test]
    fn an_index_on_a_partitioned_table_gets_the_on_only_fix() {
        let found = lint_after(
            &R,
            &[PARTITIONED],
            "create index measurements_taken_idx on measurements (taken_at) where value > 0;",
        );
        assert_eq!(ids(&found), ["require-concurrent-index-creation"]);
        assert!(found[0]
            .message
            .contains("builds an index on every partition of public.measurements"));
        let fix = &found[0].fix;
        assert!(!fix.starts_with("use CREATE INDEX CONCURRENTLY"), "{fix}");
        assert!(
            fix.starts_with(
                "CREATE INDEX measurements_taken_idx ON ONLY public.measurements (taken_at) WHERE value > 0 (instant"
            ),
            "{fix}"
        );
        assert!(
            fix.contains(
                "for each partition, CREATE INDEX CONCURRENTLY ON <partition> (taken_at) WHERE value > 0, alone in a -- no-transaction migration"
            ),
            "{fix}"
        );
        assert!(fix.contains(
            "ALTER INDEX public.measurements_taken_idx ATTACH PARTITION <that index> for each"
        ));
        // Unnamed: the fix names it as PostgreSQL would.
        let found = lint_after(
            &R,
            &[PARTITIONED],
            "create index on measurements (taken_at, lower(kind));",
        );
        assert!(found[0]
            .fix
            .starts_with("CREATE INDEX measurements_taken_at_expr_idx ON ONLY public.measurements (taken_at, lower(kind))"));
    }

    #[test]
    fn concurrently_on_a_partitioned_table_is_refused() {
        let sql = "create index concurrently measurements_taken_idx on measurements (taken_at);";
        let found = lint_after(&R, &[PARTITIONED], sql);
        assert_eq!(ids(&found), ["require-concurrent-index-creation"]);
        assert!(found[0]
            .message
            .contains("cannot create index on partitioned table concurrently"));
        assert!(found[0].fix.contains("ON ONLY public.measurements"));
        // Even on a table just created, and in a -- no-transaction migration.
        let found = lint_with(
            &R,
            LintInput {
                transactional: false,
                ..input(&format!("{PARTITIONED}\n{sql}"))
            },
            None,
            None,
        );
        assert_eq!(ids(&found), ["require-concurrent-index-creation"]);
        assert_eq!(found[0].line, 2);
    }

    #[test]
    fn on_only_or_a_new_or_empty_partitioned_table_is_fine() {
        assert!(lint_after(
            &R,
            &[PARTITIONED],
            "create index measurements_taken_idx on only measurements (taken_at);"
        )
        .is_empty());
        assert!(lint(
            &R,
            &format!("{PARTITIONED}\ncreate index on measurements (taken_at);")
        )
        .is_empty());
        let facts = DbFacts {
            tables: [("public.measurements".to_string(), false)]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let mut facts = facts;
        facts
            .catalog
            .partitioned
            .insert("public.measurements".into());
        let found = lint_with(
            &R,
            input("create index on measurements (taken_at);"),
            Some(&facts),
            None,
        );
        assert!(found.is_empty(), "no partition holds data");
        // ON ONLY a plain table builds the whole index: still found.
        assert_eq!(
            lint(&R, "create index i on only orders (customer_id);").len(),
            1
        );
    }

    #[test]
    fn the_allow_comment_silences_concurrently_on_a_partitioned_table() {
        let sql = "-- ballast:allow require-concurrent-index-creation\ncreate index concurrently i on measurements (taken_at);";
        assert!(lint_after(&R, &[PARTITIONED], sql).is_empty());
    }

    #[test]
    fn a_table_an_earlier_migration_dropped_and_made_again_holds_none_of_the_old_rows() {
        let db = DbFacts {
            tables: [("public.downloads".to_string(), true)].into(),
            search_path: vec!["public".into()],
            ..Default::default()
        };
        let index = "create index downloads_day on downloads (day);";
        let run = |earlier: &[&str]| lint_after_with(&R, earlier, index, Some(&db)).len();
        assert_eq!(run(&[]), 1, "the old table, with its rows");
        assert_eq!(
            run(&[
                "drop table downloads;",
                "create table downloads (id bigint, day date);"
            ]),
            0,
            "dropped and made again earlier in the run: new and empty"
        );
    }
}
