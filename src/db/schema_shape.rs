//! The shape of a database's schema, as lines of text: every relation, column (type,
//! NOT NULL, default), index (and whether it is valid), constraint, view definition,
//! function, trigger, enum and extension in the user's schemas. Taken before the
//! upgrade and again after a recovery rung, so the run can say "back where it started"
//! only when the schema proves it, and name what differs when it does not.
//!
//! Bookkeeping tables (ballast's ledger and journal, Alembic's version table) are left
//! out: their rows are the migration state, compared separately, and the first deploy
//! creates them.

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

/// One query per kind of object: (the table it belongs to, if any, as `schema.table`;
/// the line describing it).
fn queries() -> Vec<String> {
    vec![
        format!(
            "select n.nspname || '.' || c.relname, \
                    format('relation %I.%I kind %s', n.nspname, c.relname, c.relkind) \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') and {USER_SCHEMAS}"
        ),
        format!(
            "select n.nspname || '.' || c.relname, \
                    format('column %I.%I.%I #%s %s%s%s', n.nspname, c.relname, a.attname, a.attnum, \
                           format_type(a.atttypid, a.atttypmod), \
                           case when a.attnotnull then ' not null' else '' end, \
                           coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')) \
             from pg_attribute a join pg_class c on c.oid = a.attrelid \
             join pg_namespace n on n.oid = c.relnamespace \
             left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum \
             where a.attnum > 0 and not a.attisdropped \
               and c.relkind in ('r', 'p', 'v', 'm', 'f') and {USER_SCHEMAS}"
        ),
        format!(
            "select n.nspname || '.' || t.relname, \
                    'index ' || pg_get_indexdef(i.indexrelid) || case when i.indisvalid then '' else ' INVALID' end \
             from pg_index i join pg_class t on t.oid = i.indrelid \
             join pg_namespace n on n.oid = t.relnamespace where {USER_SCHEMAS}"
        ),
        format!(
            "select n.nspname || '.' || c.relname, \
                    format('constraint %I.%I %I %s', n.nspname, c.relname, k.conname, pg_get_constraintdef(k.oid)) \
             from pg_constraint k join pg_class c on c.oid = k.conrelid \
             join pg_namespace n on n.oid = c.relnamespace where {USER_SCHEMAS}"
        ),
        format!(
            "select n.nspname || '.' || c.relname, \
                    format('view %I.%I %s', n.nspname, c.relname, pg_get_viewdef(c.oid)) \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind in ('v', 'm') and {USER_SCHEMAS}"
        ),
        format!(
            "select '', format('function %s %s', p.oid::regprocedure, encode(sha256(convert_to(pg_get_functiondef(p.oid), 'UTF8')), 'hex')) \
             from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
             where p.prokind in ('f', 'p') and {USER_SCHEMAS} \
               and not exists (select 1 from pg_depend e where e.objid = p.oid and e.deptype = 'e')"
        ),
        format!(
            "select n.nspname || '.' || c.relname, pg_get_triggerdef(g.oid) \
             from pg_trigger g join pg_class c on c.oid = g.tgrelid \
             join pg_namespace n on n.oid = c.relnamespace \
             where not g.tgisinternal and {USER_SCHEMAS}"
        ),
        format!(
            "select '', format('enum %I.%I %s', n.nspname, t.typname, \
                    (select string_agg(quote_literal(e.enumlabel), ', ' order by e.enumsortorder) \
                     from pg_enum e where e.enumtypid = t.oid)) \
             from pg_type t join pg_namespace n on n.oid = t.typnamespace \
             where t.typtype = 'e' and {USER_SCHEMAS}"
        ),
        format!(
            "select '', format('schema %I', n.nspname) from pg_namespace n \
             where {USER_SCHEMAS} and n.nspname <> 'public'"
        ),
        "select '', format('extension %s %s', extname, extversion) from pg_extension".into(),
    ]
}

impl SchemaShape {
    /// Reads the shape, leaving out the tables named in `bookkeeping` (`schema.table`).
    pub async fn read(
        conn: &mut PgConnection,
        bookkeeping: &[String],
    ) -> Result<SchemaShape, DbError> {
        let mut lines = BTreeSet::new();
        for sql in queries() {
            let rows: Vec<(String, String)> = sqlx::query_as(&sql)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(lines: &[&str]) -> SchemaShape {
        SchemaShape {
            lines: lines.iter().map(|l| l.to_string()).collect(),
        }
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
