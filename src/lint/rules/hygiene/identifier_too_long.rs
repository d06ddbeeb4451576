//! `identifier-too-long`
//!
//! PostgreSQL keeps the first 63 bytes of a name (NAMEDATALEN - 1) and drops the rest
//! with only a NOTICE: two long names that share their first 63 bytes then collide
//! ("relation already exists", or one constraint silently standing for two), and code,
//! ORMs and later migrations that use the full name do not find the object. Choose a name
//! of at most 63 bytes (fewer characters when they are not ASCII). Checked: `CREATE
//! TABLE` (the table, its columns and constraint names), `CREATE INDEX`, `CREATE
//! SEQUENCE`, `CREATE VIEW`, `ALTER TABLE ... ADD COLUMN` / `ADD CONSTRAINT`, and
//! `RENAME ... TO`.
//!
//! PostgreSQL's parser has already cut the names in the parse tree, so the full name is
//! read back from the statement's tokens.

use pg_query::protobuf::Token;
use pg_query::NodeEnum;

use super::{columns, table_constraints, Change};
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct IdentifierTooLong;

/// NAMEDATALEN - 1: the bytes PostgreSQL keeps of a name.
const MAX_BYTES: usize = 63;

static META: RuleMeta = RuleMeta {
    id: "identifier-too-long",
    category: Category::Hygiene,
    default_level: Level::Warning,
    summary: "a name over 63 bytes is silently truncated by PostgreSQL",
    explanation: "PostgreSQL keeps the first 63 bytes of a name (NAMEDATALEN - 1) and drops the rest with only a NOTICE: two long names that share their first 63 bytes then collide, and code, ORMs and later migrations that use the full name do not find the object. Choose a name of at most 63 bytes.",
};

/// The names a statement gives to new objects: (what, name as the parser kept it).
fn declared(node: &NodeEnum) -> Vec<(&'static str, &str)> {
    let mut found = Vec::new();
    match node {
        NodeEnum::CreateStmt(c) => {
            if let Some(rv) = &c.relation {
                found.push(("table", rv.relname.as_str()));
            }
        }
        NodeEnum::IndexStmt(i) => found.push(("index", i.idxname.as_str())),
        NodeEnum::CreateSeqStmt(s) => {
            if let Some(rv) = &s.sequence {
                found.push(("sequence", rv.relname.as_str()));
            }
        }
        NodeEnum::ViewStmt(v) => {
            if let Some(rv) = &v.view {
                found.push(("view", rv.relname.as_str()));
            }
        }
        NodeEnum::RenameStmt(r) => found.push(("new name", r.newname.as_str())),
        _ => {}
    }
    for column in columns(node) {
        if column.change == Change::AlterType {
            continue;
        }
        found.push(("column", column.name));
        for c in column.constraints() {
            found.push(("constraint", c.conname.as_str()));
        }
    }
    for (_, c) in table_constraints(node) {
        found.push(("constraint", c.conname.as_str()));
    }
    found.retain(|(_, name)| !name.is_empty());
    found
}

/// `name` as PostgreSQL keeps it: at most 63 bytes, cut at a character boundary.
fn truncated(name: &str) -> &str {
    let mut end = name.len().min(MAX_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Identifiers over 63 bytes in `text`: (full name, byte offset in `text`).
fn long_identifiers(text: &str) -> Vec<(String, usize)> {
    let Ok(scan) = pg_query::scan(text) else {
        return Vec::new();
    };
    scan.tokens
        .iter()
        .filter(|t| t.token == Token::Ident as i32)
        .filter_map(|t| {
            let raw = text.get(t.start as usize..t.end as usize)?;
            let name = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                // Unquoted: folded to lower case (ASCII only, as in UTF-8 databases).
                None => raw.to_ascii_lowercase(),
            };
            (name.len() > MAX_BYTES).then_some((name, t.start as usize))
        })
        .collect()
}

impl Rule for IdentifierTooLong {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        // Only names the parser may have cut are worth scanning for.
        let names: Vec<(&str, &str)> = declared(statement.node)
            .into_iter()
            .filter(|(_, name)| name.len() + 3 >= MAX_BYTES)
            .collect();
        if names.is_empty() {
            return Vec::new();
        }
        let long = long_identifiers(statement.text);
        let base = (statement.text.as_ptr() as usize)
            .checked_sub(ctx.input.sql.as_ptr() as usize)
            .filter(|b| *b <= ctx.input.sql.len());
        let mut reported: Vec<&str> = Vec::new();
        let mut hits = Vec::new();
        for (what, kept) in names {
            let Some((full, offset)) = long.iter().find(|(full, _)| truncated(full) == kept) else {
                continue;
            };
            if reported.contains(&full.as_str()) {
                continue;
            }
            reported.push(full);
            let mut hit = Hit::new(
                format!(
                    "the {what} name {full} is {} bytes: PostgreSQL keeps only the first {MAX_BYTES} ({kept}), so names sharing them collide and the full name finds nothing",
                    full.len()
                ),
                format!("choose a name of at most {MAX_BYTES} bytes"),
            );
            hit.at = base.map(|b| b + offset);
            hits.push(hit);
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::IdentifierTooLong as R;
    use crate::lint::rules::testing::{ids, lint};

    fn long(prefix: &str) -> String {
        format!("{prefix}_{}", "x".repeat(70))
    }

    #[test]
    fn long_names_are_found() {
        let sql = format!(
            "create table orders (id bigint);\ncreate table shipments (\n  id bigint,\n  {} bigint\n);",
            long("carrier")
        );
        let found = lint(&R, &sql);
        assert_eq!(ids(&found), ["identifier-too-long"]);
        assert_eq!(found[0].line, 4);
        assert!(found[0].message.contains("column"), "{}", found[0].message);
        for sql in [
            format!("create table {} (id bigint);", long("Orders")),
            format!("create index {} on orders (id);", long("orders_idx")),
            format!("alter table orders add column {} text;", long("note")),
            format!(
                "alter table orders add constraint \"{}\" check (id > 0);",
                long("Positive")
            ),
            format!(
                "create table t (id bigint constraint {} primary key);",
                long("t_pk")
            ),
            format!("alter table orders rename to {};", long("orders")),
        ] {
            assert_eq!(ids(&lint(&R, &sql)), ["identifier-too-long"], "{sql}");
        }
    }

    #[test]
    fn names_of_63_bytes_or_long_references_are_fine() {
        let name = "x".repeat(63);
        assert!(lint(&R, &format!("create table {name} (id bigint, {name} int);")).is_empty());
        // Only the names a statement declares count, not the ones it refers to.
        assert!(lint(
            &R,
            &format!("create index orders_idx on {} (id);", long("orders"))
        )
        .is_empty());
        // Three bytes a character: 21 characters make 63 bytes.
        assert!(lint(
            &R,
            &format!("create table \"{}\" (id int);", "€".repeat(21))
        )
        .is_empty());
        assert_eq!(
            ids(&lint(
                &R,
                &format!("create table \"{}\" (id int);", "€".repeat(22))
            )),
            ["identifier-too-long"]
        );
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = format!(
            "-- ballast:allow identifier-too-long\ncreate index {} on orders (id);",
            long("orders_idx")
        );
        assert!(lint(&R, &sql).is_empty());
    }
}
