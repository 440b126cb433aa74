//! SVHN: the MATLAB v5 reader (`capsnet_data::mat`, shared with affNIST) and the SVHN
//! loader, on `.mat` fixtures written here by a tiny level-5 writer (both byte orders,
//! uncompressed, and compressed as MATLAB 7 saves by default).

use std::io::Write;
use std::path::{Path, PathBuf};

use capsnet_data::mat::{MAT_MAX_DEPTH, MatValue, parse_mat_variables};
// `svhn::mat` is the reader's former path, kept as a re-export of `capsnet_data::mat`.
use capsnet_data::svhn::mat::{MatClass, MatStorage, parse_mat};
use capsnet_data::svhn::{
    SVHN_DIMS, SVHN_SUBDIR, SVHN_TEST_FILE, load_svhn_file, locate_svhn, md5_hex, parse_svhn,
};
use capsnet_data::{BuiltinDataset, DataError, DataSources, ImageSet, NoProgress, Split};

/// An SVHN split through the one loader: the images and the directory they came from.
fn load_svhn(split: Split, sources: &DataSources) -> Result<(ImageSet, PathBuf), DataError> {
    let loaded = BuiltinDataset::Svhn.load(split, sources, &NoProgress)?;
    Ok((loaded.images, loaded.provenance.dir))
}

/// [`load_svhn`] from `mirrors`.
#[cfg(feature = "download")]
fn load_svhn_with(
    split: Split,
    sources: &DataSources,
    mirrors: &[String],
) -> Result<(ImageSet, PathBuf), DataError> {
    let sources = sources.clone().with_mirrors(BuiltinDataset::Svhn, mirrors);
    load_svhn(split, &sources)
}
use flate2::{Compression, write::ZlibEncoder};

// MAT-file constants, from the format's documentation.
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_DOUBLE: u32 = 9;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MX_CELL: u32 = 1;
const MX_STRUCT: u32 = 2;
const MX_CHAR: u32 = 4;
const MX_DOUBLE: u32 = 6;
const MX_UINT8: u32 = 9;

/// Byte order of a fixture.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Order {
    Little,
    Big,
}

impl Order {
    fn u32(self, v: u32) -> [u8; 4] {
        match self {
            Order::Little => v.to_le_bytes(),
            Order::Big => v.to_be_bytes(),
        }
    }

    /// Little-endian `values` of `size` bytes each, in this order.
    fn values(self, values: &[u8], size: usize) -> Vec<u8> {
        let mut v = values.to_vec();
        if self == Order::Big {
            v.chunks_exact_mut(size).for_each(<[u8]>::reverse);
        }
        v
    }
}

/// A data element: tag and data padded to 8 bytes, or the 8-byte small format for data
/// of at most 4 bytes when `small` is allowed.
fn element_in(order: Order, ty: u32, data: &[u8], small: bool) -> Vec<u8> {
    let mut v = Vec::new();
    if small && data.len() <= 4 && !data.is_empty() {
        v.extend_from_slice(&order.u32((data.len() as u32) << 16 | ty));
        v.extend_from_slice(data);
        v.resize(8, 0);
        return v;
    }
    v.extend_from_slice(&order.u32(ty));
    v.extend_from_slice(&order.u32(data.len() as u32));
    v.extend_from_slice(data);
    v.resize(v.len().next_multiple_of(8), 0);
    v
}

