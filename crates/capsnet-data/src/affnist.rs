//! The real affNIST files (Tieleman 2013): 40×40 MNIST digits under random affine
//! transformations, the test set of the CapsNet paper's robustness experiment (section 5.2).
//! The expanded-MNIST training data are in [`crate::expanded`], an affNIST-like generator in
//! [`crate::affine`].
//!
//! # Format ([`load_affnist_mat`])
//!
//! affNIST is distributed as MATLAB v5 `.mat` files (`test.mat`, `test_batches/1.mat`…),
//! each holding one 1×1 struct `affNISTdata` whose field `image` is a 1600×N `uint8`
//! matrix (one column per image) and `label_int` N labels. MATLAB stores matrices
//! column-major, so each image's 1600 bytes are contiguous, and affNIST stored each 40×40
//! image transposed, so those bytes are the image in row-major order: exactly the
//! [`ImageSet`] layout (NumPy users write `image.T.reshape(-1, 40, 40)`). The files are
//! read with the crate's MAT-file reader ([`crate::mat`]): both byte orders, compressed
//! (`miCOMPRESSED`, zlib) and plain variables, the small-element format; the variables
//! before `affNISTdata` and the other fields are read and skipped, the variables after it
//! are not read. MATLAB v7.3 (HDF5) files are refused with a hint.

use std::path::Path;

use crate::mat::{self, MatValue};
use crate::{DataError, Dims, ImageSet};

/// Side of affNIST images, in pixels.
pub const AFFNIST_SIDE: usize = 40;
/// Shape of affNIST images: 1×40×40.
pub const AFFNIST_DIMS: Dims = Dims {
    channels: 1,
    height: AFFNIST_SIDE,
    width: AFFNIST_SIDE,
};
/// Name of the struct variable in the affNIST `.mat` files.
pub const AFFNIST_VARIABLE: &str = "affNISTdata";

/// Reads an affNIST `.mat` file (MATLAB v5) into an [`ImageSet`] of 1×40×40 images in 10
/// classes (see the [module docs](self)).
///
/// The file is read and decompressed whole: `test.mat` (320,000 images, 512 MB of pixels)
/// needs about 1 GB while loading; each of the 32 `test_batches/*.mat` needs 1/32 of that.
///
/// Errors name the file: [`DataError::Io`] if it cannot be read, [`DataError::Malformed`] if
/// it is not a MATLAB v5 file, is truncated or corrupt, or lacks the `affNISTdata` struct,
/// its `image` or `label_int` field, or holds sizes or values affNIST cannot have.
pub fn load_affnist_mat(path: &Path) -> Result<ImageSet, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_affnist_mat(&bytes, path)
}

/// Reads several affNIST `.mat` files (e.g. `test_batches/1.mat` … `32.mat`) into one
/// [`ImageSet`], in order. Fails like [`load_affnist_mat`], or with [`DataError::Invalid`]
/// for an empty list.
pub fn load_affnist_mats<P: AsRef<Path>>(paths: &[P]) -> Result<ImageSet, DataError> {
    if paths.is_empty() {
        return Err(DataError::Invalid("no affNIST .mat file given".into()));
    }
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for path in paths {
        let set = load_affnist_mat(path.as_ref())?;
        images.extend_from_slice(set.images());
        labels.extend_from_slice(set.labels());
    }
    ImageSet::new(images, labels, AFFNIST_DIMS, 10)
}

/// Parses the bytes of an affNIST `.mat` file; `path` is only used in error messages.
///
/// Fails like [`load_affnist_mat`].
pub fn parse_affnist_mat(bytes: &[u8], path: &Path) -> Result<ImageSet, DataError> {
    find_affnist(bytes).map_err(|reason| DataError::Malformed {
        path: path.to_path_buf(),
        format: "affNIST .mat",
        reason,
    })
}

/// Reads the variables up to `affNISTdata` (no further) and turns it into an image set.
fn find_affnist(bytes: &[u8]) -> Result<ImageSet, String> {
    let mut seen = Vec::new();
    for var in mat::variables(bytes)? {
        let var = var?;
        if var.name == AFFNIST_VARIABLE {
            return extract_affnist(var.value);
        }
        seen.push(var.name);
    }
    Err(if seen.is_empty() {
        format!("no variable `{AFFNIST_VARIABLE}`: the file holds no variable")
    } else {
        format!(
            "no variable `{AFFNIST_VARIABLE}` (variables: {})",
            seen.join(", ")
        )
    })
}

/// `1600x3`-style rendering of dimensions, as in the other messages of this module.
fn dims_string(dims: &[usize]) -> String {
    dims.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

/// Turns the `affNISTdata` struct into an image set.
fn extract_affnist(value: MatValue) -> Result<ImageSet, String> {
    let (dims, fields, mut values) = match value {
        MatValue::Struct {
            dims,
            fields,
            values,
        } => (dims, fields, values),
        other => {
            return Err(format!(
                "variable `{AFFNIST_VARIABLE}` is {}, expected a struct",
                other.describe()
            ));
        }
    };
    if values.len() != fields.len() {
        return Err(format!(
            "variable `{AFFNIST_VARIABLE}` is a {} struct array, expected 1x1",
            dims_string(&dims)
        ));
    }
    let mut field = |name: &str| -> Result<(Vec<usize>, Vec<u8>), String> {
        let i = fields.iter().position(|f| f == name).ok_or_else(|| {
            format!(
                "`{AFFNIST_VARIABLE}` has no field `{name}` (fields: {})",
                fields.join(", ")
            )
        })?;
        match std::mem::replace(&mut values[i], MatValue::Empty) {
            MatValue::Numeric(array) if !array.complex => {
                let dims = array.dims.clone();
                let bytes = array.into_u8().map_err(|(i, v)| {
                    format!("field `{name}`: value #{i} is {v}, not an integer in 0..=255")
                })?;
                Ok((dims, bytes))
            }
            other => Err(format!(
                "field `{name}` is {}, expected a real numeric array",
                other.describe()
            )),
        }
    };
    let side2 = AFFNIST_DIMS.size();
    let (image_dims, images) = field("image")?;
    let count = match image_dims.as_slice() {
        [rows, n] if *rows == side2 => *n,
        _ => {
            return Err(format!(
                "field `image` is {}, expected {side2}xN (one 40x40 image per column)",
                dims_string(&image_dims)
            ));
        }
    };
    let (_, labels) = field("label_int")?;
    if labels.len() != count {
        return Err(format!(
            "field `image` holds {count} images but `label_int` holds {} labels",
            labels.len()
        ));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l >= 10) {
        return Err(format!("label_int #{i} is {l}, but affNIST has 10 classes"));
    }
    ImageSet::new(images, labels, AFFNIST_DIMS, 10).map_err(|e| e.to_string())
}
