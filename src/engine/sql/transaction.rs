//! One transaction around several migrations (or several downs) and their ledger
//! rows: how it ended, told apart the only ways the database allows. A failure before
//! COMMIT rolled everything back; an error answer to COMMIT rolled it back too; a
//! COMMIT that got no answer may or may not have committed.

use sqlx::postgres::PgConnection;
use sqlx::Connection;

use crate::db::{DbError, SqlFailure};

/// The work inside the transaction: each step runs on `tx` and may fail with `E`.
pub(super) trait Body {
    type Error;
    async fn run(&mut self, tx: &mut PgConnection) -> Result<(), Self::Error>;
}

/// How the transaction ended.
pub(super) enum Ended<E> {
    Committed,
    /// BEGIN itself failed: nothing ran.
    NotBegun(DbError),
    /// The body failed and everything rolled back. `connection_lost`: the rollback
    /// got no answer, i.e. the session is gone (PostgreSQL rolls back a transaction
    /// whose session ends before COMMIT), and the connection must be replaced.
    BodyFailed {
        error: E,
        connection_lost: bool,
    },
    /// The server answered COMMIT with an error (a deferred constraint, say): it
    /// rolled back.
    CommitFailed(SqlFailure),
    /// COMMIT sent, answer lost: committed or not is unknown until checked, and the
    /// connection must be replaced.
    CommitUnknown(SqlFailure),
}

pub(super) async fn in_one_transaction<B: Body>(
    conn: &mut PgConnection,
    what: &'static str,
    body: &mut B,
) -> Ended<B::Error> {
    let mut tx = match conn.begin().await {
        Ok(tx) => tx,
        Err(e) => return Ended::NotBegun(DbError::query(what, &e)),
    };
    if let Err(error) = body.run(&mut tx).await {
        let connection_lost = tx.rollback().await.is_err();
        return Ended::BodyFailed {
            error,
            connection_lost,
        };
    }
    match tx.commit().await {
        Ok(()) => Ended::Committed,
        Err(e @ sqlx::Error::Database(_)) => Ended::CommitFailed(SqlFailure::from_sqlx(&e)),
        Err(e) => Ended::CommitUnknown(SqlFailure::from_sqlx(&e)),
    }
}
