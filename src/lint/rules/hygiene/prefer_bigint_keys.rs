//! `prefer-bigint-keys`
//!
//! A primary key or identity column of type `integer` (`int4`, `serial`) runs out at
//! 2,147,483,647 values (`smallint`, `smallserial`: 32,767), and inserts then fail.
//! Widening it later is an `ALTER COLUMN ... TYPE bigint` that rewrites the table, and
//! every foreign key pointing at it, under an ACCESS EXCLUSIVE lock. `bigint` costs four
//! more bytes a row: use `bigint generated always as identity` (or `bigserial`) from the
//! start. Found in `CREATE TABLE`, `ADD COLUMN`, `ADD PRIMARY KEY` and `ADD ... IDENTITY`
//! on a column declared earlier in the migration, and `ALTER COLUMN ... TYPE` on a key.
//! Any `serial` or `smallserial` column is reported, key or not: its sequence runs out
//! the same way.

use pg_query::protobuf::{AlterTableType, ConstrType, RangeVar, TypeName};
use pg_query::NodeEnum;

use super::{alter_commands, at, columns, display_type, is, names, table_constraints, Change};
use crate::lint::context::type_name;
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct PreferBigintKeys;

static META: RuleMeta = RuleMeta {
    id: "prefer-bigint-keys",
    category: Category::Hygiene,
    default_level: Level::Warning,
    summary: "integer primary keys and identity columns run out at 2.1 billion",
    explanation: "A primary key or identity column of type integer (int4, serial) runs out at 2,147,483,647 values (smallint: 32,767), and inserts then fail. Widening it later is an ALTER COLUMN ... TYPE bigint that rewrites the table, and every foreign key pointing at it, under an ACCESS EXCLUSIVE lock. bigint costs four more bytes a row: use bigint generated always as identity (or bigserial) from the start.",
};

/// The largest value of a too-small key type, and its `bigint` counterpart.
fn too_small(t: &TypeName) -> Option<(&'static str, &'static str)> {
    match type_name(t).as_str() {
        "int2" | "smallint" => Some(("32,767", "bigint")),
        "int4" | "int" | "integer" => Some(("2,147,483,647", "bigint")),
        "smallserial" | "serial2" => Some(("32,767", "bigserial")),
        "serial" | "serial4" => Some(("2,147,483,647", "bigserial")),
        _ => None,
    }
}

fn is_serial(t: &TypeName) -> bool {
    matches!(
        type_name(t).as_str(),
        "serial" | "serial4" | "smallserial" | "serial2"
    )
}

/// A column a statement makes a key: (table, column, why, where).
type Key<'a> = (&'a RangeVar, &'a str, &'static str, Option<usize>);

/// The columns a statement makes a primary key or an identity column.
fn keys(node: &NodeEnum) -> Vec<Key<'_>> {
    let mut found: Vec<Key<'_>> = Vec::new();
    for column in columns(node) {
        if column.change == Change::AlterType {
            continue;
        }
        for c in column.constraints() {
            if is(c, ConstrType::ConstrPrimary) {
                found.push((column.table, column.name, "a primary key", at(c.location)));
            } else if is(c, ConstrType::ConstrIdentity) {
                found.push((
                    column.table,
                    column.name,
                    "an identity column",
                    at(c.location),
                ));
            }
        }
        if !column.def.identity.is_empty() {
            found.push((column.table, column.name, "an identity column", column.at()));
        }
    }
    for (table, c) in table_constraints(node) {
        if is(c, ConstrType::ConstrPrimary) {
            for name in names(&c.keys) {
                found.push((table, name, "a primary key", at(c.location)));
            }
        }
    }
    if let NodeEnum::AlterTableStmt(alter) = node {
        if let Some(table) = &alter.relation {
            for (subtype, cmd) in alter_commands(&alter.cmds) {
                if subtype == AlterTableType::AtAddIdentity {
                    found.push((table, cmd.name.as_str(), "an identity column", None));
                }
            }
        }
    }
    found
}

/// The type an earlier statement of this migration gave `column` of `table`.
fn declared_before<'a>(
    ctx: &'a Context<'_>,
    table: &str,
    column: &str,
    statement: usize,
) -> Option<&'a TypeName> {
    ctx.statements[..statement]
        .iter()
        .flat_map(|s| columns(s.node))
        .filter(|c| c.name == column && ctx.key(c.table) == table)
        .filter_map(|c| c.type_name())
        .next_back()
}