fn element(ty: u32, data: &[u8], small: bool) -> Vec<u8> {
    element_in(Order::Little, ty, data, small)
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

/// Bytes per value of a numeric storage type.
fn storage_size(storage: u32) -> usize {
    match storage {
        1 | 2 => 1,
        3 | 4 => 2,
        5..=7 => 4,
        _ => 8,
    }
}

/// An miMATRIX element: array flags (class and extra flag bits), dimensions, name, then
/// `body` (the class's sub-elements).
fn array_in(order: Order, flags: u32, dims: &[i32], name: &str, body: &[u8]) -> Vec<u8> {
    let mut m = element_in(
        order,
        MI_UINT32,
        &[order.u32(flags), [0; 4]].concat(),
        false,
    );
    let dims: Vec<u8> = dims.iter().flat_map(|&d| order.u32(d as u32)).collect();
    m.extend(element_in(order, MI_INT32, &dims, false));
    m.extend(element_in(order, MI_INT8, name.as_bytes(), true));
    m.extend_from_slice(body);
    element_in(order, MI_MATRIX, &m, false)
}

/// The miMATRIX element of `var` (whose values are given little-endian).
fn matrix_in(order: Order, var: &Var<'_>) -> Vec<u8> {
    let flags = var.class | if var.imag.is_some() { 0x0800 } else { 0 };
    let size = storage_size(var.storage);
    let mut body = element_in(order, var.storage, &order.values(&var.real, size), true);
    if let Some(imag) = &var.imag {
        body.extend(element_in(
            order,
            var.storage,
            &order.values(imag, size),
            true,
        ));
    }
    array_in(order, flags, &var.dims, var.name, &body)
}

fn matrix(var: &Var<'_>) -> Vec<u8> {
    matrix_in(Order::Little, var)
}

/// A 1×1 struct whose fields hold the given miMATRIX elements.
fn struct_matrix(name: &str, fields: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut body = element(MI_INT32, &32u32.to_le_bytes(), true);
    let names: Vec<u8> = fields
        .iter()
        .flat_map(|(f, _)| {
            let mut n = f.as_bytes().to_vec();
            n.resize(32, 0);
            n
        })
        .collect();
    body.extend(element(MI_INT8, &names, false));
    for (_, value) in fields {
        body.extend_from_slice(value);
    }
    array_in(Order::Little, MX_STRUCT, &[1, 1], name, &body)
}

/// A 1×n cell array holding the given miMATRIX elements.
fn cell_matrix(name: &str, cells: &[Vec<u8>]) -> Vec<u8> {
    array_in(
        Order::Little,
        MX_CELL,
        &[1, cells.len() as i32],
        name,
        &cells.concat(),
    )
}

/// A zlib-compressed miCOMPRESSED element holding `element` (not padded, as MATLAB
/// writes it).
fn compress_in(order: Order, element: &[u8]) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(element).unwrap();
    let z = enc.finish().unwrap();
    let mut v = Vec::new();
    v.extend_from_slice(&order.u32(MI_COMPRESSED));
    v.extend_from_slice(&order.u32(z.len() as u32));
    v.extend(z);
    v
}

/// The miCOMPRESSED element holding `var`'s matrix.
fn compressed(var: &Var<'_>) -> Vec<u8> {
    compress_in(Order::Little, &matrix(var))
}

/// The 128-byte header of a level-5 file.
fn header_in(order: Order) -> Vec<u8> {
    let mut h =
        b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024".to_vec();
    h.resize(116, b' ');
    h.extend_from_slice(&[0; 8]);
    match order {
        Order::Little => {
            h.extend_from_slice(&0x0100u16.to_le_bytes());
            h.extend_from_slice(b"IM");
        }
        Order::Big => {
            h.extend_from_slice(&0x0100u16.to_be_bytes());
            h.extend_from_slice(b"MI");
        }
    }
    h
}

fn header() -> Vec<u8> {
    header_in(Order::Little)
}

/// A file of whole miMATRIX elements, each compressed or not.
fn file_in(order: Order, elements: &[Vec<u8>], compress: bool) -> Vec<u8> {
    let mut file = header_in(order);
    for e in elements {
        file.extend(if compress {
            compress_in(order, e)
        } else {
            e.clone()
        });
    }
    file
}

