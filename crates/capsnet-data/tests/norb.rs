//! smallNORB: NORB matrix parsing, loading with views and downscaling, and strict errors,
//! on fixture files written here in the documented format.

use std::io::Write;
use std::path::{Path, PathBuf};

use capsnet_data::norb::{
    NORB_INT32_MAGIC, NORB_SUBDIR, NORB_UINT8_MAGIC, NorbElement, NorbInfo, NorbOptions, NorbView,
    load_norb_files, locate_norb, norb_files, parse_norb_header, parse_norb_info,
    parse_norb_labels, parse_norb_u8,
};
use capsnet_data::{DataError, DataSources, Dims, ImageSet, NoProgress, Split};

/// A smallNORB split shaped by `options`, through the one loader route: the images and the
/// directory they came from.
fn load_smallnorb(
    split: Split,
    sources: &DataSources,
    options: NorbOptions,
) -> Result<(ImageSet, PathBuf), DataError> {
    let loaded = capsnet_data::load_smallnorb(split, sources, options, &NoProgress)?;
    Ok((loaded.images, loaded.provenance.dir))
}

/// [`load_smallnorb`] from `mirrors`.
#[cfg(feature = "download")]
fn load_smallnorb_with(
    split: Split,
    sources: &DataSources,
    options: NorbOptions,
    mirrors: &[String],
) -> Result<(ImageSet, PathBuf), DataError> {
    let sources = sources
        .clone()
        .with_mirrors(capsnet_data::BuiltinDataset::SmallNorb, mirrors);
    load_smallnorb(split, &sources, options)
}
use flate2::{Compression, write::GzEncoder};