fn hit(what: String, why: &str, t: &TypeName, at: Option<usize>) -> Hit {
    let (limit, instead) = too_small(t).unwrap_or(("2,147,483,647", "bigint"));
    let mut hit = Hit::new(
        format!(
            "{what} is {why} of type {}: it runs out at {limit}, and widening it later rewrites the table",
            display_type(t)
        ),
        if instead == "bigserial" {
            "use bigint generated always as identity (or bigserial)".to_string()
        } else {
            "use bigint (bigint generated always as identity for a generated key)".to_string()
        },
    );
    hit.at = at;
    hit
}

impl Rule for PreferBigintKeys {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let keys_here = keys(statement.node);
        let key_of = |table: &RangeVar, column: &str| -> Option<&'static str> {
            let table = ctx.key(table);
            let earlier = ctx.statements[..statement.index]
                .iter()
                .flat_map(|s| keys(s.node));
            keys_here
                .iter()
                .copied()
                .chain(earlier)
                .find(|(t, c, _, _)| *c == column && ctx.key(t) == table)
                .map(|(_, _, why, _)| why)
        };
        let mut hits = Vec::new();
        let mut typed_here = Vec::new();
        for column in columns(statement.node) {
            let Some(t) = column.type_name() else {
                continue;
            };
            typed_here.push((ctx.key(column.table), column.name));
            if too_small(t).is_none() {
                continue;
            }
            let why = match key_of(column.table, column.name) {
                Some(why) => why,
                None if is_serial(t) => "a generated column",
                None => continue,
            };
            hits.push(hit(column.describe(), why, t, column.at()));
        }
        // Keys made of columns declared by an earlier statement: ADD PRIMARY KEY, ADD
        // GENERATED ... AS IDENTITY.
        let mut seen = Vec::new();
        for (table, column, why, at) in keys_here {
            let key = ctx.key(table);
            if typed_here.contains(&(key.clone(), column)) || seen.contains(&(key.clone(), column))
            {
                continue;
            }
            seen.push((key.clone(), column));
            let Some(t) = declared_before(ctx, &key, column, statement.index) else {
                continue;
            };
            // A serial column was reported where it was declared.
            if too_small(t).is_none() || is_serial(t) {
                continue;
            }
            hits.push(hit(
                format!("column {}.{}", super::written(table), column),
                why,
                t,
                at,
            ));
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::PreferBigintKeys as R;
    use crate::lint::rules::testing::{ids, lint};

    #[test]
    fn integer_keys_are_found() {
        let found = lint(
            &R,
            "create table sellers (\n  id serial primary key,\n  name text\n);",
        );
        assert_eq!(ids(&found), ["prefer-bigint-keys"]);
        assert_eq!(found[0].line, 2);
        assert!(
            found[0].message.contains("sellers.id"),
            "{}",
            found[0].message
        );
        for sql in [
            "create table t (id integer primary key);",
            "create table t (id int, name text, primary key (id));",
            "create table t (id smallint generated always as identity);",
            "create table t (id int4 generated by default as identity, code text primary key);",
            "alter table t add column id int primary key;",
            "create table t (n smallserial);",
            "create table t (id int);\nalter table t add primary key (id);",
            "create table t (id int not null);\nalter table t alter column id add generated always as identity;",
            "create table t (id bigint primary key);\nalter table t alter column id type int;",
        ] {
            assert_eq!(ids(&lint(&R, sql)), ["prefer-bigint-keys"], "{sql}");
        }
    }

    #[test]
    fn bigint_keys_and_plain_integers_are_fine() {
        for sql in [
            "create table t (id bigint generated always as identity primary key, qty int, n int2);",
            "create table t (id bigserial primary key);",
            "create table t (a int8, b int8, primary key (a, b));",
            "alter table t add column qty integer;",
            "alter table t add primary key (id);",
            "create table t (id bigint primary key, qty bigint);\nalter table t alter column qty type int;",
        ] {
            assert!(lint(&R, sql).is_empty(), "{sql}");
        }
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow prefer-bigint-keys\ncreate table colours (id smallint primary key, name text);";
        assert!(lint(&R, sql).is_empty());
    }
}
