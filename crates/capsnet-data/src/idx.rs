//! The IDX file format of MNIST and Fashion-MNIST: parsers over byte slices, a writer for
//! fixtures, and [`read_file`] for raw or gzip-compressed files.
//!
//! An IDX file is a big-endian `u32` magic number (`0x0000_08NN`: unsigned bytes, `NN`
//! dimensions), one big-endian `u32` per dimension, then the payload, row-major. Image
//! files have three dimensions (count, rows, columns), label files one (count).

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::DataError;

/// Magic number of an IDX image file (unsigned bytes, 3 dimensions): 2051.
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX label file (unsigned bytes, 1 dimension): 2049.
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The contents of an IDX image file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows (height) of each image.
    pub rows: usize,
    /// Columns (width) of each image.
    pub cols: usize,
    /// `count * rows * cols` pixels, image after image, row-major.
    pub pixels: Vec<u8>,
}

/// Parses an IDX image file (magic 2051). `path` is only used in error messages.
///
/// The payload must be exactly `count * rows * cols` bytes: a short file is
/// [`DataError::Truncated`], extra bytes are [`DataError::TrailingData`].
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<IdxImages, DataError> {
    let ([count, rows, cols], pixels) = parse::<3>(bytes, path, IMAGES_MAGIC)?;
    if rows == 0 || cols == 0 {
        return Err(DataError::BadHeader {
            path: path.to_path_buf(),
            reason: format!("images of {rows}x{cols} pixels"),
        });
    }
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels: pixels.to_vec(),
    })
}

/// Parses an IDX label file (magic 2049). `path` is only used in error messages.
///
/// The payload must be exactly `count` bytes (see [`parse_images`]).
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>, DataError> {
    let ([_count], labels) = parse::<1>(bytes, path, LABELS_MAGIC)?;
    Ok(labels.to_vec())
}

/// Checks magic and sizes; returns the `N` dimensions and the payload.
fn parse<'a, const N: usize>(
    bytes: &'a [u8],
    path: &Path,
    magic: u32,
) -> Result<([usize; N], &'a [u8]), DataError> {
    let header_len = 4 * (N + 1);
    let truncated = |expected_bytes: u64| DataError::Truncated {
        path: path.to_path_buf(),
        expected_bytes,
        found_bytes: bytes.len() as u64,
    };
    let word = |i: usize| -> Option<u32> {
        let b = bytes.get(4 * i..4 * i + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let found = word(0).ok_or_else(|| truncated(header_len as u64))?;
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            expected: magic,
            found,
        });
    }
    let mut dims = [0usize; N];
    for (i, d) in dims.iter_mut().enumerate() {
        let w = word(i + 1).ok_or_else(|| truncated(header_len as u64))?;
        *d = w as usize;
    }
    let expected = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .and_then(|payload| payload.checked_add(header_len as u64))
        .ok_or_else(|| DataError::BadHeader {
            path: path.to_path_buf(),
            reason: format!("dimensions {dims:?} overflow"),
        })?;
    let found_bytes = bytes.len() as u64;
    if found_bytes < expected {
        return Err(truncated(expected));
    }
    if found_bytes > expected {
        return Err(DataError::TrailingData {
            path: path.to_path_buf(),
            expected_bytes: expected,
            found_bytes,
        });
    }
    Ok((dims, &bytes[header_len..]))
}

/// Writes an IDX image file holding `pixels.len() / (rows * cols)` images of `rows x cols`.
///
/// Fails with [`io::ErrorKind::InvalidInput`] when `pixels` is not a whole number of images
/// or a dimension does not fit in `u32`.
pub fn write_idx_images(
    out: &mut impl Write,
    rows: usize,
    cols: usize,
    pixels: &[u8],
) -> io::Result<()> {
    let image_len = rows.checked_mul(cols).filter(|&n| n > 0);
    let count = match image_len {
        Some(n) if pixels.len().is_multiple_of(n) => pixels.len() / n,
        _ => {
            return Err(invalid_input(format!(
                "{} pixels are not a whole number of {rows}x{cols} images",
                pixels.len()
            )));
        }
    };
    write_header(out, IMAGES_MAGIC, &[count, rows, cols])?;
    out.write_all(pixels)
}

