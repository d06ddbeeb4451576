//! Sealing backups with age (age-encryption.org/v1, the `age` crate): the dump's gzip
//! stream is encrypted to the configured recipients as it is written, so no plaintext
//! reaches the disk or the bucket, and only a holder of one of their identities reads
//! it back. The file stays standard: `age -d -i key.txt ID.dump.gz.age | gunzip` gives
//! the pg_dump archive, with or without ballast. Recipients are public keys (`age1...`,
//! or an SSH key's `ssh-ed25519 ...` / `ssh-rsa ...` line) and are written into the
//! manifest; identities (secret keys: an `age-keygen` file, or an unencrypted OpenSSH
//! private key) never are.

use std::io::{Read, Write};
use std::path::Path;

use age::x25519;
use flate2::read::MultiGzDecoder;

use crate::storage::manifest::Manifest;

/// What went wrong sealing or opening a backup.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("backup.age_recipients: `{0}` is not an age recipient (a public key starting with age1, as `age-keygen -y key.txt` prints it, or an SSH public key line starting with ssh-ed25519 or ssh-rsa)")]
    BadRecipient(String),
    #[error("reading the age identity file {path}: {message}")]
    IdentityFile { path: String, message: String },
    #[error("the age identity file {path} holds no identity (expected lines starting with AGE-SECRET-KEY-1, as `age-keygen` writes them)")]
    NoIdentity { path: String },
    #[error("none of the identities in {path} is one this backup was sealed for (its recipients: {recipients}); use the identity file of one of them")]
    WrongIdentity { path: String, recipients: String },
    #[error("the backup's age header is damaged ({0}): the stored bytes are corrupt")]
    Damaged(String),
    #[error("backup {id} is sealed with age for {recipients}: give the identity file of one of them (--identity FILE, backup.age_identity_file, or BALLAST_BACKUP__AGE_IDENTITY_FILE); nothing was read")]
    NeedsIdentity { id: String, recipients: String },
    #[error("encrypting the backup failed: {0}")]
    Encrypt(String),
}

/// The recipients a backup is sealed for, checked: their public keys as configured.
#[derive(Clone, Debug)]
pub struct Recipients(Vec<String>);

/// One recipient's key, parsed: age's own (`age1...`) or an SSH public key line.
fn recipient(key: &str) -> Result<Box<dyn age::Recipient + Send>, SealError> {
    let key = key.trim();
    let bad = || SealError::BadRecipient(key.to_string());
    if key.starts_with("ssh-") {
        return key
            .parse::<age::ssh::Recipient>()
            .map(|r| Box::new(r) as Box<dyn age::Recipient + Send>)
            .map_err(|_| bad());
    }
    key.parse::<x25519::Recipient>()
        .map(|r| Box::new(r) as Box<dyn age::Recipient + Send>)
        .map_err(|_| bad())
}

impl Recipients {
    /// Parses the public keys of `backup.age_recipients`; `None` when there are none.
    pub fn parse(keys: &[String]) -> Result<Option<Recipients>, SealError> {
        for key in keys {
            recipient(key)?;
        }
        let keys: Vec<String> = keys.iter().map(|k| k.trim().to_string()).collect();
        Ok((!keys.is_empty()).then_some(Recipients(keys)))
    }

    /// The public keys, as the manifest records them.
    pub fn keys(&self) -> Vec<String> {
        self.0.clone()
    }

    /// Wraps `output`: what is written to the result reaches `output` encrypted;
    /// `finish()` writes the last chunk and gives `output` back.
    pub fn seal<W: Write>(&self, output: W) -> Result<age::stream::StreamWriter<W>, SealError> {
        let parsed = self
            .0
            .iter()
            .map(|key| recipient(key))
            .collect::<Result<Vec<_>, _>>()?;
        let encryptor = age::Encryptor::with_recipients(
            parsed.iter().map(|r| r.as_ref() as &dyn age::Recipient),
        )
        .map_err(|e| SealError::Encrypt(e.to_string()))?;
        encryptor
            .wrap_output(output)
            .map_err(|e| SealError::Encrypt(e.to_string()))
    }
}

/// Writes what it is given sealed to the recipients, or as it is when there are none.
pub enum SealingWriter<W: Write> {
    Plain(W),
    Sealed(age::stream::StreamWriter<W>),
}

