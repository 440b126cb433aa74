//! smallNORB: the NORB binary matrix format, the stereo image pairs and their category
//! labels, and the area-average downscale to 48×48 used by the CapsNet paper.
//!
//! # Format
//!
//! A NORB matrix file is a little-endian `i32` magic number ([`NORB_UINT8_MAGIC`] for a
//! `u8` matrix, [`NORB_INT32_MAGIC`] for an `i32` one), the number of dimensions `ndim`,
//! then `max(3, ndim)` little-endian `i32` dimensions (only the first `ndim` count; the
//! padding ones are ignored), then the elements, row-major. Per split there are three files:
//!
//! - `…-dat.mat`: `u8`, `24300×2×96×96`: for each object, the images of its two cameras;
//! - `…-cat.mat`: `i32`, `24300`: the category, `0..5` ([`NORB_CLASS_NAMES`]);
//! - `…-info.mat`: `i32`, `24300×4`: instance, elevation, azimuth, lighting ([`NorbInfo`]).
//!
//! The files of the two splits have different names ([`norb_files`]): the training set
//! holds instances 4, 6, 7, 8, 9 of each category, the test set 0, 1, 2, 3, 5.
//!
//! # Loading
//!
//! [`crate::load_smallnorb`] (and [`BuiltinDataset::SmallNorb`](crate::BuiltinDataset::SmallNorb), with
//! [`NorbOptions::PAPER`]) loads a split by the route every built-in dataset takes
//! ([`crate::loader`]): it looks for the `-dat` and `-cat` files (raw or `.gz`, as
//! distributed) in `<root>/smallnorb/` then `<root>/`, in each root of
//! [`DataSources::roots`](crate::DataSources::roots) (downloading them when allowed, see
//! below), then [`load_norb_files`] streams the image file, keeping the camera(s) chosen by
//! [`NorbOptions::view`] and shrinking each image to [`NorbOptions::side`] pixels if asked.
//! The result is an [`ImageSet`] of 5 classes with one channel per camera kept.
//!
//! The paper resizes the images to 48×48 and trains on random 32×32 crops
//! ([`crate::CroppedImages`] when augmenting), testing on the central crop
//! ([`crate::CroppedImages`] otherwise). It does not say how it resizes; this crate uses area
//! averaging ([`downscale_area`]: each output pixel is the rounded mean of a 2×2 block),
//! the usual anti-aliased downscale (OpenCV's `INTER_AREA` and PIL's `BOX` give the same
//! means for an integer factor), see [`NorbOptions::PAPER`].
//!
//! # Download
//!
//! With downloads on (feature `download`), a split missing from every root is fetched as
//! `<mirror><file>.gz` from [`NORB_MIRRORS`] (overridable with `$CAPSNET_NORB_MIRROR`) into
//! `<cache>/smallnorb/`: the `-dat` and `-cat` files, each kept only if it is whole gzip data.
//!
//! # Verification
//!
//! No checksum of the files is published in a form this crate can check, so with
//! [`DataSources::verify`](crate::DataSources::verify) on the loader requires the canonical
//! shapes instead: 24,300 image pairs of 96×96 and 24,300 labels. The structure is always checked strictly: magic
//! numbers, shapes, truncated files, trailing bytes, label range.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::dataset::DatasetFacts;
use crate::idx::{is_gzip_path, read_file};
use crate::{DataError, Dims, ImageSet, Split};

