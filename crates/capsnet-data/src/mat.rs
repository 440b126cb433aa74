//! A reader of MATLAB level-5 MAT-files (what MATLAB 5 to 7.x writes; not the HDF5-based
//! 7.3 format), shared by the SVHN ([`crate::svhn`]) and affNIST ([`crate::affnist`])
//! loaders. See "MAT-File Format", MathWorks.
//!
//! # Format
//!
//! A file is a 128-byte header (descriptive text starting `MATLAB 5.0 MAT-file`, a
//! subsystem offset, version `0x0100` and the endian indicator: `IM` in a little-endian
//! file, `MI` in a big-endian one) followed by data elements: an 8-byte tag (type, byte
//! count) and the data. Each top-level element is a variable, either `miMATRIX` or
//! `miCOMPRESSED` (a zlib stream holding one `miMATRIX` element). A matrix holds, as
//! sub-elements padded to 8 bytes (or packed with their tag in 8 bytes when at most 4 bytes
//! long, the small-element format): array flags (class, complex flag), dimensions, name
//! and the contents of its class.
//!
//! # What is read
//!
//! - Numeric arrays of every class (`double`, `single`, `int8` to `uint64`) become
//!   [`MatArray`]s: their real part is kept as stored (MATLAB may store values in a smaller
//!   type than their class, a `double` array of small integers as `uint8`) and
//!   [`MatArray::values_f64`] converts either way; the imaginary part is checked and
//!   dropped.
//! - Structs and cells are read recursively, at most [`MAT_MAX_DEPTH`] levels deep (a
//!   guard against crafted files).
//! - Other classes (char, sparse, object, function handle, opaque) are named and skipped.
//!
//! Both byte orders are read; values of a big-endian file are converted to little-endian,
//! so a [`MatArray`] holds the same bytes whatever the order of its file.
//!
//! Everything wrong is an error: a header that is not that of a level-5 file, a truncated or
//! overlong element, a corrupt zlib stream or bytes after it, sizes that do not match the
//! dimensions, bytes after the last part of a matrix or the last element of the file.
//! Messages say where (byte offsets, in the file or in the data decompressed from an
//! element) and in which variable or field.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use flate2::{Decompress, FlushDecompress, Status};

use crate::DataError;

/// Size of the MAT-file header.
pub const MAT_HEADER_LEN: usize = 128;
/// Start of the header text of a level-5 MAT-file.
pub const MAT_V5_TEXT: &[u8] = b"MATLAB 5.0 MAT-file";
/// Version field of a level-5 MAT-file.
pub const MAT_V5_VERSION: u16 = 0x0100;
/// Deepest nesting of structs and cells read: a variable is level 0, its fields or cells
/// level 1, and so on.
pub const MAT_MAX_DEPTH: usize = 32;

/// The `format` of the [`DataError::Malformed`] errors of this reader.
const FORMAT: &str = "MATLAB v5 MAT";

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;
const MI_UTF16: u32 = 17;
const MI_UTF32: u32 = 18;

