//! MultiMNIST generation (paper section 6) on synthetic 28×28 "digits". (The two-target accuracy
//! is `Net::correct`'s, tested in capsnet-train.)

use std::sync::Arc;

use capsnet_data::multimnist::{MultiExample, MultiMnist, MultiMnistConfig};
mod common;

use capsnet_data::{DataError, Dims, ImageSet, Shift, shift_image};
use common::{MNIST, synthetic_digits as source};

const CANVAS: Dims = Dims {
    channels: 1,
    height: 36,
    width: 36,
};

fn config(pairs_per_digit: usize, seed: u64) -> MultiMnistConfig {
    MultiMnistConfig::with_pairs(pairs_per_digit, seed)
}

/// Columns and rows spanned by the non-zero pixels of a `w`-wide image.
fn bbox(img: &[u8], w: usize) -> Option<(usize, usize, usize, usize)> {
    let mut b: Option<(usize, usize, usize, usize)> = None;
    for (i, _) in img.iter().enumerate().filter(|(_, p)| **p != 0) {
        let (x, y) = (i % w, i / w);
        b = Some(match b {
            None => (x, x, y, y),
            Some((x0, x1, y0, y1)) => (x0.min(x), x1.max(x), y0.min(y), y1.max(y)),
        });
    }
    b
}

/// The source digit padded by 4 and shifted, computed independently of the generator.
fn expected_part(digit: &[u8], shift: Shift) -> Vec<u8> {
    let mut padded = vec![0u8; CANVAS.size()];
    for y in 0..28 {
        padded[(y + 4) * 36 + 4..(y + 4) * 36 + 32].copy_from_slice(&digit[y * 28..(y + 1) * 28]);
    }
    shift_image(&padded, CANVAS, shift)
}

#[test]
fn canvas_is_36x36_and_len_is_sources_times_pairs() {
    let set = source(20, 10, 1);
    let g = MultiMnist::new(&set, config(3, 0)).unwrap();
    assert_eq!(g.len(), 60);
    assert!(!g.is_empty());
    assert_eq!(g.canvas(), CANVAS);
    assert_eq!(g.num_classes(), 10);
    let ex = g.example(59).unwrap();
    assert_eq!(ex.image.len(), 36 * 36);
    assert_eq!(ex.parts[0].len(), 36 * 36);
    assert_eq!(ex.parts[1].len(), 36 * 36);
    // The paper's defaults.
    let d = MultiMnistConfig::default();
    assert_eq!((d.pairs_per_digit, d.max_shift, d.padding), (1000, 4, 4));
    // A wider padding makes a wider canvas.
    let cfg = MultiMnistConfig {
        padding: 6,
        max_shift: 6,
        ..config(1, 0)
    };
    let g = MultiMnist::new(&set, cfg).unwrap();
    assert_eq!((g.canvas().height, g.canvas().width), (40, 40));
    assert_eq!(g.example(0).unwrap().image.len(), 1600);
}

#[test]
fn deterministic_by_seed_and_independent_of_order() {
    let set = source(15, 10, 2);
    let a = MultiMnist::new(&set, config(4, 42)).unwrap();
    // Owned and shared sources give the same examples as a borrowed one.
    let b = MultiMnist::new(Arc::new(set.clone()), config(4, 42)).unwrap();
    let c = MultiMnist::new(set.clone(), config(4, 42)).unwrap();
    let forward: Vec<MultiExample> = (0..a.len()).map(|k| a.example(k).unwrap()).collect();
    for k in (0..a.len()).rev() {
        assert_eq!(b.example(k).unwrap(), forward[k], "example {k}");
        assert_eq!(c.example(k).unwrap(), forward[k], "example {k}");
    }
    // Reusing a buffer does not change the result.
    let mut buf = a.example(3).unwrap();
    a.example_into(17, &mut buf).unwrap();
    assert_eq!(buf, forward[17]);
}

