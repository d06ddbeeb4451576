//! `adding-field-with-volatile-default`
//!
//! Since PostgreSQL 11, `ADD COLUMN ... DEFAULT` with a constant (or a stable expression
//! such as `now()`) is evaluated once and stored in the catalog: no rewrite. A volatile
//! default (`random()`, `gen_random_uuid()`, `clock_timestamp()`, `nextval(...)`, which is
//! what `serial` and identity columns use) has to be computed for every existing row, so
//! the whole table is rewritten under an ACCESS EXCLUSIVE lock: no reads or writes until it
//! finishes. Add the column without a default, then `ALTER COLUMN ... SET DEFAULT` (which
//! applies to new rows only), then backfill existing rows in batches. A function the lint
//! does not know is treated as volatile. A table created earlier in the same migration, or
//! one the database shows empty, is not reported.

use pg_query::protobuf::{ConstrType, Node};
use pg_query::NodeEnum;

use super::{added_column, altered_table_with_data, column_constraints, contype};
use crate::lint::context::type_name;
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct AddingFieldWithVolatileDefault;

static META: RuleMeta = RuleMeta {
    id: "adding-field-with-volatile-default",
    category: Category::Lock,
    default_level: Level::Error,
    summary: "ADD COLUMN with a volatile DEFAULT rewrites the whole table under an ACCESS EXCLUSIVE lock",
    explanation: "Since PostgreSQL 11, ADD COLUMN ... DEFAULT with a constant (or a stable expression such as now()) is evaluated once and stored in the catalog: no rewrite. A volatile default (random(), gen_random_uuid(), clock_timestamp(), nextval(...), which is what serial and identity columns use) has to be computed for every existing row, so the whole table is rewritten under an ACCESS EXCLUSIVE lock: no reads or writes until it finishes. Add the column without a default, then ALTER COLUMN ... SET DEFAULT (which applies to new rows only), then backfill existing rows in batches.",
};

/// Functions evaluated once per statement (stable), so a default using them is stored
/// in the catalog without a rewrite.
const STABLE: &[&str] = &["now", "statement_timestamp", "transaction_timestamp"];

/// Functions known to be volatile, named as such in the message.
const VOLATILE: &[&str] = &[
    "random",
    "gen_random_uuid",
    "uuidv4",
    "uuidv7",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "txid_current",
    "pg_current_xact_id",
];

impl Rule for AddingFieldWithVolatileDefault {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let Some((table, key, cmds)) = altered_table_with_data(statement, ctx) else {
            return Vec::new();
        };
        let mut hits = Vec::new();
        for column in cmds.into_iter().filter_map(added_column) {
            let col = &column.colname;
            let ty = column.type_name.as_ref().map(type_name).unwrap_or_default();
            let serial = matches!(
                ty.as_str(),
                "smallserial" | "serial" | "bigserial" | "serial2" | "serial4" | "serial8"
            );
            let why = if serial {
                Some(format!(
                    "type {ty}, whose default is nextval() of a new sequence"
                ))
            } else if column_constraints(column).any(|c| contype(c) == ConstrType::ConstrIdentity) {
                Some(
                    "GENERATED AS IDENTITY, whose default is nextval() of a new sequence"
                        .to_string(),
                )
            } else if column_constraints(column).any(|c| contype(c) == ConstrType::ConstrGenerated)
            {
                Some(
                    "GENERATED ALWAYS AS (...) STORED, computed and stored for every row"
                        .to_string(),
                )
            } else {
                column_constraints(column)
                    .filter(|c| contype(c) == ConstrType::ConstrDefault)
                    .find_map(|c| c.raw_expr.as_deref().and_then(volatile_call))
                    .map(|f| {
                        if VOLATILE.contains(&f.trim_start_matches("pg_catalog.")) {
                            format!("DEFAULT calling {f}(), which is volatile")
                        } else {
                            format!("DEFAULT calling {f}(), which the lint does not know to be stable (if it is, allow this statement)")
                        }
                    })
            };
            let Some(why) = why else {
                continue;
            };
            let plain = match ty.as_str() {
                "smallserial" | "serial2" => "smallint",
                "serial" | "serial4" => "integer",
                "bigserial" | "serial8" => "bigint",
                other => other,
            };
            let default = if why.starts_with("GENERATED ALWAYS") {
                format!("keep the expression in a view or compute it in the query; or add {col} as a plain column kept by a trigger")
            } else if why.contains("nextval() of a new sequence") {
                let sequence = format!("{}_{col}_seq", table.relname);
                format!("CREATE SEQUENCE {sequence} and ALTER SEQUENCE {sequence} OWNED BY {key}.{col}; ALTER COLUMN {col} SET DEFAULT nextval('{sequence}')")
            } else {
                format!("ALTER COLUMN {col} SET DEFAULT with the same expression")
            };
            hits.push(Hit::new(
                format!(
                    "ADD COLUMN {col} on {key} with {why}: the value is computed for every existing row, so the whole table is rewritten under an ACCESS EXCLUSIVE lock, no reads or writes until it finishes"
                ),
                format!(
                    "ALTER TABLE {key} ADD COLUMN {col} {plain} with no default; then {default} (it applies to new rows only); then backfill existing rows in batches (UPDATE ... WHERE id BETWEEN ...)"
                ),
            ));
        }
        hits
    }
}

