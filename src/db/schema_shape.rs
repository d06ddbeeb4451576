//! The shape of a database's schema, as lines of text: every relation, column (type,
//! NOT NULL, default), index (and whether it is valid), constraint, view definition,
//! function, trigger, enum and extension in the user's schemas. Taken before the
//! upgrade and again after a recovery rung, so the run can say "back where it started"
//! only when the schema proves it, and name what differs when it does not.
//!
//! Bookkeeping tables (ballast's ledger and journal, Alembic's version table) are left
//! out: their rows are the migration state, compared separately, and the first deploy
//! creates them. So are schemas the run cannot have touched ([`Scope`]): another
//! project's deploy or partition maintenance there is not this run's doing.

use std::collections::BTreeSet;

use sqlx::postgres::PgConnection;

use super::DbError;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SchemaShape {
    lines: BTreeSet<String>,
}

/// Schemas that are PostgreSQL's own.
const USER_SCHEMAS: &str = "n.nspname not in ('pg_catalog', 'information_schema') \
     and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%'";

/// What tells the schemas a run can have changed; applied to the
/// schemas that exist at each reading, so one the run created is in it too.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The run's own schema, the version table's, the session's search path.
    pub always: Vec<String>,
    /// The migration project's files, ups and downs.
    pub texts: Vec<String>,
    /// Every schema: a migration drops with `CASCADE`, which reaches objects in
    /// schemas no file names.
    pub everything: bool,
}

impl Scope {
    /// Whether the run can have changed `schema`: it is one of `always`, or the
    /// project's files mention it. Over-inclusive by design: a schema is left out only
    /// when nothing the run could execute names it.
    pub fn covers(&self, schema: &str) -> bool {
        self.everything || self.always.iter().any(|s| s == schema) || self.names(schema)
    }

    /// Whether the project's files mention `identifier` as a word.
    pub fn names(&self, identifier: &str) -> bool {
        self.texts.iter().any(|text| mentions(text, identifier))
    }
}

/// The schemas of `all` that `scope` covers.
fn in_scope(all: &[String], scope: &Scope) -> Vec<String> {
    all.iter().filter(|s| scope.covers(s)).cloned().collect()
}

