//! Expanded MNIST, affine-transformed MNIST (paper section 5.2) and the affNIST `.mat`
//! reader, on synthetic digits and `.mat` fixtures written here.

use std::io::Write;
use std::path::Path;

use capsnet_data::affine::{AffineConfig, AffineMnist, AffineParams, AffineRanges, warp};
use capsnet_data::affnist::{AFFNIST_DIMS, load_affnist_mat, load_affnist_mats, parse_affnist_mat};
use capsnet_data::expanded::{ExpandedConfig, ExpandedMnist};
mod common;

use capsnet_data::{DataError, Dims, ImageSet, Rng, Shift, shift_image};
use common::{MNIST, synthetic_digits};

fn dims(height: usize, width: usize) -> Dims {
    Dims {
        channels: 1,
        height,
        width,
    }
}

/// `n` synthetic digits with labels `i % 10`.
fn source(n: usize, seed: u64) -> ImageSet {
    synthetic_digits(n, 10, seed)
}

fn ink(img: &[u8]) -> u64 {
    img.iter().map(|&p| u64::from(p)).sum()
}

/// `digit` (28×28) pasted at column `x`, row `y` of a black `side`×`side` canvas.
fn pasted(digit: &[u8], side: usize, x: usize, y: usize) -> Vec<u8> {
    let mut out = vec![0u8; side * side];
    for r in 0..28 {
        out[(y + r) * side + x..(y + r) * side + x + 28]
            .copy_from_slice(&digit[r * 28..(r + 1) * 28]);
    }
    out
}

