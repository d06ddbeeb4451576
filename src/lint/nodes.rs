//! Reading pg_query's parse tree: the small questions every rule family asks of it
//! (the names in a list of `String` nodes, a qualified name, a boolean option, the
//! constraints of a list), answered once.

use pg_query::protobuf::{ConstrType, Constraint, Node, RangeVar};
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
