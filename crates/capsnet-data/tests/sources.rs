//! Batch sources: crops (CIFAR-10), MultiMNIST pairs and centred expanded-MNIST digits, as the
//! loader draws them.

mod common;

use std::sync::Arc;

use capsnet_data::expanded::centred;
use capsnet_data::multimnist::{MultiMnist, MultiMnistConfig};
use capsnet_data::{
    Batch, BatchSource, CroppedImages, Dims, ImageSet, Loader, LoaderConfig, Rng, ShiftedImages,
};

/// `n` 3×4×5 images whose pixel (c, y, x) of image i is `i·60 + c·20 + y·5 + x` (mod 256).
fn coded_rgb(n: usize) -> Arc<ImageSet> {
    let dims = Dims {
        channels: 3,
        height: 4,
        width: 5,
    };
    let mut images = Vec::new();
    for i in 0..n {
        for p in 0..60 {
            images.push(((i * 60 + p) % 256) as u8);
        }
    }
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    Arc::new(ImageSet::new(images, labels, dims, 10).unwrap())
}

fn pixel(i: usize, c: usize, y: usize, x: usize) -> f32 {
    ((i * 60 + c * 20 + y * 5 + x) % 256) as f32 / 255.0
}

#[test]
fn central_crop_without_augmentation() {
    let source = CroppedImages::new(coded_rgb(3), 3, false).unwrap();
    assert_eq!(source.dims().size(), 27);
    let mut batch = Batch::empty(source.dims(), 1);
    source.fill(&[2, 0], None, &mut batch).unwrap();
    assert_eq!(batch.images.len(), 2 * 27);
    assert_eq!(batch.labels, [2, 0]);
    // 4×5 → 3×3: rows 0..3 (offset (4-3)/2 = 0), columns 1..4 (offset (5-3)/2 = 1).
    for c in 0..3 {
        for y in 0..3 {
            for x in 0..3 {
                assert_eq!(batch.images[c * 9 + y * 3 + x], pixel(2, c, y, x + 1));
            }
        }
    }
}

#[test]
fn random_crops_stay_inside_and_vary_and_flips_mirror() {
    let set = coded_rgb(1);
    let source = CroppedImages::new(set.clone(), 3, false).unwrap();
    let flipping = CroppedImages::new(set, 3, true).unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut mirrored = 0;
    for seed in 0..64 {
        let mut batch = Batch::empty(source.dims(), 1);
        source
            .fill(&[0], Some(&mut Rng::new(seed)), &mut batch)
            .unwrap();
        // Every crop is a window of the image: find its offset.
        let found = (0..2)
            .flat_map(|y0| (0..3).map(move |x0| (y0, x0)))
            .find(|&(y0, x0)| {
                (0..27).all(|p| {
                    let (c, y, x) = (p / 9, p / 3 % 3, p % 3);
                    batch.images[p] == pixel(0, c, y + y0, x + x0)
                })
            });
        seen.insert(found.expect("crop is a window of the image"));
        // Same seed with flips: the same window, mirrored or not.
        let mut flipped = Batch::empty(source.dims(), 1);
        flipping
            .fill(&[0], Some(&mut Rng::new(seed)), &mut flipped)
            .unwrap();
        let (y0, x0) = found.unwrap();
        let mirror = (0..27).all(|p| {
            let (c, y, x) = (p / 9, p / 3 % 3, p % 3);
            flipped.images[p] == pixel(0, c, y + y0, 2 - x + x0)
        });
        if mirror {
            mirrored += 1;
        } else {
            assert_eq!(flipped.images, batch.images);
        }
    }
    assert_eq!(seen.len(), 6, "all 2×3 crop offsets occur: {seen:?}");
    assert!(
        (16..=48).contains(&mirrored),
        "about half mirrored: {mirrored}"
    );
    assert!(CroppedImages::new(coded_rgb(1), 5, false).is_err());
    assert!(CroppedImages::new(coded_rgb(1), 0, false).is_err());
}

