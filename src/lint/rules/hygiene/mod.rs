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

use pg_query::protobuf::{a_const, ConstrType, Constraint, RangeVar, TypeName};
use pg_query::NodeEnum;

use crate::lint::context::type_name;
pub(crate) use crate::lint::nodes::{
    alter_commands, columns, location as at, strings as names, table_constraints, written, Change,
    Column,
};
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

/// The foreign keys a statement declares: (table, referencing columns, the constraint),
/// from column `REFERENCES` and table `FOREIGN KEY` constraints.
pub(crate) fn foreign_keys(node: &NodeEnum) -> Vec<(&RangeVar, Vec<String>, &Constraint)> {
    let mut found = Vec::new();
    for column in columns(node) {
        if column.change == Change::AlterType {
            continue;
        }
        for c in column.constraints() {
            if is(c, ConstrType::ConstrForeign) {
                found.push((column.table, vec![column.name.to_string()], c));
            }
        }
    }
    for (table, c) in table_constraints(node) {
        if is(c, ConstrType::ConstrForeign) {
            let cols = names(&c.fk_attrs).into_iter().map(String::from).collect();
            found.push((table, cols, c));
        }
    }
    found
}

/// Whether a constraint is of this kind.
pub(crate) fn is(c: &Constraint, kind: ConstrType) -> bool {
    c.contype() == kind
}