impl<W: Write> SealingWriter<W> {
    pub fn new(output: W, recipients: Option<&Recipients>) -> Result<SealingWriter<W>, SealError> {
        Ok(match recipients {
            Some(recipients) => SealingWriter::Sealed(recipients.seal(output)?),
            None => SealingWriter::Plain(output),
        })
    }

    /// Writes what is still held (the last sealed chunk) and gives the output back.
    pub fn finish(self) -> std::io::Result<W> {
        match self {
            SealingWriter::Plain(w) => Ok(w),
            SealingWriter::Sealed(w) => w.finish(),
        }
    }
}

impl<W: Write> Write for SealingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            SealingWriter::Plain(w) => w.write(buf),
            SealingWriter::Sealed(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            SealingWriter::Plain(w) => w.flush(),
            SealingWriter::Sealed(w) => w.flush(),
        }
    }
}

/// The identities (secret keys) of an age identity file, for reading sealed backups.
pub struct Identities {
    path: String,
    identities: Vec<Box<dyn age::Identity + Send + Sync>>,
}

/// The pg_dump archive inside a stored object read from `stored`: gunzip, after age
/// when the manifest says the backup is sealed (then `identities` must read it).
pub fn archive<'a>(
    stored: impl Read + Send + 'a,
    manifest: &Manifest,
    identities: Option<&'a Identities>,
) -> Result<MultiGzDecoder<Box<dyn Read + Send + 'a>>, SealError> {
    Ok(MultiGzDecoder::new(gzip_stream(
        stored, manifest, identities,
    )?))
}

/// The gzip stream inside a stored object: the object itself, or what age opens.
pub fn gzip_stream<'a>(
    stored: impl Read + Send + 'a,
    manifest: &Manifest,
    identities: Option<&'a Identities>,
) -> Result<Box<dyn Read + Send + 'a>, SealError> {
    Ok(match (&manifest.sealed, identities) {
        (None, _) => Box::new(stored),
        (Some(sealed), Some(identities)) => Box::new(identities.open(stored, &sealed.recipients)?),
        (Some(_), None) => return Err(SealError::needs_identity(manifest)),
    })
}

impl SealError {
    /// The refusal to read sealed backup `manifest` without an identity.
    pub fn needs_identity(manifest: &Manifest) -> SealError {
        SealError::NeedsIdentity {
            id: manifest.id.clone(),
            recipients: manifest
                .sealed
                .as_ref()
                .map(|s| s.recipients.join(", "))
                .unwrap_or_default(),
        }
    }
}

impl Identities {
    /// The identity file the settings name (`backup.age_identity_file`, which
    /// `--identity` and `BALLAST_BACKUP__AGE_IDENTITY_FILE` set), read; `None` when
    /// none is named.
    pub fn configured(path: Option<&Path>) -> Result<Option<Identities>, SealError> {
        path.map(Identities::load).transpose()
    }

