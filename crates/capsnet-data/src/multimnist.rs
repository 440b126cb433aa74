//! MultiMNIST (Sabour, Frosst & Hinton 2017, section 6): pairs of overlapping digits of
//! different classes, generated on the fly from an MNIST split.
//!
//! # How an example is made
//!
//! Example `k` of a generator over a source split of `n` images with
//! [`MultiMnistConfig::pairs_per_digit`] `= p` (so `n·p` examples in all; the paper uses
//! `p = 1,000`, giving 60M training and 10M test examples):
//!
//! 1. The **first** digit is source image `k / p`, so every source image is the first digit
//!    of exactly `p` examples.
//! 2. The **second** digit is drawn uniformly among the source images whose class differs
//!    from the first digit's (same split: the generator only sees its source).
//! 3. Each digit is padded by [`MultiMnistConfig::padding`] zero pixels on every side (28×28
//!    → 36×36 with the default 4) and translated by its own random [`Shift`], `dx` and `dy`
//!    uniform in `-max_shift..=max_shift` (default 4). `max_shift` may not exceed `padding`,
//!    so a shifted digit is never cut.
//! 4. The two shifted digits are combined by a pixel-wise sum clipped to 255,
//!    `min(a + b, 255)`. The paper only says the digits are "overlaid"; the clipped sum is
//!    what the authors' released code does, and is symmetric, so which digit is "on top"
//!    does not change the image.
//!
//! All randomness of example `k` comes from `Rng::derive(seed, &[STREAM_MULTIMNIST, k])`,
//! drawn in this order: the second digit, the first digit's shift (`dx`, `dy`), the second
//! digit's shift (`dx`, `dy`). Any example can therefore be generated alone, in any order,
//! on any thread, without storing the 60M images; [`MultiMnist::materialize`] stores a few
//! for small experiments.
//!
//! Besides the combined image, an example keeps both shifted single digits
//! ([`MultiExample::parts`]): the paper's decoder reconstructs each digit separately, from
//! the capsule of its class. `labels[i]` is the class of `parts[i]`; index 0 is the first
//! digit (the source image `k / p`), index 1 the second.
//!
//! # Evaluation
//!
//! The paper classifies an example correctly when the two most active digit capsules are
//! exactly the two classes present, in either order. That criterion has one definition, on the
//! network's scores: `capsnet_train::net::Net::correct` (used by training, evaluation and the
//! reports).

use std::borrow::Borrow;

use crate::{DataError, Dims, ImageSet, Rng, Shift};

/// Stream id of MultiMNIST example generation (see [`Rng::derive`]).
pub const STREAM_MULTIMNIST: u64 = 0x4d55_4c54; // "MULT"

/// Settings of a [`MultiMnist`] generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MultiMnistConfig {
    /// Examples generated per source image, each with that image as its first digit
    /// (paper: 1,000). At least 1.
    pub pairs_per_digit: usize,
    /// Largest translation of each digit, in pixels, in each direction (paper: 4). At most
    /// `padding`.
    pub max_shift: u32,
    /// Zero pixels added on every side of a source image to make the canvas (paper: 4, so
    /// 28×28 digits give 36×36 examples).
    pub padding: usize,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for MultiMnistConfig {
    /// The paper's settings (1,000 pairs per digit, shifts up to 4 pixels on a canvas
    /// padded by 4), seed 0.
    fn default() -> Self {
        Self {
            pairs_per_digit: 1000,
            max_shift: 4,
            padding: 4,
            seed: 0,
        }
    }
}

impl MultiMnistConfig {
    /// The paper's settings with `pairs_per_digit` examples per source image and `seed`.
    pub fn with_pairs(pairs_per_digit: usize, seed: u64) -> Self {
        Self {
            pairs_per_digit,
            seed,
            ..Self::default()
        }
    }
}

