//! Counting and hashing bytes as they stream past: on the way into storage (the
//! manifest's size and SHA-256) and on the way back out (verify, restore).

use std::io::{Read, Write};

use sha2::{Digest, Sha256};

/// Counts and hashes what passes through on its way to the sink.
pub struct HashingWriter<W: Write> {
    pub inner: W,
    pub hasher: Sha256,
    pub bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Counts and hashes what is read through it, and remembers whether reading the
/// source itself failed: a dropped download is not a corrupt backup.
pub struct HashingReader<R: Read> {
    pub inner: R,
    pub hasher: Sha256,
    pub bytes: u64,
    /// The first error the source returned (storage, not content).
    pub source_error: Option<String>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::Interrupted && self.source_error.is_none() {
                    self.source_error = Some(e.to_string());
                }
                return Err(e);
            }
        };
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
            source_error: None,
        }
    }

    /// Reads to the end, then gives (bytes, hex SHA-256) of everything read.
    pub fn finish(mut self) -> std::io::Result<(u64, String)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok((self.bytes, hex::encode(self.hasher.finalize())))
    }
}
