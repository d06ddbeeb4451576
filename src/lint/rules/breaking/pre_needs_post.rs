//! `pre-needs-post`
//!
//! A migration marked `ballast:phase post` runs after the rollout; `ballast deploy
//! --phase pre` holds it back and runs the pre-phase migrations, also those that come
//! after it. A pre-phase migration that uses a table or column the post-phase one
//! creates then fails (the table is not there yet), and the expand step of the release
//! breaks before any code rolls out. Creating things is expand work: leave it in the
//! pre phase (remove the mark), or mark the migration that needs it post as well.

use std::collections::HashSet;

use pg_query::protobuf::RangeVar;

use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct PreNeedsPost;

static META: RuleMeta = RuleMeta {
    id: "pre-needs-post",
    category: Category::Breaking,
    default_level: Level::Error,
    summary: "a pre-phase migration uses a table or column that an earlier post-phase migration creates",
    explanation: "`ballast deploy --phase pre` holds back the migrations marked `ballast:phase post` and runs the pre-phase ones, also those after them: a pre-phase migration that uses a table or column a held-back post-phase migration creates fails, and the expand step breaks before the rollout. Creating is expand work: leave it in the pre phase (remove the mark), or mark the migration that needs it post as well.",
};

impl Rule for PreNeedsPost {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        if ctx.input.phase != crate::migrations::Phase::Pre || ctx.catalog.from_post.is_empty() {
            return Vec::new();
        }
        let Ok(parsed) = pg_query::parse(statement.text, pg_query::ParserOptions::DEFAULT) else {
            return Vec::new();
        };
        let tables: HashSet<String> = parsed
            .tables
            .iter()
            .map(|(name, _)| ctx.key(&range_var(name)))
            .collect();
        let words = identifiers(statement.text);
        let mut hits = Vec::new();
        for made in &ctx.catalog.from_post {
            if !tables.contains(&made.table) {
                continue;
            }
            let what = match &made.column {
                None => format!("table {}", made.table),
                Some(column) if words.contains(&column.to_lowercase()) => {
                    format!("column {} of {}", column, made.table)
                }
                Some(_) => continue,
            };
            hits.push(Hit::new(
                format!(
                    "this pre-phase migration uses {what}, which {} creates; that migration is marked phase post, so `deploy --phase pre` holds it back and this statement fails",
                    made.migration
                ),
                format!(
                    "remove the `ballast:phase post` mark from {} (creating is expand work), or mark this migration `{}` too",
                    made.migration,
                    ctx.input.phase_marker()
                ),
            ));
        }
        hits
    }
}

/// A table name as `pg_query` lists it (`schema.table` or `table`).
fn range_var(name: &str) -> RangeVar {
    let (schema, table) = match name.rsplit_once('.') {
        Some((schema, table)) => (schema.to_string(), table.to_string()),
        None => (String::new(), name.to_string()),
    };
    RangeVar {
        schemaname: schema,
        relname: table,
        ..Default::default()
    }
}

/// The identifiers a statement's text holds, lowercased, quotes removed.
fn identifiers(text: &str) -> HashSet<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '"' || c == '$'))
        .map(|w| w.trim_matches('"').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::PreNeedsPost as R;
    use crate::lint::input::LintInput;
    use crate::lint::rules::testing::input;
    use crate::lint::{run_rules, LintSettings, Reading};
    use crate::migrations::Phase;

    fn lint(migrations: &[(&str, Phase)]) -> Vec<crate::lint::Finding> {
        let inputs: Vec<LintInput> = migrations
            .iter()
            .enumerate()
            .map(|(i, (sql, phase))| LintInput {
                label: format!("{}_m", i + 1),
                phase: *phase,
                ..input(sql)
            })
            .collect();
        run_rules(&inputs, &[&R], &Default::default(), None, None)
    }

    #[test]
    fn a_pre_migration_using_a_column_a_post_one_adds_is_found() {
        let found = lint(&[
            ("alter table users add column email_v2 text;", Phase::Post),
            (
                "create index users_email_v2 on users (email_v2);",
                Phase::Pre,
            ),
        ]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].migration, "2_m");
        assert!(
            found[0].message.contains("column email_v2 of public.users"),
            "{}",
            found[0].message
        );
        assert!(found[0].message.contains("1_m"), "{}", found[0].message);
        assert!(
            found[0].fix.contains("-- ballast:phase post"),
            "{}",
            found[0].fix
        );
    }

    #[test]
    fn a_pre_migration_using_a_table_a_post_one_creates_is_found() {
        let found = lint(&[
            ("create table audit (id bigint primary key);", Phase::Post),
            ("insert into public.audit values (1);", Phase::Pre),
        ]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].message.contains("table public.audit"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn what_the_post_migration_does_not_create_is_not_found() {
        // Another column of the same table; a post migration after it; a pre pair.
        assert!(lint(&[
            ("alter table users add column email_v2 text;", Phase::Post),
            ("create index users_name on users (name);", Phase::Pre),
        ])
        .is_empty());
        assert!(lint(&[
            ("create index users_name on users (name);", Phase::Pre),
            ("alter table users add column email_v2 text;", Phase::Post),
        ])
        .is_empty());
        assert!(lint(&[
            ("alter table users add column email_v2 text;", Phase::Pre),
            (
                "create index users_email_v2 on users (email_v2);",
                Phase::Pre
            ),
        ])
        .is_empty());
        // A post migration after a post one may use it.
        assert!(lint(&[
            ("alter table users add column email_v2 text;", Phase::Post),
            ("alter table users drop column email;", Phase::Post),
        ])
        .is_empty());
        // A deploy of everything runs them in order: nothing to say.
        let inputs: Vec<LintInput> = [
            ("alter table users add column email_v2 text;", Phase::Post),
            (
                "create index users_email_v2 on users (email_v2);",
                Phase::Pre,
            ),
        ]
        .iter()
        .enumerate()
        .map(|(i, (sql, phase))| LintInput {
            label: format!("{}_m", i + 1),
            phase: *phase,
            ..input(sql)
        })
        .collect();
        for reading in [Reading::Deploy(None), Reading::Deploy(Some(Phase::Post))] {
            let settings = LintSettings {
                reading,
                ..Default::default()
            };
            assert!(
                run_rules(&inputs, &[&R], &settings, None, None).is_empty(),
                "{reading:?}"
            );
        }
        // Dropping in post what pre uses is the ordinary contract step.
        assert!(lint(&[
            ("alter table users drop column email;", Phase::Post),
            ("create index users_email on users (email);", Phase::Pre),
        ])
        .is_empty());
    }
}
