//! The `hygiene` rules: choices that work today and age badly (key types that run out,
//! types that pad or need a lock to change, names PostgreSQL truncates, objects that land
//! wherever `search_path` points, foreign keys without an index, migrations that cannot
//! be stepped back). Warnings by default.
//!
//! The helpers below read the columns, constraints and names a statement declares, for
//! the rules of this family.

mod ban_char_field;
mod foreign_key_without_index;
mod identifier_too_long;
mod missing_downgrade;
mod prefer_bigint_keys;
mod prefer_text_field;
mod prefer_timestamptz;
mod require_schema_qualified;

use pg_query::protobuf::{
    a_const, AlterTableType, ColumnDef, ConstrType, Constraint, Node, RangeVar, TypeName,
};
use pg_query::NodeEnum;

use crate::lint::context::type_name;
pub(crate) use crate::lint::nodes::{constraints, strings as names};
use crate::lint::Rule;

pub fn all() -> Vec<&'static dyn Rule> {
    vec![
        &prefer_bigint_keys::PreferBigintKeys,
        &prefer_timestamptz::PreferTimestamptz,
        &ban_char_field::BanCharField,
        &prefer_text_field::PreferTextField,
        &require_schema_qualified::RequireSchemaQualified,
        &identifier_too_long::IdentifierTooLong,
        &foreign_key_without_index::ForeignKeyWithoutIndex,
        &missing_downgrade::MissingDowngrade,
    ]
}

/// One finding per column `judge` objects to, given the column and its type as
/// `(message, fix)`, pointed at the type: the body of the rules about column types.
pub(crate) fn column_type_hits(
    node: &NodeEnum,
    judge: impl Fn(&Column<'_>, &TypeName) -> Option<(String, String)>,
) -> Vec<crate::lint::Hit> {
    columns(node)
        .into_iter()
        .filter_map(|column| {
            let (message, fix) = judge(&column, column.type_name()?)?;
            let mut hit = crate::lint::Hit::new(message, fix);
            hit.at = column.at();
            Some(hit)
        })
        .collect()
}

/// How a statement gives a column its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// A column of `CREATE TABLE`.
    Create,
    /// `ALTER TABLE ... ADD COLUMN`.
    AddColumn,
    /// `ALTER TABLE ... ALTER COLUMN ... TYPE`.
    AlterType,
}

/// A column a statement declares or retypes.
pub(crate) struct Column<'a> {
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
            .and_then(|t| at(t.location))
            .or_else(|| at(self.def.location))
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
pub(crate) fn columns(node: &NodeEnum) -> Vec<Column<'_>> {
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
pub(crate) fn alter_commands(
    cmds: &[Node],
) -> impl Iterator<Item = (AlterTableType, &pg_query::protobuf::AlterTableCmd)> {
    cmds.iter().filter_map(|n| match &n.node {
        Some(NodeEnum::AlterTableCmd(cmd)) => Some((cmd.subtype(), cmd.as_ref())),
        _ => None,
    })
}

/// A table's constraints as a statement adds them: `CREATE TABLE`'s table-level ones
/// and `ALTER TABLE ... ADD CONSTRAINT`. (Column-level ones are on [`Column`].)
pub(crate) fn table_constraints(node: &NodeEnum) -> Vec<(&RangeVar, &Constraint)> {
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

/// A type's integer modifiers: `[20]` for `varchar(20)`.
pub(crate) fn typmods(t: &TypeName) -> Vec<i32> {
    t.typmods
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::AConst(c)) => match &c.val {
                Some(a_const::Val::Ival(i)) => Some(i.ival),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A type as people write it: `integer`, `varchar(20)`, `char(3)[]`.
pub(crate) fn display_type(t: &TypeName) -> String {
    let name = type_name(t);
    let mut text = match name.as_str() {
        "int2" => "smallint".to_string(),
        "int4" => "integer".to_string(),
        "int8" => "bigint".to_string(),
        "bpchar" => "char".to_string(),
        "timestamp" => "timestamp (without time zone)".to_string(),
        _ => name,
    };
    let mods = typmods(t);
    if !mods.is_empty() {
        let mods: Vec<String> = mods.iter().map(|m| m.to_string()).collect();
        text = format!(
            "{}({})",
            text.replace(" (without time zone)", ""),
            mods.join(",")
        );
    }
    for _ in &t.array_bounds {
        text.push_str("[]");
    }
    text
}

/// A table as written: `marketplace.orders` or `orders`.
pub(crate) fn written(rv: &RangeVar) -> String {
    if rv.schemaname.is_empty() {
        rv.relname.clone()
    } else {
        format!("{}.{}", rv.schemaname, rv.relname)
    }
}

/// A parse-tree location as an offset in the migration, when the parser knew it.
pub(crate) fn at(location: i32) -> Option<usize> {
    usize::try_from(location).ok()
}

/// Whether a constraint is of this kind.
pub(crate) fn is(c: &Constraint, kind: ConstrType) -> bool {
    c.contype() == kind
}
