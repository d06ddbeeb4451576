//! `ban-drop-database`
//!
//! `DROP DATABASE` removes a whole database, data and all: every application connected
//! to it fails, and only a restore brings it back. It has no place in a schema
//! migration, which runs on every environment the project deploys to. Retire a database
//! by hand, once nothing uses it any more and a backup has been taken.

use pg_query::NodeEnum;

use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct BanDropDatabase;

static META: RuleMeta = RuleMeta {
    id: "ban-drop-database",
    category: Category::Breaking,
    default_level: Level::Error,
    summary: "DROP DATABASE removes a whole database in a migration",
    explanation: "DROP DATABASE removes a whole database, data and all: every application connected to it fails, and only a restore brings it back. It has no place in a schema migration, which runs on every environment the project deploys to. Retire a database by hand, once nothing uses it any more and a backup has been taken.",
};

impl Rule for BanDropDatabase {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, _ctx: &Context<'_>) -> Vec<Hit> {
        let NodeEnum::DropdbStmt(drop) = statement.node else {
            return Vec::new();
        };
        vec![Hit::new(
            format!(
                "DROP DATABASE {} removes a whole database: everything using it fails, and its data is gone",
                drop.dbname
            ),
            "remove it from the migration; retire the database by hand once nothing uses it, after a backup",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::BanDropDatabase as R;
    use crate::lint::rules::testing::{ids, lint};

    #[test]
    fn dropping_a_database_is_found() {
        let found = lint(&R, "drop database if exists legacy;");
        assert_eq!(ids(&found), ["ban-drop-database"]);
        assert!(found[0].message.contains("legacy"));
    }

    #[test]
    fn dropping_other_things_is_fine() {
        assert!(lint(&R, "drop schema legacy;").is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow ban-drop-database\ndrop database legacy;";
        assert!(lint(&R, sql).is_empty());
    }
}
