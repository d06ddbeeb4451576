//! The objects a store holds, whatever the store: their names (a backup's id and a
//! suffix per kind), a backup as listed, and the errors of reading them.

use super::manifest::Manifest;

pub const OBJECT_SUFFIX: &str = ".dump.gz";
/// A backup sealed with age: `age -d` gives the `.dump.gz`.
pub const SEALED_OBJECT_SUFFIX: &str = ".dump.gz.age";
pub const MANIFEST_SUFFIX: &str = ".manifest.json";
pub const VERIFIED_SUFFIX: &str = ".verified.json";

/// The dump object's name for backup `id`.
pub fn object_name(id: &str, sealed: bool) -> String {
    match sealed {
        true => format!("{id}{SEALED_OBJECT_SUFFIX}"),
        false => format!("{id}{OBJECT_SUFFIX}"),
    }
}

/// Whether `object` (as a manifest names it) is one of the names backup `id`'s object
/// can have: a manifest never points at another file.
pub fn is_object_of(object: &str, id: &str) -> bool {
    object == object_name(id, false) || object == object_name(id, true)
}

/// Every name an object, manifest or record of backup `id` can have.
pub fn names_of(id: &str) -> [String; 4] {
    [
        MANIFEST_SUFFIX,
        VERIFIED_SUFFIX,
        OBJECT_SUFFIX,
        SEALED_OBJECT_SUFFIX,
    ]
    .map(|s| format!("{id}{s}"))
}

/// A backup as listed: its manifest, and when it was last verified, if ever.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub manifest: Manifest,
    pub verified_at: Option<String>,
    /// Where the object is: a path or an `s3://` URL.
    pub location: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{what} in {place}: {message}")]
    Io {
        what: String,
        place: String,
        message: String,
    },
    #[error("no backup `{id}` in {place}; `ballast backups` lists them")]
    NotFound { id: String, place: String },
    #[error("no backup of database {database} in {place} (`ballast backups` lists them all)")]
    NoneOf { database: String, place: String },
    #[error("the manifest of `{id}` in {place} is unreadable: {message}")]
    BadManifest {
        id: String,
        place: String,
        message: String,
    },
}

/// Reads a manifest's bytes, naming the backup on error.
pub(crate) fn parse_manifest(
    id: &str,
    place: &str,
    bytes: &[u8],
) -> Result<Manifest, StorageError> {
    serde_json::from_slice(bytes).map_err(|e| StorageError::BadManifest {
        id: id.to_string(),
        place: place.to_string(),
        message: e.to_string(),
    })
}

/// A manifest that cannot be read is reported and left out of the listing.
pub(crate) fn skip_bad(parsed: Result<Manifest, StorageError>) -> Option<Manifest> {
    match parsed {
        Ok(manifest) => Some(manifest),
        Err(e) => {
            tracing::warn!("{e}; it is not listed");
            None
        }
    }
}

/// The backup id of a key or file name ending in `suffix`.
pub(crate) fn id_of<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    name.strip_suffix(suffix)
        .filter(|id| !id.is_empty() && !id.starts_with('.'))
}