    /// Reads an identity file as `age-keygen` writes it (comments allowed), or an
    /// unencrypted OpenSSH private key (`ssh-keygen -t ed25519 -N ""`).
    pub fn load(path: &Path) -> Result<Identities, SealError> {
        let shown = path.display().to_string();
        let failed = |message: String| SealError::IdentityFile {
            path: shown.clone(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
        if text
            .trim_start()
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
        {
            let key = age::ssh::Identity::from_buffer(text.as_bytes(), Some(shown.clone()))
                .map_err(|e| failed(e.to_string()))?;
            return match key {
                age::ssh::Identity::Unencrypted(_) => Ok(Identities {
                    path: shown,
                    identities: vec![Box::new(key)],
                }),
                age::ssh::Identity::Encrypted(_) => Err(failed(
                    "the SSH key is protected by a passphrase, which ballast cannot ask for when it runs unattended: use an age identity (age-keygen), or a copy of the key without a passphrase kept as safe as the backups".into(),
                )),
                age::ssh::Identity::Unsupported(_) => Err(failed(
                    "this kind of SSH key cannot open age files (use ed25519 or rsa)".into(),
                )),
            };
        }
        let file =
            age::IdentityFile::from_buffer(text.as_bytes()).map_err(|e| failed(e.to_string()))?;
        let identities = file.into_identities().map_err(|e| failed(e.to_string()))?;
        if identities.is_empty() {
            return Err(SealError::NoIdentity { path: shown });
        }
        Ok(Identities {
            path: shown,
            identities,
        })
    }

    /// The plaintext of a sealed backup read from `input`; `recipients` (from its
    /// manifest) name who can read it when these identities cannot. A damaged header
    /// fails here; damage further on fails the read that meets it.
    pub fn open<R: Read>(
        &self,
        input: R,
        recipients: &[String],
    ) -> Result<age::stream::StreamReader<R>, SealError> {
        let decryptor =
            age::Decryptor::new(input).map_err(|e| SealError::Damaged(e.to_string()))?;
        decryptor
            .decrypt(
                self.identities
                    .iter()
                    .map(|i| i.as_ref() as &dyn age::Identity),
            )
            .map_err(|e| match e {
                age::DecryptError::NoMatchingKeys => SealError::WrongIdentity {
                    path: self.path.clone(),
                    recipients: recipients.join(", "),
                },
                age::DecryptError::Io(e) => SealError::Damaged(e.to_string()),
                other => SealError::Damaged(other.to_string()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    fn key_file(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
        let identity = x25519::Identity::generate();
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "# created: a test\n# public key: {}\n{}\n",
                identity.to_public(),
                identity.to_string().expose_secret()
            ),
        )
        .unwrap();
        (path, identity.to_public().to_string())
    }

    #[test]
    fn each_recipient_alone_opens_what_was_sealed_and_no_one_else() {
        let dir = tempfile::tempdir().unwrap();
        let (ops, ops_key) = key_file(dir.path(), "ops.txt");
        let (dr, dr_key) = key_file(dir.path(), "dr.txt");
        let (stranger, _) = key_file(dir.path(), "stranger.txt");
        let recipients = Recipients::parse(&[ops_key.clone(), dr_key.clone()])
            .unwrap()
            .unwrap();
        assert_eq!(recipients.keys(), [ops_key, dr_key]);
        let plaintext = b"PGDMP and every customer row".repeat(10_000);
        let mut sealed = recipients.seal(Vec::new()).unwrap();
        sealed.write_all(&plaintext).unwrap();
        let sealed = sealed.finish().unwrap();
        assert!(
            !sealed.windows(5).any(|w| w == b"PGDMP"),
            "plaintext in the sealed bytes"
        );
        for key in [&ops, &dr] {
            let identities = Identities::load(key).unwrap();
            let mut out = Vec::new();
            identities
                .open(&sealed[..], &recipients.keys())
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, plaintext);
        }
        let wrong = Identities::load(&stranger).unwrap();
        let refused = wrong.open(&sealed[..], &recipients.keys()).err().unwrap();
        assert!(
            matches!(&refused, SealError::WrongIdentity { recipients, .. } if recipients.contains("age1")),
            "{refused}"
        );
    }

    #[test]
    fn a_flipped_byte_fails_the_read_that_meets_it() {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = key_file(dir.path(), "k.txt");
        let recipients = Recipients::parse(&[public]).unwrap().unwrap();
        let mut sealed = recipients.seal(Vec::new()).unwrap();
        sealed.write_all(&vec![1u8; 200_000]).unwrap();
        let mut sealed = sealed.finish().unwrap();
        let n = sealed.len();
        sealed[n - 1000] ^= 1;
        let identities = Identities::load(&key).unwrap();
        let mut out = Vec::new();
        let read = identities
            .open(&sealed[..], &recipients.keys())
            .unwrap()
            .read_to_end(&mut out);
        assert!(read.is_err());
    }

    #[test]
    fn bad_keys_and_files_are_named() {
        assert!(Recipients::parse(&[]).unwrap().is_none());
        let bad = Recipients::parse(&["ssh-rsa AAAA".into()]).err().unwrap();
        assert!(bad.to_string().contains("ssh-rsa AAAA"), "{bad}");
        let dir = tempfile::tempdir().unwrap();
        let missing = Identities::load(&dir.path().join("nope.txt"))
            .err()
            .unwrap();
        assert!(missing.to_string().contains("nope.txt"), "{missing}");
        let empty = dir.path().join("empty.txt");
        std::fs::write(&empty, "# nothing here\n").unwrap();
        let none = Identities::load(&empty).err().unwrap();
        assert!(matches!(none, SealError::NoIdentity { .. }), "{none}");
    }
}
