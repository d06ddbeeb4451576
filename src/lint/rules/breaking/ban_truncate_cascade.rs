//! `ban-truncate-cascade`
//!
//! `TRUNCATE ... CASCADE` empties the tables it names and also, silently, every table
//! with a foreign key to them, and every table referencing those in turn: a migration
//! meant to clear one staging table can wipe orders, invoices and whatever else points
//! at it, with nothing in the statement to say so and no undo short of a restore. Name
//! every table to be emptied and leave CASCADE out: PostgreSQL then refuses if a
//! referencing table was missed, and the list in the migration is what gets emptied.

use pg_query::protobuf::DropBehavior;
use pg_query::NodeEnum;

use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct BanTruncateCascade;

static META: RuleMeta = RuleMeta {
    id: "ban-truncate-cascade",
    category: Category::Breaking,
    default_level: Level::Error,
    summary: "TRUNCATE ... CASCADE silently empties every table that references the ones named",
    explanation: "TRUNCATE ... CASCADE empties the tables it names and also, silently, every table with a foreign key to them, and every table referencing those in turn: a migration meant to clear one table can wipe whatever points at it, with nothing in the statement to say so and no undo short of a restore. Name every table to be emptied and leave CASCADE out: PostgreSQL then refuses if a referencing table was missed.",
};

impl Rule for BanTruncateCascade {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let NodeEnum::TruncateStmt(truncate) = statement.node else {
            return Vec::new();
        };
        if truncate.behavior() != DropBehavior::DropCascade {
            return Vec::new();
        }
        let tables: Vec<String> = truncate
            .relations
            .iter()
            .filter_map(|n| match &n.node {
                Some(NodeEnum::RangeVar(rv)) => Some(ctx.key(rv)),
                _ => None,
            })
            .collect();
        vec![Hit::new(
            format!(
                "TRUNCATE {} CASCADE also empties, silently, every table that references {} (and those referencing them)",
                tables.join(", "),
                if tables.len() == 1 { "it" } else { "them" }
            ),
            "name every table to empty in the TRUNCATE and leave CASCADE out, so PostgreSQL refuses if one was missed",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::BanTruncateCascade as R;
    use crate::lint::rules::testing::{ids, lint};

    #[test]
    fn truncate_cascade_is_found() {
        let found = lint(&R, "truncate table staging.imports cascade;");
        assert_eq!(ids(&found), ["ban-truncate-cascade"]);
        assert!(found[0].message.contains("staging.imports"));
    }

    #[test]
    fn naming_every_table_is_fine() {
        assert!(lint(&R, "truncate staging.imports, staging.import_rows;").is_empty());
        assert!(lint(&R, "truncate staging.imports restrict;").is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow ban-truncate-cascade\ntruncate staging.imports cascade;";
        assert!(lint(&R, sql).is_empty());
    }
}
