//! SVHN: the MATLAB v5 reader and the SVHN loader, on `.mat` fixtures written here by a
//! tiny level-5 writer (uncompressed, and compressed as MATLAB 7 saves by default).

use std::io::Write;
use std::path::{Path, PathBuf};

use capsnet_data::svhn::mat::{MatClass, MatStorage, parse_mat};
use capsnet_data::svhn::{
    SVHN_DIMS, SVHN_SUBDIR, SVHN_TEST_FILE, load_svhn, load_svhn_file, locate_svhn, md5_hex,
    parse_svhn,
};
use capsnet_data::{DataError, DataSources, Split};
use flate2::{Compression, write::ZlibEncoder};

// MAT-file constants, from the format's documentation.
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_DOUBLE: u32 = 9;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MX_CHAR: u32 = 4;
const MX_DOUBLE: u32 = 6;
const MX_UINT8: u32 = 9;

/// A data element: tag and data padded to 8 bytes, or the 8-byte small format for data
/// of at most 4 bytes when `small` is allowed.
fn element(ty: u32, data: &[u8], small: bool) -> Vec<u8> {
    let mut v = Vec::new();
    if small && data.len() <= 4 && !data.is_empty() {
        v.extend_from_slice(&((data.len() as u32) << 16 | ty).to_le_bytes());
        v.extend_from_slice(data);
        v.resize(8, 0);
        return v;
    }
    v.extend_from_slice(&ty.to_le_bytes());
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v.resize(v.len().next_multiple_of(8), 0);
    v
}

/// A variable to write.
struct Var<'a> {
    name: &'a str,
    class: u32,
    dims: Vec<i32>,
    storage: u32,
    real: Vec<u8>,
    imag: Option<Vec<u8>>,
}

/// The miMATRIX element of `var`.
fn matrix(var: &Var<'_>) -> Vec<u8> {
    let flags = var.class | if var.imag.is_some() { 0x0800 } else { 0 };
    let mut body = element(MI_UINT32, &[flags.to_le_bytes(), [0; 4]].concat(), false);
    let dims: Vec<u8> = var.dims.iter().flat_map(|d| d.to_le_bytes()).collect();
    body.extend(element(MI_INT32, &dims, false));
    body.extend(element(MI_INT8, var.name.as_bytes(), true));
    body.extend(element(var.storage, &var.real, true));
    if let Some(imag) = &var.imag {
        body.extend(element(var.storage, imag, true));
    }
    element(MI_MATRIX, &body, false)
}

/// The miCOMPRESSED element holding `var`'s matrix (not padded, as MATLAB writes it).
fn compressed(var: &Var<'_>) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(&matrix(var)).unwrap();
    let z = enc.finish().unwrap();
    let mut v = Vec::new();
    v.extend_from_slice(&MI_COMPRESSED.to_le_bytes());
    v.extend_from_slice(&(z.len() as u32).to_le_bytes());
    v.extend(z);
    v
}

/// The 128-byte header of a little-endian level-5 file.
fn header() -> Vec<u8> {
    let mut h =
        b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024".to_vec();
    h.resize(116, b' ');
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&0x0100u16.to_le_bytes());
    h.extend_from_slice(b"IM");
    h
}

fn mat_file(vars: &[&Var<'_>], compress: bool) -> Vec<u8> {
    let mut file = header();
    for var in vars {
        file.extend(if compress {
            compressed(var)
        } else {
            matrix(var)
        });
    }
    file
}

/// Pixel of image `n`, channel `ch`, row `r`, column `c`.
fn pixel(n: usize, ch: usize, r: usize, c: usize) -> u8 {
    (n * 29 + ch * 83 + r * 7 + c * 3) as u8
}

/// `X`, column-major `32×32×3×n`: the row index varies fastest.
fn x_var(n: usize) -> Var<'static> {
    let mut real = Vec::with_capacity(3072 * n);
    for img in 0..n {
        for ch in 0..3 {
            for c in 0..32 {
                for r in 0..32 {
                    real.push(pixel(img, ch, r, c));
                }
            }
        }
    }
    Var {
        name: "X",
        class: MX_UINT8,
        dims: vec![32, 32, 3, n as i32],
        storage: MI_UINT8,
        real,
        imag: None,
    }
}

/// `y` as MATLAB saves a double array of small integers: class double, stored as uint8.
fn y_uint8_storage(labels: &[u8]) -> Var<'static> {
    Var {
        name: "y",
        class: MX_DOUBLE,
        dims: vec![labels.len() as i32, 1],
        storage: MI_UINT8,
        real: labels.to_vec(),
        imag: None,
    }
}

/// `y` stored as doubles.
fn y_double(labels: &[f64]) -> Var<'static> {
    Var {
        name: "y",
        class: MX_DOUBLE,
        dims: vec![labels.len() as i32, 1],
        storage: MI_DOUBLE,
        real: labels.iter().flat_map(|v| v.to_le_bytes()).collect(),
        imag: None,
    }
}