const MX_CELL: u8 = 1;
const MX_STRUCT: u8 = 2;
const MX_OPAQUE: u8 = 17;
const COMPLEX_FLAG: u32 = 0x0800;
const V73_HINT: &str = "a MATLAB v7.3 (HDF5) file, which is not supported: re-save it with \
                        save(..., '-v7')";

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
    fn from_code(code: u8) -> Option<Self> {
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

/// MATLAB's name of any array class code.
fn class_name(code: u8) -> Cow<'static, str> {
    if let Some(class) = MatClass::from_code(code) {
        return Cow::Borrowed(class.name());
    }
    Cow::Borrowed(match code {
        MX_CELL => "cell",
        MX_STRUCT => "struct",
        3 => "object",
        4 => "char",
        5 => "sparse",
        16 => "function handle",
        MX_OPAQUE => "opaque",
        _ => return Cow::Owned(format!("class-{code}")),
    })
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
            MI_INT8 => Self::Int8,
            MI_UINT8 => Self::Uint8,
            MI_INT16 => Self::Int16,
            MI_UINT16 => Self::Uint16,
            MI_INT32 => Self::Int32,
            MI_UINT32 => Self::Uint32,
            MI_SINGLE => Self::Single,
            MI_DOUBLE => Self::Double,
            MI_INT64 => Self::Int64,
            MI_UINT64 => Self::Uint64,
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

/// The name of data type `ty` in messages, e.g. `type 9 (miDOUBLE)`.
fn type_name(ty: u32) -> String {
    let name = match ty {
        MI_INT8 => "miINT8",
        MI_UINT8 => "miUINT8",
        MI_INT16 => "miINT16",
        MI_UINT16 => "miUINT16",
        MI_INT32 => "miINT32",
        MI_UINT32 => "miUINT32",
        MI_SINGLE => "miSINGLE",
        MI_DOUBLE => "miDOUBLE",
        MI_INT64 => "miINT64",
        MI_UINT64 => "miUINT64",
        MI_MATRIX => "miMATRIX",
        MI_COMPRESSED => "miCOMPRESSED",
        MI_UTF8 => "miUTF8",
        MI_UTF16 => "miUTF16",
        MI_UTF32 => "miUTF32",
        _ => return format!("type {ty}"),
    };
    format!("type {ty} ({name})")
}

/// A numeric array: its name, class, dimensions and real part.
#[derive(Clone, PartialEq)]
pub struct MatArray {
    /// The name stored with the array: the variable's name for a variable, usually empty
    /// for a struct field or a cell.
    pub name: String,
    /// MATLAB class.
    pub class: MatClass,
    /// Dimensions (at least two), column-major order of the data.
    pub dims: Vec<usize>,
    /// Whether the array had an imaginary part (read and dropped).
    pub complex: bool,
    storage: MatStorage,
    /// Little-endian values, whatever the byte order of the file.
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

    /// The values, column-major, as bytes if every one is an integer in `0..=255`
    /// (borrowed when stored as `uint8`). Otherwise the index and value of the first that
    /// is not.
    pub fn to_u8(&self) -> Result<Cow<'_, [u8]>, (usize, f64)> {
        match self.as_u8() {
            Some(bytes) => Ok(Cow::Borrowed(bytes)),
            None => self.convert_u8().map(Cow::Owned),
        }
    }

    /// Like [`MatArray::to_u8`], consuming the array (its buffer is reused when the values
    /// are stored as `uint8`).
    pub fn into_u8(self) -> Result<Vec<u8>, (usize, f64)> {
        if self.storage == MatStorage::Uint8 {
            Ok(self.real)
        } else {
            self.convert_u8()
        }
    }

    /// Sets the real part from bytes in the file's order.
    fn set_real(&mut self, mut bytes: Vec<u8>, endian: Endian) {
        let size = self.storage.size();
        if endian == Endian::Big && size > 1 {
            for value in bytes.chunks_exact_mut(size) {
                value.reverse();
            }
        }
        self.real = bytes;
    }

    fn convert_u8(&self) -> Result<Vec<u8>, (usize, f64)> {
        let mut out = Vec::with_capacity(self.len());
        for (i, v) in self.values_f64().enumerate() {
            if v.fract() != 0.0 || !(0.0..=255.0).contains(&v) {
                return Err((i, v));
            }
            out.push(v as u8);
        }
        Ok(out)
    }
}

