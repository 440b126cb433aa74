//! Fixtures shared by the unit tests: IDX/gzip files (the local HTTP server is `crate::test_server`).

use std::io::Write;
use std::path::Path;

use flate2::{Compression, write::GzEncoder};

use crate::{Split, idx};

/// Gzip-compresses `bytes`.
pub(crate) fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// IDX bytes of 28×28 images.
pub(crate) fn idx_images(pixels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    idx::write_idx_images(&mut v, 28, 28, pixels).unwrap();
    v
}

/// IDX bytes of labels.
pub(crate) fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    idx::write_idx_labels(&mut v, labels).unwrap();
    v
}

/// Writes a split's two files (28×28 images) into `dir`, as `.gz` if `gzip`.
pub(crate) fn write_split(dir: &Path, split: Split, pixels: &[u8], labels: &[u8], gzip: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let [images_name, labels_name] = crate::mnist::split_files(split);
    for (name, bytes) in [
        (images_name, idx_images(pixels)),
        (labels_name, idx_labels(labels)),
    ] {
        if gzip {
            std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

/// The directory holding the real datasets (`mnist/`, `fashion-mnist/`): `$CAPSNET_DATA` if
/// set, else `shared/datasets` beside the workspace. Panics (failing the test) if missing.
#[cfg(feature = "download")]
pub(crate) fn real_data_root() -> std::path::PathBuf {
    let root = std::env::var_os(crate::dataset::DATA_ENV)
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets"));
    assert!(
        root.join("mnist").is_dir(),
        "real MNIST data not found at {}: set CAPSNET_DATA to a directory holding mnist/",
        root.display()
    );
    root
}
