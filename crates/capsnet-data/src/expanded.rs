//! Expanded MNIST (Sabour, Frosst & Hinton 2017, section 5.2): the paper trains on MNIST
//! digits placed at random on a 40×40 black background. Its test sets are the
//! affine-transformed digits of [`crate::affine`] and the real affNIST files of
//! [`crate::affnist`].
//!
//! # Expanded MNIST ([`ExpandedMnist`])
//!
//! Example `k` is source image `k`, pasted unchanged (no interpolation) with its top-left
//! corner at column `x`, row `y` of a black `canvas`×`canvas` image (default 40), `x` and `y`
//! uniform in `0..=canvas - 28` (the digit's side, in general), drawn (x, then y) from
//! `Rng::derive(seed, &[STREAM_EXPANDED, k])`.
//!
//! [`centred`] puts every digit in the middle of the canvas instead (the training form, with
//! random shifts on top).

use std::borrow::Borrow;

use crate::affnist::AFFNIST_SIDE;
use crate::multimnist::paste;
use crate::{DataError, Dims, ImageSet, Rng};

/// Stream id of the expanded-MNIST placements (see [`Rng::derive`]).
pub const STREAM_EXPANDED: u64 = 0x4558_5044; // "EXPD"

/// The canvas of `dims`-shaped images on a `side`×`side` image (same channels).
pub(crate) fn canvas_dims(dims: Dims, side: usize) -> Result<Dims, DataError> {
    let canvas = Dims {
        channels: dims.channels,
        height: side,
        width: side,
    };
    let ok = side > 0
        && side
            .checked_mul(side)
            .and_then(|n| n.checked_mul(dims.channels))
            .is_some();
    if ok {
        Ok(canvas)
    } else {
        Err(DataError::Invalid(format!(
            "invalid canvas of {side}x{side} pixels for {dims:?} images"
        )))
    }
}

/// Every image of `set` centred on a black `canvas`×`canvas` image (a 28×28 digit on a
/// 40×40 canvas gets a 6-pixel border): with random shifts of up to `(canvas − 28) / 2`
/// pixels, the training form of expanded MNIST that puts a digit anywhere on the canvas.
///
/// Fails with [`DataError::Invalid`] if the canvas is smaller than the images.
pub fn centred(set: &ImageSet, canvas: usize) -> Result<ImageSet, DataError> {
    let dims = set.dims();
    let out = canvas_dims(dims, canvas)?;
    if canvas < dims.height || canvas < dims.width {
        return Err(DataError::Invalid(format!(
            "a {canvas}x{canvas} canvas cannot hold {}x{} images",
            dims.height, dims.width
        )));
    }
    let (y0, x0) = ((canvas - dims.height) / 2, (canvas - dims.width) / 2);
    let mut images = vec![0u8; set.len() * out.size()];
    for (i, dst) in images.chunks_exact_mut(out.size()).enumerate() {
        paste(set.image(i), dims, dst, out, x0, y0);
    }
    let labels = (0..set.len()).map(|i| set.label(i)).collect();
    ImageSet::new(images, labels, out, set.num_classes())
}

/// Settings of an [`ExpandedMnist`] generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExpandedConfig {
    /// Side of the square black canvas (paper: 40). At least the source's height and width.
    pub canvas: usize,
    /// Seed of the placements. For a new placement every epoch, derive one seed per epoch,
    /// e.g. `Rng::derive(seed, &[epoch]).next_u64()`.
    pub seed: u64,
}

impl Default for ExpandedConfig {
    /// A 40×40 canvas, seed 0.
    fn default() -> Self {
        Self {
            canvas: AFFNIST_SIDE,
            seed: 0,
        }
    }
}

/// MNIST digits placed at uniformly random positions on a larger black canvas, one
/// example per source image (see the [module docs](self)).
///
/// `S` is anything that borrows an [`ImageSet`] (`&ImageSet`, `ImageSet`, `Arc<ImageSet>`).
#[derive(Debug, Clone)]
pub struct ExpandedMnist<S> {
    source: S,
    config: ExpandedConfig,
    canvas: Dims,
}

