//! What rules see: each statement of a migration (its parse tree and its text), and
//! what is known about the tables it touches: created earlier in this migration, and
//! (with a database) whether they exist and hold any data.

use std::collections::{HashMap, HashSet};

use pg_query::protobuf::RangeVar;
use pg_query::NodeEnum;

use super::catalog::Catalog;
use super::input::LintInput;

/// A migration's statements, parsed. Owned, so [`Statement`]s can borrow from it.
/// Each is kept with (start of its comments, start of its code, end).
pub struct Parsed {
    statements: Vec<(NodeEnum, usize, usize, usize)>,
}

/// Parses with PostgreSQL's own grammar; `Err` carries the parser's message.
pub fn parse(sql: &str) -> Result<Parsed, String> {
    let result =
        pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).map_err(|e| e.to_string())?;
    let mut statements = Vec::new();
    let mut previous_end = 0;
    for raw in result.protobuf.stmts {
        let start = (raw.stmt_location.max(0) as usize).min(sql.len());
        let end = match raw.stmt_len {
            0 => sql.len(),
            len => (start + len as usize).min(sql.len()),
        };
        // The comments above a statement belong to it (where `ballast:allow` goes),
        // from the line after the previous statement ended.
        let gap = &sql[previous_end.min(start)..start];
        let comments = match gap.find('\n') {
            Some(newline) if previous_end > 0 => previous_end + newline + 1,
            Some(_) | None if previous_end == 0 => 0,
            _ => start,
        };
        previous_end = end;
        let Some(node) = raw.stmt.and_then(|n| n.node) else {
            continue;
        };
        statements.push((node, comments, start, end));
    }
    Ok(Parsed { statements })
}

impl Parsed {
    pub fn nodes(&self) -> impl Iterator<Item = &NodeEnum> {
        self.statements.iter().map(|(node, ..)| node)
    }

    /// Each statement and where its code is in the SQL (comments before it left out).
    pub fn spans(&self) -> impl Iterator<Item = (&NodeEnum, std::ops::Range<usize>)> {
        self.statements
            .iter()
            .map(|(node, _, start, end)| (node, *start..*end))
    }
}

/// `schema.table`, the schema defaulting to `schema` (else `public`). Names are as the
/// parser gives them: unquoted ones already folded to lower case, quoted ones kept.
pub fn table_key(schema: Option<&str>, rv: &RangeVar) -> String {
    let schema = if rv.schemaname.is_empty() {
        schema.unwrap_or("public")
    } else {
        rv.schemaname.as_str()
    };
    format!("{schema}.{}", rv.relname)
}

/// Nothing known beyond the migration (no database, no earlier migrations).
static NOTHING_KNOWN: std::sync::LazyLock<Catalog> = std::sync::LazyLock::new(Catalog::default);

/// One statement of a migration.
pub struct Statement<'a> {
    pub node: &'a NodeEnum,
    /// Its text, with the comments before it (where `ballast:allow` may be).
    pub text: &'a str,
    /// Byte offset of its first keyword in the migration's SQL.
    pub start_of_code: usize,
    /// Position in the migration, from 0.
    pub index: usize,
}

/// What the database says about its tables (gathered once per run, when connected).
#[derive(Debug, Clone, Default)]
pub struct DbFacts {
    /// `schema.table` (names as stored) → whether it holds any data (has any pages).
    pub tables: HashMap<String, bool>,
    /// The session's search_path (`current_schemas(false)`): where an unqualified name
    /// is looked up, as PostgreSQL will when the migration runs.
    pub search_path: Vec<String>,
    /// Its indexes, checks, column types, keys and partitioned tables.
    pub catalog: Catalog,
    /// `schema.index` → `schema.table` of every index (names as stored).
    pub indexes: HashMap<String, String>,
}

pub struct Context<'a> {
    pub input: &'a LintInput,
    pub statements: Vec<Statement<'a>>,
    pub db: Option<&'a DbFacts>,
    /// The configured schema: unqualified names resolve to it, and objects created
    /// without a schema are flagged when it is not `public`.
    pub schema: Option<&'a str>,
    /// What the database and the earlier migrations of this lint run declare.
    pub catalog: &'a Catalog,
    /// `schema.table` created by statement N (index → names).
    created: Vec<(usize, String)>,
}

