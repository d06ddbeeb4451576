//! `missing-downgrade`
//!
//! When a deploy goes wrong, ballast's recovery ladder steps the schema back one
//! migration at a time with each migration's downgrade, and falls back to restoring the
//! backup (slow, and it loses every write since it was taken) only when it cannot. A
//! migration without a downgrade, with an empty one (which would mark it undone while
//! its changes stay), or with one that raises stops that ladder. Write the down migration
//! (`N_name.down.sql`, `down.sql`, or Alembic's `downgrade()`); when the change truly
//! cannot be undone (dropped data, say), say so in a comment in the migration with
//! `-- ballast:allow missing-downgrade`. Alembic merge points, whose downgrade has
//! nothing to do, are not reported.

use crate::lint::input::Downgrade;
use crate::lint::suppress::allows;
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta};

pub struct MissingDowngrade;

static META: RuleMeta = RuleMeta {
    id: "missing-downgrade",
    category: Category::Hygiene,
    default_level: Level::Warning,
    summary: "a migration without a working downgrade cannot be stepped back; recovery must restore a backup",
    explanation: "When a deploy goes wrong, the recovery ladder steps the schema back one migration at a time with each migration's downgrade, and falls back to restoring the backup (slow, and it loses every write since it was taken) only when it cannot. A migration without a downgrade, with an empty one, or with one that raises stops that ladder. Write the down migration (.down.sql, down.sql, or Alembic's downgrade()); when the change truly cannot be undone, say so in a comment and allow this rule for the migration.",
};

impl Rule for MissingDowngrade {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check_migration(&self, ctx: &Context<'_>) -> Vec<Hit> {
        let message = match ctx.input.downgrade {
            Downgrade::Present | Downgrade::NotNeeded => return Vec::new(),
            Downgrade::Missing => {
                "no downgrade: recovery cannot step back past this migration and must restore a backup"
            }
            Downgrade::Empty => {
                "the downgrade is empty: stepping back would mark it undone while its changes stay, so recovery must restore a backup"
            }
            Downgrade::Raises => {
                "the downgrade raises: stepping back past it fails, and recovery must restore a backup"
            }
        };
        // Migration findings have no statement for the framework to read an allow
        // comment from: any line of the migration may carry it.
        if allows(&ctx.input.sql, META.id) {
            return Vec::new();
        }
        vec![Hit::new(
            message,
            "write the down migration (.down.sql / down.sql / -- migrate:down / Flyway's U<version>__ file / Alembic downgrade()); if it truly cannot be undone, say so in a comment with ballast:allow missing-downgrade (# in a Python revision)",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::MissingDowngrade as R;
    use crate::lint::input::Downgrade;
    use crate::lint::rules::testing::{ids, input, lint, lint_with};

    fn with(downgrade: Downgrade, sql: &str) -> Vec<crate::lint::Finding> {
        let mut i = input(sql);
        i.downgrade = downgrade;
        lint_with(&R, i, None, None)
    }

    #[test]
    fn a_missing_empty_or_raising_downgrade_is_found() {
        let found = with(Downgrade::Missing, "\ncreate table t (id bigint);");
        assert_eq!(ids(&found), ["missing-downgrade"]);
        assert_eq!(found[0].line, 1);
        assert!(found[0].message.starts_with("no downgrade"));
        let found = with(Downgrade::Empty, "create table t (id bigint);");
        assert!(found[0].message.contains("is empty"));
        let found = with(Downgrade::Raises, "create table t (id bigint);");
        assert!(found[0].message.contains("raises"));
    }

    #[test]
    fn a_downgrade_or_a_merge_point_is_fine() {
        assert!(lint(&R, "create table t (id bigint);").is_empty());
        assert!(with(Downgrade::NotNeeded, "select 1;").is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "create table t (id bigint);\n-- the old values are gone: no way back\n-- ballast:allow missing-downgrade\nalter table t drop column note;";
        assert!(with(Downgrade::Missing, sql).is_empty());
        assert_eq!(
            ids(&with(
                Downgrade::Missing,
                "-- ballast:allow prefer-timestamptz\nselect 1;"
            )),
            ["missing-downgrade"]
        );
    }
}
