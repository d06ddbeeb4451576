//! Reading pg_query's parse tree: the small questions every rule family asks of it
//! (the names in a list of `String` nodes, a qualified name, a boolean option, the
//! constraints of a list, the columns and constraints a statement declares), answered
//! once.

use pg_query::protobuf::{
    AlterTableType, ColumnDef, ConstrType, Constraint, Node, NullTestType, RangeVar, TypeName,
};
use pg_query::NodeEnum;

/// The names in a list of `String` nodes (`schema.table`, constraint keys, a function's
/// qualified name).
pub fn strings(nodes: &[Node]) -> Vec<&str> {
    nodes
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect()
}

/// A `[catalog.][schema.]name` given as `String` nodes (`DROP TABLE shop.orders`), as a
/// `RangeVar` so [`crate::lint::Context::key`] can name it.
pub fn qualified(nodes: &[Node]) -> Option<RangeVar> {
    let (schema, name) = match strings(nodes).as_slice() {
        [name] => (String::new(), name.to_string()),
        [.., schema, name] => (schema.to_string(), name.to_string()),
        [] => return None,
    };
    Some(RangeVar {
        schemaname: schema,
        relname: name,
        ..Default::default()
    })
}

/// Whether a boolean option (`(CONCURRENTLY)`, `(FULL true)`, `FULL`) is on in a
/// `DefElem` list, as PostgreSQL's `defGetBoolean` reads it.
pub fn option_on(options: &[Node], name: &str) -> bool {
    options.iter().any(|n| {
        let Some(NodeEnum::DefElem(d)) = &n.node else {
            return false;
        };
        if !d.defname.eq_ignore_ascii_case(name) {
            return false;
        }
        match d.arg.as_ref().and_then(|a| a.node.as_ref()) {
            None => true,
            Some(NodeEnum::Boolean(b)) => b.boolval,
            Some(NodeEnum::Integer(i)) => i.ival != 0,
            Some(NodeEnum::String(s)) => !matches!(
                s.sval.to_lowercase().as_str(),
                "false" | "off" | "f" | "no" | "n" | "0"
            ),
            Some(_) => true,
        }
    })
}

/// The `Constraint` nodes of a list (a column's, or a table's).
pub fn constraints(nodes: &[Node]) -> impl Iterator<Item = &Constraint> {
    nodes.iter().filter_map(|n| match &n.node {
        Some(NodeEnum::Constraint(c)) => Some(c.as_ref()),
        _ => None,
    })
}

pub fn contype(constraint: &Constraint) -> ConstrType {
    ConstrType::try_from(constraint.contype).unwrap_or(ConstrType::Undefined)
}

/// How a statement gives a column its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A column of `CREATE TABLE`.
    Create,
    /// `ALTER TABLE ... ADD COLUMN`.
    AddColumn,
    /// `ALTER TABLE ... ALTER COLUMN ... TYPE`.
    AlterType,
}

/// A column a statement declares or retypes.
pub struct Column<'a> {
    pub table: &'a RangeVar,
    pub name: &'a str,
    pub def: &'a ColumnDef,
    pub change: Change,
}

impl<'a> Column<'a> {
    pub fn type_name(&self) -> Option<&'a TypeName> {
        self.def.type_name.as_ref()
    }

    /// Where to point: the type, else the column.
    pub fn at(&self) -> Option<usize> {
        self.type_name()
            .and_then(|t| location(t.location))
            .or_else(|| location(self.def.location))
    }

    /// Its own constraints (`PRIMARY KEY`, `REFERENCES`, `GENERATED ... AS IDENTITY`).
    pub fn constraints(&self) -> impl Iterator<Item = &'a Constraint> {
        constraints(&self.def.constraints)
    }

    /// `column orders.note`, or `ALTER COLUMN orders.note TYPE` for a retype.
    pub fn describe(&self) -> String {
        let table = written(self.table);
        match self.change {
            Change::Create | Change::AddColumn => format!("column {}.{}", table, self.name),
            Change::AlterType => format!("ALTER COLUMN {}.{} TYPE", table, self.name),
        }
    }
}

/// The columns `CREATE TABLE`, `ADD COLUMN` and `ALTER COLUMN ... TYPE` declare.
pub fn columns(node: &NodeEnum) -> Vec<Column<'_>> {
    let mut found = Vec::new();
    match node {
        NodeEnum::CreateStmt(create) => {
            let Some(table) = &create.relation else {
                return found;
            };
            for element in &create.table_elts {
                if let Some(NodeEnum::ColumnDef(def)) = &element.node {
                    found.push(Column {
                        table,
                        name: &def.colname,
                        def,
                        change: Change::Create,
                    });
                }
            }
        }
        NodeEnum::AlterTableStmt(alter) => {
            let Some(table) = &alter.relation else {
                return found;
            };
            for (subtype, cmd) in alter_commands(&alter.cmds) {
                let Some(NodeEnum::ColumnDef(def)) = cmd.def.as_ref().and_then(|d| d.node.as_ref())
                else {
                    continue;
                };
                let (name, change) = match subtype {
                    AlterTableType::AtAddColumn => (def.colname.as_str(), Change::AddColumn),
                    AlterTableType::AtAlterColumnType => (cmd.name.as_str(), Change::AlterType),
                    _ => continue,
                };
                found.push(Column {
                    table,
                    name,
                    def,
                    change,
                });
            }
        }
        _ => {}
    }
    found
}