/// Writes an IDX label file.
pub fn write_idx_labels(out: &mut impl Write, labels: &[u8]) -> io::Result<()> {
    write_header(out, LABELS_MAGIC, &[labels.len()])?;
    out.write_all(labels)
}

fn write_header(out: &mut impl Write, magic: u32, dims: &[usize]) -> io::Result<()> {
    out.write_all(&magic.to_be_bytes())?;
    for &d in dims {
        let d = u32::try_from(d)
            .map_err(|_| invalid_input(format!("dimension {d} does not fit an IDX header")))?;
        out.write_all(&d.to_be_bytes())?;
    }
    Ok(())
}

fn invalid_input(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Returns true if `path` names a gzip file (its extension is `gz`).
pub fn is_gzip_path(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// Reads a whole file; a `.gz` file is decompressed.
///
/// A corrupt or truncated gzip stream is [`DataError::Gzip`] naming the file.
pub fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    if !is_gzip_path(path) {
        return std::fs::read(path).map_err(|e| DataError::io(path, e));
    }
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut out = Vec::new();
    MultiGzDecoder::new(BufReader::with_capacity(1 << 16, file))
        .read_to_end(&mut out)
        .map_err(|source| DataError::Gzip {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(out)
}

/// An image file and its label file must hold as many items.
pub(crate) fn same_count(
    images: &Path,
    image_count: usize,
    labels: &Path,
    label_count: usize,
) -> Result<(), DataError> {
    if image_count == label_count {
        return Ok(());
    }
    Err(DataError::CountMismatch {
        images: images.to_path_buf(),
        labels: labels.to_path_buf(),
        image_count,
        label_count,
    })
}

/// Every label of the label file `path` must be below `num_classes` ([`DataError::BadLabel`]
/// names the first that is not).
pub fn labels_below(path: &Path, labels: &[u8], num_classes: usize) -> Result<(), DataError> {
    match labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= num_classes)
    {
        Some((index, &value)) => Err(DataError::BadLabel {
            path: path.to_path_buf(),
            index,
            value,
            num_classes,
        }),
        None => Ok(()),
    }
}

/// A user's pair of IDX files (any image size, any number of classes), read as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledIdx {
    /// The images, `count × rows × cols`, row-major (after `transpose`).
    pub images: IdxImages,
    /// One label per image (after `label_offset`).
    pub labels: Vec<u8>,
}

/// How a user's IDX files are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdxReadOptions {
    /// Subtracted from every label (EMNIST's letters are labelled 1–26: offset 1); a label
    /// below it is an error.
    pub label_offset: u8,
    /// Swap rows and columns of every image (EMNIST stores its images transposed).
    pub transpose: bool,
}

