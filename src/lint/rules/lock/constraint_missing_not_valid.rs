//! `constraint-missing-not-valid`
//!
//! `ALTER TABLE ... ADD CONSTRAINT` of a `CHECK` checks every existing row before it
//! commits, and holds its ACCESS EXCLUSIVE lock for the whole scan (no reads or writes at
//! all); a `FOREIGN KEY` does the same under SHARE ROW EXCLUSIVE locks on both tables,
//! which `adding-foreign-key-constraint` reports (once: not here too). Add it with `NOT VALID` instead, which only records the
//! constraint and checks new rows from then on, and run `ALTER TABLE ... VALIDATE
//! CONSTRAINT` in a later migration: validation scans under a SHARE UPDATE EXCLUSIVE lock,
//! which lets reads and writes through. Validating in the same transaction as the
//! `NOT VALID` add gains nothing, since the add's lock is held until commit, through the
//! validation scan: that `VALIDATE CONSTRAINT` is reported too (not in a
//! `-- no-transaction` migration, where the add commits by itself). `ADD COLUMN ...
//! CHECK (...)` checks every row the same way, and a column's CHECK cannot be `NOT VALID`
//! (even on a column added without a default: PostgreSQL still scans): add the column
//! without it, then the check as a table constraint `NOT VALID`. A table created earlier
//! in the same migration, or one the database shows empty, is not reported.

use pg_query::protobuf::{
    AlterTableCmd, AlterTableStmt, AlterTableType, ColumnDef, ConstrType, Constraint, Node,
    ObjectType, RangeVar,
};
use pg_query::NodeEnum;

use super::{
    added_column, added_constraint, alter_table, altered_table_with_data, column_constraints,
    contype, expression_sql, is, keyed, sql,
};
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct ConstraintMissingNotValid;

static META: RuleMeta = RuleMeta {
    id: "constraint-missing-not-valid",
    category: Category::Lock,
    default_level: Level::Error,
    summary: "ADD CONSTRAINT CHECK without NOT VALID (or a CHECK or FOREIGN KEY validated in the same transaction), or ADD COLUMN ... CHECK, scans the whole table under a strong lock",
    explanation: "ALTER TABLE ... ADD CONSTRAINT of a CHECK checks every existing row before it commits, and holds its ACCESS EXCLUSIVE lock for the whole scan: no reads or writes at all (a FOREIGN KEY does the same under SHARE ROW EXCLUSIVE locks on both tables: adding-foreign-key-constraint reports that one). Add it with NOT VALID instead, which only records the constraint and checks new rows from then on, and run ALTER TABLE ... VALIDATE CONSTRAINT in a later migration: validation scans under a SHARE UPDATE EXCLUSIVE lock, which lets reads and writes through. Validating in the same transaction as the NOT VALID add gains nothing, since the add's lock is held until commit, through the validation scan: that VALIDATE CONSTRAINT is reported too (not in a -- no-transaction migration, where the add commits by itself). ADD COLUMN ... CHECK (...) checks every row the same way, and a column's CHECK cannot be NOT VALID (even on a column added without a default: PostgreSQL still scans): add the column without it, then the check as a table constraint NOT VALID.",
};

impl Rule for ConstraintMissingNotValid {
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
                hits.extend(scanning_add(&key, c));
            } else if let Some(column) = added_column(cmd) {
                hits.extend(column_check(ctx, table, &key, cmd, column));
            } else if is(cmd, AlterTableType::AtValidateConstraint) && ctx.input.transactional {
                hits.extend(validated_under_the_add(
                    ctx,
                    statement.index,
                    &key,
                    &cmd.name,
                ));
            }
        }
        hits
    }
}

/// `ADD CONSTRAINT` of a CHECK or FOREIGN KEY that checks the existing rows.
fn scanning_add(key: &str, c: &Constraint) -> Option<Hit> {
    // NOT VALID, and NOT ENFORCED (which implies it), skip the scan.
    if c.skip_validation || !c.is_enforced {
        return None;
    }
    let locks = match contype(c) {
        ConstrType::ConstrCheck => format!(
            "while holding an ACCESS EXCLUSIVE lock on {key}: no reads or writes until the scan ends"
        ),
        // A foreign key's scan is `adding-foreign-key-constraint`'s finding: one finding
        // per problem, not two for the same statement.
        _ => return None,
    };
    let name = match c.conname.as_str() {
        "" => "<name>",
        name => name,
    };
    Some(Hit::new(
        format!(
            "ADD CONSTRAINT {}{} on {key} checks every existing row {locks}",
            if c.conname.is_empty() {
                String::new()
            } else {
                format!("{} ", c.conname)
            },
            kind(c),
        ),
        format!(
            "add it with NOT VALID (ALTER TABLE {key} ADD CONSTRAINT {name} ... NOT VALID; new rows are checked at once), then ALTER TABLE {key} VALIDATE CONSTRAINT {name} in a later migration, which scans without blocking reads or writes"
        ),
    ))
}