fn mat_file_in(order: Order, vars: &[&Var<'_>], compress: bool) -> Vec<u8> {
    let elements: Vec<Vec<u8>> = vars.iter().map(|v| matrix_in(order, v)).collect();
    file_in(order, &elements, compress)
}

fn mat_file(vars: &[&Var<'_>], compress: bool) -> Vec<u8> {
    mat_file_in(Order::Little, vars, compress)
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
    // Big-endian files are read; a little-endian one claiming to be big-endian is not.
    let mut big = good.clone();
    big[126..128].copy_from_slice(b"MI");
    error(&big, "version 0x0001 (read big-endian), expected 0x0100");
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

#[test]
fn big_endian_files_read_like_little_endian_ones() {
    let (x, y) = (x_var(3), y_double(&[3.0, 10.0, 7.0]));
    for compress in [false, true] {
        let le = mat_file_in(Order::Little, &[&x, &y], compress);
        let be = mat_file_in(Order::Big, &[&x, &y], compress);
        assert_ne!(le, be);
        let set = parse_svhn(&be, Path::new("be.mat")).unwrap();
        check_set(&set, 3);
        assert_eq!(set.labels(), [3, 0, 7]);
        assert_eq!(set, parse_svhn(&le, Path::new("le.mat")).unwrap());
    }

    // Every storage type, and a complex array, through the generic reader.
    struct Case {
        /// Storage type written, and as read.
        code: u32,
        storage: MatStorage,
        /// Class written.
        class: u32,
        /// Two values, little-endian, and as `f64`.
        real: Vec<u8>,
        values: [f64; 2],
    }
    let case = |code, storage, class, a: &[u8], b: &[u8], values| Case {
        code,
        storage,
        class,
        real: [a, b].concat(),
        values,
    };
    use MatStorage as S;
    #[rustfmt::skip]
    let cases = [
        case(1, S::Int8, 8, &(-3i8).to_le_bytes(), &[7], [-3.0, 7.0]),
        case(2, S::Uint8, 9, &[255], &[0], [255.0, 0.0]),
        case(3, S::Int16, 10, &(-300i16).to_le_bytes(), &2i16.to_le_bytes(), [-300.0, 2.0]),
        case(4, S::Uint16, 11, &65535u16.to_le_bytes(), &1u16.to_le_bytes(), [65535.0, 1.0]),
        case(5, S::Int32, 12, &(-70_000i32).to_le_bytes(), &5i32.to_le_bytes(), [-7e4, 5.0]),
        case(6, S::Uint32, 13, &4_000_000_000u32.to_le_bytes(), &0u32.to_le_bytes(), [4e9, 0.0]),
        case(7, S::Single, 7, &1.5f32.to_le_bytes(), &(-0.25f32).to_le_bytes(), [1.5, -0.25]),
        case(9, S::Double, 6, &(-2.5f64).to_le_bytes(), &1e300f64.to_le_bytes(), [-2.5, 1e300]),
        case(12, S::Int64, 14, &(-(1i64 << 40)).to_le_bytes(), &3i64.to_le_bytes(), [-(2f64.powi(40)), 3.0]),
        case(13, S::Uint64, 15, &(1u64 << 50).to_le_bytes(), &9u64.to_le_bytes(), [2f64.powi(50), 9.0]),
    ];
    let names: Vec<String> = (0..cases.len()).map(|i| format!("v{i}")).collect();
    let vars: Vec<Var<'_>> = cases
        .iter()
        .zip(&names)
        .map(|(c, name)| Var {
            name,
            class: c.class,
            dims: vec![1, 2],
            storage: c.code,
            real: c.real.clone(),
            // The uint64 array is complex: its imaginary part is read and dropped.
            imag: (c.storage == S::Uint64).then(|| c.real.clone()),
        })
        .collect();
    let refs: Vec<&Var<'_>> = vars.iter().collect();
    for order in [Order::Little, Order::Big] {
        for compress in [false, true] {
            let file = mat_file_in(order, &refs, compress);
            let arrays = parse_mat(&file, Path::new("all.mat")).unwrap();
            assert_eq!(arrays.len(), cases.len());
            for (a, c) in arrays.iter().zip(&cases) {
                let what = format!("{order:?} z {compress} {}", a.name);
                assert_eq!(a.storage(), c.storage, "{what}");
                assert_eq!(a.len(), 2, "{what}");
                assert_eq!(a.complex, c.storage == S::Uint64, "{what}");
                assert_eq!(a.values_f64().collect::<Vec<_>>(), c.values, "{what}");
                // Bytes only when every value is one (none is here but for uint8).
                match a.to_u8() {
                    Ok(bytes) => {
                        assert_eq!(c.storage, S::Uint8, "{what}");
                        assert_eq!(&bytes[..], &c.real[..], "{what}");
                    }
                    Err((i, v)) => assert_eq!(v, c.values[i], "{what}"),
                }
            }
        }
    }
}

#[test]
fn struct_cell_and_opaque_variables_are_read_then_left_out() {
    let scale = matrix(&Var {
        name: "",
        class: MX_DOUBLE,
        dims: vec![1, 1],
        storage: MI_DOUBLE,
        real: 0.5f64.to_le_bytes().to_vec(),
        imag: None,
    });
    let note = matrix(&Var {
        name: "",
        class: MX_CHAR,
        dims: vec![1, 2],
        storage: 4, // miUINT16 characters
        real: vec![b'h', 0, b'i', 0],
        imag: None,
    });
    let small = matrix(&Var {
        name: "",
        class: MX_UINT8,
        dims: vec![1, 3],
        storage: MI_UINT8,
        real: vec![1, 2, 3],
        imag: None,
    });
    // An empty cell is written as an miMATRIX of no bytes.
    let cells = cell_matrix("", &[small, element(MI_MATRIX, &[], false)]);
    let meta = struct_matrix(
        "meta",
        &[("scale", scale), ("note", note), ("cells", cells)],
    );
    // An opaque object (a MATLAB string, say): flags then name, no dimensions.
    let mut body = element(MI_UINT32, &[17u32.to_le_bytes(), [0; 4]].concat(), false);
    body.extend(element(MI_INT8, b"s", true));
    body.extend(element(MI_INT8, b"MCOS", true));
    let opaque = element(MI_MATRIX, &body, false);
    let (x, y) = (matrix(&x_var(2)), matrix(&y_uint8_storage(&[1, 10])));

    for compress in [false, true] {
        let elements = [meta.clone(), x.clone(), opaque.clone(), y.clone()];
        let bytes = file_in(Order::Little, &elements, compress);
        let set = parse_svhn(&bytes, Path::new("s.mat")).unwrap();
        check_set(&set, 2);
        assert_eq!(set.labels(), [1, 0]);

        let numeric = parse_mat(&bytes, Path::new("s.mat")).unwrap();
        let names: Vec<&str> = numeric.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["X", "y"]);

        let vars = parse_mat_variables(&bytes, Path::new("s.mat")).unwrap();
        let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["meta", "X", "s", "y"]);
        let MatValue::Struct {
            dims,
            fields,
            values,
        } = &vars[0].value
        else {
            panic!("{:?}", vars[0])
        };
        assert_eq!(
            (dims.as_slice(), fields.as_slice()),
            (
                &[1, 1][..],
                &["scale", "note", "cells"].map(String::from)[..]
            )
        );
        let MatValue::Numeric(scale) = &values[0] else {
            panic!("{:?}", values[0])
        };
        assert_eq!(scale.values_f64().collect::<Vec<_>>(), [0.5]);
        assert_eq!(
            values[1],
            MatValue::Other {
                class: 4,
                dims: vec![1, 2]
            }
        );
        assert_eq!(values[1].describe(), "a 1×2 char array");
        let MatValue::Cell {
            dims,
            values: cells,
        } = &values[2]
        else {
            panic!("{:?}", values[2])
        };
        assert_eq!(dims, &[1, 2]);
        let MatValue::Numeric(first) = &cells[0] else {
            panic!("{:?}", cells[0])
        };
        assert_eq!(first.as_u8(), Some(&[1, 2, 3][..]));
        assert_eq!(cells[1], MatValue::Empty);
        assert_eq!(
            vars[2].value,
            MatValue::Other {
                class: 17,
                dims: vec![]
            }
        );
        assert_eq!(vars[0].value.describe(), "a 1×1 struct");
    }

    // A struct array with no fields holds nothing, however many elements it declares.
    // (The reader skips its element loop; unguarded, that loop over 2^62 elements is
    // optimised away in release builds but hangs unoptimised ones.)
    let mut body = element(MI_INT32, &32u32.to_le_bytes(), true);
    body.extend(element(MI_INT8, &[], false));
    let huge = array_in(
        Order::Little,
        MX_STRUCT,
        &[i32::MAX, i32::MAX],
        "huge",
        &body,
    );
    let vars = parse_mat_variables(&file_in(Order::Little, &[huge], false), Path::new("h.mat"));
    let side = i32::MAX as usize;
    let expected = MatValue::Struct {
        dims: vec![side, side],
        fields: vec![],
        values: vec![],
    };
    assert_eq!(vars.unwrap()[0].value, expected);
}

#[test]
fn non_numeric_and_malformed_nested_variables_are_errors_naming_them() {
    let (x, y) = (matrix(&x_var(1)), matrix(&y_uint8_storage(&[1])));
    for compress in [false, true] {
        // X saved inside a struct rather than as a variable.
        let wrapped = struct_matrix("X", &[("data", x.clone())]);
        let bytes = file_in(Order::Little, &[wrapped, y.clone()], compress);
        let err = error(&bytes, "X is a 1×1 struct, expected a numeric array");
        assert!(matches!(err, DataError::Malformed { .. }), "{err:?}");

        // A field whose data disagrees with its dimensions, in an unrelated variable.
        let mut labels = y_uint8_storage(&[1, 2, 3]);
        labels.name = "";
        labels.dims = vec![4, 1];
        let meta = struct_matrix("meta", &[("labels", matrix(&labels))]);
        let bytes = file_in(Order::Little, &[x.clone(), y.clone(), meta], compress);
        error(
            &bytes,
            "variable \"meta\", field \"labels\": real part holds 3 bytes, but 4×1 values",
        );

        // A cell that is not a matrix.
        let odd = cell_matrix("c", &[element(MI_DOUBLE, &[0; 8], false)]);
        let bytes = file_in(Order::Little, &[x.clone(), y.clone(), odd], compress);
        error(&bytes, "variable \"c\", cell 1: the element at byte");
        error(&bytes, "is of type 9 (miDOUBLE), expected miMATRIX (14)");
    }

    // Nesting is read to MAT_MAX_DEPTH levels and refused beyond, so crafted files cannot
    // exhaust the stack.
    let nested = |levels: usize| {
        let mut v = matrix(&y_uint8_storage(&[1]));
        for level in (0..levels).rev() {
            v = struct_matrix(if level == 0 { "deep" } else { "" }, &[("f", v)]);
        }
        file_in(Order::Little, &[v], true)
    };
    let vars = parse_mat_variables(&nested(MAT_MAX_DEPTH), Path::new("n.mat")).unwrap();
    let mut value = &vars[0].value;
    let mut depth = 0;
    while let MatValue::Struct { values, .. } = value {
        value = &values[0];
        depth += 1;
    }
    assert_eq!(depth, MAT_MAX_DEPTH);
    assert!(matches!(value, MatValue::Numeric(_)), "{value:?}");
    let err = parse_mat(&nested(MAT_MAX_DEPTH + 1), Path::new("d/n.mat")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("d/n.mat"), "{msg}");
    assert!(
        msg.contains("variable \"deep\", field \"f\", field \"f\"")
            && msg.contains("nested deeper than 32 levels"),
        "{msg}"
    );
}

/// Downloads from the first mirror that serves the file, into `<cache>/svhn/`; with
/// verification a file whose MD5 is not the published one is refused and not kept.
#[test]
fn downloads_a_missing_split_into_the_cache() {
    use capsnet_data::test_server::{Reply, Server};
    let bytes = mat_file(&[&x_var(2), &y_uint8_storage(&[3, 10])], true);
    let route = format!("/good/{SVHN_TEST_FILE}");
    let server = Server::start(vec![(route.clone(), Reply::Body(bytes.clone()))]);
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let mut sources = DataSources {
        explicit: Some(root.path().join("empty")),
        cache: Some(cache.clone()),
        download: true,
        verify: true,
        ..DataSources::default()
    };
    let mirrors = [server.url("missing"), server.url("good")];
    // The fixture is not the published file: refused, nothing kept.
    let err = load_svhn_with(Split::Test, &sources, &mirrors).unwrap_err();
    let DataError::MirrorsExhausted { failures, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(failures[0].to_string().contains("HTTP 404"), "{err}");
    assert!(
        failures[1].to_string().contains("checksum mismatch"),
        "{err}"
    );
    let kept = std::fs::read_dir(cache.join(SVHN_SUBDIR)).unwrap().count();
    assert_eq!(kept, 0);

    sources.verify = false;
    let (set, dir) = load_svhn_with(Split::Test, &sources, &mirrors).unwrap();
    assert_eq!(dir, cache.join(SVHN_SUBDIR));
    assert_eq!(set.labels(), [3, 0]);
    assert_eq!(std::fs::read(dir.join(SVHN_TEST_FILE)).unwrap(), bytes);
    // Found in the cache the second time: no new request.
    let before = server.requests().len();
    load_svhn_with(Split::Test, &sources, &mirrors).unwrap();
    assert_eq!(server.requests().len(), before);
}
