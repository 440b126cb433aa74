//! SVHN (Street View House Numbers), format 2: 32×32 colour digits in MATLAB `.mat` files,
//! read with the crate's MATLAB level-5 MAT-file reader ([`crate::mat`], also reachable as
//! `svhn::mat`).
//!
//! # Format
//!
//! `train_32x32.mat` (73,257 digits), `test_32x32.mat` (26,032) and `extra_32x32.mat`
//! (531,131) each hold two variables: `X`, a `32×32×3×N` `uint8` array, and `y`, `N×1`
//! labels `1..=10`, where 10 stands for the digit 0. MATLAB arrays are column-major, so
//! `X(r, c, ch, n)` is at `r + 32c + 1024ch + 3072n`; the loader transposes each plane into
//! the channel-first, row-major layout of [`ImageSet`] and maps label 10 to 0, so a label
//! is the digit shown.
//!
//! # Loading
//!
//! [`BuiltinDataset::Svhn`](crate::BuiltinDataset::Svhn) loads a split by the route every
//! built-in dataset takes ([`crate::loader`]): it looks for the split's file in
//! `<root>/svhn/` then `<root>/`, in each root of
//! [`DataSources::roots`](crate::DataSources::roots); failing that, with downloads on (feature `download`), it fetches
//! the file from [`SVHN_MIRRORS`] (overridable with `$CAPSNET_SVHN_MIRROR`) into
//! `<cache>/svhn/`, keeping it only if its MD5 is the published one (when verifying). With
//! [`DataSources::verify`](crate::DataSources::verify) on, the file's MD5 must be the published one ([`svhn_md5`]); the
//! structure is always checked.

use std::path::{Path, PathBuf};

use crate::dataset::DatasetFacts;
use crate::files::check_digest;
/// Lowercase hex MD5 (RFC 1321) of `bytes`, to check the published SVHN sums (re-exported
/// from [`crate::files`]).
pub use crate::files::md5_hex;
use crate::mat::{MatArray, MatClass, MatValue};
use crate::{DataError, Dims, ImageSet, Split};

/// The MAT-file reader, re-exported under its former path `svhn::mat`.
pub use crate::mat;

/// Sub-directory of a data root holding the SVHN files.
pub const SVHN_SUBDIR: &str = "svhn";
/// The training file.
pub const SVHN_TRAIN_FILE: &str = "train_32x32.mat";
/// The test file.
pub const SVHN_TEST_FILE: &str = "test_32x32.mat";
/// The extra (easier) training file; load it with [`load_svhn_file`].
pub const SVHN_EXTRA_FILE: &str = "extra_32x32.mat";
/// Where the files are published: `<mirror>train_32x32.mat` etc.
pub const SVHN_MIRRORS: [&str; 1] = ["http://ufldl.stanford.edu/housenumbers/"];
/// Environment variable overriding [`SVHN_MIRRORS`]: base URLs separated by commas or
/// whitespace (tests point it at a local server).
pub const SVHN_MIRROR_ENV: &str = "CAPSNET_SVHN_MIRROR";
/// Digits in the training file.
pub const SVHN_TRAIN_COUNT: usize = 73_257;
/// Digits in the test file.
pub const SVHN_TEST_COUNT: usize = 26_032;
/// Shape of an SVHN image: 3×32×32 (RGB planes).
pub const SVHN_DIMS: Dims = Dims {
    channels: 3,
    height: 32,
    width: 32,
};
/// Number of classes (the digits 0 to 9).
pub const SVHN_NUM_CLASSES: usize = 10;

/// SVHN's facts (a label is the digit shown, so the class names are MNIST's).
pub const SVHN_FACTS: DatasetFacts = DatasetFacts {
    name: SVHN_SUBDIR,
    class_names: &crate::mnist::MNIST_CLASS_NAMES,
    dims: SVHN_DIMS,
    mirror_env: SVHN_MIRROR_ENV,
    mirrors: &SVHN_MIRRORS,
    fetchable: true,
    verification: "MD5 verified",
};

const FORMAT: &str = "SVHN";

