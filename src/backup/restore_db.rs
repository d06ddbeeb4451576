//! The fresh database a restore writes into: created like the target, marked
//! incomplete (a database comment) until the restore finished, so the leftover of an
//! interrupted restore is recognised, and dropped, by the next one.

use sqlx::postgres::PgConnection;

use crate::db::{quote_ident, DbError};

/// Every incomplete restore's database comment starts with this.
const INCOMPLETE: &str = "ballast: incomplete restore";

/// What the fresh database copies from the target.
pub struct Template {
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    /// Set when the current user may give the new database the target's owner.
    pub owner: Option<String>,
}

/// Reads encoding, locale and owner of the database `conn` is connected to.
pub async fn template_of(conn: &mut PgConnection) -> Result<Template, DbError> {
    let (encoding, collate, ctype, owner, may_own): (String, String, String, String, bool) = sqlx::query_as(
        "select pg_encoding_to_char(encoding)::text, datcollate::text, datctype::text, pg_get_userbyid(datdba)::text, \
                pg_has_role(current_user, datdba, 'MEMBER') from pg_database where datname = current_database()",
    )
    .fetch_one(conn)
    .await
    .map_err(|e| DbError::query("reading the target's encoding and owner", &e))?;
    Ok(Template {
        encoding,
        collate,
        ctype,
        owner: may_own.then_some(owner),
    })
}

/// Creates `name` from template0 (nothing added to template1 gets in the way), like
/// `template`, and marks it incomplete.
pub async fn create(
    admin: &mut PgConnection,
    name: &str,
    template: &Template,
    backup_id: &str,
) -> Result<(), DbError> {
    let owner = template
        .owner
        .as_deref()
        .map(|o| format!(" owner {}", quote_ident(o)))
        .unwrap_or_default();
    let create = format!(
        "create database {} template template0 encoding {} lc_collate {} lc_ctype {}{owner}",
        quote_ident(name),
        quote_literal(&template.encoding),
        quote_literal(&template.collate),
        quote_literal(&template.ctype),
    );
    sqlx::raw_sql(&create)
        .execute(&mut *admin)
        .await
        .map_err(|e| DbError::query(format!("creating database {name}"), &e))?;
    let note = format!(
        "{INCOMPLETE} of backup {backup_id}, started {}; safe to drop",
        chrono::Utc::now().to_rfc3339()
    );
    comment(admin, name, Some(&note)).await
}

/// The restore finished: `name` is a database like any other.
pub async fn mark_complete(admin: &mut PgConnection, name: &str) -> Result<(), DbError> {
    comment(admin, name, None).await
}

async fn comment(admin: &mut PgConnection, name: &str, note: Option<&str>) -> Result<(), DbError> {
    let sql = format!(
        "comment on database {} is {}",
        quote_ident(name),
        note.map(quote_literal).unwrap_or_else(|| "null".into())
    );
    sqlx::raw_sql(&sql)
        .execute(admin)
        .await
        .map(|_| ())
        .map_err(|e| DbError::query(format!("marking database {name}"), &e))
}

/// Whether `name` is the leftover of an interrupted restore.
pub async fn is_incomplete(admin: &mut PgConnection, name: &str) -> Result<bool, DbError> {
    let note: Option<String> = sqlx::query_scalar(
        "select shobj_description(oid, 'pg_database') from pg_database where datname = $1",
    )
    .bind(name)
    .fetch_optional(admin)
    .await
    .map_err(|e| DbError::query("reading database comments", &e))?
    .flatten();
    Ok(note.is_some_and(|n| n.starts_with(INCOMPLETE)))
}

/// Drops the incomplete restores named `exact`, or starting with `prefix`, that no
/// session uses. Returns their names.
pub async fn drop_leftovers(
    admin: &mut PgConnection,
    exact: Option<&str>,
    prefix: &str,
) -> Result<Vec<String>, DbError> {
    let names: Vec<String> = sqlx::query_scalar(
        "select d.datname::text from pg_database d \
         where (d.datname = $1 or (length($2) > 0 and starts_with(d.datname, $2))) \
           and shobj_description(d.oid, 'pg_database') like $3 || '%' \
           and not exists (select 1 from pg_stat_activity a where a.datname = d.datname)",
    )
    .bind(exact.unwrap_or(""))
    .bind(prefix)
    .bind(INCOMPLETE)
    .fetch_all(&mut *admin)
    .await
    .map_err(|e| DbError::query("looking for incomplete restores", &e))?;
    for name in &names {
        sqlx::raw_sql(&format!("drop database if exists {}", quote_ident(name)))
            .execute(&mut *admin)
            .await
            .map_err(|e| DbError::query(format!("dropping incomplete restore {name}"), &e))?;
    }
    Ok(names)
}

/// `DROP DATABASE` of a scratch copy, ending the sessions still in it (PostgreSQL 13
/// and later; `major`: the server's major version).
pub fn drop_sql(name: &str, major: u32) -> String {
    match major >= 13 {
        true => format!("drop database if exists {} with (force)", quote_ident(name)),
        false => format!("drop database if exists {}", quote_ident(name)),
    }
}

/// Drops a scratch copy, ending the sessions still in it where the server can.
pub async fn drop_scratch(admin: &mut PgConnection, name: &str) -> Result<(), DbError> {
    let major = crate::db::server_info(&mut *admin).await?.major;
    sqlx::raw_sql(&drop_sql(name, major))
        .execute(admin)
        .await
        .map(|_| ())
        .map_err(|e| DbError::query(format!("dropping {name}"), &e))
}

pub async fn drop(admin: &mut PgConnection, name: &str) -> Result<(), DbError> {
    sqlx::raw_sql(&format!("drop database if exists {}", quote_ident(name)))
        .execute(admin)
        .await
        .map(|_| ())
        .map_err(|e| DbError::query(format!("dropping {name}"), &e))
}

/// A SQL string literal.
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn literals_double_their_quotes() {
        assert_eq!(super::quote_literal("en_US.UTF-8"), "'en_US.UTF-8'");
        assert_eq!(super::quote_literal("it's"), "'it''s'");
    }
}
