//! The files of a dataset and their digests: [`ExpectedFile`], lowercase-hex SHA-256 and MD5,
//! and the one digest check every loader uses ([`check_digest`]). A leaf module: the loaders
//! and [`crate::download`] both import it, and it imports neither.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::DataError;

/// A file of a dataset and, optionally, the SHA-256 its decompressed contents must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedFile<'a> {
    /// Canonical file name, without `.gz` (e.g. `train-images-idx3-ubyte`).
    pub name: &'a str,
    /// Lowercase hex SHA-256 of the decompressed file; `None` skips verification.
    pub sha256: Option<&'a str>,
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex MD5 (RFC 1321) of `bytes`, to check the published SVHN sums.
pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::Md5;
    hex(&Md5::digest(bytes))
}

/// Lowercase hex SHA-256 of a file's bytes, streamed.
pub fn file_sha256(path: &Path) -> Result<String, DataError> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(hex(&hasher.finalize())),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DataError::io(path, e)),
        }
    }
}

/// `Ok` if `found` is `expected`, else [`DataError::DigestMismatch`] naming `path` and
/// `algorithm` (e.g. `"MD5"`).
pub fn check_digest(
    path: &Path,
    algorithm: &'static str,
    expected: &str,
    found: String,
) -> Result<(), DataError> {
    if found == expected {
        Ok(())
    } else {
        Err(DataError::DigestMismatch {
            path: path.to_path_buf(),
            algorithm,
            expected: expected.to_owned(),
            found,
        })
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_matches_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