fn check_set(set: &capsnet_data::ImageSet, n: usize) {
    assert_eq!(set.len(), n);
    assert_eq!(set.dims(), SVHN_DIMS);
    assert_eq!(set.num_classes(), 10);
    for img in 0..n {
        let expected: Vec<u8> = (0..3072)
            .map(|i| pixel(img, i / 1024, i % 1024 / 32, i % 32))
            .collect();
        assert_eq!(set.image(img), expected, "image {img}");
    }
}

#[test]
fn reads_uncompressed_and_compressed_files() {
    let labels = [10u8, 1, 5, 10, 9];
    for compress in [false, true] {
        let bytes = mat_file(&[&x_var(5), &y_uint8_storage(&labels)], compress);
        let set = parse_svhn(&bytes, Path::new("f.mat")).unwrap();
        check_set(&set, 5);
        assert_eq!(set.labels(), [0, 1, 5, 0, 9], "10 means the digit 0");

        let y = y_double(&[3.0, 10.0, 7.0, 1.0, 2.0]);
        let bytes = mat_file(&[&y, &x_var(5)], compress);
        let set = parse_svhn(&bytes, Path::new("f.mat")).unwrap();
        check_set(&set, 5);
        assert_eq!(set.labels(), [3, 0, 7, 1, 2]);
    }
}