/// One MultiMNIST example: the combined image, its two classes and the two shifted digits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiExample {
    /// The two shifted digits summed and clipped to 255 (canvas shape, see
    /// [`MultiMnist::canvas`]).
    pub image: Vec<u8>,
    /// Classes of `parts[0]` and `parts[1]`; always different.
    pub labels: [u8; 2],
    /// Each digit alone, padded and shifted exactly as it appears in `image` (the
    /// reconstruction targets).
    pub parts: [Vec<u8>; 2],
    /// Indices in the source split of the two digits.
    pub sources: [usize; 2],
    /// Translation applied to each padded digit.
    pub shifts: [Shift; 2],
}

/// A deterministic MultiMNIST generator over one source split (see the
/// [module docs](self)).
///
/// `S` is anything that borrows an [`ImageSet`]: `&ImageSet`, `ImageSet`,
/// `Arc<ImageSet>` (to share the source with loader threads)…
#[derive(Debug, Clone)]
pub struct MultiMnist<S> {
    source: S,
    config: MultiMnistConfig,
    canvas: Dims,
    by_class: Vec<Vec<usize>>,
    len: usize,
}

impl<S: Borrow<ImageSet>> MultiMnist<S> {
    /// A generator of `source.len() * config.pairs_per_digit` examples.
    ///
    /// Fails with [`DataError::Invalid`] if `pairs_per_digit` is 0, `max_shift` exceeds
    /// `padding`, the canvas size overflows, or the source holds fewer than two classes
    /// (the two digits of an example must differ).
    pub fn new(source: S, config: MultiMnistConfig) -> Result<Self, DataError> {
        let set = source.borrow();
        if config.pairs_per_digit == 0 {
            return Err(DataError::Invalid(
                "MultiMNIST: pairs_per_digit must be at least 1".into(),
            ));
        }
        if !usize::try_from(config.max_shift).is_ok_and(|s| s <= config.padding) {
            return Err(DataError::Invalid(format!(
                "MultiMNIST: max_shift {} exceeds the padding {}; shifted digits would be cut \
                 at the canvas border",
                config.max_shift, config.padding
            )));
        }
        let dims = set.dims();
        let side = |n: usize| config.padding.checked_mul(2).and_then(|p| p.checked_add(n));
        let canvas = match (side(dims.height), side(dims.width)) {
            (Some(height), Some(width))
                if dims
                    .channels
                    .checked_mul(height)
                    .and_then(|n| n.checked_mul(width))
                    .is_some() =>
            {
                Dims {
                    channels: dims.channels,
                    height,
                    width,
                }
            }
            _ => {
                return Err(DataError::Invalid(format!(
                    "MultiMNIST: padding {} makes the canvas of {dims:?} images overflow",
                    config.padding
                )));
            }
        };
        let mut by_class = vec![Vec::new(); set.num_classes()];
        for (i, &label) in set.labels().iter().enumerate() {
            by_class[usize::from(label)].push(i);
        }
        let present = by_class.iter().filter(|c| !c.is_empty()).count();
        if present < 2 {
            return Err(DataError::Invalid(format!(
                "MultiMNIST needs source images of at least two classes (the two digits of an \
                 example differ), but the {} source images hold {present}",
                set.len()
            )));
        }
        let len = set
            .len()
            .checked_mul(config.pairs_per_digit)
            .ok_or_else(|| {
                DataError::Invalid(format!(
                    "MultiMNIST: {} source images × {} pairs per digit overflows",
                    set.len(),
                    config.pairs_per_digit
                ))
            })?;
        Ok(Self {
            source,
            config,
            canvas,
            by_class,
            len,
        })
    }

    /// Number of examples: source images × `pairs_per_digit`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a generator holds at least two source images and one pair each.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The settings.
    pub fn config(&self) -> &MultiMnistConfig {
        &self.config
    }

    /// The source split.
    pub fn source(&self) -> &ImageSet {
        self.source.borrow()
    }

    /// Shape of every image and part: the source shape plus `padding` on every side
    /// (1×36×36 for MNIST with the default padding).
    pub fn canvas(&self) -> Dims {
        self.canvas
    }

    /// Number of classes of the source (10 for MNIST).
    pub fn num_classes(&self) -> usize {
        self.source().num_classes()
    }