/// The functions `expr` calls that are not known to be stable, as written.
fn unstable_calls(expr: &Node, found: &mut Vec<String>) {
    let Some(node) = expr.node.as_ref() else {
        return;
    };
    fn all(nodes: &[&Option<Box<Node>>], lists: &[&[Node]], found: &mut Vec<String>) {
        let singles = nodes.iter().filter_map(|n| n.as_deref());
        for node in singles.chain(lists.iter().flat_map(|l| l.iter())) {
            unstable_calls(node, found);
        }
    }
    match node {
        NodeEnum::FuncCall(call) => {
            let names = crate::lint::nodes::strings(&call.funcname);
            let name = names.last().copied().unwrap_or_default();
            let builtin = names.len() == 1 || names[0] == "pg_catalog";
            if !(builtin && STABLE.contains(&name)) {
                found.push(names.join("."));
            }
            all(&[], &[&call.args], found);
        }
        NodeEnum::AExpr(e) => all(&[&e.lexpr, &e.rexpr], &[], found),
        NodeEnum::TypeCast(c) => all(&[&c.arg], &[], found),
        NodeEnum::CollateClause(c) => all(&[&c.arg], &[], found),
        NodeEnum::BoolExpr(e) => all(&[], &[&e.args], found),
        NodeEnum::CoalesceExpr(e) => all(&[], &[&e.args], found),
        NodeEnum::MinMaxExpr(e) => all(&[], &[&e.args], found),
        NodeEnum::NullTest(t) => all(&[&t.arg], &[], found),
        NodeEnum::BooleanTest(t) => all(&[&t.arg], &[], found),
        NodeEnum::CaseExpr(c) => all(&[&c.arg, &c.defresult], &[&c.args], found),
        NodeEnum::CaseWhen(w) => all(&[&w.expr, &w.result], &[], found),
        NodeEnum::AArrayExpr(a) => all(&[], &[&a.elements], found),
        NodeEnum::RowExpr(r) => all(&[], &[&r.args], found),
        NodeEnum::AIndirection(i) => all(&[&i.arg], &[], found),
        NodeEnum::List(l) => all(&[], &[&l.items], found),
        _ => {}
    }
}

/// The function to name for a volatile default: a known volatile one if any, else the
/// first one not known to be stable.
fn volatile_call(expr: &Node) -> Option<String> {
    let mut found = Vec::new();
    unstable_calls(expr, &mut found);
    let known = found
        .iter()
        .position(|f| VOLATILE.contains(&f.trim_start_matches("pg_catalog.")));
    match known {
        Some(i) => Some(found.swap_remove(i)),
        None => found.into_iter().next(),
    }
}

#[cfg(test)]
mod tests {
    use super::AddingFieldWithVolatileDefault as R;
    use crate::lint::rules::testing::{ids, input, lint, lint_with};
    use crate::lint::DbFacts;

    #[test]
    fn a_volatile_default_on_an_existing_table_is_found() {
        let found = lint(
            &R,
            "alter table orders add column token uuid not null default gen_random_uuid();",
        );
        assert_eq!(ids(&found), ["adding-field-with-volatile-default"]);
        assert_eq!(found[0].line, 1);
        assert!(found[0].message.contains("gen_random_uuid()"));
        assert!(found[0]
            .fix
            .contains("ADD COLUMN token uuid with no default"));
        let found = lint(&R, "alter table orders add column n bigserial;");
        assert!(found[0]
            .fix
            .contains("ADD COLUMN n bigint with no default; then CREATE SEQUENCE orders_n_seq"));
        for sql in [
            "alter table orders add column r float8 default random() * 10;",
            "alter table orders add column t timestamptz default clock_timestamp();",
            "alter table orders add column n bigint default nextval('orders_n_seq');",
            "alter table orders add column u uuid default uuid_generate_v4();",
            "alter table orders add column d text default timeofday()::text;",
            "alter table orders add column n bigserial;",
            "alter table orders add column n int generated always as identity;",
            "alter table orders add column c text default my_schema.next_code();",
            "alter table orders add column c text default coalesce(null, md5(random()::text));",
        ] {
            assert_eq!(
                ids(&lint(&R, sql)),
                ["adding-field-with-volatile-default"],
                "{sql}"
            );
        }
        let found = lint(
            &R,
            "alter table orders add column c text default md5(random()::text);",
        );
        assert!(found[0].message.contains("random(), which is volatile"));
    }

    #[test]
    fn a_constant_or_stable_default_or_the_safe_rewrite_is_fine() {
        for sql in [
            "alter table orders add column status text not null default 'new';",
            "alter table orders add column created_at timestamptz not null default now();",
            "alter table orders add column created_at timestamptz default current_timestamp;",
            "alter table orders add column day date default now()::date;",
            "alter table orders add column at timestamptz default pg_catalog.statement_timestamp();",
            "alter table orders add column tags text[] default array[]::text[];",
            "alter table orders add column token uuid;\n\
             alter table orders alter column token set default gen_random_uuid();\n\
             update orders set token = gen_random_uuid() where id between 1 and 1000;",
        ] {
            assert!(lint(&R, sql).is_empty(), "{sql}");
        }
    }

    #[test]
    fn a_new_or_empty_table_is_fine() {
        assert!(lint(
            &R,
            "create table t (id int);\nalter table t add column token uuid default gen_random_uuid();"
        )
        .is_empty());
        let facts = DbFacts {
            tables: [("public.orders".to_string(), false)].into_iter().collect(),
            ..Default::default()
        };
        let found = lint_with(
            &R,
            input("alter table orders add column n bigserial;"),
            Some(&facts),
            None,
        );
        assert!(found.is_empty(), "empty per the database");
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow adding-field-with-volatile-default\nalter table orders add column token uuid default gen_random_uuid();";
        assert!(lint(&R, sql).is_empty());
    }

    #[test]
    fn a_stored_generated_column_is_a_rewrite() {
        let found = crate::lint::rules::testing::lint(
            &super::AddingFieldWithVolatileDefault,
            "alter table orders add column total_cents bigint generated always as (quantity * unit_cents) stored;",
        );
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("STORED"), "{}", found[0].message);
    }
}