/// A NORB matrix file: magic, ndim, max(3, ndim) dimensions (padding ones set to `pad`),
/// then `data`, all little-endian.
fn matrix(magic: u32, dims: &[i32], pad: i32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&magic.to_le_bytes());
    v.extend_from_slice(&(dims.len() as i32).to_le_bytes());
    for &d in dims {
        v.extend_from_slice(&d.to_le_bytes());
    }
    for _ in dims.len()..3 {
        v.extend_from_slice(&pad.to_le_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn i32_data(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn labels_file(labels: &[i32]) -> Vec<u8> {
    matrix(
        NORB_INT32_MAGIC,
        &[labels.len() as i32],
        1,
        &i32_data(labels),
    )
}

/// Pixel of pair `n`, camera `cam`, row `y`, column `x` (the `x * y % 7` term makes the
/// means of 2×2 blocks fractional, so rounding matters).
fn pixel(n: usize, cam: usize, y: usize, x: usize) -> u8 {
    (n * 41 + cam * 97 + y * 13 + x * 5 + x * y % 7) as u8
}

/// `count` pairs of `side`×`side` images, pair-major, camera, row, column.
fn pairs(count: usize, side: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for n in 0..count {
        for cam in 0..2 {
            for y in 0..side {
                for x in 0..side {
                    v.push(pixel(n, cam, y, x));
                }
            }
        }
    }
    v
}

fn images_file(count: usize, side: usize) -> Vec<u8> {
    let dims = [count as i32, 2, side as i32, side as i32];
    matrix(NORB_UINT8_MAGIC, &dims, 1, &pairs(count, side))
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Writes the split's dat and cat files into `dir` (gzipped if `gzip`).
fn write_split(dir: &Path, split: Split, dat: &[u8], cat: &[u8], gzip: bool) -> [PathBuf; 2] {
    std::fs::create_dir_all(dir).unwrap();
    let files = norb_files(split);
    [(files.dat, dat), (files.cat, cat)].map(|(name, bytes)| {
        if gzip {
            let p = dir.join(format!("{name}.gz"));
            std::fs::write(&p, gz(bytes)).unwrap();
            p
        } else {
            let p = dir.join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        }
    })
}

fn unverified(root: &Path) -> DataSources {
    let mut s = DataSources::at(root);
    s.verify = false;
    s
}

fn stereo() -> NorbOptions {
    NorbOptions::default()
}

#[test]
fn headers_drop_padding_dimensions() {
    let bytes = matrix(NORB_INT32_MAGIC, &[3], 77, &i32_data(&[0, 4, 2]));
    let h = parse_norb_header(&bytes, Path::new("cat")).unwrap();
    assert_eq!(
        (h.element, h.dims.clone(), h.len),
        (NorbElement::I32, vec![3], 20)
    );
    assert_eq!(
        parse_norb_labels(&bytes, Path::new("cat")).unwrap(),
        [0, 4, 2]
    );

    let bytes = images_file(2, 4);
    let h = parse_norb_header(&bytes, Path::new("dat")).unwrap();
    assert_eq!(
        (h.element, h.dims.clone(), h.len),
        (NorbElement::U8, vec![2, 2, 4, 4], 24)
    );
    let (dims, data) = parse_norb_u8(&bytes, Path::new("dat")).unwrap();
    assert_eq!((dims, data), (vec![2, 2, 4, 4], &pairs(2, 4)[..]));
}

#[test]
fn loads_stereo_pairs_as_two_channels() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(NORB_SUBDIR);
    write_split(
        &dir,
        Split::Train,
        &images_file(3, 8),
        &labels_file(&[4, 0, 2]),
        false,
    );
    let (set, used) = load_smallnorb(Split::Train, &unverified(root.path()), stereo()).unwrap();
    assert_eq!(used, dir);
    assert_eq!(
        set.dims(),
        Dims {
            channels: 2,
            height: 8,
            width: 8
        }
    );
    assert_eq!(set.num_classes(), 5);
    assert_eq!(set.labels(), [4, 0, 2]);
    assert_eq!(set.images(), pairs(3, 8));
    // Pair 2, second camera, row 3, column 6.
    assert_eq!(set.image(2)[64 + 3 * 8 + 6], pixel(2, 1, 3, 6));
}

#[test]
fn views_keep_one_camera() {
    let root = tempfile::tempdir().unwrap();
    write_split(
        root.path(),
        Split::Test,
        &images_file(2, 4),
        &labels_file(&[1, 3]),
        true,
    );
    for (view, cam) in [(NorbView::Left, 0), (NorbView::Right, 1)] {
        let options = NorbOptions { view, side: None };
        let (set, used) = load_smallnorb(Split::Test, &unverified(root.path()), options).unwrap();
        assert_eq!(used, root.path());
        assert_eq!(set.channels(), 1);
        for n in 0..2 {
            let expected: Vec<u8> = (0..16).map(|i| pixel(n, cam, i / 4, i % 4)).collect();
            assert_eq!(set.image(n), expected, "{view:?} pair {n}");
        }
    }
}

#[test]
fn downscale_averages_blocks() {
    let root = tempfile::tempdir().unwrap();
    write_split(
        root.path(),
        Split::Train,
        &images_file(2, 8),
        &labels_file(&[0, 1]),
        false,
    );
    let options = NorbOptions {
        view: NorbView::Stereo,
        side: Some(4),
    };
    let (set, _) = load_smallnorb(Split::Train, &unverified(root.path()), options).unwrap();
    assert_eq!((set.channels(), set.height(), set.width()), (2, 4, 4));
    for n in 0..2 {
        for cam in 0..2 {
            for y in 0..4 {
                for x in 0..4 {
                    let sum: u32 = [(0, 0), (0, 1), (1, 0), (1, 1)]
                        .iter()
                        .map(|&(dy, dx)| u32::from(pixel(n, cam, 2 * y + dy, 2 * x + dx)))
                        .sum();
                    let mean = (f64::from(sum) / 4.0).round() as u8; // halves round up
                    assert_eq!(
                        set.image(n)[cam * 16 + y * 4 + x],
                        mean,
                        "{n} {cam} {y} {x}"
                    );
                }
            }
        }
    }
    // A side that does not divide the images is refused.
    let options = NorbOptions {
        view: NorbView::Left,
        side: Some(3),
    };
    let err = load_smallnorb(Split::Train, &unverified(root.path()), options).unwrap_err();
    assert!(matches!(err, DataError::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("3x3"), "{err}");
}

#[test]
fn paper_options_give_48x48_stereo_images() {
    let root = tempfile::tempdir().unwrap();
    write_split(
        root.path(),
        Split::Test,
        &images_file(2, 96),
        &labels_file(&[2, 3]),
        true,
    );
    let (set, _) =
        load_smallnorb(Split::Test, &unverified(root.path()), NorbOptions::PAPER).unwrap();
    assert_eq!((set.channels(), set.height(), set.width()), (2, 48, 48));
    let sum: u32 = [(10, 20), (10, 21), (11, 20), (11, 21)]
        .iter()
        .map(|&(y, x)| u32::from(pixel(1, 1, y, x)))
        .sum();
    assert_eq!(set.image(1)[48 * 48 + 5 * 48 + 10], ((sum + 2) / 4) as u8);
}

#[test]
fn verification_requires_the_canonical_shapes() {
    let root = tempfile::tempdir().unwrap();
    let [dat, cat] = write_split(
        root.path(),
        Split::Train,
        &images_file(1, 4),
        &labels_file(&[1]),
        false,
    );
    let err = load_smallnorb(Split::Train, &DataSources::at(root.path()), stereo()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&cat.display().to_string()) && msg.contains("24300"),
        "{msg}"
    );
    // With 24300 labels the image file's shape is checked next.
    let labels = vec![1; 24_300];
    std::fs::write(&cat, labels_file(&labels)).unwrap();
    let err = load_smallnorb(Split::Train, &DataSources::at(root.path()), stereo()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&dat.display().to_string()) && msg.contains("24300×2×96×96"),
        "{msg}"
    );
}

/// Loads `dat` and `cat` (written into a temporary directory) and returns the error.
fn load_err(dat: &[u8], cat: &[u8], gzip: bool) -> (DataError, [PathBuf; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_split(dir.path(), Split::Train, dat, cat, gzip);
    let err = load_norb_files(&paths[0], &paths[1], stereo(), false).unwrap_err();
    (err, paths)
}

fn assert_names(err: &DataError, path: &Path, needle: &str) {
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(needle), "{needle:?} not in {msg}");
}

#[test]
fn truncated_and_overlong_image_files_are_errors() {
    let good = images_file(2, 4);
    let cat = labels_file(&[0, 1]);
    for gzip in [false, true] {
        let (err, [dat, _]) = load_err(&good[..good.len() - 3], &cat, gzip);
        assert!(matches!(err, DataError::Malformed { .. }), "{err:?}");
        assert_names(&err, &dat, "takes 88 bytes, the file has 85");

        let mut long = good.clone();
        long.extend_from_slice(&[0; 5]);
        let (err, [dat, _]) = load_err(&long, &cat, gzip);
        assert_names(&err, &dat, "trailing data");
        assert_names(&err, &dat, "the file has 93");

        let (err, [dat, _]) = load_err(&good[..10], &cat, gzip);
        assert_names(&err, &dat, "truncated header");
    }
    // A gzip stream cut short is a gzip error.
    let dir = tempfile::tempdir().unwrap();
    let [dat, cat] = write_split(dir.path(), Split::Train, &good, &cat, true);
    let bytes = std::fs::read(&dat).unwrap();
    std::fs::write(&dat, &bytes[..bytes.len() - 12]).unwrap();
    let err = load_norb_files(&dat, &cat, stereo(), false).unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&dat.display().to_string()),
        "{err}"
    );
}

