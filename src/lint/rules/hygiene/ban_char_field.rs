//! `ban-char-field`
//!
//! `char(n)` (`character(n)`, and plain `char`, which is `char(1)`) pads every value with
//! spaces to `n` characters, strips them again in comparisons and on the way to `text`, and
//! is no faster or smaller than `text` in PostgreSQL: it only adds surprises (`'a '` and
//! `'a'` compare equal, `length()` ignores the padding, concatenation loses it). Use
//! `text`, with a `CHECK (length(col) = n)` or `<= n` when the length matters.

use super::{column_type_hits, display_type};
use crate::lint::context::type_name;
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct BanCharField;

static META: RuleMeta = RuleMeta {
    id: "ban-char-field",
    category: Category::Hygiene,
    default_level: Level::Warning,
    summary: "char(n) pads values with spaces and is no faster than text",
    explanation: "char(n) (character(n), and plain char, which is char(1)) pads every value with spaces to n characters and strips them again in comparisons, and is no faster or smaller than text in PostgreSQL: it only adds surprises. Use text, with a CHECK constraint on the length when it matters.",
};

impl Rule for BanCharField {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, _ctx: &Context<'_>) -> Vec<Hit> {
        column_type_hits(statement.node, |column, t| {
            (type_name(t) == "bpchar").then(|| {
                (
                    format!(
                        "{} is {}: values are padded with spaces, and it is no faster than text",
                        column.describe(),
                        display_type(t)
                    ),
                    format!(
                        "use text, with CHECK (length({}) <= n) if the length matters",
                        column.name
                    ),
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::BanCharField as R;
    use crate::lint::rules::testing::{ids, lint};

    #[test]
    fn char_n_is_found() {
        let found = lint(
            &R,
            "create table countries (\n  code char(2) primary key,\n  name text\n);",
        );
        assert_eq!(ids(&found), ["ban-char-field"]);
        assert_eq!(found[0].line, 2);
        assert!(found[0].message.contains("char(2)"));
        let found = lint(
            &R,
            "alter table countries add column iso3 character(3), alter column code type char;",
        );
        assert_eq!(ids(&found), ["ban-char-field", "ban-char-field"]);
    }

    #[test]
    fn text_or_varchar_is_fine() {
        assert!(lint(
            &R,
            "create table countries (code text check (length(code) = 2), name varchar, flag \"char\");"
        )
        .is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "create table countries (\n  -- ballast:allow ban-char-field\n  code char(2)\n);";
        assert!(lint(&R, sql).is_empty());
    }
}