/// Magic number of a NORB `u8` matrix (`0x1E3D4C55`).
pub const NORB_UINT8_MAGIC: u32 = 0x1E3D_4C55;
/// Magic number of a NORB `i32` matrix (`0x1E3D4C54`).
pub const NORB_INT32_MAGIC: u32 = 0x1E3D_4C54;
/// Sub-directory of a data root holding the smallNORB files.
pub const NORB_SUBDIR: &str = "smallnorb";
/// Where the files are published (gzipped): `<mirror><file>.gz`.
pub const NORB_MIRRORS: [&str; 1] = ["https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"];
/// Environment variable overriding [`NORB_MIRRORS`]: base URLs separated by commas or
/// whitespace (tests point it at a local server).
pub const NORB_MIRROR_ENV: &str = "CAPSNET_NORB_MIRROR";
/// Image pairs (and labels) in each canonical split.
pub const NORB_PAIRS_PER_SPLIT: usize = 24_300;
/// Side of the stored images.
pub const NORB_SIDE: usize = 96;
/// Side the CapsNet paper resizes the images to.
pub const NORB_PAPER_SIDE: usize = 48;
/// Number of categories.
pub const NORB_NUM_CLASSES: usize = 5;
/// Category names, by label.
pub const NORB_CLASS_NAMES: [&str; 5] = ["animal", "human", "airplane", "truck", "car"];
/// smallNORB's facts: the images as [`NorbOptions::PAPER`] shapes them (both cameras as two
/// channels, 48×48).
pub const SMALLNORB_FACTS: DatasetFacts = DatasetFacts {
    name: NORB_SUBDIR,
    class_names: &NORB_CLASS_NAMES,
    dims: Dims {
        channels: 2,
        height: NORB_PAPER_SIDE,
        width: NORB_PAPER_SIDE,
    },
    mirror_env: NORB_MIRROR_ENV,
    mirrors: &NORB_MIRRORS,
    fetchable: true,
    verification: "canonical shapes verified (no published checksum)",
};
/// Largest number of dimensions accepted in a NORB header.
pub const NORB_MAX_DIMS: usize = 16;

const FORMAT: &str = "smallNORB matrix";

/// The three files of a split (canonical names, without `.gz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NorbFiles {
    /// The images (`u8`, `N×2×96×96`).
    pub dat: &'static str,
    /// The category labels (`i32`, `N`).
    pub cat: &'static str,
    /// Instance, elevation, azimuth and lighting of each pair (`i32`, `N×4`).
    pub info: &'static str,
}

/// The canonical file names of `split`.
pub fn norb_files(split: Split) -> NorbFiles {
    match split {
        Split::Train => NorbFiles {
            dat: "smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat",
            cat: "smallnorb-5x46789x9x18x6x2x96x96-training-cat.mat",
            info: "smallnorb-5x46789x9x18x6x2x96x96-training-info.mat",
        },
        Split::Test => NorbFiles {
            dat: "smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat",
            cat: "smallnorb-5x01235x9x18x6x2x96x96-testing-cat.mat",
            info: "smallnorb-5x01235x9x18x6x2x96x96-testing-info.mat",
        },
    }
}

/// The element type of a NORB matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NorbElement {
    /// Unsigned bytes ([`NORB_UINT8_MAGIC`]).
    U8,
    /// Little-endian `i32` ([`NORB_INT32_MAGIC`]).
    I32,
}

impl NorbElement {
    /// The magic number of matrices of this element type.
    pub const fn magic(self) -> u32 {
        match self {
            Self::U8 => NORB_UINT8_MAGIC,
            Self::I32 => NORB_INT32_MAGIC,
        }
    }

    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            Self::U8 => 1,
            Self::I32 => 4,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::U8 => "u8",
            Self::I32 => "i32",
        }
    }
}

/// A parsed NORB matrix header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NorbHeader {
    /// Element type.
    pub element: NorbElement,
    /// The `ndim` meaningful dimensions (the padding ones are dropped).
    pub dims: Vec<usize>,
    /// Header size in bytes: `8 + 4 * max(3, ndim)`.
    pub len: usize,
}

impl NorbHeader {
    /// Number of elements: the product of the dimensions.
    pub fn count(&self) -> usize {
        self.dims.iter().product()
    }

    /// Size of the whole file (header and data), in bytes.
    pub fn file_len(&self) -> u64 {
        self.len as u64 + (self.count() * self.element.size()) as u64
    }
}

/// Which camera(s) of each stereo pair to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NorbView {
    /// Both, as two channels (first camera, then second).
    #[default]
    Stereo,
    /// The first camera of each pair only (one channel; "left" in the NORB documentation).
    Left,
    /// The second camera only (one channel).
    Right,
}

/// How [`crate::load_smallnorb`] shapes the images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NorbOptions {
    /// Camera(s) to keep: one channel each.
    pub view: NorbView,
    /// Output side in pixels: `None` keeps the stored 96×96; `Some(s)` shrinks by area
    /// averaging ([`downscale_area`]) to `s`×`s`, where `s` must divide the stored side.
    pub side: Option<usize>,
}

