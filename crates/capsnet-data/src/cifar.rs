//! CIFAR-10, binary version: parsing the batch files, finding them (or downloading and
//! extracting the official archive), and the crops of the CapsNet paper's CIFAR-10 runs.
//!
//! # Format
//!
//! `cifar-10-batches-bin/data_batch_{1..5}.bin` (training) and `test_batch.bin` (test) each
//! hold 10,000 records of [`CIFAR10_RECORD_BYTES`] bytes: one label byte (`0..10`), then the
//! 1,024 red, 1,024 green and 1,024 blue values of a 32×32 image, each plane row-major. That
//! is already channel-first, so a record's pixels are stored in the [`ImageSet`] as they are.
//!
//! # Where data comes from
//!
//! [`BuiltinDataset::Cifar10`](crate::BuiltinDataset::Cifar10) loads a split by the route
//! every built-in dataset takes ([`crate::loader`]). It looks in each root of
//! [`DataSources::roots`](crate::DataSources::roots), in order, for the split's files in
//! `<root>/cifar10/cifar-10-batches-bin/`, then `<root>/cifar-10-batches-bin/`; the first
//! directory holding all of them wins. Failing that, and if downloading is on (feature
//! `download`), `cifar-10-binary.tar.gz` is downloaded from the mirrors ([`CIFAR10_MIRRORS`],
//! overridable with `$CAPSNET_CIFAR_MIRROR`) into `<cache>/cifar10/`, its SHA-256 checked
//! (unless [`DataSources::verify`](crate::DataSources::verify) is off), the batch files
//! extracted into `<cache>/cifar10/cifar-10-batches-bin/` and the archive deleted.
//!
//! # Verification
//!
//! No checksum of the individual batch files is published, only the archive's
//! ([`CIFAR10_ARCHIVE_SHA256`], [`CIFAR10_ARCHIVE_MD5`]), checked on download. Loading always
//! checks the structure (whole records, labels below 10); with verification on, each batch
//! file must also hold exactly [`CIFAR10_RECORDS_PER_FILE`] records, as the canonical ones do.
//!
//! # Crops
//!
//! The paper trains its CIFAR-10 model on 24×24 patches ([`CIFAR10_PAPER_CROP`]): random ones
//! for training, the central one for evaluation. [`crate::CroppedImages`] makes both, for any
//! channel-first image set (smallNORB's 32×32 crops of 48×48 images, too).

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::dataset::DatasetFacts;
use crate::{DataError, Dims, ImageSet, Split};

/// Sub-directory of a data root (and of the cache) holding `cifar-10-batches-bin/`.
pub const CIFAR10_SUBDIR: &str = "cifar10";
/// Directory of the batch files, as the official archive unpacks.
pub const CIFAR10_BATCHES_DIR: &str = "cifar-10-batches-bin";
/// The training batch files, in the order their records are concatenated.
pub const CIFAR10_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test batch file.
pub const CIFAR10_TEST_FILES: [&str; 1] = ["test_batch.bin"];
/// The class-name file of the archive (extracted too, never needed for loading).
pub const CIFAR10_META_FILE: &str = "batches.meta.txt";
/// File name of the official archive of the binary version.
pub const CIFAR10_ARCHIVE: &str = "cifar-10-binary.tar.gz";
/// SHA-256 of the official archive (the compressed file as served, 170,052,171 bytes).
pub const CIFAR10_ARCHIVE_SHA256: &str =
    "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd";
/// MD5 of the official archive, as published on the dataset's page (for reference; the
/// SHA-256 is what is checked).
pub const CIFAR10_ARCHIVE_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// Download mirrors of the archive, in order of preference; `<mirror>cifar-10-binary.tar.gz`
/// is fetched.
pub const CIFAR10_MIRRORS: [&str; 1] = ["https://www.cs.toronto.edu/~kriz/"];
/// Environment variable overriding [`CIFAR10_MIRRORS`]: base URLs separated by commas or
/// whitespace.
pub const CIFAR_MIRROR_ENV: &str = "CAPSNET_CIFAR_MIRROR";
/// Shape of a CIFAR-10 image: 3×32×32 (RGB planes).
pub const CIFAR10_DIMS: Dims = Dims {
    channels: 3,
    height: 32,
    width: 32,
};
/// Number of classes.
pub const CIFAR10_NUM_CLASSES: usize = 10;
/// Class names, by label (as in `batches.meta.txt`).
pub const CIFAR10_CLASS_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
/// CIFAR-10's facts.
pub const CIFAR10_FACTS: DatasetFacts = DatasetFacts {
    name: CIFAR10_SUBDIR,
    class_names: &CIFAR10_CLASS_NAMES,
    dims: CIFAR10_DIMS,
    mirror_env: CIFAR_MIRROR_ENV,
    mirrors: &CIFAR10_MIRRORS,
    fetchable: true,
    verification: "checksums verified",
};
/// Bytes per record: a label byte and 3,072 pixels.
pub const CIFAR10_RECORD_BYTES: usize = 1 + CIFAR10_DIMS.size();
/// Records in each canonical batch file.
pub const CIFAR10_RECORDS_PER_FILE: usize = 10_000;
/// Side of the square crops the CapsNet paper trains and evaluates CIFAR-10 on.
pub const CIFAR10_PAPER_CROP: usize = 24;

