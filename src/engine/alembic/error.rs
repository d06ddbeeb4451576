//! Why the Alembic project could not be read or run.

#[derive(Debug, thiserror::Error)]
pub enum AlembicError {
    #[error("cannot run {python} for the Alembic project: {source}; set migrations.python to the project's interpreter (a venv's bin/python)")]
    Python {
        python: String,
        source: std::io::Error,
    },
    #[error("reading the Alembic project {ini} failed: {message}")]
    Project { ini: String, message: String },
    #[error(transparent)]
    Db(Box<crate::db::DbError>),
}

impl From<crate::db::DbError> for AlembicError {
    fn from(e: crate::db::DbError) -> Self {
        AlembicError::Db(Box::new(e))
    }
}
