//! Database errors that say what failed, with the SQLSTATE, and never the password.

use crate::redact::scrub;

/// The parts of a driver error a person needs: message, SQLSTATE, detail, position.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SqlFailure {
    pub message: String,
    pub sqlstate: Option<String>,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// 1-based character offset in the statement text, when the server gave one.
    pub position: Option<usize>,
}

impl SqlFailure {
    pub fn from_sqlx(err: &sqlx::Error) -> SqlFailure {
        Self::scrubbed(err, &[])
    }

    /// As [`Self::from_sqlx`], with each of `secrets` masked in the text.
    pub fn scrubbed(err: &sqlx::Error, secret: &[String]) -> SqlFailure {
        use sqlx::postgres::{PgDatabaseError, PgErrorPosition};
        if let sqlx::Error::Database(db) = err {
            if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
                return SqlFailure {
                    message: scrub(pg.message(), secret),
                    sqlstate: Some(pg.code().to_string()),
                    detail: pg.detail().map(|d| scrub(d, secret)),
                    hint: pg.hint().map(str::to_string),
                    position: match pg.position() {
                        Some(PgErrorPosition::Original(p)) => Some(p),
                        _ => None,
                    },
                };
            }
        }
        SqlFailure {
            message: scrub(&err.to_string(), secret),
            sqlstate: None,
            detail: None,
            hint: None,
            position: None,
        }
    }

    /// SQLSTATE 55P03: `lock_timeout` expired.
    pub fn is_lock_timeout(&self) -> bool {
        self.sqlstate.as_deref() == Some("55P03")
    }

    /// SQLSTATE 55000 at connect: the database does not take new connections
    /// (`datallowconn` false: an in-place restore closed it before its rename).
    pub fn refuses_connections(&self) -> bool {
        self.sqlstate.as_deref() == Some("55000")
    }

    /// SQLSTATE 57014 for `statement_timeout` (the server says "due to statement
    /// timeout"; a cancel from another session, Ctrl-C or the lock-queue guard, says
    /// "due to user request" under the same code).
    pub fn is_statement_timeout(&self) -> bool {
        self.sqlstate.as_deref() == Some("57014") && !self.message.contains("user request")
    }

    /// What to do about an expired `lock_timeout` or `statement_timeout` (the values
    /// the session had), as a sentence to append to the error; `None` for other errors.
    pub fn timeout_advice(
        &self,
        lock_timeout: std::time::Duration,
        statement_timeout: std::time::Duration,
    ) -> Option<String> {
        if self.is_lock_timeout() {
            Some(format!(
                "It waited lock_timeout ({}) for a lock another session holds, instead of queueing \
                 behind it and blocking the site; find the blocker in pg_stat_activity and retry when it is gone",
                humantime::format_duration(lock_timeout)
            ))
        } else if self.is_statement_timeout() {
            Some(format!(
                "It ran longer than statement_timeout ({}); raise database.statement_timeout for this run if that is expected",
                humantime::format_duration(statement_timeout)
            ))
        } else {
            None
        }
    }
}

impl std::fmt::Display for SqlFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(code) = &self.sqlstate {
            write!(f, " (SQLSTATE {code})")?;
        }
        if let Some(detail) = &self.detail {
            write!(f, "; {detail}")?;
        }
        // The server's HINT, or ballast's own for this failure.
        if let Some(hint) = &self.hint {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to {target}: {failure}")]
    Connect { target: String, failure: SqlFailure },
    #[error("timed out after {seconds}s connecting to {target}; is the server up and reachable?")]
    ConnectTimeout { target: String, seconds: u64 },
    #[error("{context}: {failure}")]
    Query {
        context: String,
        failure: SqlFailure,
    },
}

impl DbError {
    /// The connection was refused because the database does not take new connections
    /// (SQLSTATE 55000 at connect): an in-place restore closed it before its rename.
    pub fn is_closed_database(&self) -> bool {
        matches!(self, DbError::Connect { failure, .. } if failure.refuses_connections())
    }

    /// Why a run that meets this error must stop, changing nothing, when it is a
    /// refusal rather than a failure: the database is closed to new connections by an
    /// in-place restore; this run changed nothing and has nothing to work on.
    pub fn refusal(&self) -> Option<String> {
        self.is_closed_database().then(|| {
            format!("{self}; another run is probably restoring this database in place right now: wait for it to finish, then run again")
        })
    }

    pub fn query(context: impl Into<String>, err: &sqlx::Error) -> DbError {
        DbError::Query {
            context: context.into(),
            failure: SqlFailure::from_sqlx(err),
        }
    }
}
