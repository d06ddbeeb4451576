//! Local folder storage: files beside each other, written under temporary names and
//! renamed into place, the manifest last. A backup is a full copy of production: the
//! folder ballast creates is private (0700) and every file it writes there is 0600,
//! whatever the umask; an existing folder others can read is warned about.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::objects::{
    id_of, is_object_of, object_name, parse_manifest, skip_bad, Listed, StorageError,
    MANIFEST_SUFFIX, VERIFIED_SUFFIX,
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

    pub fn location(&self, object: &str) -> String {
        self.dir.join(object).display().to_string()
    }

    fn io(&self, what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
        let what = what.into();
        move |e| StorageError::Io {
            what,
            place: self.describe(),
            message: e.to_string(),
        }
    }

    pub(super) fn begin(
        &self,
        id: &str,
        sealed: bool,
    ) -> Result<(Sink, PendingUpload), StorageError> {
        self.create_dir()?;
        let object = object_name(id, sealed);
        let partial = self.dir.join(format!(".{object}.partial"));
        let file =
            private_file(&partial).map_err(self.io(format!("creating {}", partial.display())))?;
        let sink = Sink::Local(BufWriter::with_capacity(1 << 20, file));
        Ok((
            sink,
            PendingUpload::Local {
                dir: self.dir.clone(),
                id: id.to_string(),
                object,
                partial,
            },
        ))
    }

    /// Creates the folder (0700) when missing.
    pub(super) fn create_dir(&self) -> Result<(), StorageError> {
        private_dir(&self.dir).map_err(self.io("creating the backup folder"))
    }

    /// Who else can read the folder, when someone can: `group and others can read
    /// and enter it (mode 0755)`.
    pub fn loose_permissions(&self) -> Option<String> {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&self.dir).ok()?.permissions().mode() & 0o777;
        let who = match (mode & 0o070 != 0, mode & 0o007 != 0) {
            (false, false) => return None,
            (true, false) => "its group",
            (false, true) => "every account on the host",
            (true, true) => "its group and every account on the host",
        };
        Some(format!("{who} can reach it (mode {mode:04o})"))
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
            let bytes = std::fs::read(entry.path()).map_err(self.io(format!("reading {name}")))?;
            // One unreadable manifest must not hide every other backup.
            let Some(manifest) = skip_bad(parse_manifest(id, &self.describe(), &bytes)) else {
                continue;
            };
            if !is_object_of(&manifest.object, id) || !self.dir.join(&manifest.object).is_file() {
                continue; // a manifest whose object is gone is not a backup
            }
            let verified_at = std::fs::read(self.dir.join(format!("{id}{VERIFIED_SUFFIX}")))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["verified_at"].as_str().map(str::to_string));
            listed.push(Listed {
                location: self.location(&manifest.object),
                manifest,
                verified_at,
            });
        }
        Ok(listed)
    }

    pub(super) fn reader(&self, object: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        let path = self.dir.join(object);
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
/// before the dump takes its name (`object`), and renamed last: only a manifest makes
/// a backup.
pub(super) fn complete(
    dir: &Path,
    id: &str,
    object: &str,
    partial: &Path,
    manifest: &[u8],
) -> Result<(), StorageError> {
    let object = dir.join(object);
    let manifest_name = format!("{id}{MANIFEST_SUFFIX}");
    let manifest_partial = dir.join(format!(".{manifest_name}.partial"));
    let result = (|| {
        let mut file = private_file(&manifest_partial)?;
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
        let mut file = private_file(&partial)?;
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

/// Creates the folder `dir` (and its missing parents) readable by its owner only
/// (0700), whatever the umask; an existing folder is left as it is.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // `mode` at creation is filtered by the umask: set it again.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Creates (or truncates) `path` readable and writable by its owner only (0600),
/// whatever the umask.
pub fn private_file(path: &Path) -> std::io::Result<File> {
    open_private(path, false)
}

/// Opens `path` for appending, 0600 (an older file made looser is made private).
pub fn private_append(path: &Path) -> std::io::Result<File> {
    open_private(path, true)
}

fn open_private(path: &Path, append: bool) -> std::io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .append(append)
        .truncate(!append)
        .mode(0o600)
        .open(path)?;
    // `mode` at creation is filtered by the umask, and an existing file keeps its own.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}