/// Reads an image file and its label file (raw or `.gz`), checking that they hold as many
/// items, and applies `options`.
pub fn read_labelled(
    images_path: &Path,
    labels_path: &Path,
    options: IdxReadOptions,
) -> Result<LabelledIdx, DataError> {
    let mut images = parse_images(&read_file(images_path)?, images_path)?;
    let mut labels = parse_labels(&read_file(labels_path)?, labels_path)?;
    same_count(images_path, images.count, labels_path, labels.len())?;
    if let Some(index) = labels.iter().position(|&l| l < options.label_offset) {
        return Err(DataError::Invalid(format!(
            "{}: label #{index} is {}, below the label offset {}",
            labels_path.display(),
            labels[index],
            options.label_offset
        )));
    }
    for l in &mut labels {
        *l -= options.label_offset;
    }
    if options.transpose {
        let (rows, cols) = (images.rows, images.cols);
        let mut out = vec![0u8; images.pixels.len()];
        for (src, dst) in images
            .pixels
            .chunks_exact(rows * cols)
            .zip(out.chunks_exact_mut(rows * cols))
        {
            for r in 0..rows {
                for c in 0..cols {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
        images.pixels = out;
        images.rows = cols;
        images.cols = rows;
    }
    Ok(LabelledIdx { images, labels })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};

    fn images_bytes(rows: usize, cols: usize, pixels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        write_idx_images(&mut v, rows, cols, pixels).unwrap();
        v
    }

    #[test]
    fn labelled_files_transpose_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (img, lab) = (dir.path().join("i.gz"), dir.path().join("l"));
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        // One 2x3 image: rows [0 1 2], [3 4 5].
        write_idx_images(&mut gz, 2, 3, &[0, 1, 2, 3, 4, 5]).unwrap();
        std::fs::write(&img, gz.finish().unwrap()).unwrap();
        let mut l = Vec::new();
        write_idx_labels(&mut l, &[3]).unwrap();
        std::fs::write(&lab, &l).unwrap();
        let options = IdxReadOptions {
            label_offset: 1,
            transpose: true,
        };
        let read = read_labelled(&img, &lab, options).unwrap();
        assert_eq!((read.images.rows, read.images.cols), (3, 2));
        assert_eq!(read.images.pixels, vec![0, 3, 1, 4, 2, 5]);
        assert_eq!(read.labels, vec![2]);
        let err = read_labelled(
            &img,
            &lab,
            IdxReadOptions {
                label_offset: 4,
                ..options
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("below the label offset 4"), "{err}");
        let mut two = Vec::new();
        write_idx_labels(&mut two, &[1, 2]).unwrap();
        std::fs::write(&lab, &two).unwrap();
        let err = read_labelled(&img, &lab, options).unwrap_err().to_string();
        assert!(
            err.contains("1 images") && err.contains("2 labels"),
            "{err}"
        );
    }

    #[test]
    fn images_round_trip() {
        let pixels: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        let bytes = images_bytes(3, 4, &pixels);
        assert_eq!(bytes.len(), 16 + 24);
        assert_eq!(&bytes[..4], &[0, 0, 8, 3]);
        let parsed = parse_images(&bytes, Path::new("f")).unwrap();
        assert_eq!(
            parsed,
            IdxImages {
                count: 2,
                rows: 3,
                cols: 4,
                pixels
            }
        );
    }

    #[test]
    fn labels_round_trip() {
        let mut bytes = Vec::new();
        write_idx_labels(&mut bytes, &[3, 1, 4]).unwrap();
        assert_eq!(bytes, [0, 0, 8, 1, 0, 0, 0, 3, 3, 1, 4]);
        assert_eq!(parse_labels(&bytes, Path::new("f")).unwrap(), [3, 1, 4]);
    }

    #[test]
    fn empty_files_parse() {
        let mut bytes = Vec::new();
        write_idx_labels(&mut bytes, &[]).unwrap();
        assert!(parse_labels(&bytes, Path::new("f")).unwrap().is_empty());
        let parsed = parse_images(&images_bytes(2, 2, &[]), Path::new("f")).unwrap();
        assert_eq!((parsed.count, parsed.rows, parsed.cols), (0, 2, 2));
    }

    #[test]
    fn wrong_magic_is_rejected_naming_the_file() {
        let mut labels = Vec::new();
        write_idx_labels(&mut labels, &[1, 2]).unwrap();
        let err = parse_images(&labels, Path::new("dir/imgs")).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::BadMagic {
                    expected: IMAGES_MAGIC,
                    found: LABELS_MAGIC,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("dir/imgs"));
        let err = parse_labels(&images_bytes(1, 1, &[0]), Path::new("l")).unwrap_err();
        assert!(matches!(
            err,
            DataError::BadMagic {
                expected: LABELS_MAGIC,
                ..
            }
        ));
    }

    #[test]
    fn short_header_is_truncated() {
        let bytes = images_bytes(2, 2, &[1, 2, 3, 4]);
        for len in [0, 3] {
            let err = parse_images(&bytes[..len], Path::new("f")).unwrap_err();
            assert!(
                matches!(
                    err,
                    DataError::Truncated {
                        expected_bytes: 16,
                        ..
                    }
                ),
                "{err:?}"
            );
        }
        for len in [4, 15] {
            let err = parse_images(&bytes[..len], Path::new("f")).unwrap_err();
            let DataError::Truncated {
                expected_bytes,
                found_bytes,
                ..
            } = err
            else {
                panic!("{err:?}")
            };
            assert_eq!((expected_bytes, found_bytes), (16, len as u64));
        }
    }

    #[test]
    fn payload_must_match_header_exactly() {
        let bytes = images_bytes(2, 2, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let err = parse_images(&bytes[..bytes.len() - 1], Path::new("f")).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    expected_bytes: 24,
                    found_bytes: 23,
                    ..
                }
            ),
            "{err:?}"
        );
        let mut long = bytes.clone();
        long.push(0);
        let err = parse_images(&long, Path::new("f")).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::TrailingData {
                    expected_bytes: 24,
                    found_bytes: 25,
                    ..
                }
            ),
            "{err:?}"
        );
        let mut labels = Vec::new();
        write_idx_labels(&mut labels, &[1, 2, 3]).unwrap();
        let err = parse_labels(&labels[..10], Path::new("f")).unwrap_err();
        assert!(matches!(
            err,
            DataError::Truncated {
                expected_bytes: 11,
                ..
            }
        ));
    }

    #[test]
    fn degenerate_and_huge_headers_are_rejected() {
        let mut bytes = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [1u32, 0, 28] {
            bytes.extend(d.to_be_bytes());
        }
        let err = parse_images(&bytes, Path::new("f")).unwrap_err();
        assert!(matches!(err, DataError::BadHeader { .. }), "{err:?}");
        // u32::MAX^3 does not fit in u64: must be an error, not an overflow panic.
        let mut bytes = IMAGES_MAGIC.to_be_bytes().to_vec();
        for _ in 0..3 {
            bytes.extend(u32::MAX.to_be_bytes());
        }
        let err = parse_images(&bytes, Path::new("f")).unwrap_err();
        assert!(matches!(err, DataError::BadHeader { .. }), "{err:?}");
        // Large but representable: truncated, not an attempt to allocate.
        let mut bytes = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [u32::MAX, 28, 28] {
            bytes.extend(d.to_be_bytes());
        }
        let err = parse_images(&bytes, Path::new("f")).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
    }

    #[test]
    fn writer_rejects_partial_images() {
        let err = write_idx_images(&mut Vec::new(), 2, 2, &[0; 5]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = write_idx_images(&mut Vec::new(), 0, 2, &[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn read_file_handles_raw_gzip_and_corrupt_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let data = images_bytes(2, 2, &[9; 12]);
        let raw = dir.path().join("imgs");
        std::fs::write(&raw, &data).unwrap();
        assert_eq!(read_file(&raw).unwrap(), data);

        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&data).unwrap();
        let gz_bytes = enc.finish().unwrap();
        let gz = dir.path().join("imgs.gz");
        std::fs::write(&gz, &gz_bytes).unwrap();
        assert_eq!(read_file(&gz).unwrap(), data);

        let cut = dir.path().join("cut.gz");
        std::fs::write(&cut, &gz_bytes[..gz_bytes.len() / 2]).unwrap();
        let err = read_file(&cut).unwrap_err();
        assert!(matches!(err, DataError::Gzip { .. }), "{err:?}");
        assert!(err.to_string().contains("cut.gz"));

        let not_gz = dir.path().join("plain.gz");
        std::fs::write(&not_gz, &data).unwrap();
        assert!(matches!(read_file(&not_gz), Err(DataError::Gzip { .. })));

        let err = read_file(&dir.path().join("missing")).unwrap_err();
        assert!(
            matches!(&err, DataError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
        );
        assert!(err.to_string().contains("missing"));
    }
}
