//! `prefer-timestamptz`
//!
//! `timestamp` (`timestamp without time zone`) stores a wall-clock reading with no zone:
//! the same value means different instants on servers or sessions with different
//! `TimeZone` settings, and an hour of local times happens twice when the clocks go back,
//! so ordering and intervals across a DST change are wrong. `timestamptz` stores an
//! instant (UTC inside) and converts on the way in and out, at the same 8 bytes. Use
//! `timestamptz` for new columns, `ADD COLUMN` and `ALTER COLUMN ... TYPE`.

use super::{column_type_hits, display_type};
use crate::lint::context::type_name;
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct PreferTimestamptz;

static META: RuleMeta = RuleMeta {
    id: "prefer-timestamptz",
    category: Category::Hygiene,
    default_level: Level::Warning,
    summary: "timestamp without time zone stores wall-clock time, ambiguous across zones and DST",
    explanation: "timestamp (timestamp without time zone) stores a wall-clock reading with no zone: the same value means different instants on servers or sessions with different TimeZone settings, and an hour of local times happens twice when the clocks go back. timestamptz stores an instant and converts on the way in and out, at the same 8 bytes. Use timestamptz.",
};

impl Rule for PreferTimestamptz {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, _ctx: &Context<'_>) -> Vec<Hit> {
        column_type_hits(statement.node, |column, t| {
            (type_name(t) == "timestamp").then(|| {
                (
                    format!(
                        "{} is {}: a wall-clock time with no zone, ambiguous across servers and DST changes",
                        column.describe(),
                        display_type(t)
                    ),
                    "use timestamptz (timestamp with time zone)".to_string(),
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::PreferTimestamptz as R;
    use crate::lint::rules::testing::{ids, lint};

    #[test]
    fn timestamp_without_time_zone_is_found() {
        let found = lint(
            &R,
            "create table orders (\n  id bigint primary key,\n  placed_at timestamp not null\n);",
        );
        assert_eq!(ids(&found), ["prefer-timestamptz"]);
        assert_eq!(found[0].line, 3);
        assert!(found[0].message.contains("orders.placed_at"));
        let found = lint(
            &R,
            "alter table orders add column shipped_at timestamp without time zone, alter column placed_at type timestamp(3);",
        );
        assert_eq!(ids(&found), ["prefer-timestamptz", "prefer-timestamptz"]);
    }

    #[test]
    fn timestamptz_is_fine() {
        assert!(lint(
            &R,
            "create table orders (placed_at timestamptz, shipped_at timestamp with time zone);\nalter table orders alter column placed_at type timestamptz;"
        )
        .is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow prefer-timestamptz\ncreate table orders (placed_at timestamp);";
        assert!(lint(&R, sql).is_empty());
    }
}