const FORMAT: &str = "CIFAR-10 batch";
const ARCHIVE_FORMAT: &str = "CIFAR-10 archive (tar.gz)";

/// The batch files of `split`, in order.
pub fn cifar10_files(split: Split) -> &'static [&'static str] {
    match split {
        Split::Train => &CIFAR10_TRAIN_FILES,
        Split::Test => &CIFAR10_TEST_FILES,
    }
}

/// Parses one batch file: any whole, non-zero number of records. `path` is only used in
/// error messages.
///
/// A partial record at the end is [`DataError::Malformed`], a label of 10 or more
/// [`DataError::BadLabel`].
pub fn parse_cifar10_batch(bytes: &[u8], path: &Path) -> Result<ImageSet, DataError> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    parse_into(bytes, path, false, &mut images, &mut labels)?;
    ImageSet::new(images, labels, CIFAR10_DIMS, CIFAR10_NUM_CLASSES)
}

/// Appends the records of `bytes` to `images` and `labels`; with `canonical`, the file must
/// hold exactly [`CIFAR10_RECORDS_PER_FILE`] records.
fn parse_into(
    bytes: &[u8],
    path: &Path,
    canonical: bool,
    images: &mut Vec<u8>,
    labels: &mut Vec<u8>,
) -> Result<(), DataError> {
    let bad = |reason: String| DataError::Malformed {
        path: path.to_path_buf(),
        format: FORMAT,
        reason,
    };
    let (count, rest) = (
        bytes.len() / CIFAR10_RECORD_BYTES,
        bytes.len() % CIFAR10_RECORD_BYTES,
    );
    if bytes.is_empty() {
        return Err(bad("empty file (no record)".into()));
    }
    if rest != 0 {
        return Err(bad(format!(
            "{} bytes are not a whole number of {CIFAR10_RECORD_BYTES}-byte records: \
             {count} records, then a truncated one of {rest} bytes",
            bytes.len()
        )));
    }
    if canonical && count != CIFAR10_RECORDS_PER_FILE {
        return Err(bad(format!(
            "{count} records, but the canonical file has {CIFAR10_RECORDS_PER_FILE} \
             (turn verification off for custom data)"
        )));
    }
    images.reserve(count * CIFAR10_DIMS.size());
    labels.reserve(count);
    for (index, record) in bytes.chunks_exact(CIFAR10_RECORD_BYTES).enumerate() {
        let value = record[0];
        if usize::from(value) >= CIFAR10_NUM_CLASSES {
            return Err(DataError::BadLabel {
                path: path.to_path_buf(),
                index,
                value,
                num_classes: CIFAR10_NUM_CLASSES,
            });
        }
        labels.push(value);
        images.extend_from_slice(&record[1..]);
    }
    Ok(())
}

/// Loads the batch files of `split` from `dir` (a `cifar-10-batches-bin` directory),
/// concatenated in order. With `verify`, each file must hold exactly
/// [`CIFAR10_RECORDS_PER_FILE`] records.
pub fn load_cifar10_dir(dir: &Path, split: Split, verify: bool) -> Result<ImageSet, DataError> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for name in cifar10_files(split) {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
        parse_into(&bytes, &path, verify, &mut images, &mut labels)?;
    }
    ImageSet::new(images, labels, CIFAR10_DIMS, CIFAR10_NUM_CLASSES)
}

/// The directories under `root` that may hold the batch files, in the order looked at:
/// `<root>/cifar10/cifar-10-batches-bin`, `<root>/cifar-10-batches-bin`.
pub fn cifar10_candidate_dirs(root: &Path) -> [PathBuf; 2] {
    [
        root.join(CIFAR10_SUBDIR).join(CIFAR10_BATCHES_DIR),
        root.join(CIFAR10_BATCHES_DIR),
    ]
}

