//! Integration tests: the real binary against a real PostgreSQL.

mod adoption;
mod alembic;
mod alembic_projects;
mod backup;
mod catalogue;
mod check;
mod config_errors;
mod deploy;
mod deploy_manifests;
mod downgrade_sql;
mod faults;
mod flyway;
mod harness;
mod histories;
mod layers;
mod locking;
mod lost_commit;
mod output;
mod read_only;
mod recovery;
mod restore;
mod resume_alembic;
mod roundtrip;
mod s3;
mod targets;
mod unattended;