impl<S: Borrow<ImageSet>> ExpandedMnist<S> {
    /// A generator of `source.len()` examples.
    ///
    /// Fails with [`DataError::Invalid`] if the canvas is smaller than the source images.
    pub fn new(source: S, config: ExpandedConfig) -> Result<Self, DataError> {
        let dims = source.borrow().dims();
        if config.canvas < dims.height || config.canvas < dims.width {
            return Err(DataError::Invalid(format!(
                "expanded MNIST: a {0}x{0} canvas cannot hold {1}x{2} images",
                config.canvas, dims.height, dims.width
            )));
        }
        let canvas = canvas_dims(dims, config.canvas)?;
        Ok(Self {
            source,
            config,
            canvas,
        })
    }

    /// Number of examples (one per source image).
    pub fn len(&self) -> usize {
        self.source().len()
    }

    /// True if the source is empty.
    pub fn is_empty(&self) -> bool {
        self.source().is_empty()
    }

    /// The settings.
    pub fn config(&self) -> &ExpandedConfig {
        &self.config
    }

    /// The source images.
    pub fn source(&self) -> &ImageSet {
        self.source.borrow()
    }

    /// Shape of every example (1×40×40 for MNIST with the default canvas).
    pub fn canvas(&self) -> Dims {
        self.canvas
    }

    /// Column and row of the top-left corner of digit `k` on the canvas.
    ///
    /// Fails with [`DataError::Invalid`] if `k` is out of range.
    pub fn offset(&self, k: usize) -> Result<(usize, usize), DataError> {
        self.check_index(k)?;
        let dims = self.source().dims();
        let mut rng = Rng::derive(self.config.seed, &[STREAM_EXPANDED, k as u64]);
        let x = rng.below((self.canvas.width - dims.width + 1) as u64) as usize;
        let y = rng.below((self.canvas.height - dims.height + 1) as u64) as usize;
        Ok((x, y))
    }

    /// Example `k`: the canvas and the label.
    pub fn example(&self, k: usize) -> Result<(Vec<u8>, u8), DataError> {
        let mut image = vec![0; self.canvas.size()];
        let label = self.example_into(k, &mut image)?;
        Ok((image, label))
    }

    /// Writes example `k` into `out` (exactly [`ExpandedMnist::canvas`]`.size()` bytes) and
    /// returns its label.
    pub fn example_into(&self, k: usize, out: &mut [u8]) -> Result<u8, DataError> {
        let (x, y) = self.offset(k)?;
        if out.len() != self.canvas.size() {
            return Err(DataError::Invalid(format!(
                "expanded MNIST: output buffer of {} bytes, expected {} ({:?})",
                out.len(),
                self.canvas.size(),
                self.canvas
            )));
        }
        out.fill(0);
        let set = self.source();
        paste(set.image(k), set.dims(), out, self.canvas, x, y);
        Ok(set.label(k))
    }

    /// The examples `0..n` as an [`ImageSet`] (`n` may not exceed [`ExpandedMnist::len`]).
    pub fn materialize(&self, n: usize) -> Result<ImageSet, DataError> {
        if n > self.len() {
            return Err(DataError::Invalid(format!(
                "cannot materialize {n} expanded-MNIST examples from {} source images",
                self.len()
            )));
        }
        let size = self.canvas.size();
        let mut images = vec![0; n * size];
        let mut labels = Vec::with_capacity(n);
        for (k, out) in images.chunks_exact_mut(size).enumerate() {
            labels.push(self.example_into(k, out)?);
        }
        ImageSet::new(images, labels, self.canvas, self.source().num_classes())
    }

    fn check_index(&self, k: usize) -> Result<(), DataError> {
        if k < self.len() {
            Ok(())
        } else {
            Err(DataError::Invalid(format!(
                "expanded-MNIST example {k} out of range for {} source images",
                self.len()
            )))
        }
    }
}