impl NorbOptions {
    /// As the CapsNet paper: both cameras, downscaled to 48×48.
    pub const PAPER: Self = Self {
        view: NorbView::Stereo,
        side: Some(NORB_PAPER_SIDE),
    };
}

/// Identifies the object and conditions of one image pair (a row of an `-info` file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NorbInfo {
    /// Instance of the category (training: 4, 6, 7, 8, 9; test: 0, 1, 2, 3, 5).
    pub instance: i32,
    /// Elevation index, `0..9` (30 to 70 degrees, 5 degrees apart).
    pub elevation: i32,
    /// Azimuth, `0, 2, …, 34`: multiply by 10 for degrees.
    pub azimuth: i32,
    /// Lighting condition, `0..6`.
    pub lighting: i32,
}

fn malformed(path: &Path, reason: String) -> DataError {
    DataError::Malformed {
        path: path.to_path_buf(),
        format: FORMAT,
        reason,
    }
}

fn le_i32(bytes: &[u8], i: usize) -> Option<i32> {
    let b = bytes.get(4 * i..4 * i + 4)?;
    Some(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Parses the header at the start of `bytes` (which may hold more than the header).
/// `path` is only used in error messages.
///
/// Fails with [`DataError::Malformed`] for an unknown magic number, `ndim` outside
/// `1..=16`, a negative dimension, a size that overflows, or too few bytes.
pub fn parse_norb_header(bytes: &[u8], path: &Path) -> Result<NorbHeader, DataError> {
    let short = |need: usize| {
        malformed(
            path,
            format!(
                "truncated header: need {need} bytes, the file has {}",
                bytes.len()
            ),
        )
    };
    let magic = le_i32(bytes, 0).ok_or_else(|| short(20))? as u32;
    let element = match magic {
        NORB_UINT8_MAGIC => NorbElement::U8,
        NORB_INT32_MAGIC => NorbElement::I32,
        _ => {
            return Err(malformed(
                path,
                format!(
                    "bad magic number {magic:#010x}, expected {NORB_UINT8_MAGIC:#010x} (u8) \
                     or {NORB_INT32_MAGIC:#010x} (i32)"
                ),
            ));
        }
    };
    let ndim = le_i32(bytes, 1).ok_or_else(|| short(20))?;
    let ndim = usize::try_from(ndim)
        .ok()
        .filter(|n| (1..=NORB_MAX_DIMS).contains(n))
        .ok_or_else(|| {
            malformed(
                path,
                format!("{ndim} dimensions (expected 1 to {NORB_MAX_DIMS})"),
            )
        })?;
    let len = 8 + 4 * ndim.max(3);
    if bytes.len() < len {
        return Err(short(len));
    }
    let mut dims = Vec::with_capacity(ndim);
    for i in 0..ndim {
        let d = le_i32(bytes, 2 + i).unwrap_or_default();
        let d = usize::try_from(d)
            .map_err(|_| malformed(path, format!("dimension {i} is negative ({d})")))?;
        dims.push(d);
    }
    let header = NorbHeader { element, dims, len };
    let overflow = header
        .dims
        .iter()
        .try_fold(element.size(), |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_add(len))
        .is_none();
    if overflow {
        return Err(malformed(
            path,
            format!("dimensions {:?} overflow", header.dims),
        ));
    }
    Ok(header)
}

/// Checks the header of a whole file against `element` and the file size; returns it and
/// the data.
fn parse_whole<'a>(
    bytes: &'a [u8],
    path: &Path,
    element: NorbElement,
) -> Result<(NorbHeader, &'a [u8]), DataError> {
    let header = parse_norb_header(bytes, path)?;
    if header.element != element {
        return Err(malformed(
            path,
            format!(
                "a {} matrix, expected {} (magic {:#010x})",
                header.element.name(),
                element.name(),
                element.magic()
            ),
        ));
    }
    check_len(&header, bytes.len() as u64, path)?;
    let data = &bytes[header.len..];
    Ok((header, data))
}

fn check_len(header: &NorbHeader, found: u64, path: &Path) -> Result<(), DataError> {
    let expected = header.file_len();
    if found < expected {
        return Err(malformed(
            path,
            format!(
                "truncated: a {:?} {} matrix takes {expected} bytes, the file has {found}",
                header.dims,
                header.element.name()
            ),
        ));
    }
    if found > expected {
        return Err(malformed(
            path,
            format!(
                "trailing data: a {:?} {} matrix takes {expected} bytes, the file has {found}",
                header.dims,
                header.element.name()
            ),
        ));
    }
    Ok(())
}

/// Parses a whole `u8` matrix file: its dimensions and elements.
pub fn parse_norb_u8<'a>(
    bytes: &'a [u8],
    path: &Path,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let (header, data) = parse_whole(bytes, path, NorbElement::U8)?;
    Ok((header.dims, data))
}