    /// Example `k` (`0..len()`), computed from the seed and `k` alone.
    ///
    /// Fails with [`DataError::Invalid`] if `k` is out of range.
    pub fn example(&self, k: usize) -> Result<MultiExample, DataError> {
        let mut out = MultiExample::default();
        self.example_into(k, &mut out)?;
        Ok(out)
    }

    /// Like [`MultiMnist::example`], reusing the buffers of `out` (no allocation once they
    /// have the canvas size).
    pub fn example_into(&self, k: usize, out: &mut MultiExample) -> Result<(), DataError> {
        if k >= self.len {
            return Err(DataError::Invalid(format!(
                "MultiMNIST example {k} out of range for a generator of {} examples",
                self.len
            )));
        }
        let set = self.source();
        let first = k / self.config.pairs_per_digit;
        let first_class = set.label(first);
        let mut rng = Rng::derive(self.config.seed, &[STREAM_MULTIMNIST, k as u64]);
        let second = self.draw_other_class(usize::from(first_class), &mut rng);
        let shifts = [
            Shift::random(self.config.max_shift, &mut rng),
            Shift::random(self.config.max_shift, &mut rng),
        ];
        let sources = [first, second];
        for (part, (&i, &shift)) in out.parts.iter_mut().zip(sources.iter().zip(&shifts)) {
            part.clear();
            part.resize(self.canvas.size(), 0);
            // |shift| <= max_shift <= padding, so the digit stays inside the canvas.
            let x0 = (self.config.padding as isize + shift.dx as isize) as usize;
            let y0 = (self.config.padding as isize + shift.dy as isize) as usize;
            paste(set.image(i), set.dims(), part, self.canvas, x0, y0);
        }
        out.image.clear();
        out.image.extend(
            out.parts[0]
                .iter()
                .zip(&out.parts[1])
                .map(|(&a, &b)| a.saturating_add(b)),
        );
        out.labels = [first_class, set.label(second)];
        out.sources = sources;
        out.shifts = shifts;
        Ok(())
    }

    /// The examples `0..n` (`n` may not exceed [`MultiMnist::len`]), stored.
    ///
    /// Examples are numbered source image by source image, so the first `n` have
    /// `n / pairs_per_digit` (rounded up) distinct first digits; use
    /// [`MultiMnist::materialize_indices`] with a permutation for a spread-out sample.
    pub fn materialize(&self, n: usize) -> Result<MultiMnistSet, DataError> {
        if n > self.len {
            return Err(DataError::Invalid(format!(
                "cannot materialize {n} MultiMNIST examples from a generator of {}",
                self.len
            )));
        }
        self.materialize_iter(n, 0..n)
    }

    /// The examples at `indices`, in that order, stored.
    ///
    /// Fails with [`DataError::Invalid`] if an index is out of range.
    pub fn materialize_indices(&self, indices: &[usize]) -> Result<MultiMnistSet, DataError> {
        self.materialize_iter(indices.len(), indices.iter().copied())
    }

    fn materialize_iter(
        &self,
        n: usize,
        indices: impl Iterator<Item = usize>,
    ) -> Result<MultiMnistSet, DataError> {
        let size = self.canvas.size();
        let mut set = MultiMnistSet {
            images: Vec::with_capacity(n * size),
            parts: Vec::with_capacity(n * 2 * size),
            labels: Vec::with_capacity(n),
            dims: self.canvas,
            num_classes: self.num_classes(),
        };
        let mut ex = MultiExample::default();
        for k in indices {
            self.example_into(k, &mut ex)?;
            set.images.extend_from_slice(&ex.image);
            set.parts.extend_from_slice(&ex.parts[0]);
            set.parts.extend_from_slice(&ex.parts[1]);
            set.labels.push(ex.labels);
        }
        Ok(set)
    }