/// `ADD COLUMN ... CHECK (...)`: the check is verified against every row, and a column
/// constraint has no `NOT VALID`.
fn column_check(
    ctx: &Context<'_>,
    table: &RangeVar,
    key: &str,
    cmd: &AlterTableCmd,
    column: &ColumnDef,
) -> Option<Hit> {
    let checks: Vec<&Constraint> = column_constraints(column).filter(|c| is_check(c)).collect();
    if checks.is_empty() {
        return None;
    }
    let col = &column.colname;
    let add_column = add_column_without_checks(ctx, table, cmd, column)
        .map(|s| format!("{s} (without the CHECK)"))
        .unwrap_or_else(|| format!("add {col} to {key} without the CHECK"));
    let names = check_names(&table.relname, col, &checks);
    let adds: Vec<String> = checks
        .iter()
        .zip(&names)
        .map(|(c, name)| {
            let condition = c
                .raw_expr
                .as_deref()
                .and_then(expression_sql)
                .unwrap_or_else(|| "...".to_string());
            format!("ALTER TABLE {key} ADD CONSTRAINT {name} CHECK ({condition}) NOT VALID")
        })
        .collect();
    let validates: Vec<String> = names
        .iter()
        .map(|name| format!("ALTER TABLE {key} VALIDATE CONSTRAINT {name}"))
        .collect();
    Some(Hit::new(
        format!(
            "ADD COLUMN {col} ... CHECK on {key} checks every existing row while holding an ACCESS EXCLUSIVE lock on {key}: no reads or writes until the scan ends (a column's CHECK cannot be NOT VALID)"
        ),
        format!(
            "{add_column}; then {} (new rows are checked at once); then {} in a later migration, which scans without blocking reads or writes",
            adds.join("; "),
            validates.join("; ")
        ),
    ))
}

/// A CHECK that is verified when added (`NOT ENFORCED` ones are not).
fn is_check(c: &Constraint) -> bool {
    contype(c) == ConstrType::ConstrCheck && c.is_enforced
}

/// The `ADD COLUMN` as written, without the column's checks, on the table by its key.
fn add_column_without_checks(
    ctx: &Context<'_>,
    table: &RangeVar,
    cmd: &AlterTableCmd,
    column: &ColumnDef,
) -> Option<String> {
    let plain = ColumnDef {
        constraints: column
            .constraints
            .iter()
            .filter(|n| !matches!(&n.node, Some(NodeEnum::Constraint(c)) if is_check(c)))
            .cloned()
            .collect(),
        ..column.clone()
    };
    let cmd = AlterTableCmd {
        def: Some(Box::new(Node {
            node: Some(NodeEnum::ColumnDef(Box::new(plain))),
        })),
        ..cmd.clone()
    };
    sql(NodeEnum::AlterTableStmt(AlterTableStmt {
        relation: Some(keyed(ctx, table)),
        cmds: vec![Node {
            node: Some(NodeEnum::AlterTableCmd(Box::new(cmd))),
        }],
        objtype: ObjectType::ObjectTable as i32,
        ..Default::default()
    }))
}

/// The checks' names: as written, else PostgreSQL's default, `table_column_check`, then
/// `..._check1`, `..._check2`.
fn check_names(table: &str, column: &str, checks: &[&Constraint]) -> Vec<String> {
    let mut unnamed = 0;
    checks
        .iter()
        .map(|c| {
            if !c.conname.is_empty() {
                return c.conname.clone();
            }
            let suffix = match unnamed {
                0 => String::new(),
                n => n.to_string(),
            };
            unnamed += 1;
            format!("{table}_{column}_check{suffix}")
        })
        .collect()
}

