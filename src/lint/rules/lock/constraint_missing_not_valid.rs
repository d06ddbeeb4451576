//! `constraint-missing-not-valid`
//!
//! `ALTER TABLE ... ADD CONSTRAINT` of a `CHECK` or a `FOREIGN KEY` checks every existing
//! row before it commits, and holds its lock for the whole scan: ACCESS EXCLUSIVE for a
//! CHECK (no reads or writes at all), SHARE ROW EXCLUSIVE on both tables for a foreign key
//! (no writes to either). Add it with `NOT VALID` instead, which only records the
//! constraint and checks new rows from then on, and run `ALTER TABLE ... VALIDATE
//! CONSTRAINT` in a later migration: validation scans under a SHARE UPDATE EXCLUSIVE lock,
//! which lets reads and writes through. (Validating in the same transaction as the
//! `NOT VALID` add gains nothing: the add's lock is held until commit.) A table created
//! earlier in the same migration, or one the database shows empty, is not reported.

use pg_query::protobuf::ConstrType;

use super::{added_constraint, altered_table_with_data, contype};
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct ConstraintMissingNotValid;

static META: RuleMeta = RuleMeta {
    id: "constraint-missing-not-valid",
    category: Category::Lock,
    default_level: Level::Error,
    summary: "ADD CONSTRAINT CHECK / FOREIGN KEY without NOT VALID scans the whole table under a strong lock",
    explanation: "ALTER TABLE ... ADD CONSTRAINT of a CHECK or a FOREIGN KEY checks every existing row before it commits, and holds its lock for the whole scan: ACCESS EXCLUSIVE for a CHECK (no reads or writes at all), SHARE ROW EXCLUSIVE on both tables for a foreign key (no writes to either). Add it with NOT VALID instead, which only records the constraint and checks new rows from then on, and run ALTER TABLE ... VALIDATE CONSTRAINT in a later migration: validation scans under a SHARE UPDATE EXCLUSIVE lock, which lets reads and writes through.",
};

impl Rule for ConstraintMissingNotValid {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let Some((_, key, cmds)) = altered_table_with_data(statement, ctx) else {
            return Vec::new();
        };
        cmds.into_iter()
            .filter_map(added_constraint)
            // NOT VALID, and NOT ENFORCED (which implies it), skip the scan.
            .filter(|c| !c.skip_validation && c.is_enforced)
            .filter_map(|c| {
                let name = match c.conname.as_str() {
                    "" => "<name>",
                    name => name,
                };
                let (what, locks) = match contype(c) {
                    ConstrType::ConstrCheck => (
                        "CHECK".to_string(),
                        format!("while holding an ACCESS EXCLUSIVE lock on {key}: no reads or writes until the scan ends"),
                    ),
                    ConstrType::ConstrForeign => {
                        let referenced = c
                            .pktable
                            .as_ref()
                            .map(|t| ctx.key(t))
                            .unwrap_or_default();
                        (
                            "FOREIGN KEY".to_string(),
                            format!("against {referenced} while holding SHARE ROW EXCLUSIVE locks on both tables: no writes to either until the scan ends"),
                        )
                    }
                    _ => return None,
                };
                Some(Hit::new(
                    format!(
                        "ADD CONSTRAINT {}{what} on {key} checks every existing row {locks}",
                        if c.conname.is_empty() {
                            String::new()
                        } else {
                            format!("{} ", c.conname)
                        }
                    ),
                    format!(
                        "add it with NOT VALID (ALTER TABLE {key} ADD CONSTRAINT {name} ... NOT VALID; new rows are checked at once), then ALTER TABLE {key} VALIDATE CONSTRAINT {name} in a later migration, which scans without blocking reads or writes"
                    ),
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::ConstraintMissingNotValid as R;
    use crate::lint::rules::testing::{ids, input, lint, lint_with};
    use crate::lint::DbFacts;

    #[test]
    fn a_validated_check_or_foreign_key_is_found() {
        let found = lint(
            &R,
            "alter table orders add constraint orders_total_positive check (total > 0);\n\
             alter table orders add constraint orders_customer_fk foreign key (customer_id) references customers (id);",
        );
        assert_eq!(
            ids(&found),
            [
                "constraint-missing-not-valid",
                "constraint-missing-not-valid"
            ]
        );
        assert_eq!(found[1].line, 2);
        assert!(found[0].message.contains("ACCESS EXCLUSIVE"));
        assert!(found[1].message.contains("public.customers"));
        assert!(found[1]
            .fix
            .contains("VALIDATE CONSTRAINT orders_customer_fk"));
    }

    #[test]
    fn not_valid_or_a_new_or_empty_table_is_fine() {
        assert!(lint(
            &R,
            "alter table orders add constraint c check (total > 0) not valid;\n\
             alter table orders add constraint f foreign key (customer_id) references customers (id) not valid;\n\
             alter table orders validate constraint c;"
        )
        .is_empty());
        assert!(lint(
            &R,
            "create table t (id int, n int);\nalter table t add constraint c check (n > 0);"
        )
        .is_empty());
        // Unique and primary keys are another rule's business.
        assert!(lint(&R, "alter table orders add constraint u unique (code);").is_empty());
        let facts = DbFacts {
            tables: [("public.orders".to_string(), false)].into_iter().collect(),
            ..Default::default()
        };
        let found = lint_with(
            &R,
            input("alter table orders add constraint c check (total > 0);"),
            Some(&facts),
            None,
        );
        assert!(found.is_empty(), "empty per the database");
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow constraint-missing-not-valid\nalter table orders add constraint c check (total > 0);";
        assert!(lint(&R, sql).is_empty());
    }
}