/// The contents of a variable, struct field or cell.
#[derive(Debug, Clone, PartialEq)]
pub enum MatValue {
    /// An empty `miMATRIX` element (no flags, no dimensions), as written for some empty
    /// fields and cells.
    Empty,
    /// A numeric array.
    Numeric(MatArray),
    /// A struct array. `values` holds, for each element (column-major), the value of
    /// each field in the order of `fields`: `dims.product() × fields.len()` values.
    Struct {
        /// Dimensions of the struct array (`[1, 1]` for a scalar struct).
        dims: Vec<usize>,
        /// Field names.
        fields: Vec<String>,
        /// Field values, element after element, field after field.
        values: Vec<MatValue>,
    },
    /// A cell array: its cells, column-major.
    Cell {
        /// Dimensions of the cell array.
        dims: Vec<usize>,
        /// The cells.
        values: Vec<MatValue>,
    },
    /// Anything else (char, sparse, object, function handle, opaque…), not read.
    Other {
        /// Class code from the array flags (4 for char, 5 for sparse…).
        class: u8,
        /// Dimensions (empty for an opaque object, which stores none).
        dims: Vec<usize>,
    },
}

impl MatValue {
    /// E.g. `a 2×3 double array`, `a 1×1 struct`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Empty => "an empty array".into(),
            Self::Numeric(a) => format!(
                "a {} {}{} array",
                shape(&a.dims),
                if a.complex { "complex " } else { "" },
                a.class.name()
            ),
            Self::Struct { dims, .. } => format!("a {} struct", shape(dims)),
            Self::Cell { dims, .. } => format!("a {} cell array", shape(dims)),
            Self::Other { class, dims } if dims.is_empty() => {
                format!("an object of class {}", class_name(*class))
            }
            Self::Other { class, dims } => {
                format!("a {} {} array", shape(dims), class_name(*class))
            }
        }
    }
}

/// A top-level variable of a MAT-file.
#[derive(Debug, Clone, PartialEq)]
pub struct MatVariable {
    /// Variable name.
    pub name: String,
    /// Its contents.
    pub value: MatValue,
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

/// Reads a whole MAT-file: its numeric variables, like [`parse_mat`].
pub fn read_mat(path: &Path) -> Result<Vec<MatArray>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_mat(&bytes, path)
}

/// Parses a level-5 MAT-file: its numeric variables, in file order (variables of other
/// classes are read, checked and left out). `path` is only used in error messages.
///
/// Everything wrong is [`DataError::Malformed`] naming the file (see the
/// [module docs](self)).
pub fn parse_mat(bytes: &[u8], path: &Path) -> Result<Vec<MatArray>, DataError> {
    Ok(parse_mat_variables(bytes, path)?
        .into_iter()
        .filter_map(|var| match var.value {
            MatValue::Numeric(array) => Some(array),
            _ => None,
        })
        .collect())
}

/// Parses a level-5 MAT-file: all its variables, in file order. `path` is only used in
/// error messages.
///
/// Fails like [`parse_mat`].
pub fn parse_mat_variables(bytes: &[u8], path: &Path) -> Result<Vec<MatVariable>, DataError> {
    variables(bytes)
        .and_then(|vars| vars.collect())
        .map_err(|reason| bad(path, reason))
}

/// The variables of a MAT-file, read one at a time (so a caller looking for one variable
/// reads no further); errors are messages without the file name. Fails at once if the
/// header is not that of a level-5 file.
pub(crate) fn variables(bytes: &[u8]) -> Result<Variables<'_>, String> {
    let endian = check_header(bytes)?;
    Ok(Variables {
        r: Reader {
            data: bytes,
            pos: MAT_HEADER_LEN,
            base: 0,
            endian,
            origin: None,
        },
        failed: false,
    })
}

/// Iterator over the variables of a file (see [`variables`]); it ends after an error.
pub(crate) struct Variables<'a> {
    r: Reader<'a>,
    failed: bool,
}

impl Iterator for Variables<'_> {
    type Item = Result<MatVariable, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.r.done() {
            return None;
        }
        let var = self.read_variable();
        self.failed = var.is_err();
        Some(var)
    }
}