fn invalid(r: Result<impl std::fmt::Debug, DataError>) -> String {
    match r {
        Err(DataError::Invalid(m)) => m,
        other => panic!("expected DataError::Invalid, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Expanded MNIST
// ---------------------------------------------------------------------------------------

#[test]
fn expanded_pastes_the_digit_unchanged_inside_the_canvas() {
    let set = source(50, 1);
    let g = ExpandedMnist::new(&set, ExpandedConfig::default()).unwrap();
    assert_eq!(g.len(), 50);
    assert_eq!(g.canvas(), AFFNIST_DIMS);
    for k in 0..g.len() {
        let (x, y) = g.offset(k).unwrap();
        assert!(x <= 12 && y <= 12, "({x}, {y})");
        let (img, label) = g.example(k).unwrap();
        assert_eq!(label, set.label(k));
        assert_eq!(ink(&img), ink(set.image(k)), "example {k}");
        assert_eq!(img, pasted(set.image(k), 40, x, y), "example {k}");
    }
}

#[test]
fn expanded_positions_cover_the_canvas() {
    let set = source(600, 2);
    let g = ExpandedMnist::new(
        &set,
        ExpandedConfig {
            canvas: 40,
            seed: 5,
        },
    )
    .unwrap();
    let (mut xs, mut ys) = ([false; 13], [false; 13]);
    for k in 0..g.len() {
        let (x, y) = g.offset(k).unwrap();
        xs[x] = true;
        ys[y] = true;
    }
    assert!(xs.iter().chain(&ys).all(|&s| s), "{xs:?} {ys:?}");
    // A canvas the size of the digit leaves a single position.
    let exact = ExpandedMnist::new(
        &set,
        ExpandedConfig {
            canvas: 28,
            seed: 5,
        },
    )
    .unwrap();
    assert_eq!(exact.offset(3).unwrap(), (0, 0));
    assert_eq!(exact.example(3).unwrap().0, set.image(3));
}

#[test]
fn expanded_is_deterministic_by_seed() {
    let set = source(40, 3);
    let cfg = |seed| ExpandedConfig { canvas: 40, seed };
    let a = ExpandedMnist::new(&set, cfg(7)).unwrap();
    let b = ExpandedMnist::new(set.clone(), cfg(7)).unwrap();
    let c = ExpandedMnist::new(&set, cfg(8)).unwrap();
    let mut differ = 0;
    for k in (0..40).rev() {
        assert_eq!(a.example(k).unwrap(), b.example(k).unwrap());
        if a.offset(k).unwrap() != c.offset(k).unwrap() {
            differ += 1;
        }
    }
    assert!(differ > 30, "{differ}");
    let stored = a.materialize(40).unwrap();
    assert_eq!(stored.dims(), AFFNIST_DIMS);
    assert_eq!(stored.labels(), set.labels());
    for k in 0..40 {
        assert_eq!(stored.image(k), a.example(k).unwrap().0);
    }
    assert_eq!(a.materialize(5).unwrap().len(), 5);
}

#[test]
fn expanded_rejects_bad_input() {
    let set = source(3, 4);
    let m = invalid(ExpandedMnist::new(
        &set,
        ExpandedConfig {
            canvas: 27,
            seed: 0,
        },
    ));
    assert!(m.contains("27x27") && m.contains("28x28"), "{m}");
    let g = ExpandedMnist::new(&set, ExpandedConfig::default()).unwrap();
    let m = invalid(g.example(3));
    assert!(m.contains("out of range"), "{m}");
    let m = invalid(g.example_into(0, &mut [0; 1599]));
    assert!(m.contains("1599"), "{m}");
    assert!(g.materialize(4).is_err());
}

// ---------------------------------------------------------------------------------------
// Affine warps
// ---------------------------------------------------------------------------------------

fn params(rotation_deg: f64, shear: f64, scale_x: f64, scale_y: f64) -> AffineParams {
    AffineParams {
        rotation_deg,
        shear,
        scale_x,
        scale_y,
        ..AffineParams::IDENTITY
    }
}

#[test]
fn identity_warp_reproduces_the_centred_digit_exactly() {
    // Ink everywhere, border included.
    let mut rng = Rng::new(11);
    let digit: Vec<u8> = (0..784).map(|_| rng.below(256) as u8).collect();
    let out = warp(&digit, MNIST, &AffineParams::IDENTITY, 40, 40).unwrap();
    assert_eq!(out, pasted(&digit, 40, 6, 6));
    assert_eq!(
        warp(&digit, MNIST, &AffineParams::default(), 28, 28).unwrap(),
        digit
    );
}

#[test]
fn rotation_by_90_degrees_turns_counter_clockwise() {
    #[rustfmt::skip]
    let src = [
        1, 2, 3, 4,
        5, 6, 7, 8,
    ];
    #[rustfmt::skip]
    let ccw = [
        0, 4, 8, 0,
        0, 3, 7, 0,
        0, 2, 6, 0,
        0, 1, 5, 0,
    ];
    #[rustfmt::skip]
    let cw = [
        0, 5, 1, 0,
        0, 6, 2, 0,
        0, 7, 3, 0,
        0, 8, 4, 0,
    ];
    assert_eq!(
        warp(&src, dims(2, 4), &params(90.0, 0.0, 1.0, 1.0), 4, 4).unwrap(),
        ccw
    );
    assert_eq!(
        warp(&src, dims(2, 4), &params(-90.0, 0.0, 1.0, 1.0), 4, 4).unwrap(),
        cw
    );
    // 180° reverses the image.
    let half = warp(&src, dims(2, 4), &params(180.0, 0.0, 1.0, 1.0), 2, 4).unwrap();
    assert_eq!(half, [8, 7, 6, 5, 4, 3, 2, 1]);
}

#[test]
fn translation_and_shear_follow_the_documented_conventions() {
    let mut rng = Rng::new(12);
    let digit: Vec<u8> = (0..784).map(|_| 1 + rng.below(255) as u8).collect();
    let moved = AffineParams {
        tx: 2.0,
        ty: -1.0,
        ..AffineParams::IDENTITY
    };
    let centred = pasted(&digit, 40, 6, 6);
    assert_eq!(
        warp(&digit, MNIST, &moved, 40, 40).unwrap(),
        shift_image(&centred, AFFNIST_DIMS, Shift { dx: 2, dy: -1 })
    );

    // x' = x + shear · y about the centre: the top row moves left, the bottom row right.
    #[rustfmt::skip]
    let src = [
        1, 2, 3,
        4, 5, 6,
        7, 8, 9,
    ];
    #[rustfmt::skip]
    let sheared = [
        0, 0, 0, 0, 0,
        1, 2, 3, 0, 0,
        0, 4, 5, 6, 0,
        0, 0, 7, 8, 9,
        0, 0, 0, 0, 0,
    ];
    assert_eq!(
        warp(&src, dims(3, 3), &params(0.0, 1.0, 1.0, 1.0), 5, 5).unwrap(),
        sheared
    );
    // scale_x = 2 stretches rows only: the 3 columns span 5 (interpolated in between).
    let wide = warp(&src, dims(3, 3), &params(0.0, 0.0, 2.0, 1.0), 5, 5).unwrap();
    assert_eq!(&wide[5..10], [1, 2, 2, 3, 3]);
    assert_eq!(&wide[..5], [0; 5]);
    assert_eq!(&wide[20..], [0; 5]);

    // A = R · Shear · diag(scale_x, scale_y): scale first, then shear, then rotate.
    let a = params(90.0, 1.0, 2.0, 3.0).matrix();
    let expected = [[0.0, 3.0], [-2.0, -3.0]];
    for r in 0..2 {
        for c in 0..2 {
            assert!((a[r][c] - expected[r][c]).abs() < 1e-12, "{a:?}");
        }
    }
    // The same order on pixels: shear, then rotate, equals the combined warp (every
    // mapping here hits pixel centres exactly, so nothing is interpolated).
    let sheared_then_rotated = warp(&sheared, dims(5, 5), &params(90.0, 0.0, 1.0, 1.0), 5, 5);
    assert_eq!(
        warp(&src, dims(3, 3), &params(90.0, 1.0, 1.0, 1.0), 5, 5).unwrap(),
        sheared_then_rotated.unwrap()
    );
}

#[test]
fn map_point_agrees_with_the_warp() {
    let mut rng = Rng::new(13);
    let ranges = AffineRanges::AFFNIST;
    for _ in 0..50 {
        let (x, y) = (4 + rng.below(20) as usize, 4 + rng.below(20) as usize);
        let mut digit = vec![0u8; 784];
        digit[y * 28 + x] = 255;
        let mut p = ranges.sample_linear(&mut rng);
        p.tx = f64::from(rng.f32()) * 4.0 - 2.0;
        p.ty = f64::from(rng.f32()) * 4.0 - 2.0;
        let out = warp(&digit, MNIST, &p, 40, 40).unwrap();
        let total = ink(&out) as f64;
        assert!(total > 0.0);
        let (mut cx, mut cy) = (0.0, 0.0);
        for (i, &v) in out.iter().enumerate() {
            cx += (i % 40) as f64 * f64::from(v) / total;
            cy += (i / 40) as f64 * f64::from(v) / total;
        }
        let (mx, my) = p.map_point(MNIST, 40, 40, x as f64, y as f64);
        assert!(
            (cx - mx).abs() < 0.6 && (cy - my).abs() < 0.6,
            "{p:?}: ({cx}, {cy}) vs ({mx}, {my})"
        );
    }
}

#[test]
fn sampled_parameters_stay_within_the_ranges_and_keep_the_digit_whole() {
    let set = source(100, 14);
    let ranges = AffineRanges::default();
    assert_eq!(ranges, AffineRanges::AFFNIST);
    assert_eq!(
        (
            ranges.max_rotation_deg,
            ranges.max_shear,
            ranges.min_scale,
            ranges.max_scale
        ),
        (20.0, 0.2, 0.8, 1.2)
    );
    let mut rng = Rng::new(15);
    let (mut rot, mut shear, mut scale, mut t) =
        ([0.0f64; 2], [0.0f64; 2], [2.0f64, 0.0], [0.0f64; 2]);
    let mut edges = [40usize, 0, 40, 0]; // leftmost, rightmost, top, bottom ink
    for i in 0..2000 {
        let digit = set.image(i % 100);
        let p = ranges.sample(&mut rng, digit, MNIST, 40, 40).unwrap();
        assert!(p.rotation_deg.abs() <= 20.0, "{p:?}");
        assert!(p.shear.abs() <= 0.2, "{p:?}");
        for s in [p.scale_x, p.scale_y] {
            assert!((0.8..=1.2).contains(&s), "{p:?}");
            scale = [scale[0].min(s), scale[1].max(s)];
        }
        rot = [rot[0].min(p.rotation_deg), rot[1].max(p.rotation_deg)];
        shear = [shear[0].min(p.shear), shear[1].max(p.shear)];
        t = [t[0].min(p.tx.min(p.ty)), t[1].max(p.tx.max(p.ty))];
        if i < 300 {
            // The same warp on a canvas 30 pixels wider on each side (same centre offsets)
            // loses no ink: nothing fell off the 40×40 canvas.
            let small = warp(digit, MNIST, &p, 40, 40).unwrap();
            let big = warp(digit, MNIST, &p, 100, 100).unwrap();
            assert_eq!(ink(&small), ink(&big), "{p:?}");
            for (i, _) in small.iter().enumerate().filter(|(_, v)| **v != 0) {
                let (x, y) = (i % 40, i / 40);
                edges = [
                    edges[0].min(x),
                    edges[1].max(x),
                    edges[2].min(y),
                    edges[3].max(y),
                ];
            }
        }
    }
    // The translations use the whole canvas: some digits touch (almost) every border.
    assert!(edges[0] <= 1 && edges[1] >= 38, "{edges:?}");
    assert!(edges[2] <= 1 && edges[3] >= 38, "{edges:?}");
    // The ranges are used, not just respected.
    assert!(rot[0] < -19.0 && rot[1] > 19.0, "{rot:?}");
    assert!(shear[0] < -0.19 && shear[1] > 0.19, "{shear:?}");
    assert!(scale[0] < 0.81 && scale[1] > 1.19, "{scale:?}");
    assert!(t[0] < -8.0 && t[1] > 8.0, "{t:?}");
}

#[test]
fn without_translation_the_digit_stays_centred() {
    let set = source(20, 16);
    let ranges = AffineRanges {
        translate: false,
        ..AffineRanges::AFFNIST
    };
    let mut rng = Rng::new(17);
    for i in 0..20 {
        let p = ranges
            .sample(&mut rng, set.image(i), MNIST, 40, 40)
            .unwrap();
        assert_eq!((p.tx, p.ty), (0.0, 0.0));
        assert_ne!(p.rotation_deg, 0.0);
    }
    // A blank image is not translated either, and a digit larger than the canvas is centred
    // on its ink.
    let p = AffineRanges::AFFNIST
        .sample(&mut rng, &[0; 784], MNIST, 40, 40)
        .unwrap();
    assert_eq!((p.tx, p.ty), (0.0, 0.0));
    let full = [255u8; 784];
    let p = AffineRanges::AFFNIST
        .sample(&mut rng, &full, MNIST, 20, 20)
        .unwrap();
    assert!(p.tx.abs() < 1e-9 && p.ty.abs() < 1e-9, "{p:?}");
}

#[test]
fn affine_mnist_is_deterministic_by_seed() {
    let set = source(10, 18);
    let cfg = |seed| AffineConfig {
        per_digit: 3,
        seed,
        ..AffineConfig::default()
    };
    let a = AffineMnist::new(&set, cfg(1)).unwrap();
    let b = AffineMnist::new(set.clone(), cfg(1)).unwrap();
    let c = AffineMnist::new(&set, cfg(2)).unwrap();
    assert_eq!(a.len(), 30);
    assert_eq!(a.canvas(), AFFNIST_DIMS);
    let mut differ = 0;
    for k in (0..30).rev() {
        let ex = a.example(k).unwrap();
        assert_eq!(ex, b.example(k).unwrap());
        assert_eq!((ex.source, ex.label), (k / 3, set.label(k / 3)));
        assert_eq!(ex.params, a.params(k).unwrap());
        assert_eq!(
            ex.image,
            warp(set.image(k / 3), MNIST, &ex.params, 40, 40).unwrap()
        );
        if ex.image != c.example(k).unwrap().image {
            differ += 1;
        }
    }
    assert!(differ >= 28, "{differ}");
    // The three versions of a digit differ from each other.
    assert_ne!(a.example(0).unwrap().image, a.example(1).unwrap().image);
    let stored = a.materialize(30).unwrap();
    assert_eq!(stored.dims(), AFFNIST_DIMS);
    assert_eq!(stored.image(7), a.example(7).unwrap().image);
    assert_eq!(stored.label(7), set.label(2));
    assert!(a.materialize(31).is_err());
    assert!(invalid(a.example(30)).contains("out of range"));
}

#[test]
fn invalid_ranges_and_parameters_are_errors() {
    let bad = [
        AffineRanges {
            max_rotation_deg: -1.0,
            ..AffineRanges::AFFNIST
        },
        AffineRanges {
            max_shear: f64::NAN,
            ..AffineRanges::AFFNIST
        },
        AffineRanges {
            min_scale: 0.0,
            ..AffineRanges::AFFNIST
        },
        AffineRanges {
            min_scale: 1.3,
            ..AffineRanges::AFFNIST
        },
    ];
    let set = source(2, 19);
    for ranges in bad {
        let m = invalid(ranges.validate());
        assert!(m.contains("affine ranges"), "{m}");
        let cfg = AffineConfig {
            ranges,
            ..AffineConfig::default()
        };
        assert!(AffineMnist::new(&set, cfg).is_err());
    }
    assert!(AffineRanges::AFFNIST.validate().is_ok());
    let cfg = AffineConfig {
        per_digit: 0,
        ..AffineConfig::default()
    };
    assert!(invalid(AffineMnist::new(&set, cfg)).contains("per_digit"));

    let digit = set.image(0);
    let m = invalid(warp(digit, MNIST, &params(0.0, 0.0, 0.0, 1.0), 40, 40));
    assert!(m.contains("not invertible"), "{m}");
    assert!(warp(digit, MNIST, &params(f64::INFINITY, 0.0, 1.0, 1.0), 40, 40).is_err());
    assert!(warp(&digit[1..], MNIST, &AffineParams::IDENTITY, 40, 40).is_err());
    assert!(warp(digit, MNIST, &AffineParams::IDENTITY, 0, 40).is_err());
    let mut rng = Rng::new(0);
    assert!(
        AffineRanges::AFFNIST
            .sample(&mut rng, &digit[1..], MNIST, 40, 40)
            .is_err()
    );
}

// ---------------------------------------------------------------------------------------
// The affNIST .mat reader, against fixtures written by a tiny MATLAB v5 writer
// ---------------------------------------------------------------------------------------

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_DOUBLE: u32 = 9;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const CLASS_STRUCT: u32 = 2;
const CLASS_DOUBLE: u32 = 6;
const CLASS_UINT8: u32 = 9;

/// Writes MATLAB v5 data in one byte order.
#[derive(Clone, Copy)]
struct Mat {
    big_endian: bool,
}

impl Mat {
    fn u32(self, v: u32) -> [u8; 4] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    /// A data element in the long format, padded to 8 bytes.
    fn element(self, ty: u32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(self.u32(ty));
        out.extend(self.u32(data.len() as u32));
        out.extend(data);
        out.resize(out.len().next_multiple_of(8), 0);
        out
    }

    /// A data element in the small format (at most 4 bytes of data).
    fn small(self, ty: u32, data: &[u8]) -> Vec<u8> {
        assert!(data.len() <= 4);
        let mut out = self.u32(((data.len() as u32) << 16) | ty).to_vec();
        out.extend(data);
        out.resize(8, 0);
        out
    }

    /// An `miMATRIX` element.
    fn matrix(self, name: &str, class: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend(self.element(MI_UINT32, &[self.u32(class), self.u32(0)].concat()));
        let d: Vec<u8> = dims.iter().flat_map(|&d| self.u32(d)).collect();
        m.extend(self.element(MI_INT32, &d));
        if (1..=4).contains(&name.len()) {
            m.extend(self.small(MI_INT8, name.as_bytes()));
        } else {
            m.extend(self.element(MI_INT8, name.as_bytes()));
        }
        m.extend(body);
        self.element(MI_MATRIX, &m)
    }

    fn uint8(self, name: &str, dims: &[u32], data: &[u8]) -> Vec<u8> {
        self.matrix(name, CLASS_UINT8, dims, &self.element(MI_UINT8, data))
    }

    fn double(self, name: &str, dims: &[u32], data: &[f64]) -> Vec<u8> {
        let bytes: Vec<u8> = data
            .iter()
            .flat_map(|v| {
                if self.big_endian {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            })
            .collect();
        self.matrix(name, CLASS_DOUBLE, dims, &self.element(MI_DOUBLE, &bytes))
    }

    /// A 1×1 struct; `fields` are `miMATRIX` elements with empty names.
    fn structure(self, name: &str, fields: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut body = self.small(MI_INT32, &self.u32(32));
        let names: Vec<u8> = fields
            .iter()
            .flat_map(|(f, _)| {
                let mut n = f.as_bytes().to_vec();
                n.resize(32, 0);
                n
            })
            .collect();
        body.extend(self.element(MI_INT8, &names));
        for (_, value) in fields {
            body.extend(value);
        }
        self.matrix(name, CLASS_STRUCT, &[1, 1], &body)
    }

    /// A whole file holding `vars`, each compressed (zlib, as MATLAB's default) or not.
    fn file(self, vars: &[Vec<u8>], compressed: bool) -> Vec<u8> {
        let mut out = b"MATLAB 5.0 MAT-file, Platform: test, Created on: today".to_vec();
        out.resize(116, b' ');
        out.extend([0; 8]);
        out.extend(if self.big_endian { [1, 0] } else { [0, 1] });
        out.extend(if self.big_endian { *b"MI" } else { *b"IM" });
        for var in vars {
            if compressed {
                let mut z =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                z.write_all(var).unwrap();
                let z = z.finish().unwrap();
                out.extend(self.u32(MI_COMPRESSED));
                out.extend(self.u32(z.len() as u32));
                out.extend(z);
            } else {
                out.extend(var);
            }
        }
        out
    }
}

/// `n` random 40×40 images as affNIST's 1600×n `image` matrix, and labels.
fn affnist_data(n: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng::new(seed);
    let images = (0..n * 1600).map(|_| rng.below(256) as u8).collect();
    let labels = (0..n).map(|_| rng.below(10) as u8).collect();
    (images, labels)
}

/// A file like affNIST's: an unrelated variable first, then `affNISTdata` with `image`,
/// `label_int` and `label_one_of_n`.
fn affnist_file(
    mat: Mat,
    images: &[u8],
    labels: &[u8],
    compressed: bool,
    double_labels: bool,
) -> Vec<u8> {
    let n = labels.len() as u32;
    let one_of_n: Vec<f64> = labels
        .iter()
        .flat_map(|&l| (0..10).map(move |c| f64::from(u8::from(c == l))))
        .collect();
    let label_int = if double_labels {
        let values: Vec<f64> = labels.iter().map(|&l| f64::from(l)).collect();
        mat.double("", &[1, n], &values)
    } else {
        mat.uint8("", &[1, n], labels)
    };
    let data = mat.structure(
        "affNISTdata",
        &[
            ("label_one_of_n", mat.double("", &[10, n], &one_of_n)),
            ("image", mat.uint8("", &[1600, n], images)),
            ("label_int", label_int),
        ],
    );
    let other = mat.double("info", &[1, 1], &[3.5]);
    mat.file(&[other, data], compressed)
}

fn malformed(r: Result<ImageSet, DataError>, path: &str) -> String {
    match r {
        Err(e @ DataError::Malformed { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(path), "{msg}");
            msg
        }
        other => panic!("expected DataError::Malformed, got {other:?}"),
    }
}

#[test]
fn reads_affnist_mat_in_every_encoding() {
    let (images, labels) = affnist_data(3, 20);
    for big_endian in [false, true] {
        for compressed in [false, true] {
            for double_labels in [false, true] {
                let mat = Mat { big_endian };
                let bytes = affnist_file(mat, &images, &labels, compressed, double_labels);
                let case = format!("be {big_endian} z {compressed} f64 {double_labels}");
                let set = parse_affnist_mat(&bytes, Path::new("x.mat")).expect(&case);
                assert_eq!(set.dims(), AFFNIST_DIMS, "{case}");
                assert_eq!(set.num_classes(), 10);
                assert_eq!(set.labels(), labels, "{case}");
                // Column i of the 1600×N matrix is image i, row-major.
                for i in 0..3 {
                    assert_eq!(set.image(i), &images[i * 1600..(i + 1) * 1600], "{case}");
                }
            }
        }
    }
}

#[test]
fn loads_files_from_disk_and_concatenates_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mat = Mat { big_endian: false };
    let (i1, l1) = affnist_data(2, 21);
    let (i2, l2) = affnist_data(3, 22);
    let p1 = dir.path().join("1.mat");
    let p2 = dir.path().join("2.mat");
    std::fs::write(&p1, affnist_file(mat, &i1, &l1, true, false)).unwrap();
    std::fs::write(&p2, affnist_file(mat, &i2, &l2, false, false)).unwrap();
    let one = load_affnist_mat(&p2).unwrap();
    assert_eq!(one.images(), i2);
    let both = load_affnist_mats(&[&p1, &p2]).unwrap();
    assert_eq!(both.len(), 5);
    assert_eq!(both.images(), [i1, i2].concat());
    assert_eq!(both.labels(), [l1, l2].concat());

    let missing = dir.path().join("nope.mat");
    let err = load_affnist_mat(&missing).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.mat"), "{err}");
    assert!(load_affnist_mats(&[&p1, &missing]).is_err());
    assert!(load_affnist_mats::<&Path>(&[]).is_err());
}

#[test]
fn bad_headers_are_errors_naming_the_file() {
    let (images, labels) = affnist_data(1, 23);
    let good = affnist_file(Mat { big_endian: false }, &images, &labels, true, false);

    let m = malformed(
        parse_affnist_mat(&good[..100], Path::new("d/short.mat")),
        "d/short.mat",
    );
    assert!(m.contains("the header takes 128 bytes"), "{m}");

    let mut junk = good.clone();
    junk[126..128].copy_from_slice(b"XX");
    let m = malformed(
        parse_affnist_mat(&junk, Path::new("d/junk.mat")),
        "d/junk.mat",
    );
    assert!(m.contains("not a MATLAB v5"), "{m}");

    let mut v73 = good.clone();
    v73[124..126].copy_from_slice(&[0, 2]);
    let m = malformed(parse_affnist_mat(&v73, Path::new("d/v73.mat")), "d/v73.mat");
    assert!(m.contains("v7.3"), "{m}");

    // An IDX file is not a .mat file.
    let mut idx = vec![0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28];
    idx.extend([0; 784]);
    malformed(parse_affnist_mat(&idx, Path::new("d/idx.mat")), "d/idx.mat");
}

#[test]
fn missing_variables_and_fields_are_errors_naming_them() {
    let mat = Mat { big_endian: false };
    let (images, labels) = affnist_data(2, 24);
    let no_labels = mat.structure(
        "affNISTdata",
        &[("image", mat.uint8("", &[1600, 2], &images))],
    );
    for compressed in [false, true] {
        let bytes = mat.file(std::slice::from_ref(&no_labels), compressed);
        let m = malformed(parse_affnist_mat(&bytes, Path::new("f.mat")), "f.mat");
        assert!(
            m.contains("no field `label_int`") && m.contains("fields: image"),
            "{m}"
        );
    }

    let renamed = mat.structure(
        "data",
        &[
            ("image", mat.uint8("", &[1600, 2], &images)),
            ("label_int", mat.uint8("", &[1, 2], &labels)),
        ],
    );
    let bytes = mat.file(&[mat.double("info", &[1, 1], &[1.0]), renamed], true);
    let m = malformed(parse_affnist_mat(&bytes, Path::new("g.mat")), "g.mat");
    assert!(
        m.contains("no variable `affNISTdata`") && m.contains("info, data"),
        "{m}"
    );
    let empty = mat.file(&[], false);
    let m = malformed(parse_affnist_mat(&empty, Path::new("h.mat")), "h.mat");
    assert!(m.contains("no variable"), "{m}");

    let not_struct = mat.uint8("affNISTdata", &[1, 1], &[0]);
    let m = malformed(
        parse_affnist_mat(&mat.file(&[not_struct], false), Path::new("i.mat")),
        "i.mat",
    );
    assert!(m.contains("expected a struct"), "{m}");
}

#[test]
fn truncated_files_are_errors_naming_the_file() {
    let (images, labels) = affnist_data(2, 25);
    for big_endian in [false, true] {
        for compressed in [false, true] {
            let bytes = affnist_file(Mat { big_endian }, &images, &labels, compressed, false);
            assert!(parse_affnist_mat(&bytes, Path::new("t.mat")).is_ok());
            for len in [
                bytes.len() - 1,
                bytes.len() - 9,
                bytes.len() / 2,
                133,
                128 + 8,
            ] {
                let m = malformed(
                    parse_affnist_mat(&bytes[..len], Path::new("cut/t.mat")),
                    "cut/t.mat",
                );
                assert!(
                    m.contains("truncated"),
                    "cut at {len} of {}: {m}",
                    bytes.len()
                );
            }
        }
    }
    // A corrupt compressed stream of the right length.
    let mut bytes = affnist_file(Mat { big_endian: false }, &images, &labels, true, false);
    let last = bytes.len() - 20;
    bytes[last..].iter_mut().for_each(|b| *b ^= 0x5a);
    let m = malformed(parse_affnist_mat(&bytes, Path::new("z.mat")), "z.mat");
    assert!(m.contains("compressed"), "{m}");
}

#[test]
fn wrong_shapes_and_values_are_errors() {
    let mat = Mat { big_endian: false };
    let (images, labels) = affnist_data(2, 26);
    let build = |image: Vec<u8>, label_int: Vec<u8>| {
        let s = mat.structure("affNISTdata", &[("image", image), ("label_int", label_int)]);
        parse_affnist_mat(&mat.file(&[s], true), Path::new("s.mat"))
    };
    let ok = build(
        mat.uint8("", &[1600, 2], &images),
        mat.uint8("", &[2, 1], &labels),
    );
    assert_eq!(ok.unwrap().labels(), labels);

    let m = malformed(
        build(
            mat.uint8("", &[800, 4], &images),
            mat.uint8("", &[1, 4], &[0; 4]),
        ),
        "s.mat",
    );
    assert!(m.contains("800x4") && m.contains("1600xN"), "{m}");
    let m = malformed(
        build(
            mat.uint8("", &[1600, 2], &images),
            mat.uint8("", &[1, 3], &[0; 3]),
        ),
        "s.mat",
    );
    assert!(m.contains("2 images") && m.contains("3 labels"), "{m}");
    let m = malformed(
        build(
            mat.uint8("", &[1600, 2], &images),
            mat.uint8("", &[1, 2], &[1, 10]),
        ),
        "s.mat",
    );
    assert!(m.contains("#1 is 10"), "{m}");
    let m = malformed(
        build(
            mat.uint8("", &[1600, 2], &images),
            mat.double("", &[1, 2], &[1.0, 2.5]),
        ),
        "s.mat",
    );
    assert!(m.contains("2.5"), "{m}");
    // Dimensions that disagree with the data.
    let m = malformed(
        build(
            mat.uint8("", &[1600, 3], &images),
            mat.uint8("", &[1, 3], &[0; 3]),
        ),
        "s.mat",
    );
    assert!(m.contains("label_int") || m.contains("image"), "{m}");
    assert!(m.contains("3200 bytes"), "{m}");
}
