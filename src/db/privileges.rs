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
    if let Some(missing) = missing_on_schema(&mut *conn, schema).await? {
        return Ok(Some(missing));
    }
    // Rows are replaced (a migration applied again beside a tool's ledger, a
    // repeatable one) and deleted (a downgrade).
    missing_on_table(
        conn,
        schema,
        ledger::TABLE,
        "SELECT, INSERT, UPDATE, DELETE",
    )
    .await
}

/// `Some((problem, the GRANT that fixes it))` when the current role cannot create
/// tables in `schema` (or `schema` itself, when it does not exist yet).
pub async fn missing_on_schema(
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
    Ok(None)
}

/// `Some((problem, the GRANT that fixes it))` when `schema.table` exists and the
/// current role lacks any of `privileges` (comma-separated, as a GRANT lists them)
/// on it; the GRANT names only those it lacks.
pub async fn missing_on_table(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
    privileges: &str,
) -> Result<Option<(String, String)>, DbError> {
    if !ledger::table_exists(&mut *conn, schema, table).await? {
        return Ok(None);
    }
    let name = format!("{}.{}", quote_ident(schema), quote_ident(table));
    let wanted: Vec<&str> = privileges.split(',').map(str::trim).collect();
    // has_table_privilege with a list is true when ANY of them is held: each alone.
    let (user, lacking): (String, Vec<String>) = sqlx::query_as(
        "select current_user::text, \
                coalesce(array_agg(p order by n) filter (where not has_table_privilege($1, p)), '{}') \
         from unnest($2::text[]) with ordinality as w(p, n)",
    )
    .bind(&name)
    .bind(&wanted)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| DbError::query(format!("checking privileges on {name}"), &e))?;
    if lacking.is_empty() {
        return Ok(None);
    }
    let can_read = !lacking.iter().any(|p| p == "SELECT");
    Ok(Some((
        match can_read {
            false => format!("role {user} cannot read {name}"),
            true => format!(
                "role {user} cannot change {name} (it lacks {})",
                lacking.join(", ")
            ),
        },
        format!("GRANT {} ON {name} TO {user};", lacking.join(", ")),
    )))
}
