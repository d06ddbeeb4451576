//! `prefer-text-field`
//!
//! `varchar(n)` puts the limit in the column's type: raising `n` later is an `ALTER COLUMN
//! ... TYPE` that takes an ACCESS EXCLUSIVE lock, and lowering it rewrites the table while
//! holding that lock. `text` stores the same way, and a `CHECK (length(col) <= n)`
//! constraint can be replaced without a rewrite (add the new one `NOT VALID`, `VALIDATE`
//! it, drop the old one). Use `text` with a CHECK; `varchar` without a length is `text`
//! by another name and is not reported.

use super::{column_type_hits, display_type, typmods};
use crate::lint::context::type_name;
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct PreferTextField;

static META: RuleMeta = RuleMeta {
    id: "prefer-text-field",
    category: Category::Hygiene,
    default_level: Level::Warning,
    summary: "varchar(n) needs a locking ALTER to change its length; text with a CHECK does not",
    explanation: "varchar(n) puts the limit in the column's type: raising n later is an ALTER COLUMN ... TYPE that takes an ACCESS EXCLUSIVE lock, and lowering it rewrites the table under that lock. text stores the same way, and a CHECK (length(col) <= n) constraint can be replaced without a rewrite (add the new one NOT VALID, VALIDATE it, drop the old one). Use text with a CHECK.",
};

impl Rule for PreferTextField {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, _ctx: &Context<'_>) -> Vec<Hit> {
        column_type_hits(statement.node, |column, t| {
            let limit = *typmods(t).first()?;
            (type_name(t) == "varchar").then(|| {
                (
                    format!(
                        "{} is {}: changing the limit later needs a locking ALTER COLUMN TYPE",
                        column.describe(),
                        display_type(t)
                    ),
                    format!("use text with CHECK (length({}) <= {limit})", column.name),
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::PreferTextField as R;
    use crate::lint::rules::testing::{ids, lint};

    #[test]
    fn varchar_with_a_length_is_found() {
        let found = lint(
            &R,
            "create table sellers (\n  id bigint primary key,\n  email character varying(255)\n);",
        );
        assert_eq!(ids(&found), ["prefer-text-field"]);
        assert_eq!(found[0].line, 3);
        assert!(found[0].fix.contains("<= 255"));
        let found = lint(
            &R,
            "alter table sellers add column name varchar(80), alter column email type varchar(320);",
        );
        assert_eq!(ids(&found), ["prefer-text-field", "prefer-text-field"]);
    }

    #[test]
    fn text_or_varchar_without_a_length_is_fine() {
        assert!(lint(
            &R,
            "create table sellers (email text check (length(email) <= 255), name varchar);\nalter table sellers alter column name type text;"
        )
        .is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql =
            "-- ballast:allow prefer-text-field\nalter table sellers add column name varchar(80);";
        assert!(lint(&R, sql).is_empty());
    }
}