/// The first candidate directory (see [`cifar10_candidate_dirs`]) of the first of `roots`
/// that holds every file of `split`; on failure, every path looked at (in each directory,
/// the files up to the first missing one).
pub fn locate_cifar10(split: Split, roots: &[PathBuf]) -> Result<PathBuf, Vec<PathBuf>> {
    let mut tried = Vec::new();
    for root in roots {
        for dir in cifar10_candidate_dirs(root) {
            let mut complete = true;
            for name in cifar10_files(split) {
                let path = dir.join(name);
                let present = path.is_file();
                tried.push(path);
                if !present {
                    complete = false;
                    break;
                }
            }
            if complete {
                return Ok(dir);
            }
        }
    }
    Err(tried)
}

/// Downloads and extracts the archive (both splits) into `<cache>/cifar10/` from the first
/// of `mirrors` that serves it intact (its SHA-256 checked when `verify`).
#[cfg(feature = "download")]
pub(crate) fn fetch(
    cache: &Path,
    mirrors: &[String],
    verify: bool,
    progress: &dyn crate::DownloadProgress,
) -> Result<(), DataError> {
    let sha256 = verify.then_some(CIFAR10_ARCHIVE_SHA256);
    download_cifar10(&cache.join(CIFAR10_SUBDIR), mirrors, sha256, progress).map(|_| ())
}

/// The error when no root holds the split's files: every path looked at, and how to fix it.
pub(crate) fn not_found(split: Split, tried: Vec<PathBuf>, download: bool) -> DataError {
    let mut hint = format!(
        "Unpack {CIFAR10_ARCHIVE} (binary version, from {}) into a data root (data.root / \
         --data-dir, or CAPSNET_DATA)",
        CIFAR10_MIRRORS[0]
    );
    if !cfg!(feature = "download") {
        hint.push_str("; downloading needs the `download` feature");
    } else if !download {
        hint.push_str(", or enable downloading");
    }
    DataError::DataNotFound {
        dataset: format!("cifar10 {split}"),
        files: cifar10_files(split)
            .iter()
            .map(|f| format!("{CIFAR10_BATCHES_DIR}/{f}"))
            .collect(),
        tried,
        hint,
    }
}

/// Downloads `<mirror>cifar-10-binary.tar.gz` into `dir` (created if needed) from the first
/// mirror that serves an intact archive (complete, valid gzip, SHA-256 equal to `sha256`
/// when given, holding every batch file), extracts it there with
/// [`extract_cifar10_archive`] and deletes it. Returns the `cifar-10-batches-bin` directory.
///
/// If every mirror fails the error is [`DataError::MirrorsExhausted`], with one reason per
/// mirror; a local I/O error stops at once.
#[cfg(feature = "download")]
pub fn download_cifar10(
    dir: &Path,
    mirrors: &[impl AsRef<str>],
    sha256: Option<&str>,
    progress: &dyn crate::DownloadProgress,
) -> Result<PathBuf, DataError> {
    use crate::ExpectedFile;
    // `download_file` fetches `<mirror>/<name>.gz` and checks the gzip stream.
    let name = CIFAR10_ARCHIVE.trim_end_matches(".gz");
    let file = ExpectedFile { name, sha256: None };
    let mut failures = Vec::new();
    for mirror in mirrors {
        let mirror = mirror.as_ref();
        let url = format!("{}/{CIFAR10_ARCHIVE}", mirror.trim_end_matches('/'));
        let archive = match crate::download::download_file(dir, &[mirror], &file, progress) {
            Ok(archive) => archive,
            Err(DataError::MirrorsExhausted { failures: f, .. }) => {
                failures.extend(f);
                continue;
            }
            Err(e) => return Err(e),
        };
        let checked = match sha256 {
            Some(expected) => {
                let found = crate::files::file_sha256(&archive)?;
                if found == expected {
                    Ok(())
                } else {
                    Err(format!(
                        "checksum mismatch: SHA-256 of {CIFAR10_ARCHIVE} is {found}, \
                         expected {expected}"
                    ))
                }
            }
            None => Ok(()),
        };
        let extracted = match checked {
            Err(reason) => Err(reason),
            Ok(()) => match extract_cifar10_archive(&archive, dir) {
                Ok(batches) => Ok(batches),
                Err(DataError::Malformed { reason, .. }) => Err(format!("bad archive: {reason}")),
                Err(e) => {
                    // A local problem (disk full, permissions): no mirror helps.
                    let _ = std::fs::remove_file(&archive);
                    return Err(e);
                }
            },
        };
        // The extracted files are what is looked up; the archive is not kept either way.
        let _ = std::fs::remove_file(&archive);
        match extracted {
            Ok(batches) => return Ok(batches),
            Err(reason) => failures.push(DataError::Download { url, reason }),
        }
    }
    Err(DataError::MirrorsExhausted {
        file: name.to_owned(),
        failures,
    })
}

