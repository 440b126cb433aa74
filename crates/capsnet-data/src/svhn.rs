//! SVHN (Street View House Numbers), format 2: 32×32 colour digits in MATLAB `.mat` files,
//! read with a minimal MATLAB level-5 MAT-file reader ([`mat`]).
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
//! [`load_svhn`] looks for the split's file in `<root>/svhn/` then `<root>/`, in each root
//! of [`DataSources::roots`] (there is no download). With [`DataSources::verify`] on, the
//! file's MD5 must be the published one ([`svhn_md5`]); the structure is always checked.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::{DataError, DataSources, Dims, ImageSet, Split};

use self::mat::MatClass;

/// Sub-directory of a data root holding the SVHN files.
pub const SVHN_SUBDIR: &str = "svhn";
/// The training file.
pub const SVHN_TRAIN_FILE: &str = "train_32x32.mat";
/// The test file.
pub const SVHN_TEST_FILE: &str = "test_32x32.mat";
/// The extra (easier) training file; load it with [`load_svhn_file`].
pub const SVHN_EXTRA_FILE: &str = "extra_32x32.mat";
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
    let vars = mat::parse_mat(bytes, path)?;
    let find = |name: &str| {
        vars.iter().find(|v| v.name == name).ok_or_else(|| {
            let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
            bad(format!(
                "no numeric variable {name:?} (variables: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ))
        })
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
    let pixels: Cow<'_, [u8]> = match x.as_u8() {
        Some(p) => Cow::Borrowed(p),
        None => {
            let mut p = Vec::with_capacity(x.len());
            for (i, v) in x.values_f64().enumerate() {
                if v.fract() != 0.0 || !(0.0..=255.0).contains(&v) {
                    return Err(bad(format!("X element {i} is {v}, not a uint8")));
                }
                p.push(v as u8);
            }
            Cow::Owned(p)
        }
    };
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
        let found = md5_hex(&bytes);
        if found != expected {
            return Err(DataError::DigestMismatch {
                path: path.to_path_buf(),
                algorithm: "MD5",
                expected: expected.to_owned(),
                found,
            });
        }
    }
    Ok(set)
}

/// Where `file` may be under `root`, in the order looked at: `<root>/svhn/<file>`,
/// `<root>/<file>`.
pub fn svhn_candidate_paths(root: &Path, file: &str) -> [PathBuf; 2] {
    [root.join(SVHN_SUBDIR).join(file), root.join(file)]
}

/// The split's file in the first of `roots` that holds it; on failure, every path looked at.
pub fn locate_svhn(split: Split, roots: &[PathBuf]) -> Result<PathBuf, Vec<PathBuf>> {
    let mut tried = Vec::new();
    for root in roots {
        for path in svhn_candidate_paths(root, svhn_file(split)) {
            if path.is_file() {
                return Ok(path);
            }
            tried.push(path);
        }
    }
    Err(tried)
}

/// Loads an SVHN split from `sources` (see the [module docs](self)). Returns the set and
/// the directory of its file.
pub fn load_svhn(split: Split, sources: &DataSources) -> Result<(ImageSet, PathBuf), DataError> {
    let path = locate_svhn(split, &sources.roots()).map_err(|tried| DataError::DataNotFound {
        dataset: format!("svhn {split}"),
        files: vec![svhn_file(split).to_owned()],
        tried,
        hint: format!(
            "Download it (format 2, cropped digits) from http://ufldl.stanford.edu/housenumbers/ \
             into <root>/{SVHN_SUBDIR}/ of a data root (data.root / --data-dir, or CAPSNET_DATA)"
        ),
    })?;
    let set = load_svhn_file(&path, sources.verify)?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((set, dir))
}

