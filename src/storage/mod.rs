//! Where backup artifacts live: a local folder (the embedded default) or an
//! S3-protocol bucket. Both keep, for a backup `ID`, the objects `ID.dump.gz` (the
//! compressed dump; `ID.dump.gz.age` when sealed with age), `ID.manifest.json`
//! (written last: no manifest, no backup; it names the dump object) and, once
//! `verify-backup` has read it back, `ID.verified.json`.

mod local;
pub mod manifest;
mod objects;
mod s3;
mod sink;

pub use local::{private_append, private_dir, LocalStore};
pub use objects::{object_name, Listed, StorageError, MANIFEST_SUFFIX, VERIFIED_SUFFIX};
pub use s3::S3Store;
pub use sink::{PendingUpload, Sink};

use std::io::Read;

use crate::config::BackupSettings;

/// Cheap to clone: clones share the S3 client and its connection pool.
#[derive(Clone)]
pub enum Storage {
    Local(LocalStore),
    S3(S3Store),
}

impl Storage {
    pub async fn open(settings: &BackupSettings) -> Result<Storage, StorageError> {
        Ok(match &settings.s3 {
            Some(s3) => Storage::S3(S3Store::connect(s3).await),
            None => Storage::Local(LocalStore::new(settings.dir.clone())),
        })
    }

    /// `local folder backups/` or `s3://bucket/prefix`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Storage::Local(l) => l.describe(),
            Storage::S3(s) => s.describe(),
        }
    }

    /// Where the dump object named `object` ([`object_name`]) is (a path or an
    /// `s3://` URL).
    pub fn location(&self, object: &str) -> String {
        match self {
            Storage::Local(l) => l.location(object),
            Storage::S3(s) => s.location(object),
        }
    }

    /// Starts writing backup `id` (sealed with age or not); the dump goes into the
    /// returned sink.
    pub async fn begin(
        &self,
        id: &str,
        sealed: bool,
        part_size: usize,
    ) -> Result<(Sink, PendingUpload), StorageError> {
        match self {
            Storage::Local(l) => l.begin(id, sealed),
            Storage::S3(s) => s.begin(id, sealed, part_size).await,
        }
    }

    /// Every complete backup (object and manifest present), newest first.
    pub async fn list(&self) -> Result<Vec<Listed>, StorageError> {
        let mut listed = match self {
            Storage::Local(l) => l.list()?,
            Storage::S3(s) => s.list().await?,
        };
        listed.sort_by(|a, b| b.manifest.started_at.cmp(&a.manifest.started_at));
        Ok(listed)
    }

    /// The newest backup of `database` (a storage folder shared by several databases
    /// holds theirs too; an empty name: of any).
    pub async fn newest_of(&self, database: &str) -> Result<Listed, StorageError> {
        self.list()
            .await?
            .into_iter()
            .find(|l| database.is_empty() || l.manifest.database == database)
            .ok_or_else(|| StorageError::NoneOf {
                database: database.to_string(),
                place: self.describe(),
            })
    }

    /// One backup by id; `None` means the newest.
    pub async fn find(&self, id: Option<&str>) -> Result<Listed, StorageError> {
        let all = self.list().await?;
        let found = match id {
            None => all.into_iter().next(),
            Some(id) => all.into_iter().find(|l| l.manifest.id == id),
        };
        found.ok_or_else(|| StorageError::NotFound {
            id: id.unwrap_or("(newest)").to_string(),
            place: self.describe(),
        })
    }

    /// The stored dump object (as its manifest names it), as a blocking reader (call
    /// from a blocking thread).
    pub async fn reader(&self, object: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        match self {
            Storage::Local(l) => l.reader(object),
            Storage::S3(s) => s.reader(object).await,
        }
    }

    pub async fn mark_verified(
        &self,
        id: &str,
        record: &serde_json::Value,
    ) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec_pretty(record).expect("json serializes");
        match self {
            Storage::Local(l) => l.put_small(&format!("{id}{VERIFIED_SUFFIX}"), &bytes),
            Storage::S3(s) => s.put_small(&format!("{id}{VERIFIED_SUFFIX}"), bytes).await,
        }
    }

    /// Forgets that a backup was verified (it was found corrupt since).
    pub async fn unmark_verified(&self, id: &str) -> Result<(), StorageError> {
        let name = format!("{id}{VERIFIED_SUFFIX}");
        match self {
            Storage::Local(l) => l.remove(&name),
            Storage::S3(s) => s.remove(&name).await,
        }
    }

    /// Removes a backup: manifest first, so a half-deleted backup is never listed.
    pub async fn delete(&self, id: &str) -> Result<(), StorageError> {
        let names = objects::names_of(id);
        match self {
            Storage::Local(l) => names.iter().try_for_each(|n| l.remove(n)),
            Storage::S3(s) => {
                for name in &names {
                    s.remove(name).await?;
                }
                Ok(())
            }
        }
    }

    /// Writes and deletes a small probe object: can this run store a backup here?
    pub async fn probe_write(&self) -> Result<(), StorageError> {
        let name = format!(".ballast-probe-{}", uuid::Uuid::new_v4().simple());
        match self {
            Storage::Local(l) => {
                l.create_dir()?;
                l.put_small(&name, b"probe")?;
                l.remove(&name)
            }
            Storage::S3(s) => {
                if s.locks_objects() {
                    s.check_object_lock().await?;
                }
                s.put_small(&name, b"probe".to_vec()).await?;
                s.remove(&name).await
            }
        }
    }

    /// The local store, when storage is local.
    pub fn local(&self) -> Option<&LocalStore> {
        match self {
            Storage::Local(l) => Some(l),
            Storage::S3(_) => None,
        }
    }

    /// The local folder, when storage is local (the free-disk check).
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        match self {
            Storage::Local(l) => Some(l.dir()),
            Storage::S3(_) => None,
        }
    }

    /// Aborts unfinished multipart uploads older than the configured age (S3); removes
    /// day-old `.partial` files a killed run left behind (local).
    pub async fn clean_stale_uploads(&self) -> Result<Vec<String>, StorageError> {
        match self {
            Storage::Local(l) => Ok(l.clean_stale_partials()),
            Storage::S3(s) => s.clean_stale_uploads().await,
        }
    }
}
