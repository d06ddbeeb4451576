//! `adding-foreign-key-constraint`
//!
//! Adding a foreign key to an existing table (`ADD CONSTRAINT ... FOREIGN KEY`, or
//! `ADD COLUMN ... REFERENCES`) takes a SHARE ROW EXCLUSIVE lock on both the table and the
//! table it references, so writes to either wait; without `NOT VALID` it holds both locks
//! while it checks every row. With `NOT VALID` the locks are brief, and ballast runs every
//! migration with `lock_timeout`, so that form is not reported. Add it `NOT VALID` (a `REFERENCES` column: add the column first, then the
//! constraint), with a short `lock_timeout` so it gives up instead of blocking, at a quiet
//! time, and `VALIDATE CONSTRAINT` in a later migration. A table created earlier in the
//! same migration, or one the database shows empty, is not reported.

use pg_query::protobuf::{ConstrType, Constraint};

use super::{added_column, added_constraint, altered_table_with_data, column_constraints, contype};
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct AddingForeignKeyConstraint;

static META: RuleMeta = RuleMeta {
    id: "adding-foreign-key-constraint",
    category: Category::Lock,
    default_level: Level::Error,
    summary: "adding a foreign key to an existing table locks it and the referenced table against writes",
    explanation: "Adding a foreign key to an existing table (ADD CONSTRAINT ... FOREIGN KEY, or ADD COLUMN ... REFERENCES) takes a SHARE ROW EXCLUSIVE lock on both the table and the table it references, so writes to either wait; without NOT VALID it holds both locks while it checks every row. With NOT VALID the locks are brief, and ballast runs every migration with lock_timeout, so that form is not reported. Add it NOT VALID (a REFERENCES column: add the column first, then the constraint), with a short lock_timeout so it gives up instead of blocking, at a quiet time, and VALIDATE CONSTRAINT in a later migration.",
};

impl Rule for AddingForeignKeyConstraint {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let Some((_, key, cmds)) = altered_table_with_data(statement, ctx) else {
            return Vec::new();
        };
        let referenced =
            |c: &Constraint| c.pktable.as_ref().map(|t| ctx.key(t)).unwrap_or_default();
        let mut hits = Vec::new();
        for cmd in cmds {
            if let Some(c) = added_constraint(cmd) {
                if contype(c) != ConstrType::ConstrForeign {
                    continue;
                }
                let name = match c.conname.as_str() {
                    "" => "<name>",
                    name => name,
                };
                let other = referenced(c);
                // NOT VALID is the safe rewrite: the locks are brief, and ballast
                // runs every migration with lock_timeout, so it gives up rather than
                // queueing writes behind it.
                if c.skip_validation {
                    continue;
                }
                hits.push({
                    Hit::new(
                        format!(
                            "ADD FOREIGN KEY on {key} takes SHARE ROW EXCLUSIVE locks on {key} and {other} and holds them while it checks every row: writes to both tables wait until it finishes"
                        ),
                        format!(
                            "ALTER TABLE {key} ADD CONSTRAINT {name} FOREIGN KEY ... NOT VALID at a quiet time with a short lock_timeout (SET lock_timeout = '2s'), then ALTER TABLE {key} VALIDATE CONSTRAINT {name} in a later migration"
                        ),
                    )
                });
            } else if let Some(column) = added_column(cmd) {
                for c in column_constraints(column) {
                    if contype(c) != ConstrType::ConstrForeign {
                        continue;
                    }
                    let other = referenced(c);
                    let col = &column.colname;
                    hits.push(Hit::new(
                        format!(
                            "ADD COLUMN {col} REFERENCES {other} on {key} takes SHARE ROW EXCLUSIVE locks on {key} and {other} and holds them while it checks every row: writes to both tables wait until it finishes"
                        ),
                        format!(
                            "add the column without REFERENCES; then, at a quiet time with a short lock_timeout (SET lock_timeout = '2s'), ALTER TABLE {key} ADD CONSTRAINT <name> FOREIGN KEY ({col}) REFERENCES {other} NOT VALID, and VALIDATE CONSTRAINT <name> in a later migration"
                        ),
                    ));
                }
            }
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::AddingForeignKeyConstraint as R;
    use crate::lint::rules::testing::{ids, input, lint, lint_with};
    use crate::lint::DbFacts;

    #[test]
    fn a_foreign_key_on_an_existing_table_is_found() {
        let found = lint(
            &R,
            "alter table orders add constraint orders_customer_fk foreign key (customer_id) references customers (id);\n\
             alter table orders add column seller_id bigint references sellers (id);",
        );
        assert_eq!(
            ids(&found),
            [
                "adding-foreign-key-constraint",
                "adding-foreign-key-constraint"
            ]
        );
        assert_eq!(found[1].line, 2);
        assert!(found[0].message.contains("public.customers"));
        assert!(found[1].message.contains("public.sellers"));
    }

    #[test]
    fn the_not_valid_rewrite_it_advises_passes() {
        let found = lint(
            &R,
            "alter table orders add constraint f foreign key (customer_id) references customers (id);",
        );
        assert!(found[0].fix.contains("NOT VALID"));
        assert!(lint(
            &R,
            "alter table orders add constraint f foreign key (customer_id) references customers (id) not valid;",
        )
        .is_empty());
    }

    #[test]
    fn a_new_or_empty_table_or_another_constraint_is_fine() {
        assert!(lint(
            &R,
            "create table t (id int, customer_id int);\n\
             alter table t add constraint f foreign key (customer_id) references customers (id);"
        )
        .is_empty());
        assert!(lint(&R, "alter table orders add constraint c check (total > 0);").is_empty());
        assert!(lint(&R, "alter table orders add column note text;").is_empty());
        let facts = DbFacts {
            tables: [("shop.orders".to_string(), false)].into_iter().collect(),
            ..Default::default()
        };
        let found = lint_with(
            &R,
            input("alter table orders add column seller_id bigint references sellers (id);"),
            Some(&facts),
            Some("shop"),
        );
        assert!(found.is_empty(), "empty per the database");
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow adding-foreign-key-constraint\nalter table orders add constraint f foreign key (customer_id) references customers (id) not valid;";
        assert!(lint(&R, sql).is_empty());
    }
}
