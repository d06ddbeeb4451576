//! What the lint knows of the schema a migration runs against beyond the migration
//! itself: the database's indexes, check constraints, column types, primary keys and
//! partitioned tables (read once, when connected), plus what the earlier migrations of
//! the same lint run declare. Rules ask it whether an index already covers a foreign
//! key, whether a validated check already proves a column NOT NULL, what type a
//! referenced key has, whether a table is partitioned.
//!
//! Tables are keyed `schema.table` as [`super::Context::key`] names them; the database's
//! names are as stored. What a migration declares is learnt after it is linted
//! ([`Catalog::learn`]); what holds just before one of its statements is
//! [`super::Context::not_null_proven_before`]'s question.

use std::collections::{HashMap, HashSet};

use pg_query::protobuf::{AlterTableType, ConstrType, Constraint, ObjectType, RangeVar};
use pg_query::NodeEnum;

use super::context::table_key;
use super::context::type_name;
use super::nodes::{
    alter_commands, columns, contype, not_null_column, qualified, strings, table_constraints,
    Change,
};

/// A CHECK constraint: its name, the column it proves NOT NULL (for `CHECK (col IS NOT
/// NULL)`), and whether it is validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub not_null: Option<String>,
    pub validated: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// table → the leading plain columns of each index (partial ones left out; primary
    /// keys and unique constraints included).
    pub indexes: HashMap<String, Vec<Vec<String>>>,
    /// table → its CHECK constraints.
    pub checks: HashMap<String, Vec<Check>>,
    /// table → column → type name as the parser and `pg_type` spell it (`int4`, `int8`,
    /// `text`); serial types are their integer type.
    pub column_types: HashMap<String, HashMap<String, String>>,
    /// table → primary key columns.
    pub primary_keys: HashMap<String, Vec<String>>,
    /// Partitioned tables (`PARTITION BY`).
    pub partitioned: HashSet<String>,
    /// Tables an earlier migration of this run dropped: a table of that name later in
    /// the run is a new one, with none of the old one's rows.
    pub dropped: HashSet<String>,
    /// What earlier post-phase migrations of this run create: a pre-phase migration
    /// after them that needs it breaks when `--phase pre` holds them back.
    pub from_post: Vec<FromPost>,
}

/// A table or column a post-phase migration creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromPost {
    /// `schema.table`.
    pub table: String,
    /// `None`: the table itself.
    pub column: Option<String>,
    /// The migration's label.
    pub migration: String,
}

/// `serial` is `int4` with a sequence; a foreign key to it is to an `int4`.
pub fn storage_type(name: &str) -> String {
    match name {
        "serial" | "serial4" | "int" | "integer" => "int4",
        "bigserial" | "serial8" | "bigint" => "int8",
        "smallserial" | "serial2" | "smallint" => "int2",
        other => other,
    }
    .to_string()
}

impl Catalog {
    /// Whether an index on `table` leads with `columns`, in that order.
    pub fn indexed(&self, table: &str, columns: &[String]) -> bool {
        self.indexes
            .get(table)
            .is_some_and(|all| all.iter().any(|lead| lead.starts_with(columns)))
    }

    /// Whether a validated `CHECK (column IS NOT NULL)` exists on `table`.
    pub fn proves_not_null(&self, table: &str, column: &str) -> bool {
        self.checks.get(table).is_some_and(|checks| {
            checks
                .iter()
                .any(|c| c.validated && c.not_null.as_deref() == Some(column))
        })
    }

    pub fn column_type(&self, table: &str, column: &str) -> Option<&str> {
        self.column_types
            .get(table)
            .and_then(|c| c.get(column))
            .map(String::as_str)
    }

    /// Moves what is known under table key `from` to `to` (the same table, named two ways).
    pub fn merge_table(&mut self, from: &str, to: &str) {
        if let Some(v) = self.indexes.remove(from) {
            self.indexes.entry(to.to_string()).or_default().extend(v);
        }
        if let Some(v) = self.checks.remove(from) {
            self.checks.entry(to.to_string()).or_default().extend(v);
        }
        if let Some(v) = self.column_types.remove(from) {
            self.column_types
                .entry(to.to_string())
                .or_default()
                .extend(v);
        }
        if let Some(v) = self.primary_keys.remove(from) {
            self.primary_keys.insert(to.to_string(), v);
        }
        if self.partitioned.remove(from) {
            self.partitioned.insert(to.to_string());
        }
    }

