//! `add-unique-without-index`
//!
//! `ALTER TABLE ... ADD PRIMARY KEY` or `ADD UNIQUE` (or `ADD COLUMN ... UNIQUE`) builds
//! the constraint's index while holding an ACCESS EXCLUSIVE lock on the table: no reads or
//! writes until the build ends, minutes on a large table. Build the index first with
//! `CREATE UNIQUE INDEX CONCURRENTLY`, in a migration of its own that runs outside a
//! transaction (`-- no-transaction`), then attach it with `ADD CONSTRAINT ... UNIQUE USING
//! INDEX` (or `PRIMARY KEY USING INDEX`), which only takes the lock briefly. A primary key
//! also needs its columns NOT NULL: prove that first without a scan (see `set-not-null`).
//! A table created earlier in the same migration, or one the database shows empty, is not
//! reported.

use pg_query::protobuf::{ConstrType, Constraint};

use super::{added_column, added_constraint, altered_table_with_data, column_constraints, contype};
use crate::lint::nodes::strings;
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct AddUniqueWithoutIndex;

static META: RuleMeta = RuleMeta {
    id: "add-unique-without-index",
    category: Category::Lock,
    default_level: Level::Error,
    summary: "ADD PRIMARY KEY / UNIQUE without USING INDEX builds the index under an ACCESS EXCLUSIVE lock",
    explanation: "ALTER TABLE ... ADD PRIMARY KEY or ADD UNIQUE (or ADD COLUMN ... UNIQUE) builds the constraint's index while holding an ACCESS EXCLUSIVE lock on the table: no reads or writes until the build ends, minutes on a large table. Build the index first with CREATE UNIQUE INDEX CONCURRENTLY, in a migration of its own that runs outside a transaction (-- no-transaction), then attach it with ADD CONSTRAINT ... UNIQUE USING INDEX (or PRIMARY KEY USING INDEX), which only takes the lock briefly. A primary key also needs its columns NOT NULL: prove that first without a scan (see set-not-null).",
};

impl Rule for AddUniqueWithoutIndex {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let Some((table, key, cmds)) = altered_table_with_data(statement, ctx) else {
            return Vec::new();
        };
        let mut hits = Vec::new();
        for cmd in cmds {
            if let Some(c) = added_constraint(cmd) {
                if contype(c) == ConstrType::ConstrExclusion {
                    // No `USING INDEX` form exists for EXCLUDE: say so plainly.
                    hits.push(Hit::new(
                        format!("ADD EXCLUDE constraint on {key} builds its index under an ACCESS EXCLUSIVE lock: no reads or writes until it finishes"),
                        "an EXCLUDE constraint cannot be attached from an index built concurrently: add it when the table is created, or run it at a quiet time (ballast's lock_timeout bounds the wait to start, not the build)",
                    ));
                    continue;
                }
                if let Some(kind) = unique_kind(c) {
                    if !c.indexname.is_empty() {
                        continue;
                    }
                    let columns = strings(&c.keys).join(", ");
                    let what = match c.conname.as_str() {
                        "" => format!("ADD {kind} ({columns})"),
                        name => format!("ADD CONSTRAINT {name} {kind} ({columns})"),
                    };
                    hits.push(hit(
                        &key,
                        &table.relname,
                        &what,
                        kind,
                        &c.conname,
                        &columns,
                        "",
                    ));
                }
            } else if let Some(column) = added_column(cmd) {
                for c in column_constraints(column) {
                    if let Some(kind) = unique_kind(c) {
                        let col = &column.colname;
                        let what = format!("ADD COLUMN {col} ... {kind}");
                        let first = format!("add the column without {kind}; then ");
                        hits.push(hit(
                            &key,
                            &table.relname,
                            &what,
                            kind,
                            &c.conname,
                            col,
                            &first,
                        ));
                    }
                }
            }
        }
        hits
    }
}

fn unique_kind(c: &Constraint) -> Option<&'static str> {
    match contype(c) {
        ConstrType::ConstrPrimary => Some("PRIMARY KEY"),
        ConstrType::ConstrUnique => Some("UNIQUE"),
        _ => None,
    }
}

fn hit(
    key: &str,
    relname: &str,
    what: &str,
    kind: &str,
    conname: &str,
    columns: &str,
    first: &str,
) -> Hit {
    let primary = kind == "PRIMARY KEY";
    let name = match conname {
        "" if primary => format!("{relname}_pkey"),
        "" => format!("{relname}_{}_key", columns.replace(", ", "_")),
        name => name.to_string(),
    };
    Hit::new(
        format!(
            "{what} on {key} builds its index while holding an ACCESS EXCLUSIVE lock: no reads or writes until the build ends"
        ),
        format!(
            "{first}{}CREATE UNIQUE INDEX CONCURRENTLY {name} ON {key} ({columns}) alone in a -- no-transaction migration, then ALTER TABLE {key} ADD CONSTRAINT {name} {kind} USING INDEX {name}",
            if primary {
                format!("make {columns} NOT NULL without a scan (see set-not-null); ")
            } else {
                String::new()
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::AddUniqueWithoutIndex as R;
    use crate::lint::rules::testing::{ids, input, lint, lint_with};
    use crate::lint::DbFacts;

    #[test]
    fn a_unique_or_primary_key_built_in_place_is_found() {
        let found = lint(
            &R,
            "alter table orders add constraint orders_code_key unique (code, region);\n\
             alter table orders add primary key (id);\n\
             alter table orders add column ref text unique;",
        );
        assert_eq!(
            ids(&found),
            [
                "add-unique-without-index",
                "add-unique-without-index",
                "add-unique-without-index"
            ]
        );
        assert_eq!(found[1].line, 2);
        assert!(found[0].fix.contains(
            "CREATE UNIQUE INDEX CONCURRENTLY orders_code_key ON public.orders (code, region)"
        ));
        assert!(found[0]
            .fix
            .contains("ADD CONSTRAINT orders_code_key UNIQUE USING INDEX orders_code_key"));
        assert!(found[1]
            .fix
            .contains("orders_pkey PRIMARY KEY USING INDEX orders_pkey"));
        assert!(found[1].fix.contains("NOT NULL"));
        assert!(found[2].fix.contains("orders_ref_key"));
    }

    #[test]
    fn using_index_or_a_new_or_empty_table_is_fine() {
        assert!(lint(
            &R,
            "alter table orders add constraint orders_code_key unique using index orders_code_key;\n\
             alter table orders add constraint orders_pkey primary key using index orders_id_idx;"
        )
        .is_empty());
        assert!(lint(
            &R,
            "create table t (id int, code text);\nalter table t add primary key (id), add unique (code);"
        )
        .is_empty());
        let facts = DbFacts {
            tables: [("shop.orders".to_string(), false)].into_iter().collect(),
            ..Default::default()
        };
        let found = lint_with(
            &R,
            input("alter table orders add unique (code);"),
            Some(&facts),
            Some("shop"),
        );
        assert!(found.is_empty(), "empty per the database");
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql =
            "-- ballast:allow add-unique-without-index\nalter table orders add primary key (id);";
        assert!(lint(&R, sql).is_empty());
    }

    #[test]
    fn an_exclude_constraint_is_found_too() {
        let found = crate::lint::rules::testing::lint(
            &super::AddUniqueWithoutIndex,
            "alter table bookings add constraint no_overlap exclude using gist (room with =, during with &&);",
        );
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("EXCLUDE"), "{}", found[0].message);
    }
}