/// Lowercase hex MD5 (RFC 1321) of `bytes`, to check the published SVHN sums.
pub fn md5_hex(bytes: &[u8]) -> String {
    const SHIFTS: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
    // K[i] = floor(|sin(i + 1)| * 2^32), as RFC 1321 defines the table.
    let k: [u32; 64] =
        std::array::from_fn(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32);
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut compress = |block: &[u8]| {
        let m: [u32; 16] = std::array::from_fn(|i| {
            u32::from_le_bytes([
                block[4 * i],
                block[4 * i + 1],
                block[4 * i + 2],
                block[4 * i + 3],
            ])
        });
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated = a
                .wrapping_add(f)
                .wrapping_add(k[i])
                .wrapping_add(m[g])
                .rotate_left(SHIFTS[(i / 16) * 4 + i % 4]);
            (a, d, c) = (d, c, b);
            b = b.wrapping_add(rotated);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    };
    let mut blocks = bytes.chunks_exact(64);
    for block in &mut blocks {
        compress(block);
    }
    let rest = blocks.remainder();
    let mut tail = Vec::with_capacity(128);
    tail.extend_from_slice(rest);
    tail.push(0x80);
    while tail.len() % 64 != 56 {
        tail.push(0);
    }
    tail.extend_from_slice(&((bytes.len() as u64).wrapping_mul(8)).to_le_bytes());
    for block in tail.chunks_exact(64) {
        compress(block);
    }
    state
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .fold(String::with_capacity(32), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

pub mod mat {
    //! A minimal reader of MATLAB level-5 MAT-files (what MATLAB 5 to 7.x writes; not the
    //! HDF5-based 7.3 format), for exactly what numeric datasets such as SVHN contain.
    //!
    //! A file is a 128-byte header (descriptive text starting `MATLAB 5.0 MAT-file`, a
    //! subsystem offset, version `0x0100` and the endian indicator `IM` of a little-endian
    //! file) followed by data elements: an 8-byte tag (type, byte count) and the data. Each
    //! top-level element is a variable, either `miMATRIX` or `miCOMPRESSED` (a zlib stream
    //! holding one `miMATRIX` element). A matrix holds, as sub-elements padded to 8 bytes
    //! (or packed in the tag when at most 4 bytes long): array flags (class, complex
    //! flag), dimensions, name, real part and, if complex, imaginary part.
    //!
    //! Numeric arrays of every class (`double`, `single`, `int8` to `uint64`) are read,
    //! their real part kept as stored: MATLAB may store values in a smaller type than
    //! their class (a `double` array of small integers as `uint8`), and
    //! [`MatArray::values_f64`] converts either way. Other classes (cell, struct, char,
    //! sparse, object) are skipped. Big-endian files are rejected.

    use std::fmt;
    use std::path::Path;

    use flate2::{Decompress, FlushDecompress, Status};

    use crate::DataError;

    /// Size of the MAT-file header.
    pub const MAT_HEADER_LEN: usize = 128;
    /// Start of the header text of a level-5 MAT-file.
    pub const MAT_V5_TEXT: &[u8] = b"MATLAB 5.0 MAT-file";
    /// Version field of a level-5 MAT-file.
    pub const MAT_V5_VERSION: u16 = 0x0100;

    const FORMAT: &str = "MATLAB v5 MAT";
    const MI_UINT32: u32 = 6;
    const MI_INT32: u32 = 5;
    const MI_INT8: u32 = 1;
    const MI_MATRIX: u32 = 14;
    const MI_COMPRESSED: u32 = 15;
    const COMPLEX_FLAG: u32 = 0x0800;

    /// The class of a numeric array (`mxDOUBLE_CLASS` …).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum MatClass {
        /// `double` (class 6).
        Double,
        /// `single` (7).
        Single,
        /// `int8` (8).
        Int8,
        /// `uint8` (9).
        Uint8,
        /// `int16` (10).
        Int16,
        /// `uint16` (11).
        Uint16,
        /// `int32` (12).
        Int32,
        /// `uint32` (13).
        Uint32,
        /// `int64` (14).
        Int64,
        /// `uint64` (15).
        Uint64,
    }

    impl MatClass {
        fn from_code(code: u32) -> Option<Self> {
            Some(match code {
                6 => Self::Double,
                7 => Self::Single,
                8 => Self::Int8,
                9 => Self::Uint8,
                10 => Self::Int16,
                11 => Self::Uint16,
                12 => Self::Int32,
                13 => Self::Uint32,
                14 => Self::Int64,
                15 => Self::Uint64,
                _ => return None,
            })
        }

        /// MATLAB's name of the class, e.g. `uint8`.
        pub fn name(self) -> &'static str {
            match self {
                Self::Double => "double",
                Self::Single => "single",
                Self::Int8 => "int8",
                Self::Uint8 => "uint8",
                Self::Int16 => "int16",
                Self::Uint16 => "uint16",
                Self::Int32 => "int32",
                Self::Uint32 => "uint32",
                Self::Int64 => "int64",
                Self::Uint64 => "uint64",
            }
        }
    }

    /// The data type an array's values are stored in (`miINT8` …), which may be smaller
    /// than its class.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum MatStorage {
        /// `miINT8` (type 1).
        Int8,
        /// `miUINT8` (2).
        Uint8,
        /// `miINT16` (3).
        Int16,
        /// `miUINT16` (4).
        Uint16,
        /// `miINT32` (5).
        Int32,
        /// `miUINT32` (6).
        Uint32,
        /// `miSINGLE` (7).
        Single,
        /// `miDOUBLE` (9).
        Double,
        /// `miINT64` (12).
        Int64,
        /// `miUINT64` (13).
        Uint64,
    }

    impl MatStorage {
        fn from_code(code: u32) -> Option<Self> {
            Some(match code {
                1 => Self::Int8,
                2 => Self::Uint8,
                3 => Self::Int16,
                4 => Self::Uint16,
                5 => Self::Int32,
                6 => Self::Uint32,
                7 => Self::Single,
                9 => Self::Double,
                12 => Self::Int64,
                13 => Self::Uint64,
                _ => return None,
            })
        }

        /// Bytes per value.
        pub fn size(self) -> usize {
            match self {
                Self::Int8 | Self::Uint8 => 1,
                Self::Int16 | Self::Uint16 => 2,
                Self::Int32 | Self::Uint32 | Self::Single => 4,
                Self::Double | Self::Int64 | Self::Uint64 => 8,
            }
        }

        /// The little-endian value in `b` (of [`MatStorage::size`] bytes) as `f64`
        /// (64-bit integers beyond 2^53 are rounded).
        fn to_f64(self, b: &[u8]) -> f64 {
            let a8 = |b: &[u8]| -> [u8; 8] { std::array::from_fn(|i| b[i]) };
            match self {
                Self::Int8 => f64::from(b[0] as i8),
                Self::Uint8 => f64::from(b[0]),
                Self::Int16 => f64::from(i16::from_le_bytes([b[0], b[1]])),
                Self::Uint16 => f64::from(u16::from_le_bytes([b[0], b[1]])),
                Self::Int32 => f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                Self::Uint32 => f64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                Self::Single => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                Self::Double => f64::from_le_bytes(a8(b)),
                Self::Int64 => i64::from_le_bytes(a8(b)) as f64,
                Self::Uint64 => u64::from_le_bytes(a8(b)) as f64,
            }
        }
    }

    /// A numeric variable: its name, class, dimensions and real part.
    #[derive(Clone, PartialEq)]
    pub struct MatArray {
        /// Variable name.
        pub name: String,
        /// MATLAB class.
        pub class: MatClass,
        /// Dimensions (at least two), column-major order of the data.
        pub dims: Vec<usize>,
        /// Whether the array had an imaginary part (read and dropped).
        pub complex: bool,
        storage: MatStorage,
        real: Vec<u8>,
    }

    impl fmt::Debug for MatArray {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("MatArray")
                .field("name", &self.name)
                .field("class", &self.class)
                .field("dims", &self.dims)
                .field("complex", &self.complex)
                .field("storage", &self.storage)
                .field("real_bytes", &self.real.len())
                .finish()
        }
    }

    impl MatArray {
        /// Number of values (the product of the dimensions).
        pub fn len(&self) -> usize {
            self.real.len() / self.storage.size()
        }

        /// True if the array has no value.
        pub fn is_empty(&self) -> bool {
            self.real.is_empty()
        }

        /// The type the values are stored in.
        pub fn storage(&self) -> MatStorage {
            self.storage
        }

        /// The values, column-major, when stored as `uint8`.
        pub fn as_u8(&self) -> Option<&[u8]> {
            (self.storage == MatStorage::Uint8).then_some(&self.real[..])
        }

        /// The values, column-major, converted to `f64`.
        pub fn values_f64(&self) -> impl Iterator<Item = f64> + '_ {
            let storage = self.storage;
            self.real
                .chunks_exact(storage.size())
                .map(move |b| storage.to_f64(b))
        }
    }

    /// `a×b×c` for messages.
    pub(crate) fn shape(dims: &[usize]) -> String {
        dims.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("×")
    }

    fn bad(path: &Path, reason: String) -> DataError {
        DataError::Malformed {
            path: path.to_path_buf(),
            format: FORMAT,
            reason,
        }
    }

    fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a whole MAT-file.
    pub fn read_mat(path: &Path) -> Result<Vec<MatArray>, DataError> {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        parse_mat(&bytes, path)
    }

    /// Parses a level-5 MAT-file: its numeric variables, in file order. `path` is only used
    /// in error messages.
    ///
    /// Everything wrong is [`DataError::Malformed`] naming the file: a header that is not
    /// that of a little-endian level-5 file, a truncated or overlong element, a corrupt
    /// zlib stream, sizes that do not match the dimensions, bytes after the last element.
    pub fn parse_mat(bytes: &[u8], path: &Path) -> Result<Vec<MatArray>, DataError> {
        check_header(bytes, path)?;
        let mut vars = Vec::new();
        let mut pos = MAT_HEADER_LEN;
        while pos < bytes.len() {
            let (Some(ty), Some(n)) = (u32_at(bytes, pos), u32_at(bytes, pos + 4)) else {
                return Err(bad(
                    path,
                    format!(
                        "truncated: {} bytes after the last element at byte {pos}, less than a tag",
                        bytes.len() - pos
                    ),
                ));
            };
            let start = pos + 8;
            let end = start
                .checked_add(n as usize)
                .filter(|&e| e <= bytes.len())
                .ok_or_else(|| {
                    bad(
                        path,
                        format!(
                            "truncated: the element at byte {pos} declares {n} bytes, only {} \
                             remain",
                            bytes.len() - start
                        ),
                    )
                })?;
            let data = &bytes[start..end];
            let var = match ty {
                MI_MATRIX => parse_matrix(data, path, pos)?
                    .map(|(meta, real)| meta.with_real(data[real].to_vec())),
                MI_COMPRESSED => {
                    let mut inner = inflate(data)
                        .map_err(|e| bad(path, format!("element at byte {pos}: {e}")))?;
                    let (Some(ity), Some(in_n)) = (u32_at(&inner, 0), u32_at(&inner, 4)) else {
                        return Err(bad(
                            path,
                            format!("compressed element at byte {pos} holds no element"),
                        ));
                    };
                    if ity != MI_MATRIX {
                        return Err(bad(
                            path,
                            format!(
                                "compressed element at byte {pos} holds an element of type \
                                 {ity}, expected a matrix (14)"
                            ),
                        ));
                    }
                    if inner.len() - 8 != in_n as usize {
                        return Err(bad(
                            path,
                            format!(
                                "compressed element at byte {pos} decompresses to {} bytes, \
                                 but its matrix declares {in_n}",
                                inner.len() - 8
                            ),
                        ));
                    }
                    match parse_matrix(&inner[8..], path, pos)? {
                        Some((meta, real)) => {
                            // Reuse the decompressed buffer for the real part.
                            inner.truncate(8 + real.end);
                            inner.drain(..8 + real.start);
                            Some(meta.with_real(inner))
                        }
                        None => None,
                    }
                }
                _ => {
                    return Err(bad(
                        path,
                        format!(
                            "unexpected element of type {ty} at byte {pos} (a variable must be a \
                             matrix (14) or compressed (15))"
                        ),
                    ));
                }
            };
            vars.extend(var);
            pos = end;
        }
        Ok(vars)
    }

    fn check_header(bytes: &[u8], path: &Path) -> Result<(), DataError> {
        if bytes.len() < MAT_HEADER_LEN {
            return Err(bad(
                path,
                format!(
                    "truncated: the header takes {MAT_HEADER_LEN} bytes, the file has {}",
                    bytes.len()
                ),
            ));
        }
        if bytes.starts_with(b"MATLAB 7.3 MAT-file") {
            return Err(bad(
                path,
                "a MATLAB 7.3 (HDF5) file, which is not supported: save it with -v7".into(),
            ));
        }
        if !bytes.starts_with(MAT_V5_TEXT) {
            let shown = String::from_utf8_lossy(&bytes[..MAT_V5_TEXT.len()]);
            return Err(bad(
                path,
                format!("header text starts {shown:?}, expected \"MATLAB 5.0 MAT-file\""),
            ));
        }
        match &bytes[126..128] {
            b"IM" => {}
            b"MI" => {
                return Err(bad(path, "big-endian file, which is not supported".into()));
            }
            other => {
                return Err(bad(
                    path,
                    format!("bad endian indicator {other:?}, expected \"IM\""),
                ));
            }
        }
        let version = u16::from_le_bytes([bytes[124], bytes[125]]);
        if version != MAT_V5_VERSION {
            return Err(bad(
                path,
                format!("version {version:#06x}, expected {MAT_V5_VERSION:#06x}"),
            ));
        }
        Ok(())
    }

    /// Inflates a complete zlib stream that must fill `input` exactly.
    ///
    /// Once the first 8 bytes (the inner element's tag) are out, the buffer is sized from
    /// the length they declare, bounded by what deflate can expand `input` to (about
    /// 1032:1), so a large variable is not copied while the buffer grows.
    fn inflate(input: &[u8]) -> Result<Vec<u8>, String> {
        let bound = input.len().saturating_mul(1032).saturating_add(1 << 10);
        let mut d = Decompress::new(true);
        let mut out: Vec<u8> = Vec::with_capacity(1 << 16);
        let mut sized = false;
        loop {
            if !sized && out.len() >= 8 {
                sized = true;
                let declared = u32_at(&out, 4).unwrap_or_default() as usize + 8;
                out.reserve_exact(declared.min(bound).saturating_sub(out.len()));
            }
            if out.capacity() == out.len() {
                out.reserve(if sized { 1 << 16 } else { out.len() });
            }
            let (before_in, before_out) = (d.total_in(), d.total_out());
            let consumed = before_in as usize;
            let status = d
                .decompress_vec(&input[consumed..], &mut out, FlushDecompress::None)
                .map_err(|e| format!("corrupt zlib data: {e}"))?;
            if status == Status::StreamEnd {
                break;
            }
            if d.total_in() == before_in && d.total_out() == before_out {
                return Err(format!(
                    "truncated zlib data: the stream is incomplete after {} bytes",
                    input.len()
                ));
            }
        }
        let used = d.total_in() as usize;
        if used != input.len() {
            return Err(format!(
                "{} bytes after the end of the zlib stream",
                input.len() - used
            ));
        }
        Ok(out)
    }

    /// A parsed matrix without its real part.
    struct Meta {
        name: String,
        class: MatClass,
        dims: Vec<usize>,
        complex: bool,
        storage: MatStorage,
    }

    impl Meta {
        fn with_real(self, real: Vec<u8>) -> MatArray {
            MatArray {
                name: self.name,
                class: self.class,
                dims: self.dims,
                complex: self.complex,
                storage: self.storage,
                real,
            }
        }
    }

    /// One sub-element of a matrix: its type, data and the offset of the next one.
    fn sub_element<'a>(
        buf: &'a [u8],
        pos: usize,
        what: &str,
        err: &dyn Fn(String) -> DataError,
    ) -> Result<(u32, &'a [u8], usize), DataError> {
        let truncated = || err(format!("truncated {what}"));
        let word = u32_at(buf, pos).ok_or_else(truncated)?;
        if word >> 16 != 0 {
            // Small data element: type and length packed in the first word, data in the second.
            let (ty, n) = (word & 0xffff, (word >> 16) as usize);
            if n > 4 {
                return Err(err(format!(
                    "{what}: small element of {n} bytes (at most 4)"
                )));
            }
            let data = buf.get(pos + 4..pos + 4 + n).ok_or_else(truncated)?;
            if buf.len() < pos + 8 {
                return Err(truncated());
            }
            return Ok((ty, data, pos + 8));
        }
        let n = u32_at(buf, pos + 4).ok_or_else(truncated)? as usize;
        let start = pos + 8;
        let end = start
            .checked_add(n)
            .filter(|&e| e <= buf.len())
            .ok_or_else(truncated)?;
        // Padded to 8 bytes; a missing final padding is tolerated.
        let next = end.next_multiple_of(8).min(buf.len());
        Ok((word, &buf[start..end], next))
    }

    /// Parses the contents of a `miMATRIX` element; `None` for a non-numeric class. The
    /// range is where the real part lies in `buf`.
    fn parse_matrix(
        buf: &[u8],
        path: &Path,
        at: usize,
    ) -> Result<Option<(Meta, std::ops::Range<usize>)>, DataError> {
        let err = |reason: String| bad(path, format!("variable at byte {at}: {reason}"));
        let (ty, flags, pos) = sub_element(buf, 0, "array flags", &err)?;
        if ty != MI_UINT32 || flags.len() != 8 {
            return Err(err(format!(
                "array flags of type {ty} and {} bytes, expected uint32 (6) and 8",
                flags.len()
            )));
        }
        let flags = u32_at(flags, 0).unwrap_or_default();
        let Some(class) = MatClass::from_code(flags & 0xff) else {
            return Ok(None);
        };
        let complex = flags & COMPLEX_FLAG != 0;
        let (ty, raw_dims, pos) = sub_element(buf, pos, "dimensions", &err)?;
        if ty != MI_INT32 || raw_dims.len() % 4 != 0 || raw_dims.len() < 8 {
            return Err(err(format!(
                "dimensions of type {ty} and {} bytes, expected at least two int32 (5)",
                raw_dims.len()
            )));
        }
        let dims = raw_dims
            .chunks_exact(4)
            .map(|b| {
                let d = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                usize::try_from(d).map_err(|_| err(format!("negative dimension {d}")))
            })
            .collect::<Result<Vec<usize>, _>>()?;
        let count = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| err(format!("dimensions {} overflow", shape(&dims))))?;
        let (ty, name, pos) = sub_element(buf, pos, "name", &err)?;
        if ty != MI_INT8 {
            return Err(err(format!("name of type {ty}, expected int8 (1)")));
        }
        let name = String::from_utf8_lossy(name).into_owned();
        let err = |reason: String| bad(path, format!("variable {name:?}: {reason}"));
        let part = |pos: usize, what: &str| {
            let (ty, data, next) = sub_element(buf, pos, what, &err)?;
            let storage = MatStorage::from_code(ty)
                .ok_or_else(|| err(format!("{what} of type {ty}, which is not a numeric type")))?;
            if Some(data.len()) != count.checked_mul(storage.size()) {
                return Err(err(format!(
                    "{what} holds {} bytes, but {} values of {} bytes take {}",
                    data.len(),
                    shape(&dims),
                    storage.size(),
                    count.saturating_mul(storage.size())
                )));
            }
            let start = data.as_ptr() as usize - buf.as_ptr() as usize;
            Ok::<_, DataError>((storage, start..start + data.len(), next))
        };
        let (storage, real, mut pos) = part(pos, "real part")?;
        if complex {
            (_, _, pos) = part(pos, "imaginary part")?;
        }
        if pos != buf.len() {
            return Err(err(format!(
                "{} bytes after the last part of the matrix",
                buf.len() - pos
            )));
        }
        let meta = Meta {
            name,
            class,
            dims,
            complex,
            storage,
        };
        Ok(Some((meta, real)))
    }
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
