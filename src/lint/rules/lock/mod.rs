//! The `lock` rules: statements that take a strong lock on, or rewrite, a table that
//! already holds data. Errors by default.

mod add_unique_without_index;
mod adding_field_with_volatile_default;
mod adding_foreign_key_constraint;
mod attach_partition_scan;
mod changing_column_type;
mod constraint_missing_not_valid;
mod deparse;
mod detach_partition_without_concurrently;
mod reindex_without_concurrently;
mod require_concurrent_index_creation;
mod require_concurrent_index_deletion;
mod set_not_null;
mod table_rewrite_command;

use pg_query::protobuf::{
    AlterTableCmd, AlterTableType, ColumnDef, Constraint, ObjectType, RangeVar,
};
use pg_query::NodeEnum;

use crate::lint::nodes::{contype, option_on, qualified as range_var_of};
use crate::lint::{Context, Rule, Statement};
use deparse::{expression_sql, keyed, sql};

pub fn all() -> Vec<&'static dyn Rule> {
    vec![
        &require_concurrent_index_creation::RequireConcurrentIndexCreation,
        &require_concurrent_index_deletion::RequireConcurrentIndexDeletion,
        &reindex_without_concurrently::ReindexWithoutConcurrently,
        &constraint_missing_not_valid::ConstraintMissingNotValid,
        &adding_foreign_key_constraint::AddingForeignKeyConstraint,
        &changing_column_type::ChangingColumnType,
        &set_not_null::SetNotNull,
        &adding_field_with_volatile_default::AddingFieldWithVolatileDefault,
        &add_unique_without_index::AddUniqueWithoutIndex,
        &table_rewrite_command::TableRewriteCommand,
        &detach_partition_without_concurrently::DetachPartitionWithoutConcurrently,
        &attach_partition_scan::AttachPartitionScan,
    ]
}

/// The table and the subcommands of an `ALTER TABLE` (not `ALTER INDEX`, `ALTER VIEW`,
/// `ALTER FOREIGN TABLE`: those hold no rows of their own).
fn alter_table(node: &NodeEnum) -> Option<(&RangeVar, Vec<&AlterTableCmd>)> {
    let NodeEnum::AlterTableStmt(alter) = node else {
        return None;
    };
    if alter.objtype != ObjectType::ObjectTable as i32 {
        return None;
    }
    let table = alter.relation.as_ref()?;
    let cmds = alter
        .cmds
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::AlterTableCmd(cmd)) => Some(cmd.as_ref()),
            _ => None,
        })
        .collect();
    Some((table, cmds))
}

/// An `ALTER TABLE` on a table that holds data: the table, its `schema.table` key and
/// the subcommands. The gate of every rule whose risk is locking or rewriting rows.
fn altered_table_with_data<'a>(
    statement: &Statement<'a>,
    ctx: &Context<'_>,
) -> Option<(&'a RangeVar, String, Vec<&'a AlterTableCmd>)> {
    let (table, cmds) = alter_table(statement.node)?;
    if !ctx.holds_data(table, statement.index) {
        return None;
    }
    Some((table, ctx.key(table), cmds))
}

/// Whether an `ALTER TABLE` subcommand is of this kind.
fn is(cmd: &AlterTableCmd, subtype: AlterTableType) -> bool {
    cmd.subtype == subtype as i32
}

/// The constraint an `ADD CONSTRAINT` adds.
fn added_constraint(cmd: &AlterTableCmd) -> Option<&Constraint> {
    if !is(cmd, AlterTableType::AtAddConstraint) {
        return None;
    }
    match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
        Some(NodeEnum::Constraint(c)) => Some(c),
        _ => None,
    }
}

/// The column an `ADD COLUMN` adds.
fn added_column(cmd: &AlterTableCmd) -> Option<&ColumnDef> {
    if !is(cmd, AlterTableType::AtAddColumn) {
        return None;
    }
    match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
        Some(NodeEnum::ColumnDef(c)) => Some(c),
        _ => None,
    }
}

/// The constraints written on a column (`REFERENCES`, `DEFAULT`, `UNIQUE`...).
fn column_constraints(column: &ColumnDef) -> impl Iterator<Item = &Constraint> {
    crate::lint::nodes::constraints(&column.constraints)
}

/// Whether `CREATE INDEX` created the index `index` earlier in this migration (an
/// index lives in its table's schema).
fn index_created_before(ctx: &Context<'_>, index: &RangeVar, statement: usize) -> bool {
    let key = ctx.key(index);
    ctx.statements
        .iter()
        .take_while(|s| s.index < statement)
        .any(|s| match s.node {
            NodeEnum::IndexStmt(created) if !created.idxname.is_empty() => {
                let schema = created
                    .relation
                    .as_ref()
                    .map(|t| t.schemaname.clone())
                    .unwrap_or_default();
                let created = RangeVar {
                    schemaname: schema,
                    relname: created.idxname.clone(),
                    ..Default::default()
                };
                ctx.key(&created) == key
            }
            _ => false,
        })
}