impl<'a> Context<'a> {
    pub fn new(
        input: &'a LintInput,
        parsed: &'a Parsed,
        db: Option<&'a DbFacts>,
        schema: Option<&'a str>,
    ) -> Context<'a> {
        let sql = input.sql.as_str();
        let statements: Vec<Statement<'a>> = parsed
            .statements
            .iter()
            .enumerate()
            .map(|(index, (node, comments, start, end))| Statement {
                node,
                text: &sql[*comments..*end],
                start_of_code: start + code_offset(&sql[*start..*end]),
                index,
            })
            .collect();
        let mut ctx = Context {
            input,
            statements,
            db,
            schema,
            catalog: &NOTHING_KNOWN,
            created: Vec::new(),
        };
        let created: Vec<(usize, String)> = ctx
            .statements
            .iter()
            .filter_map(|s| {
                // `IF NOT EXISTS` may find the table there already, with its data.
                let rv = match s.node {
                    NodeEnum::CreateStmt(c) if !c.if_not_exists => c.relation.as_ref(),
                    NodeEnum::CreateTableAsStmt(c) if !c.if_not_exists => {
                        c.into.as_ref().and_then(|i| i.rel.as_ref())
                    }
                    _ => None,
                }?;
                Some((s.index, ctx.key(rv)))
            })
            .collect();
        ctx.created = created;
        ctx
    }

    /// `schema.table`, the schema defaulting to the configured one ([`table_key`]).
    pub fn key(&self, rv: &RangeVar) -> String {
        table_key(self.schema, rv)
    }

    /// The key [`Self::catalog`] knows `rv` by: an unqualified name is looked up in the
    /// configured schema, then along the session's search_path, as PostgreSQL will.
    pub fn catalog_key(&self, rv: &RangeVar) -> String {
        let key = self.key(rv);
        if !rv.schemaname.is_empty() || self.catalog.column_types.contains_key(&key) {
            return key;
        }
        self.db
            .into_iter()
            .flat_map(|db| &db.search_path)
            .map(|schema| format!("{schema}.{}", rv.relname))
            .find(|k| self.catalog.column_types.contains_key(k))
            .unwrap_or(key)
    }

    /// What is known of the table `rv` just before `statement`: the catalog's entries
    /// for it (from the database and earlier migrations), plus what the statements of
    /// this migration before `statement` declare. Keyed by [`Self::catalog_key`].
    pub fn known_before(&self, rv: &RangeVar, statement: usize) -> (String, Catalog) {
        let key = self.catalog_key(rv);
        // This migration names the table as written; the catalog may know it by its
        // search_path schema. Learn under the written name, then file under the known.
        let written = self.key(rv);
        let mut local = Catalog::default();
        let base = self.catalog;
        if let Some(v) = base.indexes.get(&key) {
            local.indexes.insert(written.clone(), v.clone());
        }
        if let Some(v) = base.checks.get(&key) {
            local.checks.insert(written.clone(), v.clone());
        }
        if let Some(v) = base.column_types.get(&key) {
            local.column_types.insert(written.clone(), v.clone());
        }
        if let Some(v) = base.primary_keys.get(&key) {
            local.primary_keys.insert(written.clone(), v.clone());
        }
        if base.partitioned.contains(&key) {
            local.partitioned.insert(written.clone());
        }
        local.learn(
            self.schema,
            self.statements
                .iter()
                .take_while(|s| s.index < statement)
                .map(|s| s.node),
        );
        if written != key {
            local.merge_table(&written, &key);
        }
        (key, local)
    }

    /// Whether a validated `CHECK (column IS NOT NULL)` on `rv` exists just before
    /// `statement`: from the database or an earlier migration, or added or validated
    /// by an earlier statement of this one.
    pub fn not_null_proven_before(&self, rv: &RangeVar, column: &str, statement: usize) -> bool {
        let (key, known) = self.known_before(rv, statement);
        known.proves_not_null(&key, column)
    }

    /// What the database says of `rv`: `Some(holds data)` when it exists (an unqualified
    /// name looked up along the search_path, as PostgreSQL will), `None` when not.
    fn in_database(&self, db: &DbFacts, rv: &RangeVar) -> Option<bool> {
        if !rv.schemaname.is_empty() {
            return db
                .tables
                .get(&format!("{}.{}", rv.schemaname, rv.relname))
                .copied();
        }
        let fallback = [
            self.schema.unwrap_or("public").to_string(),
            "public".to_string(),
        ];
        let path = if db.search_path.is_empty() {
            &fallback[..]
        } else {
            &db.search_path[..]
        };
        path.iter()
            .find_map(|schema| db.tables.get(&format!("{schema}.{}", rv.relname)).copied())
    }

    /// Whether `rv` existed before this run: not created earlier in this migration and,
    /// with a database, there already (a table an earlier pending migration creates
    /// does not). Without a database, assumed. A change that breaks running code, or a
    /// lock, can only hurt an object that existed: a deploy from an empty database
    /// (a new environment, CI, a new tenant) breaks nobody.
    pub fn existed_before_run(&self, rv: &RangeVar, statement: usize) -> bool {
        if self.created_before(rv, statement) || self.replaced_in_run(rv) {
            return false;
        }
        match self.db {
            Some(db) => self.in_database(db, rv).is_some(),
            None => true,
        }
    }

    /// What the database says of the index `index` (a table-less name, as `DROP INDEX`
    /// writes it): `Some(its table holds data)` when it exists, `None` when not;
    /// without a database, `Some(true)`. Looked up along the search_path, as PostgreSQL will.
    pub fn index_in_database(&self, index: &RangeVar) -> Option<bool> {
        let Some(db) = self.db else {
            return Some(true);
        };
        let table = if index.schemaname.is_empty() {
            db.search_path
                .iter()
                .find_map(|schema| db.indexes.get(&format!("{schema}.{}", index.relname)))
        } else {
            db.indexes
                .get(&format!("{}.{}", index.schemaname, index.relname))
        }?;
        Some(db.tables.get(table).copied().unwrap_or(true))
    }

    /// Dropped by an earlier migration of this run: the table of that name now is a
    /// new one (the database's facts describe the old one and its rows).
    fn replaced_in_run(&self, rv: &RangeVar) -> bool {
        let dropped = &self.catalog.dropped;
        dropped.contains(&self.key(rv)) || dropped.contains(&self.catalog_key(rv))
    }

    /// Created by an earlier statement of this migration.
    pub fn created_before(&self, rv: &RangeVar, statement: usize) -> bool {
        let key = self.key(rv);
        self.created
            .iter()
            .any(|(i, k)| *i < statement && *k == key)
    }

    /// Whether locking or rewriting `rv` at `statement` can hurt: false when the
    /// table is new in this migration, or the database says it does not exist yet
    /// (an earlier pending migration creates it) or holds no data. Without a
    /// database, an existing table is assumed to hold data.
    pub fn holds_data(&self, rv: &RangeVar, statement: usize) -> bool {
        if self.created_before(rv, statement) || self.replaced_in_run(rv) {
            return false;
        }
        match self.db {
            Some(db) => self.in_database(db, rv).unwrap_or(false),
            None => true,
        }
    }

    /// The statement whose code starts at or most recently before byte `at`.
    pub fn statement_at(&self, at: usize) -> Option<&Statement<'a>> {
        self.statements.iter().rev().find(|s| s.start_of_code <= at)
    }

    /// Tables created anywhere in this migration.
    pub fn created_tables(&self) -> HashSet<&str> {
        self.created.iter().map(|(_, k)| k.as_str()).collect()
    }
}