/// Extracts the batch files (and `batches.meta.txt`, if present) of a `.tar.gz` archive in
/// the official layout into `<dest>/cifar-10-batches-bin/`, and returns that directory.
///
/// Only the regular-file members `cifar-10-batches-bin/<file>` (optionally `./`-prefixed)
/// with the known names are written; everything else in the archive is ignored, so no
/// member can write outside `dest`. Each file is written under a temporary name and renamed
/// when complete. A corrupt archive, or one lacking a batch file, is
/// [`DataError::Malformed`] naming the archive.
pub fn extract_cifar10_archive(archive: &Path, dest: &Path) -> Result<PathBuf, DataError> {
    let bad = |reason: String| DataError::Malformed {
        path: archive.to_path_buf(),
        format: ARCHIVE_FORMAT,
        reason,
    };
    let out_dir = dest.join(CIFAR10_BATCHES_DIR);
    std::fs::create_dir_all(&out_dir).map_err(|e| DataError::io(&out_dir, e))?;
    let file = File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let mut tar = tar::Archive::new(MultiGzDecoder::new(BufReader::with_capacity(1 << 16, file)));
    let wanted: Vec<&str> = CIFAR10_TRAIN_FILES
        .iter()
        .chain(&CIFAR10_TEST_FILES)
        .copied()
        .chain([CIFAR10_META_FILE])
        .collect();
    let mut found = vec![false; wanted.len()];
    let entries = tar.entries().map_err(|e| bad(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let member = entry.path_bytes().into_owned();
        let member = member.strip_prefix(b"./").unwrap_or(&member);
        let Some(index) = member
            .strip_prefix(CIFAR10_BATCHES_DIR.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"/"))
            .and_then(|name| wanted.iter().position(|w| w.as_bytes() == name))
        else {
            continue;
        };
        let name = wanted[index];
        let target = out_dir.join(name);
        let part = out_dir.join(format!(".{name}.part"));
        let written = write_member(&mut entry, &part)
            .and_then(|()| std::fs::rename(&part, &target).map_err(|e| DataError::io(&target, e)));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&part);
            return Err(match e {
                DataError::Gzip { source, .. } => {
                    bad(format!("{CIFAR10_BATCHES_DIR}/{name}: {source}"))
                }
                e => e,
            });
        }
        found[index] = true;
    }
    let missing: Vec<String> = wanted
        .iter()
        .zip(&found)
        .filter(|&(name, &f)| !f && *name != CIFAR10_META_FILE)
        .map(|(name, _)| format!("{CIFAR10_BATCHES_DIR}/{name}"))
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!("lacks {}", missing.join(", "))));
    }
    Ok(out_dir)
}

/// Copies an archive member into `part`; a read error (corrupt archive) is reported as
/// [`DataError::Gzip`] for the caller to rename, a write error as [`DataError::Io`].
fn write_member(entry: &mut impl Read, part: &Path) -> Result<(), DataError> {
    let mut out = File::create(part).map_err(|e| DataError::io(part, e))?;
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(DataError::Gzip {
                    path: part.to_path_buf(),
                    source,
                });
            }
        };
        out.write_all(&buf[..n])
            .map_err(|e| DataError::io(part, e))?;
    }
    out.sync_all().map_err(|e| DataError::io(part, e))
}

/// Shape of a `crop`×`crop` crop of a `dims`-shaped image (same channels).
pub const fn crop_dims(dims: Dims, crop: usize) -> Dims {
    Dims {
        channels: dims.channels,
        height: crop,
        width: crop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(channels: usize, height: usize, width: usize) -> Dims {
        Dims {
            channels,
            height,
            width,
        }
    }

    #[test]
    fn record_size_and_tables() {
        assert_eq!(CIFAR10_RECORD_BYTES, 3073);
        assert_eq!(cifar10_files(Split::Train).len(), 5);
        assert_eq!(cifar10_files(Split::Test), ["test_batch.bin"]);
        assert_eq!(CIFAR10_ARCHIVE_SHA256.len(), 64);
        assert_eq!(CIFAR10_ARCHIVE_MD5.len(), 32);
        assert_eq!(crop_dims(CIFAR10_DIMS, 24), dims(3, 24, 24));
    }
}