#[test]
fn wrong_magic_element_type_and_shape_are_errors() {
    let cat = labels_file(&[0, 1]);
    // An IDX header is not a NORB one.
    let mut idx = vec![0, 0, 8, 3];
    idx.extend_from_slice(&images_file(2, 4)[4..]);
    let (err, [dat, _]) = load_err(&idx, &cat, false);
    assert_names(&err, &dat, "bad magic number 0x03080000");

    // Images stored as i32, labels stored as u8.
    let as_i32 = matrix(NORB_INT32_MAGIC, &[2, 2, 4, 4], 1, &vec![0; 2 * 32 * 4]);
    let (err, [dat, _]) = load_err(&as_i32, &cat, false);
    assert_names(&err, &dat, "expected u8");
    let u8_labels = matrix(NORB_UINT8_MAGIC, &[2], 1, &[0, 1]);
    let (err, [_, cat_path]) = load_err(&images_file(2, 4), &u8_labels, false);
    assert_names(&err, &cat_path, "expected i32");

    // Three cameras, three dimensions, negative and absurd headers.
    for (dims, needle) in [
        (&[2, 3, 4, 4][..], "N×2×height×width"),
        (&[2, 2, 16][..], "N×2×height×width"),
        (&[2, -2, 4, 4][..], "dimension 1 is negative"),
        (&[0, 2, 4, 4][..], "N > 0"),
    ] {
        let (err, [dat, _]) = load_err(
            &matrix(NORB_UINT8_MAGIC, dims, 1, &pairs(2, 4)),
            &cat,
            false,
        );
        assert_names(&err, &dat, needle);
    }
    let mut bad_ndim = images_file(2, 4);
    bad_ndim[4..8].copy_from_slice(&40i32.to_le_bytes());
    let (err, [dat, _]) = load_err(&bad_ndim, &cat, false);
    assert_names(&err, &dat, "40 dimensions");
    // Labels with two dimensions.
    let (err, [_, cat_path]) = load_err(
        &images_file(2, 4),
        &matrix(NORB_INT32_MAGIC, &[2, 1], 1, &i32_data(&[0, 1])),
        false,
    );
    assert_names(&err, &cat_path, "one dimension");
}