impl Variables<'_> {
    fn read_variable(&mut self) -> Result<MatVariable, String> {
        let r = &mut self.r;
        let left = r.data.len() - r.pos;
        if left < 8 {
            return Err(format!(
                "truncated: {left} bytes after the {} (at byte {}), less than an element tag",
                if r.pos == MAT_HEADER_LEN {
                    "header"
                } else {
                    "last element"
                },
                r.pos
            ));
        }
        let el = r.next("variable")?;
        match el.ty {
            MI_MATRIX => Ok(parse_matrix(r, &el, 0, None)?.copied()),
            MI_COMPRESSED => {
                let at = r.at(el.offset);
                let mut buf = inflate(el.data, r.endian)
                    .map_err(|e| format!("the compressed element at {at}: {e}"))?;
                let parsed = {
                    let mut inner = Reader {
                        data: &buf,
                        pos: 0,
                        base: 0,
                        endian: r.endian,
                        origin: Some(el.offset),
                    };
                    let matrix = inner.next("compressed variable")?;
                    if matrix.ty != MI_MATRIX {
                        return Err(format!(
                            "the compressed element at {at} holds an element of {}, expected \
                             a matrix: miMATRIX (14)",
                            type_name(matrix.ty)
                        ));
                    }
                    if !inner.done() {
                        return Err(format!(
                            "the compressed element at {at} decompresses to {} bytes, but its \
                             matrix declares {}",
                            buf.len() - 8,
                            matrix.data.len()
                        ));
                    }
                    let parsed = parse_matrix(&inner, &matrix, 0, None)?;
                    // Only positions are kept, so the buffer can be moved below.
                    (parsed.name, parsed.value, parsed.real.map(|e| e.range()))
                };
                let (name, mut value, real) = parsed;
                if let (MatValue::Numeric(array), Some(range)) = (&mut value, real) {
                    // Reuse the decompressed buffer for the real part of a numeric variable.
                    buf.truncate(range.end);
                    buf.drain(..range.start);
                    array.set_real(buf, r.endian);
                }
                Ok(MatVariable { name, value })
            }
            ty => Err(format!(
                "unexpected element of {} at {} (a variable must be miMATRIX (14) or \
                 miCOMPRESSED (15))",
                type_name(ty),
                r.at(el.offset)
            )),
        }
    }
}

/// Checks the 128-byte header; returns the byte order.
fn check_header(bytes: &[u8]) -> Result<Endian, String> {
    if bytes.len() < MAT_HEADER_LEN {
        return Err(format!(
            "truncated: the header takes {MAT_HEADER_LEN} bytes, the file has {}",
            bytes.len()
        ));
    }
    if bytes.starts_with(b"MATLAB 7.3 MAT-file") {
        return Err(V73_HINT.into());
    }
    if !bytes.starts_with(MAT_V5_TEXT) {
        let shown = String::from_utf8_lossy(&bytes[..MAT_V5_TEXT.len()]);
        return Err(format!(
            "header text starts {shown:?}, expected \"MATLAB 5.0 MAT-file\" (not a MATLAB v5 \
             MAT-file; MATLAB v4 files are not supported)"
        ));
    }
    let endian = match &bytes[126..128] {
        b"IM" => Endian::Little,
        b"MI" => Endian::Big,
        other => {
            let shown = String::from_utf8_lossy(other);
            return Err(format!(
                "not a MATLAB v5 MAT-file: bad endian indicator {shown:?} at bytes 126-127, \
                 expected \"IM\" or \"MI\""
            ));
        }
    };
    match endian.u16(&bytes[124..126]) {
        MAT_V5_VERSION => Ok(endian),
        0x0200 => Err(format!("version 0x0200: {V73_HINT}")),
        v => Err(format!(
            "version {v:#06x} (read {}), expected {MAT_V5_VERSION:#06x}",
            endian.name()
        )),
    }
}