    /// A source image drawn uniformly among those whose class is not `class`.
    fn draw_other_class(&self, class: usize, rng: &mut Rng) -> usize {
        let others = self.source().len() - self.by_class[class].len();
        // `new` checked that a second class is present, so `others > 0`.
        let mut r = rng.below(others as u64) as usize;
        for (c, members) in self.by_class.iter().enumerate() {
            if c == class {
                continue;
            }
            if r < members.len() {
                return members[r];
            }
            r -= members.len();
        }
        unreachable!("draw_other_class: {r} beyond the {others} images of other classes")
    }
}

/// Copies `digit` (shaped `dims`) into `canvas` (shaped `canvas_dims`, same channels) with
/// its top-left corner at column `x0`, row `y0`; other canvas pixels are left as they are.
/// The caller guarantees that the digit fits (`x0 + width <= canvas width`, same for rows).
pub(crate) fn paste(
    digit: &[u8],
    dims: Dims,
    canvas: &mut [u8],
    canvas_dims: Dims,
    x0: usize,
    y0: usize,
) {
    let (h, w, cw) = (dims.height, dims.width, canvas_dims.width);
    let plane = canvas_dims.height * cw;
    for (src_plane, dst_plane) in digit
        .chunks_exact(h * w)
        .zip(canvas.chunks_exact_mut(plane))
    {
        for (y, row) in src_plane.chunks_exact(w).enumerate() {
            let start = (y0 + y) * cw + x0;
            dst_plane[start..start + w].copy_from_slice(row);
        }
    }
}

/// Stored MultiMNIST examples (see [`MultiMnist::materialize`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiMnistSet {
    images: Vec<u8>,
    parts: Vec<u8>,
    labels: Vec<[u8; 2]>,
    dims: Dims,
    num_classes: usize,
}

impl MultiMnistSet {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if the set holds no example.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Shape of each image and part.
    pub fn dims(&self) -> Dims {
        self.dims
    }

    /// Number of classes of the source.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// All combined images, back to back (`N×C×H×W`).
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// All parts, back to back: example after example, first digit then second
    /// (`N×2×C×H×W`).
    pub fn parts(&self) -> &[u8] {
        &self.parts
    }

    /// All label pairs; `labels()[i][j]` is the class of part `j` of example `i`.
    pub fn labels(&self) -> &[[u8; 2]] {
        &self.labels
    }

    /// The combined image of example `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.dims.size();
        &self.images[i * n..(i + 1) * n]
    }

    /// Digit `j` (0 or 1) of example `i`, alone.
    ///
    /// # Panics
    /// If `i >= self.len()` or `j > 1`.
    pub fn part(&self, i: usize, j: usize) -> &[u8] {
        assert!(j < 2, "MultiMnistSet::part: digit {j} of 2");
        let n = self.dims.size();
        let start = (2 * i + j) * n;
        &self.parts[start..start + n]
    }

    /// The label pair of example `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn label_pair(&self, i: usize) -> [u8; 2] {
        self.labels[i]
    }
}

impl<S: Borrow<ImageSet> + Send + Sync> crate::batch::BatchSource for MultiMnist<S> {
    fn len(&self) -> usize {
        self.len
    }
    fn dims(&self) -> Dims {
        self.canvas
    }
    fn targets(&self) -> usize {
        2
    }
    /// Example `k` is the same whether or not the batch augments: all its randomness comes
    /// from `(seed, k)`. Labels are `[first, second]` per example and `parts` holds both
    /// digits alone (the reconstruction targets).
    fn fill(
        &self,
        indices: &[u32],
        _augment: Option<&mut Rng>,
        batch: &mut crate::Batch,
    ) -> Result<(), DataError> {
        let size = self.canvas.size();
        batch.images.clear();
        batch.images.reserve(indices.len() * size);
        batch.parts.clear();
        batch.parts.reserve(2 * indices.len() * size);
        batch.labels.clear();
        let mut example = MultiExample::default();
        for &k in indices {
            self.example_into(k as usize, &mut example)?;
            let scale = |p: &u8| f32::from(*p) / 255.0;
            batch.images.extend(example.image.iter().map(scale));
            for part in &example.parts {
                batch.parts.extend(part.iter().map(scale));
            }
            batch.labels.extend(example.labels.map(i64::from));
        }
        Ok(())
    }
}
