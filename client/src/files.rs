//! The consumer's identity file: a 32-byte Ed25519 seed, created (mode 0600) if missing.
//! The CLI (`job.toml`'s `consumer_identity`, `--identity`) and the Python package share it.

use std::io::Write;
use std::path::{Path, PathBuf};

use matproof_protocol::identity::{Identity, SignatureError};

/// Why an identity file could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityFileError {
    /// The file is not a 32-byte seed.
    #[error("identity file {} is {len} bytes, expected a 32-byte seed", path.display())]
    WrongLength {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// The file exists but cannot be read.
    #[error("reading identity file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file (or its folder) cannot be created or written.
    #[error("creating identity file {}: {source}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No fresh seed could be drawn.
    #[error("drawing a new identity: {0}")]
    Generate(#[from] SignatureError),
}

/// Reads a 32-byte identity seed from `path`, or creates one (mode 0600) if the file does
/// not exist. Returns the identity and whether it was created.
pub fn load_or_create_identity(path: &Path) -> Result<(Identity, bool), IdentityFileError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let seed: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| IdentityFileError::WrongLength { path: path.to_path_buf(), len: bytes.len() })?;
            Ok((Identity::from_seed(seed), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((create_identity(path)?, true)),
        Err(source) => Err(IdentityFileError::Read { path: path.to_path_buf(), source }),
    }
}

fn create_identity(path: &Path) -> Result<Identity, IdentityFileError> {
    let identity = Identity::generate()?;
    let create_error = |source| IdentityFileError::Create { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(create_error)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(create_error)?;
    file.write_all(&identity.seed()).map_err(create_error)?;
    file.sync_all().map_err(create_error)?;
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_file_is_created_once_then_read_back() {
        let dir = std::env::temp_dir().join(format!("matproof-client-identity-{}", std::process::id()));
        let path = dir.join("nested").join("consumer.key");
        let _ = std::fs::remove_dir_all(&dir);
        let (created, was_created) = load_or_create_identity(&path).unwrap();
        let (read, again) = load_or_create_identity(&path).unwrap();
        assert!(was_created && !again);
        assert_eq!(read.public_key(), created.public_key());
        std::fs::write(&path, [0u8; 31]).unwrap();
        let err = load_or_create_identity(&path).unwrap_err();
        assert!(matches!(err, IdentityFileError::WrongLength { len: 31, .. }), "{err}");
        assert!(err.to_string().contains("31 bytes, expected a 32-byte seed"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