/// Inflates a complete zlib stream that must fill `input` exactly.
///
/// Once the first 8 bytes (the inner element's tag) are out, the buffer is sized from
/// the length they declare, bounded by what deflate can expand `input` to (about
/// 1032:1), so a large variable is not copied while the buffer grows.
fn inflate(input: &[u8], endian: Endian) -> Result<Vec<u8>, String> {
    let bound = input.len().saturating_mul(1032).saturating_add(1 << 10);
    let mut d = Decompress::new(true);
    let mut out: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut sized = false;
    loop {
        if !sized && out.len() >= 8 {
            sized = true;
            let declared = endian.u32(&out[4..8]) as usize + 8;
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

/// Byte order of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn name(self) -> &'static str {
        match self {
            Self::Little => "little-endian",
            Self::Big => "big-endian",
        }
    }

    fn u16(self, b: &[u8]) -> u16 {
        let b = [b[0], b[1]];
        match self {
            Self::Little => u16::from_le_bytes(b),
            Self::Big => u16::from_be_bytes(b),
        }
    }

    fn u32(self, b: &[u8]) -> u32 {
        let b = [b[0], b[1], b[2], b[3]];
        match self {
            Self::Little => u32::from_le_bytes(b),
            Self::Big => u32::from_be_bytes(b),
        }
    }
}

/// One data element: its type, its data and where they are.
#[derive(Debug, Clone, Copy)]
struct Element<'a> {
    ty: u32,
    data: &'a [u8],
    /// Where the tag starts, in the buffer read (the file or decompressed data).
    offset: usize,
    /// Where the data starts, in the same buffer.
    start: usize,
}

impl Element<'_> {
    fn range(&self) -> Range<usize> {
        self.start..self.start + self.data.len()
    }
}

/// Reads consecutive data elements from a buffer, reporting positions in the file.
#[derive(Debug, Clone, Copy)]
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of `data[0]` in the file, or in the decompressed data of `origin`.
    base: usize,
    endian: Endian,
    /// File offset of the compressed element `data` was inflated from, if any.
    origin: Option<usize>,
}

impl<'a> Reader<'a> {
    fn at(&self, offset: usize) -> String {
        match self.origin {
            None => format!("byte {offset}"),
            Some(o) => {
                format!("byte {offset} of the data decompressed from the element at byte {o}")
            }
        }
    }

    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// A reader of the sub-elements of `el`.
    fn child(&self, el: &Element<'a>) -> Self {
        Self {
            data: el.data,
            pos: 0,
            base: el.start,
            ..*self
        }
    }

    /// The next element, in the long or the small format; `what` names it in messages.
    fn next(&mut self, what: &str) -> Result<Element<'a>, String> {
        let start = self.pos;
        let rest = &self.data[start.min(self.data.len())..];
        let offset = self.base + start;
        if rest.len() < 8 {
            return Err(format!(
                "truncated: the tag of the {what} at {} needs 8 bytes, {} remain",
                self.at(offset),
                rest.len()
            ));
        }
        let first = self.endian.u32(&rest[..4]);
        if first >> 16 != 0 {
            // Small data element: 2-byte size, 2-byte type, up to 4 bytes of data.
            let (ty, n) = (first & 0xffff, (first >> 16) as usize);
            if n > 4 {
                return Err(format!(
                    "the {what} at {} is a small data element of {n} bytes (at most 4)",
                    self.at(offset)
                ));
            }
            self.pos = start + 8;
            return Ok(Element {
                ty,
                data: &rest[4..4 + n],
                offset,
                start: offset + 4,
            });
        }
        let ty = first;
        let n = self.endian.u32(&rest[4..8]) as usize;
        let Some(data) = n.checked_add(8).and_then(|end| rest.get(8..end)) else {
            return Err(format!(
                "truncated: the {what} at {}, of {}, declares {n} bytes, {} remain",
                self.at(offset),
                type_name(ty),
                rest.len() - 8
            ));
        };
        let end = start + 8 + n;
        // Elements are padded to 8 bytes, except compressed ones; a missing final padding
        // is tolerated.
        self.pos = if ty == MI_COMPRESSED {
            end
        } else {
            end.next_multiple_of(8).min(self.data.len())
        };
        Ok(Element {
            ty,
            data,
            offset,
            start: offset + 8,
        })
    }
}