#[test]
fn labels_out_of_range_and_count_mismatch_are_errors() {
    let dat = images_file(2, 4);
    let (err, [_, cat]) = load_err(&dat, &labels_file(&[0, 5]), false);
    assert!(
        matches!(
            err,
            DataError::BadLabel {
                index: 1,
                value: 5,
                num_classes: 5,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &cat, "label #1 is 5");
    let (err, [_, cat]) = load_err(&dat, &labels_file(&[-1, 0]), false);
    assert_names(&err, &cat, "label #0 is -1");
    let (err, [dat, cat]) = load_err(&dat, &labels_file(&[0, 1, 2]), false);
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                image_count: 2,
                label_count: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &dat, "3 labels");
    assert_names(&err, &cat, "2 images");
    // A truncated label file.
    let cat_bytes = labels_file(&[0, 1]);
    let (err, [_, cat]) = load_err(&images_file(2, 4), &cat_bytes[..cat_bytes.len() - 1], false);
    assert_names(&err, &cat, "truncated");
}

#[test]
fn info_rows() {
    let bytes = matrix(
        NORB_INT32_MAGIC,
        &[2, 4],
        1,
        &i32_data(&[4, 8, 34, 5, 6, 0, 2, 1]),
    );
    assert_eq!(
        parse_norb_info(&bytes, Path::new("info")).unwrap(),
        [
            NorbInfo {
                instance: 4,
                elevation: 8,
                azimuth: 34,
                lighting: 5
            },
            NorbInfo {
                instance: 6,
                elevation: 0,
                azimuth: 2,
                lighting: 1
            }
        ]
    );
    let bytes = matrix(NORB_INT32_MAGIC, &[2, 3], 1, &i32_data(&[0; 6]));
    let err = parse_norb_info(&bytes, Path::new("x-info.mat")).unwrap_err();
    assert!(err.to_string().contains("x-info.mat"), "{err}");
}

#[test]
fn missing_files_list_every_path_tried() {
    let root = tempfile::tempdir().unwrap();
    // Only the cat file, gzipped, in the sub-directory.
    let files = norb_files(Split::Test);
    let sub = root.path().join(NORB_SUBDIR);
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(
        sub.join(format!("{}.gz", files.cat)),
        gz(&labels_file(&[0])),
    )
    .unwrap();
    let err = load_smallnorb(Split::Test, &unverified(root.path()), stereo()).unwrap_err();
    let DataError::DataNotFound { dataset, tried, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(dataset, "smallnorb test");
    assert_eq!(
        tried,
        &[
            sub.join(files.dat),
            sub.join(format!("{}.gz", files.dat)),
            root.path().join(files.dat),
            root.path().join(format!("{}.gz", files.dat)),
            sub.join(files.cat),
            sub.join(format!("{}.gz", files.cat)),
        ]
    );
    let msg = err.to_string();
    for p in tried {
        assert!(msg.contains(&p.display().to_string()), "{msg}");
    }
    assert!(msg.contains("norb-v1.0-small"), "{msg}");
    // The training and test files have different names.
    assert!(files.dat.contains("5x01235x9x18x6x2x96x96-testing-dat"));
    assert!(
        norb_files(Split::Train)
            .cat
            .contains("5x46789x9x18x6x2x96x96-training-cat")
    );
    // Both files present: found.
    std::fs::write(root.path().join(files.dat), images_file(1, 4)).unwrap();
    assert_eq!(
        locate_norb(Split::Test, &[root.path().to_path_buf()]),
        Ok([
            root.path().join(files.dat),
            sub.join(format!("{}.gz", files.cat))
        ])
    );
}

/// A split missing everywhere is fetched as `<mirror><file>.gz` (dat and cat) into
/// `<cache>/smallnorb/`; a corrupt gzip body is refused and not kept.
#[test]
fn downloads_a_missing_split_into_the_cache() {
    use capsnet_data::test_server::{Reply, Server};
    let files = norb_files(Split::Test);
    let (dat, cat) = (images_file(2, 8), labels_file(&[1, 3]));
    let server = Server::start(vec![
        (format!("/m/{}.gz", files.dat), Reply::Body(gz(&dat))),
        (format!("/m/{}.gz", files.cat), Reply::Body(gz(&cat))),
        (
            format!("/bad/{}.gz", files.dat),
            Reply::Body(b"not gzip".to_vec()),
        ),
    ]);
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let sources = DataSources {
        explicit: Some(root.path().join("empty")),
        cache: Some(cache.clone()),
        download: true,
        verify: false, // the fixture is not the canonical 24,300 pairs
        ..DataSources::default()
    };
    let err =
        load_smallnorb_with(Split::Test, &sources, stereo(), &[server.url("bad")]).unwrap_err();
    assert!(err.to_string().contains("corrupt gzip"), "{err}");
    assert_eq!(
        std::fs::read_dir(cache.join(NORB_SUBDIR)).unwrap().count(),
        0
    );

    let mirrors = [server.url("bad"), server.url("m")];
    let (set, dir) = load_smallnorb_with(Split::Test, &sources, stereo(), &mirrors).unwrap();
    assert_eq!(dir, cache.join(NORB_SUBDIR));
    assert_eq!(set.labels(), [1, 3]);
    assert_eq!(set.images(), pairs(2, 8));
}