/// Parses a whole `i32` matrix file: its dimensions and elements.
pub fn parse_norb_i32(bytes: &[u8], path: &Path) -> Result<(Vec<usize>, Vec<i32>), DataError> {
    let (header, data) = parse_whole(bytes, path, NorbElement::I32)?;
    let values = data
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((header.dims, values))
}

/// Parses a `-cat` file: a one-dimensional `i32` matrix of labels in `0..5`.
pub fn parse_norb_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>, DataError> {
    let (dims, values) = parse_norb_i32(bytes, path)?;
    if dims.len() != 1 {
        return Err(malformed(
            path,
            format!("labels shaped {dims:?}, expected one dimension"),
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(index, &v)| match u8::try_from(v) {
            Ok(value) if usize::from(value) < NORB_NUM_CLASSES => Ok(value),
            Ok(value) => Err(DataError::BadLabel {
                path: path.to_path_buf(),
                index,
                value,
                num_classes: NORB_NUM_CLASSES,
            }),
            Err(_) => Err(malformed(
                path,
                format!(
                    "label #{index} is {v}, expected 0 to {}",
                    NORB_NUM_CLASSES - 1
                ),
            )),
        })
        .collect()
}

/// Parses an `-info` file: an `i32` matrix of `N×4`.
pub fn parse_norb_info(bytes: &[u8], path: &Path) -> Result<Vec<NorbInfo>, DataError> {
    let (dims, values) = parse_norb_i32(bytes, path)?;
    if dims.len() != 2 || dims[1] != 4 {
        return Err(malformed(
            path,
            format!("info shaped {dims:?}, expected N×4"),
        ));
    }
    Ok(values
        .chunks_exact(4)
        .map(|r| NorbInfo {
            instance: r[0],
            elevation: r[1],
            azimuth: r[2],
            lighting: r[3],
        })
        .collect())
}

/// Shrinks each channel of a channel-first image by `factor` in both directions: each
/// output pixel is the mean of a `factor`×`factor` block, rounded to nearest (halves up).
/// Returns `channels × height/factor × width/factor` pixels.
///
/// # Panics
/// If `image` does not hold exactly `dims.size()` pixels, `factor` is zero, or the height
/// or width is not a multiple of `factor`.
pub fn downscale_area(image: &[u8], dims: Dims, factor: usize) -> Vec<u8> {
    assert_eq!(image.len(), dims.size(), "downscale_area: image size");
    assert!(
        factor > 0 && dims.height.is_multiple_of(factor) && dims.width.is_multiple_of(factor),
        "downscale_area: {}x{} is not divisible by {factor}",
        dims.height,
        dims.width
    );
    let (out_h, out_w) = (dims.height / factor, dims.width / factor);
    let area = (factor * factor) as u32;
    let mut out = Vec::with_capacity(dims.channels * out_h * out_w);
    let mut sums = vec![0u32; out_w];
    for plane in image.chunks_exact(dims.height * dims.width) {
        for band in plane.chunks_exact(factor * dims.width) {
            sums.fill(0);
            for row in band.chunks_exact(dims.width) {
                for (sum, block) in sums.iter_mut().zip(row.chunks_exact(factor)) {
                    *sum += block.iter().map(|&p| u32::from(p)).sum::<u32>();
                }
            }
            out.extend(sums.iter().map(|&s| ((s + area / 2) / area) as u8));
        }
    }
    out
}

/// Finds the `-dat` and `-cat` files of `split` (raw or `.gz`, in `<root>/smallnorb/` or
/// `<root>/`; see [`crate::dataset::candidate_files`]) in the first of `roots` that holds both;
/// returns `[dat, cat]`, or on failure every path looked at.
pub fn locate_norb(split: Split, roots: &[PathBuf]) -> Result<[PathBuf; 2], Vec<PathBuf>> {
    let files = norb_files(split);
    let paths = crate::dataset::locate_files(roots, NORB_SUBDIR, &[files.dat, files.cat], true)?;
    Ok(paths.try_into().expect("two files asked, two found"))
}

/// The error when no root holds the split's files: every path looked at, and how to fix it.
pub(crate) fn not_found(split: Split, tried: Vec<PathBuf>) -> DataError {
    let files = norb_files(split);
    DataError::DataNotFound {
        dataset: format!("smallnorb {split}"),
        files: vec![
            format!("{} (or .gz)", files.dat),
            format!("{} (or .gz)", files.cat),
        ],
        tried,
        hint: format!(
            "Download them from {} into <root>/{NORB_SUBDIR}/ of a data root (data.root / \
             --data-dir, or CAPSNET_DATA), or enable downloading",
            NORB_MIRRORS[0]
        ),
    }
}

/// Downloads the split's `-dat` and `-cat` files (gzipped) into `<cache>/smallnorb/` from the
/// first of `mirrors` that serves each as whole gzip data.
#[cfg(feature = "download")]
pub(crate) fn fetch(
    split: Split,
    cache: &Path,
    mirrors: &[String],
    progress: &dyn crate::DownloadProgress,
) -> Result<(), DataError> {
    let files = norb_files(split);
    let expected = [files.dat, files.cat].map(|name| crate::ExpectedFile { name, sha256: None });
    crate::download::download_files(&cache.join(NORB_SUBDIR), mirrors, &expected, progress)
        .map(|_| ())
}

/// Loads an image file (`-dat`, raw or `.gz`) and a label file (`-cat`) shaped by
/// `options`; with `verify`, both must have the canonical 24,300 entries of 2×96×96 pairs.
///
/// The image file is streamed: memory holds only the output. Errors name the file at
/// fault: [`DataError::Malformed`] for a bad header or size, [`DataError::CountMismatch`]
/// when the files disagree, [`DataError::BadLabel`], [`DataError::Gzip`],
/// [`DataError::Invalid`] for options that do not fit the images.
pub fn load_norb_files(
    dat: &Path,
    cat: &Path,
    options: NorbOptions,
    verify: bool,
) -> Result<ImageSet, DataError> {
    let labels = parse_norb_labels(&read_file(cat)?, cat)?;
    if verify && labels.len() != NORB_PAIRS_PER_SPLIT {
        return Err(malformed(
            cat,
            format!(
                "{} labels, but the canonical file has {NORB_PAIRS_PER_SPLIT} (turn \
                 verification off for custom data)",
                labels.len()
            ),
        ));
    }

    let gz = is_gzip_path(dat);
    let file = File::open(dat).map_err(|e| DataError::io(dat, e))?;
    let reader = BufReader::with_capacity(1 << 16, file);
    let mut reader: Box<dyn Read> = if gz {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let read_err = |source: io::Error| {
        if gz {
            DataError::Gzip {
                path: dat.to_path_buf(),
                source,
            }
        } else {
            DataError::io(dat, source)
        }
    };

    // Header: 8 bytes, then max(3, ndim) dimensions.
    let mut head = vec![0u8; 8];
    let n = fill(&mut reader, &mut head).map_err(read_err)?;
    head.truncate(n);
    let ndim = le_i32(&head, 1).and_then(|d| usize::try_from(d).ok());
    if let Some(ndim) = ndim.filter(|n| (1..=NORB_MAX_DIMS).contains(n)) {
        let mut dims = vec![0u8; 4 * ndim.max(3)];
        let n = fill(&mut reader, &mut dims).map_err(read_err)?;
        head.extend_from_slice(&dims[..n]);
    }
    let header = parse_norb_header(&head, dat)?;
    let [count, cameras, height, width] = header.dims[..] else {
        return Err(malformed(
            dat,
            format!("images shaped {:?}, expected N×2×height×width", header.dims),
        ));
    };
    if header.element != NorbElement::U8 || cameras != 2 || count == 0 || height == 0 || width == 0
    {
        return Err(malformed(
            dat,
            format!(
                "a {} matrix shaped {:?}, expected u8 N×2×height×width with N > 0",
                header.element.name(),
                header.dims
            ),
        ));
    }
    if verify && (count, height, width) != (NORB_PAIRS_PER_SPLIT, NORB_SIDE, NORB_SIDE) {
        return Err(malformed(
            dat,
            format!(
                "images shaped {:?}, but the canonical file has {NORB_PAIRS_PER_SPLIT}×2×\
                 {NORB_SIDE}×{NORB_SIDE} (turn verification off for custom data)",
                header.dims
            ),
        ));
    }
    if count != labels.len() {
        return Err(DataError::CountMismatch {
            images: dat.to_path_buf(),
            labels: cat.to_path_buf(),
            image_count: count,
            label_count: labels.len(),
        });
    }
    let factor = match options.side {
        None => 1,
        Some(side) if side > 0 && height == width && height.is_multiple_of(side) => height / side,
        Some(side) => {
            return Err(DataError::Invalid(format!(
                "cannot shrink the {height}x{width} images of {} to {side}x{side} by area \
                 averaging: the side must divide {height} and the images be square",
                dat.display()
            )));
        }
    };
    let (first, planes) = match options.view {
        NorbView::Stereo => (0, 2),
        NorbView::Left => (0, 1),
        NorbView::Right => (1, 1),
    };
    let plane = Dims {
        channels: planes,
        height,
        width,
    };
    let out_dims = Dims {
        channels: planes,
        height: height / factor,
        width: width / factor,
    };

    let pair_len = 2 * height * width;
    let mut pair = vec![0u8; pair_len];
    let mut images = Vec::with_capacity(count.saturating_mul(out_dims.size()));
    for i in 0..count {
        let n = fill(&mut reader, &mut pair).map_err(read_err)?;
        if n < pair_len {
            let found = (header.len + i * pair_len + n) as u64;
            return Err(malformed(
                dat,
                format!(
                    "truncated: a {:?} u8 matrix takes {} bytes, the file has {found}",
                    header.dims,
                    header.file_len()
                ),
            ));
        }
        let kept = &pair[first * height * width..(first + planes) * height * width];
        if factor == 1 {
            images.extend_from_slice(kept);
        } else {
            images.extend_from_slice(&downscale_area(kept, plane, factor));
        }
    }
    let extra = io::copy(&mut reader, &mut io::sink()).map_err(read_err)?;
    if extra > 0 {
        check_len(&header, header.file_len() + extra, dat)?;
    }
    ImageSet::new(images, labels, out_dims, NORB_NUM_CLASSES)
}

/// Reads until `buf` is full or the input ends; returns the number of bytes read.
fn fill(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downscale_area_means_blocks_with_rounding() {
        let dims = Dims {
            channels: 2,
            height: 2,
            width: 4,
        };
        // Channel 0 blocks: {0,1,4,5} -> 2.5 -> 3; {2,3,6,7} -> 4.5 -> 5.
        // Channel 1 blocks: {255,255,255,254} -> 254.75 -> 255; {0,0,0,1} -> 0.25 -> 0.
        let image = [0, 1, 2, 3, 4, 5, 6, 7, 255, 255, 0, 0, 255, 254, 0, 1];
        assert_eq!(downscale_area(&image, dims, 2), [3, 5, 255, 0]);
        assert_eq!(downscale_area(&image, dims, 1), image);
    }

    #[test]
    #[should_panic(expected = "not divisible")]
    fn downscale_area_panics_on_a_bad_factor() {
        let dims = Dims {
            channels: 1,
            height: 3,
            width: 3,
        };
        downscale_area(&[0; 9], dims, 2);
    }

    #[test]
    fn header_sizes() {
        let mut bytes = Vec::new();
        for v in [NORB_INT32_MAGIC, 1, 7, 1, 1] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let h = parse_norb_header(&bytes, Path::new("f")).unwrap();
        assert_eq!(
            (h.element, h.dims.clone(), h.len),
            (NorbElement::I32, vec![7], 20)
        );
        assert_eq!((h.count(), h.file_len()), (7, 48));
        assert!(parse_norb_header(&bytes[..19], Path::new("f")).is_err());
    }
}