/// Whether `text` has `name` as a whole identifier (unquoted names case-insensitively).
fn mentions(text: &str, name: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let (hay, needle) = if name.chars().any(char::is_uppercase) {
        (text.to_string(), name.to_string())
    } else {
        (text.to_lowercase(), name.to_string())
    };
    hay.match_indices(&needle).any(|(at, _)| {
        let before = hay[..at].chars().next_back();
        let after = hay[at + needle.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// One query per kind of object: (the table it belongs to, if any, as `schema.table`;
/// the line describing it). With a scope, `$1` is the array of schemas it covers.
fn queries(scoped: bool) -> Vec<String> {
    let user_schemas = if scoped {
        format!("{USER_SCHEMAS} and n.nspname = any($1)")
    } else {
        USER_SCHEMAS.to_string()
    };
    let user_schemas = user_schemas.as_str();
    vec![
        format!(
            "select n.nspname || '.' || c.relname, \
                    format('relation %I.%I kind %s', n.nspname, c.relname, c.relkind) \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') and {user_schemas}"
        ),
        format!(
            "select n.nspname || '.' || c.relname, \
                    format('column %I.%I.%I #%s %s%s%s', n.nspname, c.relname, a.attname, \
                           row_number() over (partition by a.attrelid order by a.attnum), \
                           format_type(a.atttypid, a.atttypmod), \
                           case when a.attnotnull then ' not null' else '' end, \
                           coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')) \
             from pg_attribute a join pg_class c on c.oid = a.attrelid \
             join pg_namespace n on n.oid = c.relnamespace \
             left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum \
             where a.attnum > 0 and not a.attisdropped \
               and c.relkind in ('r', 'p', 'v', 'm', 'f') and {user_schemas}"
        ),
        format!(
            "select n.nspname || '.' || t.relname, \
                    'index ' || pg_get_indexdef(i.indexrelid) || case when i.indisvalid then '' else ' INVALID' end \
             from pg_index i join pg_class t on t.oid = i.indrelid \
             join pg_namespace n on n.oid = t.relnamespace where {user_schemas}"
        ),
        format!(
            "select n.nspname || '.' || c.relname, \
                    format('constraint %I.%I %I %s', n.nspname, c.relname, k.conname, pg_get_constraintdef(k.oid)) \
             from pg_constraint k join pg_class c on c.oid = k.conrelid \
             join pg_namespace n on n.oid = c.relnamespace where {user_schemas}"
        ),
        format!(
            "select n.nspname || '.' || c.relname, \
                    format('view %I.%I %s', n.nspname, c.relname, pg_get_viewdef(c.oid)) \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind in ('v', 'm') and {user_schemas}"
        ),
        format!(
            "select '', format('function %s %s', p.oid::regprocedure, encode(sha256(convert_to(pg_get_functiondef(p.oid), 'UTF8')), 'hex')) \
             from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
             where p.prokind in ('f', 'p') and {user_schemas} \
               and not exists (select 1 from pg_depend e where e.objid = p.oid and e.deptype = 'e')"
        ),
        format!(
            "select n.nspname || '.' || c.relname, pg_get_triggerdef(g.oid) \
             from pg_trigger g join pg_class c on c.oid = g.tgrelid \
             join pg_namespace n on n.oid = c.relnamespace \
             where not g.tgisinternal and {user_schemas}"
        ),
        format!(
            "select '', format('enum %I.%I %s', n.nspname, t.typname, \
                    (select string_agg(quote_literal(e.enumlabel), ', ' order by e.enumsortorder) \
                     from pg_enum e where e.enumtypid = t.oid)) \
             from pg_type t join pg_namespace n on n.oid = t.typnamespace \
             where t.typtype = 'e' and {user_schemas}"
        ),
        format!(
            "select '', format('schema %I', n.nspname) from pg_namespace n \
             where {user_schemas} and n.nspname <> 'public'"
        ),
        "select '', format('extension %s %s', extname, extversion) from pg_extension".into(),
    ]
}

impl SchemaShape {
    /// Reads the shape, leaving out the tables named in `bookkeeping` (`schema.table`);
    /// with `scope`, only the schemas in it.
    pub async fn read(
        conn: &mut PgConnection,
        bookkeeping: &[String],
        scope: Option<&Scope>,
    ) -> Result<SchemaShape, DbError> {
        let schemas = match scope {
            Some(scope) => {
                let all: Vec<String> = sqlx::query_scalar(&format!(
                    "select n.nspname::text from pg_namespace n where {USER_SCHEMAS}"
                ))
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| DbError::query("listing the schemas", &e))?;
                Some(in_scope(&all, scope))
            }
            None => None,
        };
        let mut lines = BTreeSet::new();
        for sql in queries(schemas.is_some()) {
            let mut query = sqlx::query_as(&sql);
            if let Some(schemas) = &schemas {
                if sql.contains("$1") {
                    query = query.bind(schemas);
                }
            }
            let rows: Vec<(String, String)> = query
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| DbError::query("reading the schema's shape", &e))?;
            for (owner, line) in rows {
                if !bookkeeping.contains(&owner) {
                    lines.insert(line);
                }
            }
        }
        Ok(SchemaShape { lines })
    }

    /// What differs from `before`: `+ line` for what is new, `- line` for what is gone;
    /// whole relations first (the rest is usually their columns and indexes).
    pub fn differences(&self, before: &SchemaShape) -> Vec<String> {
        let gone = before
            .lines
            .difference(&self.lines)
            .map(|l| format!("- {l}"));
        let new = self
            .lines
            .difference(&before.lines)
            .map(|l| format!("+ {l}"));
        let mut all: Vec<String> = gone.chain(new).collect();
        all.sort_by_key(|l| !l[2..].starts_with("relation "));
        all
    }
}

/// The first few of `differences`, for a message: `+ a; - b (and 3 more)`.
pub fn summary(differences: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = differences
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if differences.len() > SHOWN {
        text.push_str(&format!(" (and {} more)", differences.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(lines: &[&str]) -> SchemaShape {
        SchemaShape {
            lines: lines.iter().map(|l| l.to_string()).collect(),
        }
    }

    #[test]
    fn the_scope_is_the_runs_schemas_and_every_schema_its_files_name() {
        let all: Vec<String> = ["public", "shop", "billing", "audit", "Reports", "shopping"]
            .map(String::from)
            .to_vec();
        let texts = vec![
            "create table SHOP.orders (id bigint);\n-- see audit_log".to_string(),
            "op.create_table('x', schema=\"Reports\")".to_string(),
        ];
        let scope = Scope {
            always: vec!["public".to_string()],
            texts,
            everything: false,
        };
        assert_eq!(
            in_scope(&all, &scope),
            ["public", "shop", "Reports"],
            "unquoted names match in any case, whole words only (not audit_log, not shopping)"
        );
        let lowercase = Scope {
            always: Vec::new(),
            texts: vec!["select 1 from reports.x".to_string()],
            everything: false,
        };
        assert!(
            in_scope(&all, &lowercase).is_empty(),
            "a mixed-case schema is only named quoted, exactly"
        );
        assert!(scope.names("orders") && !scope.names("order"));
    }

    #[test]
    fn differences_name_what_is_gone_and_what_is_new() {
        let before = shape(&["relation public.a kind r", "column public.a.id bigint"]);
        let after = shape(&[
            "relation public.a kind r",
            "column public.a.id integer",
            "relation public.b kind r",
        ]);
        assert_eq!(
            after.differences(&before),
            [
                "+ relation public.b kind r",
                "- column public.a.id bigint",
                "+ column public.a.id integer"
            ]
        );
        assert!(before.differences(&before.clone()).is_empty());
    }
}