/// The commands of an `ALTER TABLE`, with their kind.
pub fn alter_commands(
    cmds: &[Node],
) -> impl Iterator<Item = (AlterTableType, &pg_query::protobuf::AlterTableCmd)> {
    cmds.iter().filter_map(|n| match &n.node {
        Some(NodeEnum::AlterTableCmd(cmd)) => Some((cmd.subtype(), cmd.as_ref())),
        _ => None,
    })
}

/// A table's constraints as a statement adds them: `CREATE TABLE`'s table-level ones
/// and `ALTER TABLE ... ADD CONSTRAINT`. (Column-level ones are on [`Column`].)
pub fn table_constraints(node: &NodeEnum) -> Vec<(&RangeVar, &Constraint)> {
    let mut found = Vec::new();
    match node {
        NodeEnum::CreateStmt(create) => {
            if let Some(table) = &create.relation {
                for c in constraints(&create.table_elts).chain(constraints(&create.constraints)) {
                    found.push((table, c));
                }
            }
        }
        NodeEnum::AlterTableStmt(alter) => {
            if let Some(table) = &alter.relation {
                for (subtype, cmd) in alter_commands(&alter.cmds) {
                    if subtype != AlterTableType::AtAddConstraint {
                        continue;
                    }
                    if let Some(NodeEnum::Constraint(c)) =
                        cmd.def.as_ref().and_then(|d| d.node.as_ref())
                    {
                        found.push((table, c.as_ref()));
                    }
                }
            }
        }
        _ => {}
    }
    found
}

/// A parse-tree location as an offset in the migration, when the parser knew it.
pub fn location(location: i32) -> Option<usize> {
    usize::try_from(location).ok()
}

/// The column a `CHECK (col IS NOT NULL)` expression proves NOT NULL.
pub fn not_null_column(expr: Option<&Node>) -> Option<&str> {
    let Some(NodeEnum::NullTest(test)) = expr.and_then(|e| e.node.as_ref()) else {
        return None;
    };
    if test.nulltesttype != NullTestType::IsNotNull as i32 {
        return None;
    }
    match test.arg.as_ref().and_then(|a| a.node.as_ref()) {
        Some(NodeEnum::ColumnRef(r)) => strings(&r.fields).last().copied(),
        _ => None,
    }
}

/// A table as written: `marketplace.orders` or `orders`.
pub fn written(rv: &RangeVar) -> String {
    if rv.schemaname.is_empty() {
        rv.relname.clone()
    } else {
        format!("{}.{}", rv.schemaname, rv.relname)
    }
}

/// What PostgreSQL refuses inside a transaction block, when `node` is such a statement:
/// `CREATE INDEX CONCURRENTLY` and its kin, then `VACUUM`, databases, tablespaces and
/// `ALTER SYSTEM`. For the lint's transaction rules, and for the migrations a tool runs
/// as written (golang-migrate's), which then run outside ballast's transaction.
pub fn never_in_a_transaction(node: &NodeEnum) -> Option<&'static str> {
    Some(match node {
        NodeEnum::IndexStmt(index) if index.concurrent => "CREATE INDEX CONCURRENTLY",
        NodeEnum::DropStmt(drop) if drop.concurrent => "DROP INDEX CONCURRENTLY",
        NodeEnum::ReindexStmt(reindex) if option_on(&reindex.params, "concurrently") => {
            "REINDEX ... CONCURRENTLY"
        }
        NodeEnum::AlterTableStmt(alter) if alter.cmds.iter().any(detaches_concurrently) => {
            "DETACH PARTITION ... CONCURRENTLY"
        }
        NodeEnum::VacuumStmt(v) if v.is_vacuumcmd => "VACUUM",
        NodeEnum::CreatedbStmt(_) => "CREATE DATABASE",
        NodeEnum::DropdbStmt(_) => "DROP DATABASE",
        NodeEnum::CreateTableSpaceStmt(_) => "CREATE TABLESPACE",
        NodeEnum::DropTableSpaceStmt(_) => "DROP TABLESPACE",
        NodeEnum::AlterSystemStmt(_) => "ALTER SYSTEM",
        _ => return None,
    })
}

/// `DETACH PARTITION ... CONCURRENTLY` (not `FINALIZE`, which may run in a transaction).
fn detaches_concurrently(cmd: &Node) -> bool {
    let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node else {
        return false;
    };
    cmd.subtype() == pg_query::protobuf::AlterTableType::AtDetachPartition
        && matches!(
            cmd.def.as_ref().and_then(|d| d.node.as_ref()),
            Some(NodeEnum::PartitionCmd(p)) if p.concurrent
        )
}