/// `VALIDATE CONSTRAINT name` of a constraint this transaction added `NOT VALID`: the
/// add's lock is still held, so the validation scan blocks as a plain add would.
fn validated_under_the_add(
    ctx: &Context<'_>,
    statement: usize,
    key: &str,
    name: &str,
) -> Option<Hit> {
    let (added_at, c) = ctx
        .statements
        .iter()
        .take_while(|s| s.index < statement)
        .filter_map(|s| Some((s, alter_table(s.node)?)))
        .filter(|(_, (t, _))| ctx.key(t) == key)
        .flat_map(|(s, (_, cmds))| cmds.into_iter().map(move |cmd| (s, cmd)))
        .filter_map(|(s, cmd)| Some((s, added_constraint(cmd)?)))
        .filter(|(_, c)| c.skip_validation && c.conname == name)
        .last()?;
    let held = match contype(c) {
        ConstrType::ConstrCheck | ConstrType::ConstrNotnull => format!(
            "whose ACCESS EXCLUSIVE lock on {key} is held until commit: the validation scan runs under it, no reads or writes until it ends"
        ),
        ConstrType::ConstrForeign => format!(
            "whose SHARE ROW EXCLUSIVE locks on {key} and {} are held until commit: the validation scan runs under them, no writes to either until it ends",
            referenced(ctx, c)
        ),
        _ => return None,
    };
    Some(Hit::new(
        format!(
            "VALIDATE CONSTRAINT {name} on {key} runs in the same transaction as its ADD CONSTRAINT {name} {} ... NOT VALID (line {}), {held}; NOT VALID gains nothing",
            kind(c),
            ctx.input.line_of(added_at.start_of_code)
        ),
        format!(
            "move ALTER TABLE {key} VALIDATE CONSTRAINT {name} to a later migration of its own: once the ADD has committed, validation scans under a SHARE UPDATE EXCLUSIVE lock, which lets reads and writes through"
        ),
    ))
}

fn kind(c: &Constraint) -> &'static str {
    match contype(c) {
        ConstrType::ConstrCheck => "CHECK",
        ConstrType::ConstrForeign => "FOREIGN KEY",
        ConstrType::ConstrNotnull => "NOT NULL",
        _ => "",
    }
}