/// A parsed matrix whose real part, if numeric, is still in the buffer read.
struct Parsed<'a> {
    name: String,
    value: MatValue,
    real: Option<Element<'a>>,
    endian: Endian,
}

impl Parsed<'_> {
    /// The variable, with the real part copied out of the buffer.
    fn copied(self) -> MatVariable {
        let mut value = self.value;
        if let (MatValue::Numeric(array), Some(real)) = (&mut value, self.real) {
            array.set_real(real.data.to_vec(), self.endian);
        }
        MatVariable {
            name: self.name,
            value,
        }
    }
}

/// Prefixes messages with where they come from.
fn within(ctx: &str) -> impl Fn(String) -> String + '_ {
    move |reason| format!("{ctx}: {reason}")
}

/// Parses the `miMATRIX` element `el` read by `parent`, at nesting level `depth`. `ctx`
/// names it in messages (`None` for a variable, named after its own name).
fn parse_matrix<'a>(
    parent: &Reader<'a>,
    el: &Element<'a>,
    depth: usize,
    ctx: Option<&str>,
) -> Result<Parsed<'a>, String> {
    let top = ctx.is_none();
    let mut ctx: Cow<'_, str> = match ctx {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(format!("the variable at {}", parent.at(el.offset))),
    };
    let endian = parent.endian;
    let empty = |name: String, value: MatValue| Parsed {
        name,
        value,
        real: None,
        endian,
    };
    if depth > MAT_MAX_DEPTH {
        return Err(format!(
            "{ctx}: arrays nested deeper than {MAT_MAX_DEPTH} levels"
        ));
    }
    if el.data.is_empty() {
        return Ok(empty(String::new(), MatValue::Empty));
    }
    let mut m = parent.child(el);

    let flags = m.next("array flags").map_err(within(&ctx))?;
    if flags.ty != MI_UINT32 || flags.data.len() != 8 {
        return Err(format!(
            "{ctx}: the array flags at {} are {} bytes of {}, expected 8 bytes of miUINT32 (6)",
            m.at(flags.offset),
            flags.data.len(),
            type_name(flags.ty)
        ));
    }
    let flag_word = endian.u32(flags.data);
    let class = (flag_word & 0xff) as u8;
    let complex = flag_word & COMPLEX_FLAG != 0;

    // Every class but opaque stores dimensions.
    let mut dims = Vec::new();
    if class != MX_OPAQUE {
        let d = m.next("dimensions").map_err(within(&ctx))?;
        if d.ty != MI_INT32 || !d.data.len().is_multiple_of(4) || d.data.len() < 8 {
            return Err(format!(
                "{ctx}: the dimensions at {} are {} bytes of {}, expected at least two \
                 miINT32 (5)",
                m.at(d.offset),
                d.data.len(),
                type_name(d.ty)
            ));
        }
        for b in d.data.chunks_exact(4) {
            let v = endian.u32(b) as i32;
            dims.push(usize::try_from(v).map_err(|_| format!("{ctx}: negative dimension {v}"))?);
        }
    }
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("{ctx}: dimensions {} overflow", shape(&dims)))?;

    let name_el = m.next("array name").map_err(within(&ctx))?;
    if !matches!(name_el.ty, MI_INT8 | MI_UINT8 | MI_UTF8) {
        return Err(format!(
            "{ctx}: the array name at {} is {}, expected miINT8 (1) characters",
            m.at(name_el.offset),
            type_name(name_el.ty)
        ));
    }
    let name = String::from_utf8_lossy(name_el.data).into_owned();
    if top {
        ctx = Cow::Owned(format!("variable {name:?}"));
    }

    let (value, real) = if let Some(class) = MatClass::from_code(class) {
        let part = |m: &mut Reader<'a>, what: &str| {
            let el = m.next(what).map_err(within(&ctx))?;
            let storage = MatStorage::from_code(el.ty).ok_or_else(|| {
                format!(
                    "{ctx}: {what} of {}, which is not a numeric type",
                    type_name(el.ty)
                )
            })?;
            if Some(el.data.len()) != count.checked_mul(storage.size()) {
                return Err(format!(
                    "{ctx}: {what} holds {} bytes, but {} values of {} take {}",
                    el.data.len(),
                    shape(&dims),
                    type_name(el.ty),
                    count.saturating_mul(storage.size())
                ));
            }
            Ok((storage, el))
        };
        let (storage, real) = part(&mut m, "real part")?;
        if complex {
            part(&mut m, "imaginary part")?;
        }
        let array = MatArray {
            name: name.clone(),
            class,
            dims,
            complex,
            storage,
            real: Vec::new(),
        };
        (MatValue::Numeric(array), Some(real))
    } else if class == MX_STRUCT {
        let len_el = m.next("field name length").map_err(within(&ctx))?;
        if len_el.ty != MI_INT32 || len_el.data.len() != 4 {
            return Err(format!(
                "{ctx}: the field name length at {} is {} bytes of {}, expected one miINT32 (5)",
                m.at(len_el.offset),
                len_el.data.len(),
                type_name(len_el.ty)
            ));
        }
        let len = endian.u32(len_el.data) as usize;
        let names = m.next("field names").map_err(within(&ctx))?;
        if (len == 0 && !names.data.is_empty())
            || (len > 0 && !names.data.len().is_multiple_of(len))
        {
            return Err(format!(
                "{ctx}: the field names at {} ({} bytes) are not made of {len}-byte names",
                m.at(names.offset),
                names.data.len()
            ));
        }
        let fields: Vec<String> = names
            .data
            .chunks_exact(len.max(1))
            .map(|f| {
                let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
                String::from_utf8_lossy(&f[..end]).into_owned()
            })
            .collect();
        let mut values = Vec::new();
        // Without fields there is nothing to read, however many elements (a crafted file
        // could declare 2^62 of them).
        for i in 0..if fields.is_empty() { 0 } else { count } {
            for field in &fields {
                let child = if count == 1 {
                    format!("{ctx}, field {field:?}")
                } else {
                    format!("{ctx}, element {}, field {field:?}", i + 1)
                };
                values.push(parse_child(&mut m, &child, depth)?);
            }
        }
        let value = MatValue::Struct {
            dims,
            fields,
            values,
        };
        (value, None)
    } else if class == MX_CELL {
        let mut values = Vec::new();
        for i in 0..count {
            let child = format!("{ctx}, cell {}", i + 1);
            values.push(parse_child(&mut m, &child, depth)?);
        }
        (MatValue::Cell { dims, values }, None)
    } else {
        // Not read: its remaining sub-elements are not checked either.
        return Ok(empty(name, MatValue::Other { class, dims }));
    };
    if !m.done() {
        return Err(format!(
            "{ctx}: {} bytes after the last part of the matrix",
            m.data.len() - m.pos
        ));
    }
    Ok(Parsed {
        name,
        value,
        real,
        endian,
    })
}

/// Reads the next element of `m`, which must be an `miMATRIX` (a field value or a cell),
/// and parses it one level below `depth`.
fn parse_child(m: &mut Reader<'_>, ctx: &str, depth: usize) -> Result<MatValue, String> {
    let el = m.next("element").map_err(within(ctx))?;
    if el.ty != MI_MATRIX {
        return Err(format!(
            "{ctx}: the element at {} is of {}, expected miMATRIX (14)",
            m.at(el.offset),
            type_name(el.ty)
        ));
    }
    Ok(parse_matrix(m, &el, depth + 1, Some(ctx))?.copied().value)
}
