//! `attach-partition-scan`
//!
//! `ALTER TABLE parent ATTACH PARTITION child FOR VALUES ...` scans every row of the
//! child to prove it fits the partition bound, holding an ACCESS EXCLUSIVE lock on the
//! child (no reads or writes of it) and a SHARE UPDATE EXCLUSIVE lock on the parent for
//! the whole scan; a DEFAULT partition of the parent is scanned too (under its own ACCESS
//! EXCLUSIVE lock), to prove none of its rows belong in the new partition. PostgreSQL
//! skips the child's scan when a validated CHECK constraint on it already implies the
//! bound. So prove the bound first without blocking: `ALTER TABLE child ADD CONSTRAINT
//! ... CHECK (<the bound>) NOT VALID`, then `VALIDATE CONSTRAINT` in a later migration (a
//! scan that lets reads and writes through), then `ATTACH PARTITION`, which sees the valid
//! check and skips the scan, and finally drop the check. Reported when the child holds
//! data and no validated CHECK (other than a `CHECK (col IS NOT NULL)`) is known on it
//! just before the attach, from the database, an earlier migration or an earlier statement
//! (the lint cannot tell whether such a check implies the bound); a child created earlier
//! in the same migration, or one the database shows empty, is not reported.

use pg_query::protobuf::{AlterTableType, Node, PartitionBoundSpec, RangeVar};
use pg_query::NodeEnum;

use super::{alter_table, expression_sql, is};
use crate::lint::nodes::strings;
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct AttachPartitionScan;

static META: RuleMeta = RuleMeta {
    id: "attach-partition-scan",
    category: Category::Lock,
    default_level: Level::Error,
    summary: "ATTACH PARTITION scans the partition under an ACCESS EXCLUSIVE lock unless a valid CHECK proves its bound",
    explanation: "ALTER TABLE parent ATTACH PARTITION child FOR VALUES ... scans every row of the child to prove it fits the partition bound, holding an ACCESS EXCLUSIVE lock on the child (no reads or writes of it) and a SHARE UPDATE EXCLUSIVE lock on the parent for the whole scan; a DEFAULT partition of the parent is scanned too (under its own ACCESS EXCLUSIVE lock), to prove none of its rows belong in the new partition. PostgreSQL skips the child's scan when a validated CHECK constraint on it already implies the bound. So prove the bound first without blocking: ALTER TABLE child ADD CONSTRAINT ... CHECK (<the bound>) NOT VALID, then VALIDATE CONSTRAINT in a later migration (a scan that lets reads and writes through), then ATTACH PARTITION, which sees the valid check and skips the scan, and finally drop the check.",
};

impl Rule for AttachPartitionScan {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let Some((parent, cmds)) = alter_table(statement.node) else {
            return Vec::new();
        };
        cmds.into_iter()
            .filter(|cmd| is(cmd, AlterTableType::AtAttachPartition))
            .filter_map(|cmd| match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                Some(NodeEnum::PartitionCmd(attach)) => Some((attach.name.as_ref()?, attach)),
                _ => None,
            })
            .filter(|(child, _)| {
                ctx.holds_data(child, statement.index)
                    && !has_valid_check(ctx, child, statement.index)
            })
            .map(|(child, attach)| {
                let parent_key = ctx.key(parent);
                let child_key = ctx.key(child);
                let name = format!("{}_bound", child.relname);
                let condition = attach
                    .bound
                    .as_ref()
                    .and_then(|bound| {
                        let column = partition_column(ctx, parent, statement.index);
                        bound_condition(bound, column.as_deref().unwrap_or("<partition key>"))
                    })
                    .unwrap_or_else(|| {
                        "<the partition's bound as a condition on the partition key>".to_string()
                    });
                Hit::new(
                    format!(
                        "ATTACH PARTITION {child_key} to {parent_key} scans every row of {child_key} to prove it fits the partition bound, holding an ACCESS EXCLUSIVE lock on {child_key} (and SHARE UPDATE EXCLUSIVE on {parent_key}) until the scan ends: no reads or writes of {child_key} meanwhile"
                    ),
                    format!(
                        "ALTER TABLE {child_key} ADD CONSTRAINT {name} CHECK ({condition}) NOT VALID; in a later migration ALTER TABLE {child_key} VALIDATE CONSTRAINT {name} (a scan that lets reads and writes through); then the ATTACH PARTITION, which sees the valid check and skips its scan, and ALTER TABLE {child_key} DROP CONSTRAINT {name}"
                    ),
                )
            })
            .collect()
    }
}

