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
//! the same way. So is a foreign key column narrower than the key it references
//! (`integer` referencing a `bigint` key): inserts that point at a referenced row fail
//! once its ids pass 2,147,483,647; declare the column `bigint`, like the key. The
//! referenced key's type is known when this migration, an earlier one or (with a
//! database) the database declares it.

use pg_query::protobuf::{AlterTableType, ConstrType, Constraint, RangeVar, TypeName};
use pg_query::NodeEnum;

use super::{
    alter_commands, at, columns, display_type, foreign_keys, is, names, table_constraints, written,
    Change,
};
use crate::lint::context::type_name;
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct PreferBigintKeys;

static META: RuleMeta = RuleMeta {
    id: "prefer-bigint-keys",
    category: Category::Hygiene,
    default_level: Level::Warning,
    summary: "integer primary keys and identity columns run out at 2.1 billion, and so does an integer foreign key to a bigint key",
    explanation: "A primary key or identity column of type integer (int4, serial) runs out at 2,147,483,647 values (smallint: 32,767), and inserts then fail. Widening it later is an ALTER COLUMN ... TYPE bigint that rewrites the table, and every foreign key pointing at it, under an ACCESS EXCLUSIVE lock. bigint costs four more bytes a row: use bigint generated always as identity (or bigserial) from the start. Any serial or smallserial column is reported, key or not: its sequence runs out the same way. So is a foreign key column narrower than the key it references (integer referencing a bigint key): inserts that point at a referenced row fail once its ids pass 2,147,483,647; declare the column bigint, like the key. The referenced key's type is known when this migration, an earlier one or (with a database) the database declares it.",
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

/// An integer type: its size, its name as people write it, its largest value.
#[derive(Clone, Copy)]
struct Integer {
    bytes: u8,
    name: &'static str,
    max: &'static str,
}

/// The integer type the catalog spells `storage` (`int4`), if it is one.
fn integer(storage: &str) -> Option<Integer> {
    let (bytes, name, max) = match storage {
        "int2" => (2, "smallint", "32,767"),
        "int4" => (4, "integer", "2,147,483,647"),
        "int8" => (8, "bigint", "9,223,372,036,854,775,807"),
        _ => return None,
    };
    Some(Integer { bytes, name, max })
}

/// The columns a foreign key references (its own list, else the referenced table's
/// primary key) with their integer types, as known before statement `before`.
fn referenced_integers(
    ctx: &Context<'_>,
    pktable: &RangeVar,
    fk: &Constraint,
    before: usize,
) -> Vec<(String, Option<Integer>)> {
    let (key, known) = ctx.known_before(pktable, before);
    let mut cols: Vec<String> = names(&fk.pk_attrs).into_iter().map(String::from).collect();
    if cols.is_empty() {
        cols = known.primary_keys.get(&key).cloned().unwrap_or_default();
    }
    cols.into_iter()
        .map(|col| {
            let t = known.column_type(&key, &col).and_then(integer);
            (col, t)
        })
        .collect()
}

/// Foreign key columns that are narrower integers than the key they reference: the
/// referenced ids outgrow them. Types are as known once `statement` has run, so a
/// column it declares, and a key on a table it creates (or that refers to itself), count.
fn narrow_foreign_keys(statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
    let after = statement.index + 1;
    let mut hits = Vec::new();
    for (table, cols, fk) in foreign_keys(statement.node) {
        let Some(pktable) = fk.pktable.as_ref() else {
            continue;
        };
        let referenced = referenced_integers(ctx, pktable, fk, after);
        if referenced.len() != cols.len() {
            continue;
        }
        let (key, known) = ctx.known_before(table, after);
        for (column, (pk_column, need)) in cols.iter().zip(referenced) {
            let Some(have) = known.column_type(&key, column).and_then(integer) else {
                continue;
            };
            let Some(need) = need.filter(|need| need.bytes > have.bytes) else {
                continue;
            };
            let declared_here = declared_before(ctx, &ctx.key(table), column, after).is_some();
            let (table, pktable) = (written(table), written(pktable));
            let fix = if declared_here {
                format!(
                    "declare {table}.{column} {}, like {pktable}.{pk_column}",
                    need.name
                )
            } else {
                format!(
                    "ALTER TABLE {table} ALTER COLUMN {column} TYPE {}: it rewrites {table} under an ACCESS EXCLUSIVE lock, so do it in a quiet window, before {pktable} ids pass {}",
                    need.name, have.max
                )
            };
            let mut hit = Hit::new(
                format!(
                    "column {table}.{column} is {} but references {pktable}.{pk_column}, {} {}: once {pktable} ids pass {}, rows pointing at them cannot be stored",
                    have.name,
                    if need.name == "integer" { "an" } else { "a" },
                    need.name,
                    have.max
                ),
                fix,
            );
            hit.at = at(fk.location);
            hits.push(hit);
        }
    }
    hits
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
                format!("column {}.{}", written(table), column),
                why,
                t,
                at,
            ));
        }
        hits.extend(narrow_foreign_keys(statement, ctx));
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::PreferBigintKeys as R;
    use crate::lint::catalog::Catalog;
    use crate::lint::rules::testing::{ids, input, lint, lint_after, lint_with};
    use crate::lint::DbFacts;

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
    fn an_integer_foreign_key_to_a_bigint_key_is_found() {
        let found = lint(
            &R,
            "create table orders (id bigint generated always as identity primary key);\n\
             create table order_events (\n  id bigint generated always as identity primary key,\n  order_id integer not null references orders (id)\n);",
        );
        assert_eq!(ids(&found), ["prefer-bigint-keys"]);
        assert_eq!(found[0].line, 4);
        assert!(
            found[0]
                .message
                .contains("order_events.order_id is integer but references orders.id, a bigint"),
            "{}",
            found[0].message
        );
        assert!(
            found[0]
                .fix
                .contains("declare order_events.order_id bigint"),
            "{}",
            found[0].fix
        );
        for sql in [
            "create table order_events (order_id int references orders);",
            "create table order_events (order_id int, foreign key (order_id) references orders (id));",
            "alter table order_lines add column order_id int4 references orders;",
            "create table order_events (order_id smallint references orders);",
        ] {
            assert_eq!(
                ids(&lint_after(&R, &["create table orders (id bigserial primary key);"], sql)),
                ["prefer-bigint-keys"],
                "{sql}"
            );
        }
        // A column from an earlier migration needs a rewrite to widen.
        let found = lint_after(
            &R,
            &[
                "create table orders (id bigserial primary key);",
                "create table order_lines (id bigserial primary key, order_id int4);",
            ],
            "alter table order_lines add constraint order_lines_order_fk foreign key (order_id) references orders not valid;",
        );
        assert_eq!(ids(&found), ["prefer-bigint-keys"]);
        assert!(
            found[0]
                .fix
                .starts_with("ALTER TABLE order_lines ALTER COLUMN order_id TYPE bigint"),
            "{}",
            found[0].fix
        );
        for sql in [
            "create table categories (id bigint primary key, parent_id int references categories);",
            "create table p (a int8, b int8, primary key (a, b));\ncreate table c (a int8, b int4, foreign key (a, b) references p);",
        ] {
            assert_eq!(ids(&lint(&R, sql)), ["prefer-bigint-keys"], "{sql}");
        }
        // Narrower than an integer key too: the key is reported, and so is the column.
        let found = lint(
            &R,
            "create table p (id integer primary key);\ncreate table c (p_id smallint references p);",
        );
        assert_eq!((found.len(), found[1].line), (2, 2));
        assert!(
            found[1]
                .message
                .contains("c.p_id is smallint but references p.id, an integer"),
            "{}",
            found[1].message
        );
    }

    #[test]
    fn a_bigint_key_in_the_database_is_known() {
        let mut catalog = Catalog::default();
        catalog.column_types.insert(
            "public.orders".into(),
            [("id".to_string(), "int8".to_string())].into(),
        );
        catalog
            .primary_keys
            .insert("public.orders".into(), vec!["id".into()]);
        let db = DbFacts {
            search_path: vec!["public".into()],
            catalog,
            ..Default::default()
        };
        let sql = "create table app.order_events (order_id integer references orders);";
        assert_eq!(
            ids(&lint_with(&R, input(sql), Some(&db), Some("app"))),
            ["prefer-bigint-keys"]
        );
    }

    #[test]
    fn a_foreign_key_as_wide_as_its_key_or_of_unknown_type_is_fine() {
        for sql in [
            "create table order_events (order_id bigint references orders (id));",
            "create table order_events (order_id int8, foreign key (order_id) references orders);",
            "create table order_events (order_id uuid references orders (id));",
        ] {
            assert!(
                lint_after(
                    &R,
                    &["create table orders (id bigserial primary key);"],
                    sql
                )
                .is_empty(),
                "{sql}"
            );
        }
        // The integer key itself is reported where it is declared, not the keys to it.
        assert!(lint_after(
            &R,
            &["create table orders (id integer primary key);"],
            "create table order_events (order_id integer references orders);"
        )
        .is_empty());
        // Unknown types: the referenced table, the referencing column, a non-integer key.
        assert!(lint(
            &R,
            "create table order_events (order_id int references orders);"
        )
        .is_empty());
        let earlier = ["create table orders (id bigint primary key, code text unique);"];
        for sql in [
            "alter table order_events add constraint fk foreign key (order_id) references orders;",
            "create table order_events (order_code int references orders (code));",
        ] {
            assert!(lint_after(&R, &earlier, sql).is_empty(), "{sql}");
        }
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow prefer-bigint-keys\ncreate table colours (id smallint primary key, name text);";
        assert!(lint(&R, sql).is_empty());
        let sql = "-- ballast:allow prefer-bigint-keys\ncreate table order_events (order_id integer references orders);";
        assert!(lint_after(&R, &["create table orders (id bigint primary key);"], sql).is_empty());
    }
}
