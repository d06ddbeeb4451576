//! Local folder storage: files beside each other, written under temporary names and
//! renamed into place, the manifest last.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::objects::{
    id_of, parse_manifest, skip_bad, Listed, StorageError, MANIFEST_SUFFIX, OBJECT_SUFFIX,
    VERIFIED_SUFFIX,
};
use super::sink::{PendingUpload, Sink};

#[derive(Clone)]
pub struct LocalStore {
    dir: PathBuf,
}

impl LocalStore {
    pub fn new(dir: PathBuf) -> LocalStore {
        LocalStore { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn describe(&self) -> String {
        format!("local folder {}", self.dir.display())
    }

    pub fn location(&self, id: &str) -> String {
        self.dir
            .join(format!("{id}{OBJECT_SUFFIX}"))
            .display()
            .to_string()
    }

    fn io(&self, what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
        let what = what.into();
        move |e| StorageError::Io {
            what,
            place: self.describe(),
            message: e.to_string(),
        }
    }

    pub(super) fn begin(&self, id: &str) -> Result<(Sink, PendingUpload), StorageError> {
        std::fs::create_dir_all(&self.dir).map_err(self.io("creating the backup folder"))?;
        let partial = self.dir.join(format!(".{id}{OBJECT_SUFFIX}.partial"));
        let file =
            File::create(&partial).map_err(self.io(format!("creating {}", partial.display())))?;
        let sink = Sink::Local(BufWriter::with_capacity(1 << 20, file));
        Ok((
            sink,
            PendingUpload::Local {
                dir: self.dir.clone(),
                id: id.to_string(),
                partial,
            },
        ))
    }

    /// Temporary files of runs killed mid-backup, older than a day (a younger one may
    /// belong to a backup running now). Returns their names.
    pub(super) fn clean_stale_partials(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let day = std::time::Duration::from_secs(24 * 3600);
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > day);
            if name.starts_with('.')
                && name.ends_with(".partial")
                && old
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed.push(name);
            }
        }
        removed
    }

    pub(super) fn list(&self) -> Result<Vec<Listed>, StorageError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io("listing")(e)),
        };
        let mut listed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = id_of(&name, MANIFEST_SUFFIX) else {
                continue;
            };
            if !self.dir.join(format!("{id}{OBJECT_SUFFIX}")).is_file() {
                continue; // a manifest whose object is gone is not a backup
            }
            let bytes = std::fs::read(entry.path()).map_err(self.io(format!("reading {name}")))?;
            // One unreadable manifest must not hide every other backup.
            let Some(manifest) = skip_bad(parse_manifest(id, &self.describe(), &bytes)) else {
                continue;
            };
            let verified_at = std::fs::read(self.dir.join(format!("{id}{VERIFIED_SUFFIX}")))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["verified_at"].as_str().map(str::to_string));
            listed.push(Listed {
                location: self.location(id),
                manifest,
                verified_at,
            });
        }
        Ok(listed)
    }

    pub(super) fn reader(&self, id: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        let path = self.dir.join(format!("{id}{OBJECT_SUFFIX}"));
        let file = File::open(&path).map_err(self.io(format!("opening {}", path.display())))?;
        Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, file)))
    }

    pub(super) fn put_small(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        write_atomically(&self.dir, name, bytes).map_err(self.io(format!("writing {name}")))
    }

    pub(super) fn remove(&self, name: &str) -> Result<(), StorageError> {
        match std::fs::remove_file(self.dir.join(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io(format!("removing {name}"))(e)),
        }
    }
}

/// The dump is complete and synced. The manifest is written (under a temporary name)
/// before the dump takes its name, and renamed last: only a manifest makes a backup.
pub(super) fn complete(
    dir: &Path,
    id: &str,
    partial: &Path,
    manifest: &[u8],
) -> Result<(), StorageError> {
    let object = dir.join(format!("{id}{OBJECT_SUFFIX}"));
    let manifest_name = format!("{id}{MANIFEST_SUFFIX}");
    let manifest_partial = dir.join(format!(".{manifest_name}.partial"));
    let result = (|| {
        let mut file = File::create(&manifest_partial)?;
        file.write_all(manifest)?;
        file.sync_all()?;
        std::fs::rename(partial, &object)?;
        std::fs::rename(&manifest_partial, dir.join(&manifest_name))?;
        File::open(dir)?.sync_all()
    })();
    result.map_err(|e| {
        for leftover in [partial, &manifest_partial, &object] {
            let _ = std::fs::remove_file(leftover);
        }
        StorageError::Io {
            what: format!("finishing backup {id}"),
            place: format!("local folder {}", dir.display()),
            message: e.to_string(),
        }
    })
}

/// Write to a temporary name, sync, rename, sync the folder.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let partial = dir.join(format!(".{name}.partial"));
    let result = (|| {
        let mut file = File::create(&partial)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&partial, dir.join(name))?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}