fn referenced(ctx: &Context<'_>, c: &Constraint) -> String {
    c.pktable.as_ref().map(|t| ctx.key(t)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::ConstraintMissingNotValid as R;
    use crate::lint::input::LintInput;
    use crate::lint::rules::testing::{ids, input, lint, lint_after, lint_with};
    use crate::lint::DbFacts;

    #[test]
    fn a_validated_check_is_found_and_a_foreign_key_is_left_to_its_own_rule() {
        let sql = "alter table orders add constraint orders_total_positive check (total > 0);\n\
             alter table orders add constraint orders_customer_fk foreign key (customer_id) references customers (id);";
        let found = lint(&R, sql);
        assert_eq!(ids(&found), ["constraint-missing-not-valid"]);
        assert!(found[0].message.contains("ACCESS EXCLUSIVE"));
        // The foreign key is reported once, by adding-foreign-key-constraint.
        let all = crate::lint::run(&[input(sql)], &Default::default(), None, None);
        let scans: Vec<&str> = all
            .iter()
            .filter(|f| f.line == 2 && f.message.contains("every row"))
            .map(|f| f.rule)
            .collect();
        assert_eq!(scans, ["adding-foreign-key-constraint"]);
    }

    #[test]
    fn not_valid_or_a_new_or_empty_table_is_fine() {
        assert!(lint(
            &R,
            "alter table orders add constraint c check (total > 0) not valid;\n\
             alter table orders add constraint f foreign key (customer_id) references customers (id) not valid;"
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

    #[test]
    fn validating_in_the_transaction_that_added_it_is_found_at_the_validate() {
        let found = lint(
            &R,
            "alter table accounts add constraint accounts_name_length check (length(display_name) <= 200) not valid;\n\
             alter table orders add constraint orders_customer_fk foreign key (customer_id) references customers (id) not valid;\n\
             alter table accounts validate constraint accounts_name_length;\n\
             alter table orders validate constraint orders_customer_fk;",
        );
        assert_eq!(
            ids(&found),
            [
                "constraint-missing-not-valid",
                "constraint-missing-not-valid"
            ]
        );
        assert_eq!(found[0].line, 3);
        assert!(found[0].message.contains(
            "VALIDATE CONSTRAINT accounts_name_length on public.accounts runs in the same transaction"
        ));
        assert!(found[0].message.contains("(line 1)"));
        assert!(found[0].message.contains("ACCESS EXCLUSIVE"));
        assert!(found[0].fix.contains(
            "move ALTER TABLE public.accounts VALIDATE CONSTRAINT accounts_name_length to a later migration"
        ));
        assert_eq!(found[1].line, 4);
        assert!(found[1]
            .message
            .contains("SHARE ROW EXCLUSIVE locks on public.orders and public.customers"));
    }

    #[test]
    fn validating_in_a_later_or_a_no_transaction_migration_is_fine() {
        let add = "alter table accounts add constraint accounts_name_length check (length(display_name) <= 200) not valid;";
        let validate = "alter table accounts validate constraint accounts_name_length;";
        assert!(lint_after(&R, &[add], validate).is_empty());
        // Each statement commits by itself: the add's lock is gone before the scan.
        let found = lint_with(
            &R,
            LintInput {
                transactional: false,
                ..input(&format!("{add}\n{validate}"))
            },
            None,
            None,
        );
        assert!(found.is_empty());
        // Another constraint, or the same name on another table, was not just added.
        assert!(lint(
            &R,
            &format!("{add}\nalter table accounts validate constraint accounts_phone_length;\nalter table orders validate constraint accounts_name_length;")
        )
        .is_empty());
    }

    #[test]
    fn the_allow_comment_silences_the_validate() {
        let sql = "alter table accounts add constraint c check (n > 0) not valid;\n\
                   -- ballast:allow constraint-missing-not-valid\n\
                   alter table accounts validate constraint c;";
        assert!(lint(&R, sql).is_empty());
    }

    #[test]
    fn a_check_on_an_added_column_is_found() {
        let found = lint(
            &R,
            "alter table orders add column discount_cents bigint check (discount_cents >= 0);",
        );
        assert_eq!(ids(&found), ["constraint-missing-not-valid"]);
        assert!(found[0]
            .message
            .contains("ADD COLUMN discount_cents ... CHECK on public.orders"));
        assert!(found[0].message.contains("ACCESS EXCLUSIVE"));
        assert!(found[0].fix.starts_with(
            "ALTER TABLE public.orders ADD COLUMN discount_cents bigint (without the CHECK); then ALTER TABLE public.orders ADD CONSTRAINT orders_discount_cents_check CHECK (discount_cents >= 0) NOT VALID"
        ), "{}", found[0].fix);
        assert!(found[0]
            .fix
            .contains("ALTER TABLE public.orders VALIDATE CONSTRAINT orders_discount_cents_check in a later migration"));
        // With a default too (PostgreSQL 15 scans, and fails on a row of -1), and named.
        let found = lint(
            &R,
            "alter table shop.orders add column c int not null default -1 constraint orders_c_positive check (c >= 0);",
        );
        assert_eq!(ids(&found), ["constraint-missing-not-valid"]);
        assert!(found[0].fix.contains(
            "ALTER TABLE shop.orders ADD COLUMN c int NOT NULL DEFAULT -1 (without the CHECK); then ALTER TABLE shop.orders ADD CONSTRAINT orders_c_positive CHECK (c >= 0) NOT VALID"
        ), "{}", found[0].fix);
        // Unnamed checks are named as PostgreSQL names them.
        let found = lint(
            &R,
            "alter table orders add column d int check (d >= 0) check (d < 100);",
        );
        assert!(found[0].fix.contains("ADD CONSTRAINT orders_d_check CHECK (d >= 0) NOT VALID; ALTER TABLE public.orders ADD CONSTRAINT orders_d_check1 CHECK (d < 100) NOT VALID"), "{}", found[0].fix);
    }

    #[test]
    fn an_added_column_without_a_check_or_on_a_new_table_is_fine() {
        assert!(lint(
            &R,
            "alter table orders add column discount_cents bigint;\n\
             alter table orders add constraint orders_discount_cents_check check (discount_cents >= 0) not valid;"
        )
        .is_empty());
        assert!(lint(
            &R,
            "create table t (id int);\nalter table t add column n int check (n > 0);"
        )
        .is_empty());
    }

    #[test]
    fn the_allow_comment_silences_a_column_check() {
        let sql = "-- ballast:allow constraint-missing-not-valid\nalter table orders add column n int check (n > 0);";
        assert!(lint(&R, sql).is_empty());
    }
}