    fn forget(&mut self, table: &str) {
        self.indexes.remove(table);
        self.checks.remove(table);
        self.column_types.remove(table);
        self.primary_keys.remove(table);
        self.partitioned.remove(table);
    }

    /// Learns what statements declare, unqualified names taken to be in `schema`.
    pub fn learn<'n>(
        &mut self,
        schema: Option<&str>,
        nodes: impl IntoIterator<Item = &'n NodeEnum>,
    ) {
        for node in nodes {
            self.learn_statement(schema, node);
        }
    }

    /// Notes what a post-phase migration's statements create (see
    /// [`Catalog::from_post`]).
    pub fn learn_post<'n>(
        &mut self,
        schema: Option<&str>,
        nodes: impl IntoIterator<Item = &'n NodeEnum>,
        migration: &str,
    ) {
        for node in nodes {
            let created = match node {
                NodeEnum::CreateStmt(c) => c.relation.as_ref(),
                NodeEnum::ViewStmt(v) => v.view.as_ref(),
                NodeEnum::CreateTableAsStmt(c) => c.into.as_ref().and_then(|i| i.rel.as_ref()),
                _ => None,
            };
            if let Some(rv) = created {
                self.from_post.push(FromPost {
                    table: table_key(schema, rv),
                    column: None,
                    migration: migration.to_string(),
                });
            }
            for column in columns(node) {
                if column.change == Change::AddColumn {
                    self.from_post.push(FromPost {
                        table: table_key(schema, column.table),
                        column: Some(column.name.to_string()),
                        migration: migration.to_string(),
                    });
                }
            }
        }
    }

    fn learn_statement(&mut self, schema: Option<&str>, node: &NodeEnum) {
        let key = |rv: &RangeVar| table_key(schema, rv);
        match node {
            NodeEnum::CreateStmt(create) => {
                if let (Some(table), Some(_)) = (&create.relation, &create.partspec) {
                    self.partitioned.insert(key(table));
                }
            }
            NodeEnum::IndexStmt(index) => {
                if let (Some(table), None) = (&index.relation, &index.where_clause) {
                    let lead = index
                        .index_params
                        .iter()
                        .map_while(|n| match &n.node {
                            Some(NodeEnum::IndexElem(e)) if !e.name.is_empty() => {
                                Some(e.name.clone())
                            }
                            _ => None,
                        })
                        .collect();
                    self.add_index(key(table), lead);
                }
            }
            NodeEnum::AlterTableStmt(alter) => {
                if let Some(table) = &alter.relation {
                    let key = key(table);
                    for (subtype, cmd) in alter_commands(&alter.cmds) {
                        match subtype {
                            AlterTableType::AtValidateConstraint => {
                                for check in self.checks.entry(key.clone()).or_default() {
                                    if check.name == cmd.name {
                                        check.validated = true;
                                    }
                                }
                            }
                            AlterTableType::AtDropConstraint => {
                                if let Some(checks) = self.checks.get_mut(&key) {
                                    checks.retain(|c| c.name != cmd.name);
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            NodeEnum::DropStmt(drop) if drop.remove_type == ObjectType::ObjectTable as i32 => {
                for object in &drop.objects {
                    let Some(NodeEnum::List(names)) = &object.node else {
                        continue;
                    };
                    if let Some(rv) = qualified(&names.items) {
                        self.forget(&key(&rv));
                        self.dropped.insert(key(&rv));
                    }
                }
            }
            _ => {}
        }
        for column in columns(node) {
            let key = key(column.table);
            if let Some(t) = column.type_name() {
                self.column_types
                    .entry(key.clone())
                    .or_default()
                    .insert(column.name.to_string(), storage_type(&type_name(t)));
            }
            if column.change == Change::AlterType {
                continue;
            }
            for c in column.constraints() {
                self.learn_constraint(&key, c, Some(column.name));
            }
        }
        for (table, c) in table_constraints(node) {
            self.learn_constraint(&key(table), c, None);
        }
    }

    fn learn_constraint(&mut self, table: &str, c: &Constraint, column: Option<&str>) {
        let keys: Vec<String> = match column {
            Some(column) => vec![column.to_string()],
            None => strings(&c.keys).into_iter().map(String::from).collect(),
        };
        match contype(c) {
            ConstrType::ConstrPrimary => {
                self.primary_keys.insert(table.to_string(), keys.clone());
                self.add_index(table.to_string(), keys);
            }
            ConstrType::ConstrUnique if c.where_clause.is_none() => {
                self.add_index(table.to_string(), keys);
            }
            ConstrType::ConstrCheck => {
                let not_null = not_null_column(c.raw_expr.as_deref()).map(String::from);
                let name = if c.conname.is_empty() {
                    // PostgreSQL's default name: table_column_check.
                    let table = table.rsplit('.').next().unwrap_or(table);
                    match (not_null.as_deref(), column) {
                        (Some(col), _) | (None, Some(col)) => format!("{table}_{col}_check"),
                        (None, None) => format!("{table}_check"),
                    }
                } else {
                    c.conname.clone()
                };
                self.checks
                    .entry(table.to_string())
                    .or_default()
                    .push(Check {
                        name,
                        not_null,
                        validated: !c.skip_validation,
                    });
            }
            _ => {}
        }
    }

    fn add_index(&mut self, table: String, lead: Vec<String>) {
        if !lead.is_empty() {
            self.indexes.entry(table).or_default().push(lead);
        }
    }
}

/// The column a check's expression, as `pg_get_expr` prints it, proves NOT NULL.
pub(crate) fn check_expression_column(expr: &str) -> Option<String> {
    // `pg_get_expr` gives `(email IS NOT NULL)`; parse it as PostgreSQL would.
    let parsed = pg_query::parse(
        &format!("select 1 where {expr}"),
        pg_query::ParserOptions::DEFAULT,
    )
    .ok()?;
    let stmt = parsed
        .protobuf
        .stmts
        .first()?
        .stmt
        .as_ref()?
        .node
        .as_ref()?;
    let NodeEnum::SelectStmt(select) = stmt else {
        return None;
    };
    not_null_column(select.where_clause.as_deref()).map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::context::parse;
    use crate::lint::rules::testing::input;

    fn learnt(sql: &str) -> Catalog {
        let input = input(sql);
        let parsed = parse(&input.sql).unwrap();
        let mut catalog = Catalog::default();
        catalog.learn(None, parsed.nodes());
        catalog
    }

    #[test]
    fn indexes_keys_and_types_are_learnt() {
        let c = learnt(
            "create table orders (id bigserial primary key, account_id int not null, code text unique);\n\
             create index on orders (account_id, code);\n\
             create index orders_partial on orders (code) where code is not null;",
        );
        assert!(c.indexed("public.orders", &["id".into()]));
        assert!(c.indexed("public.orders", &["account_id".into()]));
        assert!(c.indexed("public.orders", &["code".into()]));
        assert!(!c.indexed("public.orders", &["code".into(), "id".into()]));
        assert_eq!(c.primary_keys["public.orders"], ["id"]);
        assert_eq!(c.column_type("public.orders", "id"), Some("int8"));
        assert_eq!(c.column_type("public.orders", "account_id"), Some("int4"));
    }

    #[test]
    fn a_not_null_check_is_proof_once_validated() {
        let c = learnt(
            "alter table accounts add constraint accounts_email_nn check (email is not null) not valid;",
        );
        assert!(!c.proves_not_null("public.accounts", "email"));
        let c = learnt(
            "alter table accounts add constraint accounts_email_nn check (email is not null) not valid;\n\
             alter table accounts validate constraint accounts_email_nn;",
        );
        assert!(c.proves_not_null("public.accounts", "email"));
        let c = learnt(
            "alter table accounts add constraint accounts_phone_len check (length(phone) > 3) not valid;\n\
             alter table accounts validate constraint accounts_phone_len;",
        );
        assert!(!c.proves_not_null("public.accounts", "email"));
        let c = learnt(
            "alter table accounts add check (email is not null);\n\
             alter table accounts drop constraint accounts_email_check;",
        );
        assert!(!c.proves_not_null("public.accounts", "email"));
    }

    #[test]
    fn a_dropped_table_is_forgotten() {
        let c = learnt(
            "create table orders (id bigint primary key);\ndrop table if exists public.orders;",
        );
        assert!(!c.indexed("public.orders", &["id".into()]));
        assert_eq!(c.column_type("public.orders", "id"), None);
    }

    #[test]
    fn partitioned_tables_are_learnt() {
        let c = learnt("create table m (taken_at timestamptz) partition by range (taken_at);");
        assert!(c.partitioned.contains("public.m"));
    }

    #[test]
    fn a_check_expression_from_the_catalog_is_read() {
        assert_eq!(
            check_expression_column("(email IS NOT NULL)").as_deref(),
            Some("email")
        );
        assert_eq!(check_expression_column("(length(phone) > 3)"), None);
    }
}