/// Whether a validated CHECK other than `CHECK (col IS NOT NULL)` is known on `child`
/// just before `statement`: it may imply the bound, which the lint cannot tell.
fn has_valid_check(ctx: &Context<'_>, child: &RangeVar, statement: usize) -> bool {
    let (key, known) = ctx.known_before(child, statement);
    known
        .checks
        .get(&key)
        .is_some_and(|checks| checks.iter().any(|c| c.validated && c.not_null.is_none()))
}

/// The parent's partition key, when an earlier statement of this migration creates the
/// parent `PARTITION BY` one plain column (the catalog does not keep partition keys).
fn partition_column(ctx: &Context<'_>, parent: &RangeVar, statement: usize) -> Option<String> {
    let key = ctx.key(parent);
    ctx.statements
        .iter()
        .take_while(|s| s.index < statement)
        .filter_map(|s| match s.node {
            NodeEnum::CreateStmt(create) => {
                let table = create.relation.as_ref()?;
                (ctx.key(table) == key).then_some(create.partspec.as_ref()?)
            }
            _ => None,
        })
        .last()
        .and_then(|spec| match spec.part_params.as_slice() {
            [Node {
                node: Some(NodeEnum::PartitionElem(elem)),
            }] if !elem.name.is_empty() => Some(elem.name.clone()),
            _ => None,
        })
}

/// The bound as a CHECK condition PostgreSQL can prove it from (the partition
/// constraint it derives: the key not null, within the range or among the values), for a
/// one-column RANGE or LIST bound; `None` for HASH, DEFAULT and multi-column ranges.
fn bound_condition(bound: &PartitionBoundSpec, column: &str) -> Option<String> {
    if bound.is_default {
        return None;
    }
    match bound.strategy.as_str() {
        "r" => {
            let ([lower], [upper]) = (bound.lowerdatums.as_slice(), bound.upperdatums.as_slice())
            else {
                return None;
            };
            let mut parts = vec![format!("{column} IS NOT NULL")];
            if !unbounded(lower) {
                parts.push(format!("{column} >= {}", expression_sql(lower)?));
            }
            if !unbounded(upper) {
                parts.push(format!("{column} < {}", expression_sql(upper)?));
            }
            Some(parts.join(" AND "))
        }
        "l" => {
            let is_null = |n: &Node| matches!(&n.node, Some(NodeEnum::AConst(c)) if c.isnull);
            let values = bound
                .listdatums
                .iter()
                .filter(|n| !is_null(n))
                .map(expression_sql)
                .collect::<Option<Vec<String>>>()?;
            let within = format!("{column} IN ({})", values.join(", "));
            Some(
                match (bound.listdatums.iter().any(is_null), values.is_empty()) {
                    (true, true) => format!("{column} IS NULL"),
                    (true, false) => format!("{column} IS NULL OR {within}"),
                    (false, _) => format!("{column} IS NOT NULL AND {within}"),
                },
            )
        }
        _ => None,
    }
}