#[test]
fn different_seeds_differ() {
    let set = source(15, 10, 3);
    let a = MultiMnist::new(&set, config(2, 1)).unwrap();
    let b = MultiMnist::new(&set, config(2, 2)).unwrap();
    let differing = (0..a.len())
        .filter(|&k| a.example(k).unwrap().image != b.example(k).unwrap().image)
        .count();
    assert!(differing > a.len() * 3 / 4, "{differing} of {}", a.len());
}

#[test]
fn classes_always_differ_and_parts_are_the_shifted_sources() {
    // Only three classes, so that a same-class second digit would be likely if allowed.
    let set = source(24, 3, 4);
    let g = MultiMnist::new(&set, config(10, 9)).unwrap();
    for k in 0..g.len() {
        let ex = g.example(k).unwrap();
        assert_ne!(ex.labels[0], ex.labels[1], "example {k}");
        assert_eq!(ex.sources[0], k / 10, "example {k}");
        for i in 0..2 {
            assert_eq!(ex.labels[i], set.label(ex.sources[i]));
            assert_eq!(
                ex.parts[i],
                expected_part(set.image(ex.sources[i]), ex.shifts[i]),
                "example {k} part {i}"
            );
        }
        let sum: Vec<u8> = ex.parts[0]
            .iter()
            .zip(&ex.parts[1])
            .map(|(&a, &b)| (u16::from(a) + u16::from(b)).min(255) as u8)
            .collect();
        assert_eq!(ex.image, sum, "example {k}");
    }
}

#[test]
fn second_digit_is_drawn_among_all_images_of_other_classes() {
    let set = source(12, 4, 5);
    let g = MultiMnist::new(&set, config(60, 3)).unwrap();
    let mut seen_as_second = [false; 12];
    for k in 0..g.len() {
        seen_as_second[g.example(k).unwrap().sources[1]] = true;
    }
    assert!(seen_as_second.iter().all(|&s| s), "{seen_as_second:?}");
}

#[test]
fn shifts_stay_within_max_shift_and_cover_the_range() {
    let set = source(20, 10, 6);
    for max_shift in [4u32, 2] {
        let cfg = MultiMnistConfig {
            max_shift,
            ..config(20, 11)
        };
        let g = MultiMnist::new(&set, cfg).unwrap();
        let m = max_shift as i64;
        let mut seen_dx = std::collections::BTreeSet::new();
        let mut seen_dy = std::collections::BTreeSet::new();
        for k in 0..g.len() {
            let ex = g.example(k).unwrap();
            for i in 0..2 {
                let digit = set.image(ex.sources[i]);
                let (sx0, sx1, sy0, sy1) = bbox(digit, 28).unwrap();
                let (px0, px1, py0, py1) = bbox(&ex.parts[i], 36).unwrap();
                // Measured on the pixels, not taken from `shifts`.
                let dx = px0 as i64 - (sx0 as i64 + 4);
                let dy = py0 as i64 - (sy0 as i64 + 4);
                assert!(
                    (-m..=m).contains(&dx) && (-m..=m).contains(&dy),
                    "{dx} {dy}"
                );
                assert_eq!((px1 - px0, py1 - py0), (sx1 - sx0, sy1 - sy0));
                // Nothing was cut.
                let ink = |img: &[u8]| img.iter().map(|&p| u64::from(p)).sum::<u64>();
                assert_eq!(ink(&ex.parts[i]), ink(digit));
                assert_eq!(
                    (dx, dy),
                    (i64::from(ex.shifts[i].dx), i64::from(ex.shifts[i].dy))
                );
                seen_dx.insert(dx);
                seen_dy.insert(dy);
            }
        }
        let all: std::collections::BTreeSet<i64> = (-m..=m).collect();
        assert_eq!(seen_dx, all);
        assert_eq!(seen_dy, all);
    }
}

