//! Migration lint: the review checklist teams write by hand ("will this lock the table?
//! is the downgrade complete? is the name schema-qualified?"), answered from the SQL
//! each migration will run, parsed with PostgreSQL's own parser (pg_query).
//!
//! Each rule lives in its own file under [`rules`], with a paragraph on the risk and the
//! safe rewrite; [`run`] parses a migration, gives every statement to every enabled rule,
//! applies `-- ballast:allow rule-id` comments and the configured levels, and returns
//! findings with the migration, line and fix.

pub mod catalog;
pub mod context;
pub mod facts;
pub mod input;
pub mod locks;
pub mod nodes;
pub mod rules;
pub mod suppress;

use serde::Serialize;

pub use context::{Context, DbFacts, Statement};
pub use input::LintInput;

/// How much a finding matters; `Off` disables a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Off,
    Warning,
    Error,
}

impl Level {
    pub fn parse(text: &str) -> Option<Level> {
        match text {
            "off" => Some(Level::Off),
            "warning" | "warn" => Some(Level::Warning),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

/// The four families of rules, which also set their default level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Takes a strong lock or rewrites a table that holds data.
    Lock,
    /// Breaks code that is running against the old schema.
    Breaking,
    /// Interacts badly with the migration's transaction.
    Transaction,
    /// Style that ages badly.
    Hygiene,
}

/// What a rule is, for `--help`-like listings, docs and config validation.
pub struct RuleMeta {
    pub id: &'static str,
    pub category: Category,
    pub default_level: Level,
    /// One line: what it finds.
    pub summary: &'static str,
    /// One paragraph: the risk, and the safe rewrite.
    pub explanation: &'static str,
}

/// What a rule reports about one statement (or migration); [`run`] adds the rest.
#[derive(Debug, Clone)]
pub struct Hit {
    pub message: String,
    pub fix: String,
    /// Byte offset in the migration's SQL, when the rule knows better than "the
    /// statement" (for whole-migration rules: where to point).
    pub at: Option<usize>,
    /// A risk no rewrite of the SQL avoids, only an operational step (what to run if
    /// the statement is interrupted): reported at most as a warning, so the advised
    /// form of a statement never fails `check`.
    pub advisory: bool,
}

impl Hit {
    pub fn new(message: impl Into<String>, fix: impl Into<String>) -> Hit {
        Hit {
            message: message.into(),
            fix: fix.into(),
            at: None,
            advisory: false,
        }
    }

    /// This hit, as an [`advisory`](Hit::advisory) one.
    pub fn advisory(self) -> Hit {
        Hit {
            advisory: true,
            ..self
        }
    }
}

pub trait Rule: Sync {
    fn meta(&self) -> &'static RuleMeta;
    /// Findings for one statement.
    fn check(&self, _statement: &Statement<'_>, _ctx: &Context<'_>) -> Vec<Hit> {
        Vec::new()
    }
    /// Findings about the migration as a whole (its mode, its downgrade, its count of
    /// statements). Called once per migration.
    fn check_migration(&self, _ctx: &Context<'_>) -> Vec<Hit> {
        Vec::new()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub level: Level,
    pub category: Category,
    /// The migration's label (`3_add_orders`, or an Alembic revision).
    pub migration: String,
    pub file: String,
    /// 1-based line in the SQL that was linted.
    pub line: usize,
    pub message: String,
    pub fix: String,
}

/// Rule levels after config: `[lint] levels = { rule-id = "warning" }`, `disable = [...]`.
#[derive(Debug, Clone, Default)]
pub struct LintSettings {
    pub levels: Vec<(String, Level)>,
    /// What the migrations are read for: the phase rules depend on it.
    pub reading: Reading,
}

/// What a lint run reads the migrations for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reading {
    /// The files, for review (`check`): a contract step marked post is what the
    /// release means to do after the rollout.
    #[default]
    Files,
    /// The plan of a deploy of this phase (`None`: a deploy without `--phase`, which
    /// runs everything now, the contract step included).
    Deploy(Option<crate::migrations::Phase>),
}

impl LintSettings {
    /// These settings, reading a deploy's plan of `phase` (`None`: no `--phase`).
    pub fn for_deploy(&self, phase: Option<crate::migrations::Phase>) -> LintSettings {
        LintSettings {
            reading: Reading::Deploy(phase),
            ..self.clone()
        }
    }

    pub fn level_of(&self, meta: &RuleMeta) -> Level {
        self.levels
            .iter()
            .rev()
            .find(|(id, _)| id == meta.id)
            .map(|(_, level)| *level)
            .unwrap_or(meta.default_level)
    }
}

/// Lints each migration; findings in migration order, then line order.
pub fn run(
    inputs: &[LintInput],
    settings: &LintSettings,
    db: Option<&DbFacts>,
    schema: Option<&str>,
) -> Vec<Finding> {
    run_rules(inputs, &rules::all(), settings, db, schema)
}

/// [`run`] with a chosen set of rules (tests give one).
pub fn run_rules(
    inputs: &[LintInput],
    rules: &[&'static dyn Rule],
    settings: &LintSettings,
    db: Option<&DbFacts>,
    schema: Option<&str>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    // Each migration is linted knowing what the ones before it declare.
    let mut catalog = db.map(|d| d.catalog.clone()).unwrap_or_default();
    for input in inputs {
        findings.extend(lint_one(input, rules, settings, db, schema, &mut catalog));
    }
    findings
}

fn lint_one(
    input: &LintInput,
    rules: &[&'static dyn Rule],
    settings: &LintSettings,
    db: Option<&DbFacts>,
    schema: Option<&str>,
    catalog: &mut catalog::Catalog,
) -> Vec<Finding> {
    let parsed = match context::parse(&input.sql) {
        Ok(parsed) => parsed,
        Err(message) => {
            return vec![Finding {
                rule: "parse-error",
                level: Level::Error,
                category: Category::Transaction,
                migration: input.label.clone(),
                file: input.file.clone(),
                line: 1,
                message: format!("PostgreSQL's parser rejects this migration: {message}"),
                fix: "fix the SQL; it would fail when applied".into(),
            }]
        }
    };
    let mut ctx = Context::new(input, &parsed, db, schema);
    ctx.catalog = catalog;
    let mut findings = Vec::new();
    let mut push = |rule: &dyn Rule, hit: Hit, statement: Option<&Statement<'_>>| {
        let meta = rule.meta();
        let level = match settings.level_of(meta) {
            level if hit.advisory => level.min(Level::Warning),
            level => level,
        };
        if level == Level::Off {
            return;
        }
        // A statement's finding is allowed by a comment above it; a migration's, by
        // one above the statement it points at, or at the top of the migration.
        let allowing = statement
            .or_else(|| hit.at.and_then(|at| ctx.statement_at(at)))
            .into_iter()
            .chain(if statement.is_none() {
                ctx.statements.first()
            } else {
                None
            });
        if allowing
            .into_iter()
            .any(|s| suppress::allows(s.text, meta.id))
            || suppress::allows(&input.whole_allows, meta.id)
        {
            return;
        }
        let offset = hit.at.or(statement.map(|s| s.start_of_code)).unwrap_or(0);
        let Some((level, fix)) = in_its_phase(meta.id, level, hit.fix, input, settings.reading)
        else {
            return;
        };
        findings.push(Finding {
            rule: meta.id,
            level,
            category: meta.category,
            migration: input.label.clone(),
            file: input.file.clone(),
            line: input.line_of(offset),
            message: hit.message,
            fix,
        });
    };
    for rule in rules {
        for hit in rule.check_migration(&ctx) {
            push(*rule, hit, None);
        }
        for statement in &ctx.statements {
            for hit in rule.check(statement, &ctx) {
                push(*rule, hit, Some(statement));
            }
        }
    }
    findings.sort_by_key(|f| f.line);
    drop(ctx);
    catalog.learn(schema, parsed.nodes());
    if input.phase == crate::migrations::Phase::Post {
        catalog.learn_post(schema, parsed.nodes(), &input.label);
    }
    findings
}

/// A finding's level and fix, knowing the migration's release phase and what the
/// run reads the migrations for (`None`: the finding does not apply).
/// - A contract change ([`rules::breaking::CONTRACT`]) in a post-phase migration is
///   the step the release plans after the rollout: a warning when reviewing the files
///   or deploying `--phase post`; a deploy without `--phase` runs it now, before the
///   old code is gone, so there it keeps its level, and the fix says so.
/// - In a pre-phase migration the fix also says how to make it the contract step.
/// - `pre-needs-post` matters where `--phase pre` may hold the post migration back:
///   reviewing the files, or such a deploy; a deploy of everything runs them in order.
fn in_its_phase(
    rule: &str,
    level: Level,
    fix: String,
    input: &LintInput,
    reading: Reading,
) -> Option<(Level, String)> {
    use crate::migrations::Phase;
    if rule == "pre-needs-post" {
        return matches!(reading, Reading::Files | Reading::Deploy(Some(Phase::Pre)))
            .then_some((level, fix));
    }
    if !rules::breaking::CONTRACT.contains(&rule) {
        return Some((level, fix));
    }
    Some(match (input.phase, reading) {
        (Phase::Post, Reading::Files | Reading::Deploy(Some(Phase::Post))) => (
            level.min(Level::Warning),
            "the contract step, as this migration is marked (phase post): deploy it after the rollout, once no instance of the old code runs (`ballast deploy --phase pre`, roll out, then `ballast deploy --phase post`)".into(),
        ),
        (Phase::Post, Reading::Deploy(_)) => (
            level,
            "this migration is marked phase post, the contract step: a deploy without --phase runs it now, while the old code may still run; deploy with `--phase pre` before the rollout and `--phase post` after it".into(),
        ),
        (Phase::Pre, _) => (
            level,
            format!(
                "{fix}; or, when the code that stops using it rolls out in this release, mark the migration `{}` and deploy it after the rollout (`ballast deploy --phase post`)",
                input.phase_marker()
            ),
        ),
    })
}

/// Whether any finding stops a deploy.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.level == Level::Error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::Phase;

    fn lint_as(sql: &str, phase: Phase, file: &str) -> Vec<Finding> {
        let input = LintInput {
            phase,
            file: file.into(),
            ..rules::testing::input(sql)
        };
        // The table exists and holds data: the drop is a real contract change.
        let db = DbFacts {
            tables: [("public.orders".to_string(), true)].into(),
            ..Default::default()
        };
        run(&[input], &LintSettings::default(), Some(&db), None)
            .into_iter()
            .filter(|f| f.category == Category::Breaking)
            .collect()
    }

    #[test]
    fn a_contract_change_is_a_warning_in_a_post_migration_and_an_error_with_the_way_out_in_a_pre_one(
    ) {
        let sql = "alter table orders drop column note;";
        let pre = lint_as(sql, Phase::Pre, "1_test.sql");
        assert_eq!(pre.len(), 1, "{pre:?}");
        assert_eq!(
            (pre[0].rule, pre[0].level),
            ("ban-drop-column", Level::Error)
        );
        assert!(
            pre[0]
                .fix
                .contains("mark the migration `-- ballast:phase post`"),
            "{}",
            pre[0].fix
        );
        let post = lint_as(sql, Phase::Post, "1_test.sql");
        assert_eq!(
            (post[0].rule, post[0].level),
            ("ban-drop-column", Level::Warning)
        );
        assert!(post[0].fix.contains("the contract step"), "{}", post[0].fix);
        // An Alembic revision is marked with a Python comment.
        let alembic = lint_as(sql, Phase::Pre, "versions/a1_drop.py");
        assert!(
            alembic[0].fix.contains("`# ballast:phase post`"),
            "{}",
            alembic[0].fix
        );
        // A deploy without --phase runs it now: it keeps its level; --phase post does not.
        let deploy = |phase| LintSettings {
            reading: Reading::Deploy(phase),
            ..Default::default()
        };
        let post_input = LintInput {
            phase: Phase::Post,
            ..rules::testing::input(sql)
        };
        let db = DbFacts {
            tables: [("public.orders".to_string(), true)].into(),
            ..Default::default()
        };
        let now = run(
            std::slice::from_ref(&post_input),
            &deploy(None),
            Some(&db),
            None,
        );
        let now: Vec<&Finding> = now.iter().filter(|f| f.rule == "ban-drop-column").collect();
        assert_eq!(now[0].level, Level::Error);
        assert!(
            now[0].fix.contains("a deploy without --phase runs it now"),
            "{}",
            now[0].fix
        );
        let after = run(&[post_input], &deploy(Some(Phase::Post)), Some(&db), None);
        assert!(after
            .iter()
            .any(|f| f.rule == "ban-drop-column" && f.level == Level::Warning));
        // Not a contract change: a truncate that cascades stays an error in post too.
        let cascade = lint_as("truncate orders cascade;", Phase::Post, "1_test.sql");
        assert!(
            cascade.iter().all(|f| f.level == Level::Error),
            "{cascade:?}"
        );
    }
}