/// `MINVALUE` or `MAXVALUE`, which the parser leaves as a column reference.
fn unbounded(datum: &Node) -> bool {
    match &datum.node {
        Some(NodeEnum::ColumnRef(r)) => {
            matches!(strings(&r.fields).as_slice(), ["minvalue"] | ["maxvalue"])
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::AttachPartitionScan as R;
    use crate::lint::catalog::{Catalog, Check};
    use crate::lint::rules::testing::{ids, input, lint, lint_after, lint_with};
    use crate::lint::DbFacts;

    const ATTACH: &str = "alter table measurements attach partition measurements_2025 for values from ('2025-01-01') to ('2026-01-01');";

    #[test]
    fn attaching_a_partition_that_holds_data_is_found() {
        let found = lint(&R, &format!("select 1;\n{ATTACH}"));
        assert_eq!(ids(&found), ["attach-partition-scan"]);
        assert_eq!(found[0].line, 2);
        assert!(found[0].message.contains(
            "scans every row of public.measurements_2025 to prove it fits the partition bound, holding an ACCESS EXCLUSIVE lock"
        ));
        assert!(found[0].fix.starts_with(
            "ALTER TABLE public.measurements_2025 ADD CONSTRAINT measurements_2025_bound CHECK (<partition key> IS NOT NULL AND <partition key> >= '2025-01-01' AND <partition key> < '2026-01-01') NOT VALID"
        ), "{}", found[0].fix);
        assert!(found[0]
            .fix
            .contains("VALIDATE CONSTRAINT measurements_2025_bound"));
        // A parent created in this migration names its key.
        let found = lint(
            &R,
            "create table events (kind text, at date) partition by list (kind);\n\
             alter table events attach partition events_misc for values in ('misc', null);\n\
             alter table events attach partition events_open for values in ('open', 'new');\n\
             alter table events attach partition events_rest default;",
        );
        assert_eq!(found.len(), 3);
        assert!(found[0]
            .fix
            .contains("CHECK (kind IS NULL OR kind IN ('misc')) NOT VALID"));
        assert!(found[1]
            .fix
            .contains("CHECK (kind IS NOT NULL AND kind IN ('open', 'new')) NOT VALID"));
        assert!(found[2]
            .fix
            .contains("CHECK (<the partition's bound as a condition on the partition key>)"));
        let found = lint(
            &R,
            "create table m (at date) partition by range (at);\n\
             alter table m attach partition m_old for values from (minvalue) to ('2020-01-01');",
        );
        assert!(found[0]
            .fix
            .contains("CHECK (at IS NOT NULL AND at < '2020-01-01')"));
    }

    #[test]
    fn a_not_null_check_proves_no_bound() {
        let found = lint_after(
            &R,
            &["alter table measurements_2025 add constraint m_nn check (taken_at is not null);"],
            ATTACH,
        );
        assert_eq!(ids(&found), ["attach-partition-scan"]);
    }

    #[test]
    fn a_validated_check_first_is_fine() {
        // Migration 1 adds the check NOT VALID; migration 2 validates it, attaches
        // (no scan), and drops the check.
        let found = lint_after(
            &R,
            &["alter table measurements_2025 add constraint measurements_2025_bound check (taken_at is not null and taken_at >= '2025-01-01' and taken_at < '2026-01-01') not valid;"],
            &format!(
                "alter table measurements_2025 validate constraint measurements_2025_bound;\n{ATTACH}\n\
                 alter table measurements_2025 drop constraint measurements_2025_bound;"
            ),
        );
        assert!(found.is_empty(), "{found:?}");
        // A check the database knows validated.
        let facts = DbFacts {
            tables: [
                ("public.measurements".to_string(), true),
                ("public.measurements_2025".to_string(), true),
            ]
            .into_iter()
            .collect(),
            catalog: Catalog {
                checks: [(
                    "public.measurements_2025".to_string(),
                    vec![Check {
                        name: "measurements_2025_bound".into(),
                        not_null: None,
                        validated: true,
                    }],
                )]
                .into_iter()
                .collect(),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(lint_with(&R, input(ATTACH), Some(&facts), None).is_empty());
    }

    #[test]
    fn a_new_or_empty_partition_is_fine() {
        assert!(lint(
            &R,
            &format!("create table measurements_2025 (taken_at date);\n{ATTACH}")
        )
        .is_empty());
        let facts = DbFacts {
            tables: [
                ("public.measurements".to_string(), true),
                ("public.measurements_2025".to_string(), false),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        assert!(lint_with(&R, input(ATTACH), Some(&facts), None).is_empty());
        // DETACH is another rule's business.
        assert!(lint(
            &R,
            "alter table measurements detach partition measurements_2025;"
        )
        .is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = format!("-- ballast:allow attach-partition-scan\n{ATTACH}");
        assert!(lint(&R, &sql).is_empty());
    }
}
