//! Where a dump's compressed bytes go while it runs, and how the write ends.
//!
//! The sink is written from the dump's blocking thread. For S3 it cuts the stream into
//! equal parts and hands them over a bounded channel to the uploader task, so memory
//! stays at a few parts whatever the database size.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use tokio::sync::mpsc;

use super::objects::StorageError;
use super::s3::MultipartUpload;

pub enum Sink {
    Local(BufWriter<File>),
    S3(PartWriter),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        crate::faults::pause("backup");
        match self {
            Sink::Local(w) => w.write(buf),
            Sink::S3(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Local(w) => w.flush(),
            Sink::S3(_) => Ok(()), // parts are sent whole; `close` sends the last one
        }
    }
}

impl Sink {
    /// Everything written is handed on: the file flushed and synced, the last part sent.
    pub fn close(self) -> std::io::Result<()> {
        match self {
            Sink::Local(w) => {
                let file = w.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()
            }
            Sink::S3(mut w) => w.send_part(),
        }
    }
}

/// Cuts the stream into parts of exactly `part_size` bytes (the last may be shorter).
pub struct PartWriter {
    buf: Vec<u8>,
    part_size: usize,
    tx: mpsc::Sender<Vec<u8>>,
}

impl PartWriter {
    pub(super) fn new(part_size: usize, tx: mpsc::Sender<Vec<u8>>) -> PartWriter {
        PartWriter {
            buf: Vec::with_capacity(part_size),
            part_size,
            tx,
        }
    }

    fn send_part(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let part = std::mem::replace(&mut self.buf, Vec::with_capacity(self.part_size));
        self.tx
            .blocking_send(part)
            .map_err(|_| std::io::Error::other("the upload stopped (see the upload error)"))
    }
}

impl Write for PartWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = self.part_size - self.buf.len();
        let n = room.min(buf.len());
        self.buf.extend_from_slice(&buf[..n]);
        if self.buf.len() == self.part_size {
            self.send_part()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The other half of a started write: completes (with the manifest) or aborts it.
pub enum PendingUpload {
    Local {
        dir: PathBuf,
        id: String,
        /// The dump object's name.
        object: String,
        partial: PathBuf,
    },
    S3(MultipartUpload),
}

impl PendingUpload {
    /// Makes the backup real: the object in place, then the manifest, last.
    pub async fn complete(self, manifest: &[u8]) -> Result<(), StorageError> {
        match self {
            PendingUpload::Local {
                dir,
                id,
                object,
                partial,
            } => super::local::complete(&dir, &id, &object, &partial, manifest),
            PendingUpload::S3(upload) => upload.complete(manifest.to_vec()).await,
        }
    }

    /// Until when S3 Object Lock will keep the backup, when it will (for its manifest).
    pub fn locked_until(&self) -> Option<String> {
        match self {
            PendingUpload::Local { .. } => None,
            PendingUpload::S3(upload) => upload.locked_until(),
        }
    }

    /// Removes every trace of the unfinished backup; returns the upload's own error
    /// when the upload is what failed.
    pub async fn abort(self) -> Option<String> {
        match self {
            PendingUpload::Local { partial, .. } => {
                let _ = std::fs::remove_file(partial);
                None
            }
            PendingUpload::S3(upload) => upload.abort().await,
        }
    }
}