/// Bytes of whitespace and comments before the first keyword.
fn code_offset(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut i = 0;
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes[i..].starts_with(b"--") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if bytes[i..].starts_with(b"/*") {
            match text[i + 2..].find("*/") {
                Some(end) => i += 2 + end + 2,
                None => return i,
            }
        } else {
            return i;
        }
    }
}

/// A type's name as the parser has it, without `pg_catalog.`: `int4`, `timestamp`.
pub fn type_name(type_name: &pg_query::protobuf::TypeName) -> String {
    let names = super::nodes::strings(&type_name.names);
    let names: Vec<&str> = names.into_iter().filter(|n| *n != "pg_catalog").collect();
    names.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::input::{Downgrade, LintInput};

    fn input(sql: &str) -> LintInput {
        LintInput {
            label: "1_x".into(),
            file: "1_x.sql".into(),
            sql: sql.into(),
            transactional: true,
            downgrade: Downgrade::Present,
            whole_allows: String::new(),
            phase: crate::migrations::Phase::Pre,
        }
    }

    #[test]
    fn statements_keep_their_comments_and_point_at_their_code() {
        let i = input(
            "-- first\ncreate table a (id int);\n\n-- ballast:allow x\ncreate index on a (id);\n",
        );
        let parsed = parse(&i.sql).unwrap();
        let ctx = Context::new(&i, &parsed, None, None);
        assert_eq!(ctx.statements.len(), 2);
        assert!(ctx.statements[1].text.contains("ballast:allow x"));
        assert_eq!(i.line_of(ctx.statements[1].start_of_code), 5);
        assert_eq!(i.line_of(ctx.statements[0].start_of_code), 2);
    }

    #[test]
    fn a_table_created_earlier_holds_no_data() {
        let i = input(
            "create table shop.a (id int); create index on shop.a (id); create index on b (id);",
        );
        let parsed = parse(&i.sql).unwrap();
        let ctx = Context::new(&i, &parsed, None, Some("shop"));
        let rv = |s: &Statement| match s.node {
            NodeEnum::IndexStmt(x) => x.relation.clone().unwrap(),
            _ => unreachable!(),
        };
        assert!(!ctx.holds_data(&rv(&ctx.statements[1]), 1));
        assert!(
            ctx.holds_data(&rv(&ctx.statements[2]), 2),
            "unknown without a database"
        );
        let facts = DbFacts {
            tables: [("shop.b".to_string(), false)].into_iter().collect(),
            ..Default::default()
        };
        let ctx = Context::new(&i, &parsed, Some(&facts), Some("shop"));
        assert!(
            !ctx.holds_data(&rv(&ctx.statements[2]), 2),
            "empty per the database"
        );
    }

    fn index_table(s: &Statement) -> RangeVar {
        match s.node {
            NodeEnum::IndexStmt(x) => x.relation.clone().unwrap(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn if_not_exists_and_quoted_names_are_not_taken_for_the_new_table() {
        let i = input(
            "create table if not exists a (id int); create index on a (id);\n\
             create table \"Orders\" (id int); create index on orders (id); create index on \"Orders\" (id);",
        );
        let parsed = parse(&i.sql).unwrap();
        let ctx = Context::new(&i, &parsed, None, None);
        assert!(
            ctx.holds_data(&index_table(&ctx.statements[1]), 1),
            "a may exist already"
        );
        assert!(
            ctx.holds_data(&index_table(&ctx.statements[3]), 3),
            "orders is not \"Orders\""
        );
        assert!(!ctx.holds_data(&index_table(&ctx.statements[4]), 4));
    }

    #[test]
    fn unqualified_names_are_found_along_the_search_path() {
        let i = input("create index on accounts (email);");
        let parsed = parse(&i.sql).unwrap();
        let facts = DbFacts {
            tables: [("public.accounts".to_string(), true)]
                .into_iter()
                .collect(),
            search_path: vec!["public".into()],
            ..Default::default()
        };
        // The configured schema is `app`, but the session will find public.accounts.
        let ctx = Context::new(&i, &parsed, Some(&facts), Some("app"));
        assert!(ctx.holds_data(&index_table(&ctx.statements[0]), 0));
    }
}
