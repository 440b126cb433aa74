//! The crate's error type.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while finding, downloading, parsing or batching a dataset.
///
/// Every variant that concerns a file keeps its path (or URL), so the one-line message
/// says which file is at fault and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// Reading, writing or creating a file or directory failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A `.gz` file is not valid gzip data (corrupt, truncated or not gzip at all).
    #[error("corrupt gzip file {}: {source}", path.display())]
    Gzip {
        /// The `.gz` file.
        path: PathBuf,
        /// The decoder's error.
        source: io::Error,
    },
    /// The IDX magic number is not the one expected for this kind of file.
    #[error(
        "{}: bad IDX magic number {found:#010x}, expected {expected:#010x} \
         (wrong file, or not an IDX file)",
        path.display()
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number this kind of file must start with.
        expected: u32,
        /// The magic number found.
        found: u32,
    },
    /// The file is shorter than its header says (or too short to hold the header).
    #[error(
        "{}: truncated IDX file: expected {expected_bytes} bytes, found {found_bytes}",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Size (header + payload) implied by the header, in bytes.
        expected_bytes: u64,
        /// Actual size, in bytes.
        found_bytes: u64,
    },
    /// The file is longer than its header says.
    #[error(
        "{}: trailing data after IDX payload: expected {expected_bytes} bytes, found {found_bytes}",
        path.display()
    )]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// Size (header + payload) implied by the header, in bytes.
        expected_bytes: u64,
        /// Actual size, in bytes.
        found_bytes: u64,
    },
    /// The header declares dimensions that are zero-sized where they must not be, or overflow.
    #[error("{}: invalid IDX header: {reason}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The image file and the label file hold different numbers of items.
    #[error(
        "{} holds {image_count} images but {} holds {label_count} labels",
        images.display(),
        labels.display()
    )]
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// The label file.
        labels: PathBuf,
        /// Number of images.
        image_count: usize,
        /// Number of labels.
        label_count: usize,
    },
    /// A label is outside `0..num_classes`.
    #[error(
        "{}: label #{index} is {value}, but the dataset has {num_classes} classes",
        path.display()
    )]
    BadLabel {
        /// The label file.
        path: PathBuf,
        /// Position of the label in the file.
        index: usize,
        /// The offending value.
        value: u8,
        /// Number of classes of the dataset.
        num_classes: usize,
    },
    /// One download attempt failed.
    #[error("download of {url} failed: {reason}")]
    Download {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// Every mirror failed for a file; holds each attempt's error, in mirror order.
    #[error(
        "could not download {file} from any mirror: {}. Offline? Put the dataset files in a \
         folder and point CAPSNET_DATA (or data.root / --data-dir) at it",
        ErrorList(failures)
    )]
    MirrorsExhausted {
        /// The file name (without `.gz`).
        file: String,
        /// One error per mirror tried.
        failures: Vec<DataError>,
    },
    /// An argument is invalid (unknown dataset name, zero batch size, out-of-range index…).
    #[error("{0}")]
    Invalid(String),
    /// A file is not valid data of its format (CIFAR-10 batch, NORB matrix, MATLAB MAT-file,
    /// tar archive…): wrong magic number or version, bad header, truncated, trailing bytes,
    /// unexpected shape, missing variable, not the canonical file…
    #[error("{}: invalid {format} file: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The format it should be in, e.g. `smallNORB matrix`.
        format: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An image file cannot be read or decoded (unreadable, truncated, not an image, too
    /// large), or cannot be brought to the configured shape.
    #[error("image {}: {reason}", path.display())]
    BadImage {
        /// The image file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A folder of class folders is not usable as a dataset (missing, empty class, a class
    /// only in the test split, mixed channel counts, too many classes).
    #[error("image folder {}: {reason}", path.display())]
    ImageFolder {
        /// The folder (or file) at fault.
        path: PathBuf,
        /// What is wrong, and how to fix it.
        reason: String,
    },
    /// No data root holds the files of a dataset outside the MNIST family (CIFAR-10,
    /// smallNORB, SVHN), and they could not be downloaded.
    #[error(
        "{dataset} data not found: need {} in one directory; tried {}. {hint}",
        FileList(files),
        PathList(tried)
    )]
    DataNotFound {
        /// Dataset and split, e.g. `cifar10 train`.
        dataset: String,
        /// The file names needed.
        files: Vec<String>,
        /// Every path that was looked at, in order.
        tried: Vec<PathBuf>,
        /// How to get the files.
        hint: String,
    },
    /// A file's digest is not the canonical one: the SHA-256 of the decompressed data (MNIST,
    /// Fashion-MNIST) or the MD5 sums published for SVHN.
    #[error(
        "checksum mismatch for {}: {algorithm} is {found}, expected {expected} \
         (corrupt or different file; delete it, or disable verification for custom data)",
        path.display()
    )]
    DigestMismatch {
        /// The file.
        path: PathBuf,
        /// What was hashed how, e.g. `MD5` or `SHA-256 of the decompressed data`.
        algorithm: &'static str,
        /// Expected lowercase hex digest.
        expected: String,
        /// Actual lowercase hex digest.
        found: String,
    },
}

impl DataError {
    /// Builds an [`DataError::Io`] for `path`.
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

struct PathList<'a>(&'a [PathBuf]);

/// File names as a sentence: `a and b`, or `a, b, c`.
struct FileList<'a>(&'a [String]);

impl fmt::Display for FileList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [a, b] => write!(f, "{a} and {b}"),
            files => f.write_str(&files.join(", ")),
        }
    }
}

impl fmt::Display for PathList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no directory (no data root configured)");
        }
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", p.display())?;
        }
        Ok(())
    }
}

struct ErrorList<'a>(&'a [DataError]);

impl fmt::Display for ErrorList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no mirror configured");
        }
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_and_the_problem() {
        let e = DataError::BadMagic {
            path: "x/train-images-idx3-ubyte".into(),
            expected: 0x803,
            found: 0x801,
        };
        let msg = e.to_string();
        assert!(msg.contains("x/train-images-idx3-ubyte"), "{msg}");
        assert!(
            msg.contains("0x00000803") && msg.contains("0x00000801"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));

        let e = DataError::DataNotFound {
            dataset: "mnist test".into(),
            files: vec!["a".into(), "b".into()],
            tried: vec!["/r1/a".into(), "/r2/a.gz".into()],
            hint: crate::mnist::IDX_NOT_FOUND_HINT.into(),
        };
        let msg = e.to_string();
        for needle in [
            "mnist test",
            "a and b",
            "/r1/a, /r2/a.gz",
            "CAPSNET_DATA",
            "data.root",
        ] {
            assert!(msg.contains(needle), "{needle:?} not in {msg}");
        }

        let e = DataError::MirrorsExhausted {
            file: "f".into(),
            failures: vec![
                DataError::Download {
                    url: "http://m1/f.gz".into(),
                    reason: "HTTP 404".into(),
                },
                DataError::Download {
                    url: "http://m2/f.gz".into(),
                    reason: "refused".into(),
                },
            ],
        };
        let msg = e.to_string();
        assert!(msg.contains("http://m1/f.gz failed: HTTP 404; "), "{msg}");
        assert!(msg.contains("http://m2/f.gz failed: refused"), "{msg}");
    }
}
