//! Whether the current role may create ballast's tables and write its ledger (or the
//! tool's ledger the sql engine keeps).

use sqlx::postgres::PgConnection;

use super::ledger;
use super::quote_ident;
use super::DbError;

/// `Some((problem, the GRANT that fixes it))` when the current role cannot create
/// ballast's tables or write the ledger.
pub async fn missing_privileges(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Option<(String, String)>, DbError> {
    let (user, schema_exists, can_use_and_create, can_create_schema): (String, bool, bool, bool) = sqlx::query_as(
        "select current_user::text,
                exists(select 1 from pg_namespace where nspname = $1),
                coalesce((select has_schema_privilege(oid, 'USAGE') and has_schema_privilege(oid, 'CREATE')
                          from pg_namespace where nspname = $1), false),
                has_database_privilege(current_database(), 'CREATE')",
    )
    .bind(schema)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| DbError::query("checking privileges", &e))?;
    if !schema_exists && !can_create_schema {
        return Ok(Some((
            format!("role {user} cannot create schema {schema} (it does not exist yet)"),
            format!("GRANT CREATE ON DATABASE <database> TO {user}; or create the schema first: CREATE SCHEMA {schema} AUTHORIZATION {user};"),
        )));
    }
    if schema_exists && !can_use_and_create {
        return Ok(Some((
            format!("role {user} lacks USAGE and CREATE on schema {schema}"),
            format!(
                "GRANT USAGE, CREATE ON SCHEMA {} TO {user};",
                quote_ident(schema)
            ),
        )));
    }
    missing_on_table(conn, schema, ledger::TABLE, "SELECT, INSERT").await
}

/// `Some((problem, the GRANT that fixes it))` when `schema.table` exists and the
/// current role lacks one of `privileges` on it (`SELECT, INSERT` to keep a ledger).
pub async fn missing_on_table(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
    privileges: &str,
) -> Result<Option<(String, String)>, DbError> {
    if !ledger::table_exists(&mut *conn, schema, table).await? {
        return Ok(None);
    }
    let name = format!("{}.{}", quote_ident(schema), table);
    let (user, ok): (String, bool) =
        sqlx::query_as("select current_user::text, has_table_privilege($1, $2)")
            .bind(&name)
            .bind(privileges)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| DbError::query(format!("checking privileges on {name}"), &e))?;
    Ok((!ok).then(|| {
        (
            match privileges {
                "SELECT" => format!("role {user} cannot read {name}"),
                _ => format!("role {user} cannot read and write {name}"),
            },
            format!("GRANT {privileges} ON {name} TO {user};"),
        )
    }))
}