/// MD5 sums of the files, as published with the dataset (and used by torchvision).
const MD5: [(&str, &str); 3] = [
    (SVHN_TRAIN_FILE, "e26dedcc434d2e4c54c9b2d4a06d8373"),
    (SVHN_TEST_FILE, "eb5a983be6a315427106f1b164d9cef3"),
    (SVHN_EXTRA_FILE, "a93ce644f1a588dc4d68dda5feec44a7"),
];

/// The file of `split`.
pub fn svhn_file(split: Split) -> &'static str {
    match split {
        Split::Train => SVHN_TRAIN_FILE,
        Split::Test => SVHN_TEST_FILE,
    }
}

/// The published MD5 (lowercase hex) of the file named `name`, if it is one of the three.
pub fn svhn_md5(name: &str) -> Option<&'static str> {
    MD5.iter().find(|(n, _)| *n == name).map(|(_, md5)| *md5)
}

/// Parses the contents of an SVHN `.mat` file into a set of `3×32×32` images with labels
/// `0..10` (MATLAB's 10 becomes 0). `path` is only used in error messages.
///
/// Fails with [`DataError::Malformed`] naming the file if it is not a valid MAT-file, lacks
/// `X` or `y`, or they have the wrong class, shape or values.
pub fn parse_svhn(bytes: &[u8], path: &Path) -> Result<ImageSet, DataError> {
    let bad = |reason: String| DataError::Malformed {
        path: path.to_path_buf(),
        format: FORMAT,
        reason,
    };
    let vars = mat::parse_mat_variables(bytes, path)?;
    let find = |name: &str| -> Result<&MatArray, DataError> {
        let var = vars.iter().find(|v| v.name == name).ok_or_else(|| {
            let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
            bad(format!(
                "no numeric variable {name:?} (variables: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ))
        })?;
        match &var.value {
            MatValue::Numeric(array) => Ok(array),
            other => Err(bad(format!(
                "{name} is {}, expected a numeric array",
                other.describe()
            ))),
        }
    };
    let x = find("X")?;
    let y = find("y")?;
    if x.class != MatClass::Uint8 {
        return Err(bad(format!("X is {}, expected uint8", x.class.name())));
    }
    let (h, w, c) = (SVHN_DIMS.height, SVHN_DIMS.width, SVHN_DIMS.channels);
    let count = match x.dims[..] {
        [dh, dw, dc, n] if (dh, dw, dc) == (h, w, c) => n,
        // MATLAB drops trailing singleton dimensions: one image is 32×32×3.
        [dh, dw, dc] if (dh, dw, dc) == (h, w, c) => 1,
        _ => {
            return Err(bad(format!(
                "X is {}, expected 32×32×3×N",
                mat::shape(&x.dims)
            )));
        }
    };
    let label_count = match y.dims[..] {
        [n, 1] | [1, n] => n,
        _ => {
            return Err(bad(format!("y is {}, expected N×1", mat::shape(&y.dims))));
        }
    };
    if label_count != count {
        return Err(bad(format!(
            "X holds {count} images but y holds {label_count} labels"
        )));
    }
    if count == 0 {
        return Err(bad("no image".into()));
    }
    let mut labels = Vec::with_capacity(count);
    for (i, v) in y.values_f64().enumerate() {
        if v.fract() != 0.0 || !(1.0..=10.0).contains(&v) {
            return Err(bad(format!(
                "y({}) is {v}, expected 1 to 10 (10 for the digit 0)",
                i + 1
            )));
        }
        labels.push((v as u8) % 10);
    }
    let pixels = x
        .to_u8()
        .map_err(|(i, v)| bad(format!("X element {i} is {v}, not a uint8")))?;
    // Column-major (r + h*col per plane) to row-major (r*w + col).
    let mut images = vec![0u8; pixels.len()];
    for (src, dst) in pixels
        .chunks_exact(h * w)
        .zip(images.chunks_exact_mut(h * w))
    {
        for (col, column) in src.chunks_exact(h).enumerate() {
            for (r, &p) in column.iter().enumerate() {
                dst[r * w + col] = p;
            }
        }
    }
    ImageSet::new(images, labels, SVHN_DIMS, SVHN_NUM_CLASSES)
}

/// Reads and parses an SVHN `.mat` file; with `verify`, its MD5 must be the published one
/// for its file name (a file with another name cannot be verified and is rejected).
pub fn load_svhn_file(path: &Path, verify: bool) -> Result<ImageSet, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    // Structure first (a truncated file says so), then the checksum.
    let set = parse_svhn(&bytes, path)?;
    if verify {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let expected = svhn_md5(name).ok_or_else(|| {
            DataError::Invalid(format!(
                "{}: no published checksum for an SVHN file named {name:?}; disable \
                 verification to load custom data",
                path.display()
            ))
        })?;
        check_digest(path, "MD5", expected, md5_hex(&bytes))?;
    }
    Ok(set)
}

/// The split's file (in `<root>/svhn/` or `<root>/`; see
/// [`crate::dataset::candidate_files`]) in the first of `roots` that holds it; on failure,
/// every path looked at.
pub fn locate_svhn(split: Split, roots: &[PathBuf]) -> Result<PathBuf, Vec<PathBuf>> {
    let mut paths = crate::dataset::locate_files(roots, SVHN_SUBDIR, &[svhn_file(split)], false)?;
    Ok(paths.remove(0))
}

/// The error when no root holds the split's file: every path looked at, and how to fix it.
pub(crate) fn not_found(split: Split, tried: Vec<PathBuf>) -> DataError {
    DataError::DataNotFound {
        dataset: format!("svhn {split}"),
        files: vec![svhn_file(split).to_owned()],
        tried,
        hint: format!(
            "Download it (format 2, cropped digits) from {} into <root>/{SVHN_SUBDIR}/ of a data \
             root (data.root / --data-dir, or CAPSNET_DATA), or enable downloading",
            SVHN_MIRRORS[0]
        ),
    }
}

/// Downloads the split's file into `<cache>/svhn/` from the first of `mirrors` that serves
/// it whole (and, when `verify`, with the published MD5).
#[cfg(feature = "download")]
pub(crate) fn fetch(
    split: Split,
    cache: &Path,
    mirrors: &[String],
    verify: bool,
    progress: &dyn crate::DownloadProgress,
) -> Result<(), DataError> {
    let name = svhn_file(split);
    let check = move |path: &Path| -> Result<(), String> {
        if !verify {
            return Ok(());
        }
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let expected = svhn_md5(name).expect("the split files have published sums");
        let found = md5_hex(&bytes);
        match found == expected {
            true => Ok(()),
            false => Err(format!(
                "checksum mismatch: MD5 of {name} is {found}, expected {expected}"
            )),
        }
    };
    crate::download::download_plain(&cache.join(SVHN_SUBDIR), mirrors, name, &check, progress)
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_rfc_1321_vectors() {
        for (input, expected) in [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ] {
            assert_eq!(md5_hex(input.as_bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn md5_handles_the_padding_boundaries() {
        // 55, 56, 64 and 130 bytes cross the padding cases; sums from Python's hashlib.
        let data: Vec<u8> = (0..130u32).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(md5_hex(&data[..55]), MD5_55);
        assert_eq!(md5_hex(&data[..56]), MD5_56);
        assert_eq!(md5_hex(&data[..64]), MD5_64);
        assert_eq!(md5_hex(&data[..130]), MD5_130);
    }

    const MD5_55: &str = "52c0e574e1198de5fe3f8f11440dcb1b";
    const MD5_56: &str = "46c9907fc908ee68b1e7b8e71286a518";
    const MD5_64: &str = "7160b8fb5e9e4023d549c3971fbaeead";
    const MD5_130: &str = "4298951876af905376a025f7279651c2";

    #[test]
    fn published_sums_are_well_formed() {
        for split in [Split::Train, Split::Test] {
            let md5 = svhn_md5(svhn_file(split)).unwrap();
            assert_eq!(md5.len(), 32);
            assert!(md5.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert!(svhn_md5(SVHN_EXTRA_FILE).is_some());
        assert!(svhn_md5("other.mat").is_none());
    }
}