#[test]
fn generic_reader_skips_other_classes_and_drops_imaginary_parts() {
    let text = Var {
        name: "__notes__",
        class: MX_CHAR,
        dims: vec![1, 3],
        storage: 4, // miUINT16 characters
        real: vec![b'a', 0, b'b', 0, b'c', 0],
        imag: None,
    };
    let complex = Var {
        name: "z",
        class: MX_DOUBLE,
        dims: vec![1, 2],
        storage: MI_DOUBLE,
        real: [1.5f64, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        imag: Some([0.5f64, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect()),
    };
    let scalar = Var {
        name: "k",
        class: MX_UINT8,
        dims: vec![1, 1],
        storage: MI_UINT8,
        real: vec![42], // small-element format
        imag: None,
    };
    for compress in [false, true] {
        let bytes = mat_file(&[&text, &complex, &scalar], compress);
        let vars = parse_mat(&bytes, Path::new("g.mat")).unwrap();
        assert_eq!(vars.len(), 2, "{vars:?}");
        let (z, k) = (&vars[0], &vars[1]);
        assert_eq!(
            (z.name.as_str(), z.class, z.complex),
            ("z", MatClass::Double, true)
        );
        assert_eq!(
            (z.dims.clone(), z.storage()),
            (vec![1, 2], MatStorage::Double)
        );
        assert_eq!(z.values_f64().collect::<Vec<_>>(), [1.5, -2.0]);
        assert_eq!(z.as_u8(), None);
        assert_eq!(
            (k.name.as_str(), k.class, k.len()),
            ("k", MatClass::Uint8, 1)
        );
        assert_eq!(k.as_u8(), Some(&[42][..]));
    }
}

#[test]
fn loads_from_a_root_and_verifies_the_published_md5() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(SVHN_SUBDIR);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(SVHN_TEST_FILE);
    let bytes = mat_file(&[&x_var(2), &y_uint8_storage(&[4, 10])], true);
    std::fs::write(&path, &bytes).unwrap();

    let mut sources = DataSources::at(root.path());
    sources.verify = false;
    let (set, used) = load_svhn(Split::Test, &sources).unwrap();
    assert_eq!(used, dir);
    check_set(&set, 2);
    assert_eq!(set.labels(), [4, 0]);

    sources.verify = true;
    let err = load_svhn(Split::Test, &sources).unwrap_err();
    let DataError::DigestMismatch {
        path: p,
        algorithm,
        expected,
        found,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(p, &path);
    assert_eq!(*algorithm, "MD5");
    assert_eq!(expected, "eb5a983be6a315427106f1b164d9cef3");
    assert_eq!(found, &md5_hex(&bytes));
    assert!(err.to_string().contains("test_32x32.mat"), "{err}");

    // A file under another name cannot be verified.
    let other = root.path().join("mine.mat");
    std::fs::write(&other, &bytes).unwrap();
    assert_eq!(load_svhn_file(&other, false).unwrap(), set);
    let err = load_svhn_file(&other, true).unwrap_err();
    assert!(err.to_string().contains("mine.mat"), "{err}");
}

#[test]
fn missing_file_lists_every_path_tried() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    let sources = DataSources {
        explicit: Some(a.clone()),
        env: Some(b.clone()),
        ..DataSources::default()
    };
    let err = load_svhn(Split::Train, &sources).unwrap_err();
    let DataError::DataNotFound { dataset, tried, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(dataset, "svhn train");
    let expected: Vec<PathBuf> = vec![
        a.join("svhn/train_32x32.mat"),
        a.join("train_32x32.mat"),
        b.join("svhn/train_32x32.mat"),
        b.join("train_32x32.mat"),
    ];
    assert_eq!(tried, &expected);
    let msg = err.to_string();
    for p in &expected {
        assert!(msg.contains(&p.display().to_string()), "{msg}");
    }
    assert!(msg.contains("housenumbers"), "{msg}");
    // The flat layout is found too.
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(b.join("train_32x32.mat"), b"x").unwrap();
    assert_eq!(
        locate_svhn(Split::Train, &[a, b.clone()]),
        Ok(b.join("train_32x32.mat"))
    );
}

/// Parses `bytes` as `name` and returns the error message, checking it names the file.
fn error(bytes: &[u8], needle: &str) -> DataError {
    let path = Path::new("data/svhn/train_32x32.mat");
    let err = parse_svhn(bytes, path).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("data/svhn/train_32x32.mat"), "{msg}");
    assert!(msg.contains(needle), "{needle:?} not in {msg}");
    err
}

#[test]
fn header_errors() {
    let good = mat_file(&[&x_var(1), &y_uint8_storage(&[1])], false);
    let mut v4 = good.clone();
    v4[..6].copy_from_slice(&[0; 6]);
    error(&v4, "header text");
    let mut version = good.clone();
    version[124..126].copy_from_slice(&0x0200u16.to_le_bytes());
    error(&version, "version 0x0200");
    let mut big = good.clone();
    big[126..128].copy_from_slice(b"MI");
    error(&big, "big-endian");
    let mut endian = good.clone();
    endian[126..128].copy_from_slice(b"XX");
    error(&endian, "endian indicator");
    let mut hdf5 = good.clone();
    hdf5[..19].copy_from_slice(b"MATLAB 7.3 MAT-file");
    error(&hdf5, "7.3 (HDF5)");
    error(&good[..100], "the header takes 128 bytes, the file has 100");
    assert!(matches!(error(&v4, ""), DataError::Malformed { .. }));
}

#[test]
fn missing_variables_and_wrong_contents() {
    let x = x_var(2);
    let y = y_uint8_storage(&[1, 2]);
    error(
        &mat_file(&[&x], false),
        "no numeric variable \"y\" (variables: X)",
    );
    error(
        &mat_file(&[], true),
        "no numeric variable \"X\" (variables: none)",
    );

    let mut x_double = x_var(2);
    x_double.class = MX_DOUBLE;
    error(
        &mat_file(&[&x_double, &y], false),
        "X is double, expected uint8",
    );

    let mut x_shape = x_var(2);
    x_shape.dims = vec![32, 16, 6, 2];
    error(&mat_file(&[&x_shape, &y], false), "X is 32×16×6×2");

    error(
        &mat_file(&[&x, &y_uint8_storage(&[1, 2, 3])], true),
        "X holds 2 images but y holds 3 labels",
    );
    error(
        &mat_file(&[&x, &y_uint8_storage(&[1, 0])], false),
        "y(2) is 0",
    );
    error(
        &mat_file(&[&x, &y_uint8_storage(&[11, 1])], false),
        "y(1) is 11",
    );
    error(
        &mat_file(&[&x, &y_double(&[1.0, 2.5])], true),
        "y(2) is 2.5",
    );

    // Real part shorter than the dimensions say.
    let mut short = x_var(2);
    short.real.truncate(6000);
    error(
        &mat_file(&[&short, &y], false),
        "real part holds 6000 bytes",
    );
}

#[test]
fn truncated_and_corrupt_data_are_errors() {
    let x = x_var(2);
    let y = y_uint8_storage(&[1, 2]);
    for compress in [false, true] {
        let good = mat_file(&[&x, &y], compress);
        parse_svhn(&good, Path::new("ok")).unwrap();
        error(&good[..good.len() - 3], "truncated");
        error(&good[..good.len() / 2], "truncated");
        error(&good[..good.len() - good.len() % 8 - 4], "truncated");
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0; 3]);
        error(&trailing, "3 bytes after the last element");
    }

    // A zlib stream cut short (with its tag adjusted), with trailing bytes, or corrupt.
    let header_len = header().len();
    let z = compressed(&y);
    let cut = |keep: usize, extra: &[u8]| {
        let mut v = header();
        let data = [&z[8..8 + keep], extra].concat();
        v.extend_from_slice(&MI_COMPRESSED.to_le_bytes());
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend(data);
        v
    };
    let full = z.len() - 8;
    error(&cut(full - 6, &[]), "truncated zlib data");
    error(
        &cut(full, &[1, 2]),
        "2 bytes after the end of the zlib stream",
    );
    let mut corrupt = cut(full, &[]);
    corrupt[header_len + 8 + 2] ^= 0xff;
    corrupt[header_len + 8 + 3] ^= 0xff;
    error(&corrupt, "zlib");

    // An element of another type at the top level, and a compressed non-matrix.
    let mut odd = header();
    odd.extend(element(MI_DOUBLE, &[0; 8], false));
    error(&odd, "unexpected element of type 9");
    let mut enc = ZlibEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(&element(MI_INT8, b"abcdefgh", false))
        .unwrap();
    let zz = enc.finish().unwrap();
    let mut wrapped = header();
    wrapped.extend_from_slice(&MI_COMPRESSED.to_le_bytes());
    wrapped.extend_from_slice(&(zz.len() as u32).to_le_bytes());
    wrapped.extend(zz);
    error(&wrapped, "holds an element of type 1");
}
