//! Helpers shared by the generator tests (each test file includes this with `mod common;`).

use capsnet_data::{Dims, ImageSet, Rng};

/// One 28×28 grayscale image.
pub const MNIST: Dims = Dims {
    channels: 1,
    height: 28,
    width: 28,
};

/// `n` synthetic digits with labels `i % classes`: a random blob of ink 1..=255 inside the
/// central 20×20 box (like MNIST, whose digits fit a 20×20 box), never blank.
pub fn synthetic_digits(n: usize, classes: u8, seed: u64) -> ImageSet {
    let mut rng = Rng::new(seed);
    let mut images = vec![0u8; n * MNIST.size()];
    for img in images.chunks_exact_mut(MNIST.size()) {
        let (x0, y0) = (4 + rng.below(10) as usize, 4 + rng.below(10) as usize);
        let (w, h) = (1 + rng.below(10) as usize, 1 + rng.below(10) as usize);
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                img[y * 28 + x] = 1 + rng.below(255) as u8;
            }
        }
    }
    let labels = (0..n).map(|i| (i % usize::from(classes)) as u8).collect();
    ImageSet::new(images, labels, MNIST, 10).unwrap()
}
