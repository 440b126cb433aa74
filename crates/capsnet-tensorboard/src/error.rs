//! The crate's error type.

use std::path::{Path, PathBuf};

/// Errors of the writer and the reader; every variant names the event file.
#[derive(Debug, thiserror::Error)]
pub enum TbError {
    /// An I/O operation on the event file or its directory failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`"opening"`, `"writing"`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A record's stored CRC does not match its bytes.
    #[error("{}: CRC mismatch in the {part} of the record at byte {offset} (corrupt event file)", path.display())]
    Crc {
        /// The event file.
        path: PathBuf,
        /// Byte offset of the record's start.
        offset: u64,
        /// `"length"` or `"data"`.
        part: &'static str,
    },
    /// The file ends inside a record, as a crash during a write leaves it.
    #[error("{}: truncated record at byte {offset}: it needs {needed} bytes but the file ends after {available} (partial last record, e.g. from a crash)", path.display())]
    Truncated {
        /// The event file.
        path: PathBuf,
        /// Byte offset of the record's start.
        offset: u64,
        /// Bytes the record needs (at least the 12-byte header when its length is unknown).
        needed: u64,
        /// Bytes present from `offset` to the end of the file.
        available: u64,
    },
    /// A record with valid CRCs is not a valid `Event` message.
    #[error("{}: record at byte {offset} is not a valid Event: {source}", path.display())]
    Decode {
        /// The event file.
        path: PathBuf,
        /// Byte offset of the record's start.
        offset: u64,
        /// The protobuf decode error.
        source: prost::DecodeError,
    },
    /// The arguments of a summary are invalid; nothing was written.
    #[error("{}: invalid summary for tag {tag:?}: {reason}", path.display())]
    InvalidInput {
        /// The event file.
        path: PathBuf,
        /// The summary's tag.
        tag: String,
        /// What is wrong.
        reason: String,
    },
    /// PNG encoding of an image failed; nothing was written.
    #[error("{}: encoding the PNG of image {tag:?}: {source}", path.display())]
    Png {
        /// The event file.
        path: PathBuf,
        /// The image's tag.
        tag: String,
        /// The encoder's error.
        source: png::EncodingError,
    },
}

impl TbError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// The event file (or directory) the error is about.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. }
            | Self::Crc { path, .. }
            | Self::Truncated { path, .. }
            | Self::Decode { path, .. }
            | Self::InvalidInput { path, .. }
            | Self::Png { path, .. } => path,
        }
    }
}