#[test]
fn multimnist_source_gives_two_labels_and_both_parts() {
    let digits = Arc::new(common::synthetic_digits(40, 10, 5));
    let generator = MultiMnist::new(digits, MultiMnistConfig::with_pairs(3, 9)).unwrap();
    assert_eq!(BatchSource::len(&generator), 120);
    assert_eq!(generator.targets(), 2);
    let mut batch = Batch::empty(generator.dims(), 2);
    generator.fill(&[7, 100], None, &mut batch).unwrap();
    let size = generator.dims().size();
    assert_eq!(batch.images.len(), 2 * size);
    assert_eq!(batch.parts.len(), 4 * size);
    for (slot, k) in [7usize, 100].into_iter().enumerate() {
        let example = generator.example(k).unwrap();
        assert_eq!(
            batch.labels[2 * slot..2 * slot + 2],
            example.labels.map(i64::from)
        );
        let scaled = |v: &[u8]| v.iter().map(|&p| f32::from(p) / 255.0).collect::<Vec<_>>();
        assert_eq!(
            batch.images[slot * size..(slot + 1) * size],
            scaled(&example.image)[..]
        );
        for part in 0..2 {
            let at = (slot * 2 + part) * size;
            assert_eq!(batch.parts[at..at + size], scaled(&example.parts[part])[..]);
        }
    }
    assert!(generator.fill(&[120], None, &mut batch).is_err());
}

#[test]
fn loader_over_multimnist_is_deterministic() {
    let digits = Arc::new(common::synthetic_digits(30, 10, 6));
    let generator: Arc<dyn BatchSource> =
        Arc::new(MultiMnist::new(digits, MultiMnistConfig::with_pairs(2, 1)).unwrap());
    let config = LoaderConfig {
        shuffle: true,
        augment: true,
        seed: 4,
        ..LoaderConfig::new(16)
    };
    let a: Vec<Batch> = Loader::from_source(generator.clone(), config.clone())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let b: Vec<Batch> = Loader::from_source(generator, config)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.iter().map(|b| b.len).sum::<usize>(), 60);
    assert!(
        a.iter()
            .all(|b| b.targets == 2 && b.labels.len() == 2 * b.len)
    );
}

#[test]
fn centred_digits_with_shifts_reach_every_canvas_position() {
    let digits = common::synthetic_digits(1, 10, 2);
    let canvas = centred(&digits, 40).unwrap();
    assert_eq!(canvas.dims().height, 40);
    // The 28×28 digit sits at (6, 6): the border is black, the inside is the digit.
    let img = canvas.image(0);
    let src = digits.image(0);
    for y in 0..28 {
        assert_eq!(
            img[(y + 6) * 40 + 6..(y + 6) * 40 + 34],
            src[y * 28..(y + 1) * 28]
        );
    }
    assert_eq!(
        img.iter().map(|&p| u64::from(p)).sum::<u64>(),
        src.iter().map(|&p| u64::from(p)).sum::<u64>()
    );
    assert!(centred(&digits, 20).is_err());
    // Shifts of ±6 place the digit's corner anywhere in 0..=12.
    let source = ShiftedImages {
        set: Arc::new(canvas),
        shift_px: 6,
    };
    let mut corners = std::collections::HashSet::new();
    for seed in 0..2000 {
        let mut batch = Batch::empty(source.dims(), 1);
        source
            .fill(&[0], Some(&mut Rng::new(seed)), &mut batch)
            .unwrap();
        let first_row = (0..40)
            .find(|&y| batch.images[y * 40..(y + 1) * 40].iter().any(|&p| p > 0.0))
            .unwrap();
        let first_col = (0..40)
            .find(|&x| (0..40).any(|y| batch.images[y * 40 + x] > 0.0))
            .unwrap();
        corners.insert((first_row, first_col));
    }
    assert_eq!(corners.len(), 13 * 13, "every placement occurs");
}

/// A source whose third batch cannot be made.
struct FailsAt(u32);

impl BatchSource for FailsAt {
    fn len(&self) -> usize {
        10
    }
    fn dims(&self) -> Dims {
        Dims {
            channels: 1,
            height: 1,
            width: 1,
        }
    }
    fn fill(
        &self,
        indices: &[u32],
        _augment: Option<&mut Rng>,
        batch: &mut Batch,
    ) -> Result<(), capsnet_data::DataError> {
        if indices.contains(&self.0) {
            return Err(capsnet_data::DataError::Invalid(format!(
                "example {} is unreadable",
                self.0
            )));
        }
        batch.images = vec![0.0; indices.len()];
        batch.labels = vec![0; indices.len()];
        Ok(())
    }
}

#[test]
fn a_failing_source_ends_the_epoch_with_its_error() {
    let loader = Loader::from_source(Arc::new(FailsAt(5)), LoaderConfig::new(2)).unwrap();
    let results: Vec<_> = loader.collect();
    assert_eq!(
        results.len(),
        3,
        "two good batches, then the error, then nothing"
    );
    assert!(results[0].is_ok() && results[1].is_ok());
    let err = results[2].as_ref().unwrap_err().to_string();
    assert!(err.contains("example 5 is unreadable"), "{err}");
}