#[test]
fn overlay_is_a_sum_clipped_at_255() {
    // Two solid digits of 200 over the same 20×20 box: shifted by at most 4, they always
    // overlap (sum 400, clipped to 255), and elsewhere one digit alone gives 200; the darker
    // pixel of the second digit gives 250 over the first, below the clip.
    let mut images = vec![0u8; 2 * 784];
    for img in images.chunks_exact_mut(784) {
        for y in 4..24 {
            img[y * 28 + 4..y * 28 + 24].fill(200);
        }
    }
    images[784 + 10 * 28 + 10] = 50; // one darker pixel in the second digit
    let set = ImageSet::new(images, vec![3, 8], MNIST, 10).unwrap();
    let g = MultiMnist::new(&set, config(30, 5)).unwrap();
    let (mut clipped, mut single, mut below) = (0, 0, 0);
    for k in 0..g.len() {
        let ex = g.example(k).unwrap();
        for ((&a, &b), &c) in ex.parts[0].iter().zip(&ex.parts[1]).zip(&ex.image) {
            let sum = u16::from(a) + u16::from(b);
            assert_eq!(u16::from(c), sum.min(255));
            match sum {
                400 => clipped += 1,
                200 => single += 1,
                250 => below += 1,
                _ => {}
            }
        }
    }
    assert!(
        clipped > 0 && single > 0 && below > 0,
        "{clipped} {single} {below}"
    );
}

#[test]
fn tiny_sets_materialize() {
    let set = source(10, 10, 7);
    let g = MultiMnist::new(&set, config(1, 8)).unwrap();
    assert_eq!(g.len(), 10);
    let stored = g.materialize(10).unwrap();
    assert_eq!(stored.len(), 10);
    assert_eq!(stored.dims(), CANVAS);
    assert_eq!(stored.num_classes(), 10);
    assert_eq!(stored.images().len(), 10 * 1296);
    assert_eq!(stored.parts().len(), 2 * 10 * 1296);
    for k in 0..10 {
        let ex = g.example(k).unwrap();
        assert_eq!(stored.image(k), ex.image);
        assert_eq!(stored.part(k, 0), ex.parts[0]);
        assert_eq!(stored.part(k, 1), ex.parts[1]);
        assert_eq!(stored.label_pair(k), ex.labels);
        assert_eq!(stored.labels()[k], ex.labels);
    }
    let picked = g.materialize_indices(&[7, 2, 7]).unwrap();
    assert_eq!(picked.len(), 3);
    assert_eq!(picked.image(0), stored.image(7));
    assert_eq!(picked.image(1), stored.image(2));
    assert_eq!(picked.part(2, 1), stored.part(7, 1));
    assert!(g.materialize(0).unwrap().is_empty());
    // Two source images of different classes are enough.
    let two = source(2, 2, 1);
    let g = MultiMnist::new(&two, config(5, 0)).unwrap();
    let ex = g.example(9).unwrap();
    assert_eq!((ex.sources, ex.labels), ([1, 0], [1, 0]));
}

#[test]
fn bad_configurations_and_indices_are_errors() {
    let set = source(10, 10, 8);
    let msg = |r: Result<_, DataError>| match r {
        Err(DataError::Invalid(m)) => m,
        Err(e) => panic!("unexpected error {e:?}"),
        Ok(_) => panic!("accepted"),
    };
    let m = msg(MultiMnist::new(&set, config(0, 0)).map(|_| ()));
    assert!(m.contains("pairs_per_digit"), "{m}");
    let too_far = MultiMnistConfig {
        max_shift: 5,
        ..config(1, 0)
    };
    let m = msg(MultiMnist::new(&set, too_far).map(|_| ()));
    assert!(m.contains("max_shift 5") && m.contains("padding 4"), "{m}");
    let one_class = source(5, 1, 0);
    let m = msg(MultiMnist::new(&one_class, config(1, 0)).map(|_| ()));
    assert!(m.contains("two classes"), "{m}");
    let empty = ImageSet::new(vec![], vec![], MNIST, 10).unwrap();
    assert!(MultiMnist::new(&empty, config(1, 0)).is_err());

    let g = MultiMnist::new(&set, config(2, 0)).unwrap();
    let m = msg(g.example(20).map(|_| ()));
    assert!(m.contains("20") && m.contains("out of range"), "{m}");
    assert!(g.example(19).is_ok());
    assert!(g.materialize(21).is_err());
    assert!(g.materialize_indices(&[0, 20]).is_err());
}
