//! The training augmentation of Efficient-CapsNet on MNIST (Mazzia et al. 2021; the input
//! pipeline of the authors' `utils/pre_process_mnist.py`, itself credited to Adam Byerly's "No
//! Routing Needed Between Capsules"): per training image, in this order,
//!
//! 1. **rotate** ([`rotate`]) with probability ½ by a whole number of degrees in `[-29, 29]`
//!    (`int(30·r)`, `r = clip(N(0, 0.33), ±0.9999)`), bilinear, zero border, about the point
//!    `(W/2, H/2)` in pixel-index coordinates (`(14, 14)` on MNIST, as `cv2` is given);
//! 2. **shift** ([`shift`]) by a random amount bounded by the digit's empty margin
//!    ([`digit_margins`], [`MarginShift`]), so the digit never leaves the image;
//! 3. **squish** ([`squish`]): shrink horizontally by `w ∈ 1..=7` columns and zero-pad back to
//!    the full width with the content starting at column `w/2 + o`, `o ∈ {0, 1}`;
//! 4. **erase** ([`erase`]): zero one 4×4 patch whose top-left corner is uniform in rows and
//!    columns `4..=22`.
//!
//! Test images are never augmented. [`EfficientAugmented`] is the [`BatchSource`] that renders
//! an [`ImageSet`] this way, drawing every random number of a batch from the batch's [`Rng`] in
//! a fixed order ([`EfficientDraw::draw`]), so a batch is a pure function of the generator's
//! state and a resumed run repeats it exactly.
//!
//! The geometric functions work on channel-first `f32` images of any `C × H × W` (each channel
//! is transformed alike; the margins of the shift look at all channels together). The
//! constants of the original (the 28-pixel side, the 4-pixel erase border) generalise as
//! documented on each function; on 28×28 MNIST everything is exactly the original's recipe,
//! up to the deviations listed below.
//!
//! # Deviations from the original
//!
//! - **Squish resampling**: the original resizes with `tf.image.resize(…, LANCZOS3,
//!   antialias=True)`; [`squish`] uses exact area averaging (a box filter over each output
//!   column's footprint, the same half-pixel geometry). It never over- or undershoots (Lanczos
//!   can) and scales every row's sum by exactly `(W − w)/W`; edges come out slightly softer
//!   than with Lanczos.
//! - **Rotation sampling**: the original rounds sample coordinates to 1/32 pixel (`cv2`'s fixed-
//!   point `INTER_BITS = 5`) and so does [`rotate`], but the matrix is evaluated in `f64`
//!   rather than `cv2`'s 1/1024 fixed point, so a coordinate next to a rounding boundary may
//!   land on the neighbouring 1/32 step. The result is clamped to the range of the four
//!   neighbours (a no-op up to `f32` rounding).
//! - **Random numbers** come from this crate's xoshiro [`Rng`] (normals by Box–Muller), not
//!   TensorFlow's Philox streams; the distributions are the original's. The uniform erase
//!   position `floor(19·u)` is drawn as [`Rng::below`]`(19)`, the same distribution without
//!   `f32` rounding at the top end, and the fair coins of the shift as `below(2)`.
//! - **Scale**: images are `pixel / 255` as everywhere in this crate (the original divides by
//!   256); every step is linear or a threshold at 0, so this only scales the result.
//! - **Margins of a blank image** are `None` and such an image is not shifted (the original
//!   takes the minimum of an empty set there; rolling a blank image changes nothing anyway).
//! - **Shift** zero-fills instead of the original's cyclic `tf.roll`; as only empty rows and
//!   columns can wrap there, the two agree on every image.

use std::sync::Arc;

use crate::augment::{Shift, shift_map};
use crate::batch::{Batch, BatchSource, check_indices};
use crate::{DataError, Dims, ImageSet, Rng};

/// Standard deviation of the original's normal draws, `tf.random.normal(…, 0, .33)`.
pub const DRAW_STD: f64 = 0.33;
/// The original clips its normal draws to `±0.9999` (the half-normal ones to `0.9999`).
pub const DRAW_CLIP: f64 = 0.9999;
/// A rotation angle is `30 · r` degrees for the clipped normal `r`, truncated toward zero.
pub const ROTATE_SCALE_DEGREES: f32 = 30.0;
/// Side of the erased square patch.
pub const ERASE_SIZE: usize = 4;
/// The erased patch starts at least this many rows/columns from the top-left edge (and, on
/// 28×28, at most at row/column 22: see [`erase_start_count`]).
pub const ERASE_BORDER: usize = 4;

/// Sample coordinates of [`rotate`] are rounded to `1 / ROTATE_SUBPIXELS` pixel, like
/// `cv2.warpAffine` (`INTER_TAB_SIZE = 32`).
const ROTATE_SUBPIXELS: i64 = 32;

// ---------------------------------------------------------------------------------------------
// Random draws
// ---------------------------------------------------------------------------------------------

/// A standard normal number by the Box–Muller transform from two 53-bit uniforms (cosine
/// branch only), so every call consumes exactly two [`Rng::next_u64`].
fn standard_normal(rng: &mut Rng) -> f64 {
    const UNIT: f64 = 1.0 / (1u64 << 53) as f64;
    let u1 = ((rng.next_u64() >> 11) + 1) as f64 * UNIT; // (0, 1]: ln is finite
    let u2 = (rng.next_u64() >> 11) as f64 * UNIT; // [0, 1)
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `clip(N(0, 0.33), −0.9999, 0.9999)` (the rotation's draws).
fn clipped_normal(rng: &mut Rng) -> f32 {
    (DRAW_STD * standard_normal(rng)).clamp(-DRAW_CLIP, DRAW_CLIP) as f32
}

/// `N⁺ = min(|N(0, 0.33)|, 0.9999)` (the shift's and the squish's draws).
fn half_normal(rng: &mut Rng) -> f32 {
    (DRAW_STD * standard_normal(rng)).abs().min(DRAW_CLIP) as f32
}

/// Number of possible first rows (or columns) of the erased patch along a side of `len`
/// pixels: `len − 9` (19 on MNIST, so the patch starts in `4..=22` as in the original, whose
/// `floor(19·u) + 4` is written for 28), at least 1.
pub fn erase_start_count(len: usize) -> usize {
    len.saturating_sub(2 * ERASE_BORDER + 1).max(1)
}

/// The squish's width reduction for a half-normal draw `a`: `floor(a · W/4 + 1)` (the
/// original's `floor(7a + 1) ∈ 1..=7` on 28-wide images), at most `W − 1` so that a column
/// remains.
pub fn squish_width(a: f32, width: usize) -> usize {
    let w = (a * (width as f32 / 4.0) + 1.0).floor() as usize;
    w.min(width.saturating_sub(1))
}

/// All the random choices of one image's augmentation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EfficientDraw {
    /// Rotation in whole degrees (counter-clockwise on screen), or `None` to keep the image
    /// (probability ½).
    pub rotate: Option<i32>,
    /// Direction and relative amount of the shift.
    pub shift: MarginShift,
    /// Columns removed by the squish (`1..=7` on MNIST).
    pub squish_width: usize,
    /// Extra left offset of the squished content (`0` or `1`).
    pub squish_offset: usize,
    /// First row of the erased patch (`4..=22` on MNIST).
    pub erase_row: usize,
    /// First column of the erased patch (`4..=22` on MNIST).
    pub erase_col: usize,
}

impl EfficientDraw {
    /// Draws one image's augmentation for images shaped `dims`, always in this order (the
    /// amount of the shift is resolved later from the margins of the rotated image):
    ///
    /// 1. rotation: `r₁ = clip(N(0, 0.33), ±0.9999)`, then the gate `r₂` alike; the image is
    ///    rotated by `trunc(30·r₁)` degrees iff `r₂ ≤ 0` (the original keeps it iff `r₂ > 0`);
    /// 2. shift: the horizontal direction (`below(2)`, 1 = right), the vertical direction
    ///    (1 = down), then `a_x ~ N⁺` and `a_y ~ N⁺`;
    /// 3. squish: `a₀ ~ N⁺` giving `w = floor(7a₀ + 1)`, `a₁ ~ N⁺` giving `o = floor(2a₁)`;
    /// 4. erase: the first row `4 + below(19)`, then the first column alike.
    ///
    /// Every normal costs two [`Rng::next_u64`] and every `below` one (rarely more, by
    /// rejection), so an image takes 16 or a few more 64-bit draws; all of them are made
    /// whatever their outcome (e.g. the angle also when the gate keeps the image).
    pub fn draw(rng: &mut Rng, dims: Dims) -> Self {
        let angle = clipped_normal(rng);
        let gate = clipped_normal(rng);
        let right = rng.below(2) == 1;
        let down = rng.below(2) == 1;
        let a_x = half_normal(rng);
        let a_y = half_normal(rng);
        let a_width = half_normal(rng);
        let a_offset = half_normal(rng);
        let erase_row = ERASE_BORDER + rng.below(erase_start_count(dims.height) as u64) as usize;
        let erase_col = ERASE_BORDER + rng.below(erase_start_count(dims.width) as u64) as usize;
        Self {
            // `as` truncates toward zero, like Python's `int()`.
            rotate: (gate <= 0.0).then_some((ROTATE_SCALE_DEGREES * angle) as i32),
            shift: MarginShift {
                right,
                down,
                a_x,
                a_y,
            },
            squish_width: squish_width(a_width, dims.width),
            squish_offset: (2.0 * a_offset).floor() as usize,
            erase_row,
            erase_col,
        }
    }

    /// Applies the drawn augmentation to `image` (shaped `dims`) in place: rotate (if drawn),
    /// shift, squish, erase. `scratch` is working space of the same size (its content is
    /// overwritten). Returns the shift that was applied.
    ///
    /// # Panics
    /// If `image` or `scratch` does not hold exactly `dims.size()` values.
    pub fn apply(&self, image: &mut [f32], scratch: &mut [f32], dims: Dims) -> Shift {
        if let Some(degrees) = self.rotate {
            rotate_into(image, scratch, dims, degrees as f32);
            image.copy_from_slice(scratch);
        }
        let applied = shift_into(image, scratch, dims, self.shift);
        image.copy_from_slice(scratch);
        if self.squish_width > 0 {
            squish_into(image, scratch, dims, self.squish_width, self.squish_offset);
            image.copy_from_slice(scratch);
        }
        erase(image, dims, self.erase_row, self.erase_col);
        applied
    }
}

// ---------------------------------------------------------------------------------------------
// Rotate
// ---------------------------------------------------------------------------------------------

fn check_size(what: &str, len: usize, dims: Dims) {
    assert_eq!(
        len,
        dims.size(),
        "{what}: expected {dims:?}, got {len} values"
    );
}

/// Rotates `src` (shaped `dims`) by `degrees` into `dst`, as the original's
/// `cv2.warpAffine(image, cv2.getRotationMatrix2D((W/2, H/2), degrees, 1), (W, H))`.
///
/// - **Convention**: positive `degrees` turn the content **counter-clockwise on screen** (rows
///   grow downwards), like `cv2`. The centre is `(x, y) = (W/2, H/2)` in pixel-index
///   coordinates (pixel `(x, y)` sits at integer `(x, y)`): `(14, 14)` on MNIST, not the grid's
///   centre `(13.5, 13.5)`, exactly as in the original.
/// - Output pixel `(x, y)` samples the source at `c + R(θ)ᵀ·((x, y) − c)` (the inverse map)
///   **bilinearly**; source pixels outside the image count as 0 (constant zero border).
///   Sample positions are rounded to 1/32 pixel as `cv2` does (`INTER_BITS = 5`).
/// - Output values stay within the range of the input and 0 (bilinear weights are convex).
///
/// Every channel is rotated alike. `degrees = 0` is the identity; multiples of 90° move
/// pixels exactly (up to those that leave the image).
///
/// # Panics
/// If `src` or `dst` does not hold exactly `dims.size()` values.
pub fn rotate_into(src: &[f32], dst: &mut [f32], dims: Dims, degrees: f32) {
    check_size("rotate: source", src.len(), dims);
    check_size("rotate: destination", dst.len(), dims);
    let (h, w) = (dims.height, dims.width);
    if dims.size() == 0 {
        return;
    }
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let (sin, cos) = f64::from(degrees).to_radians().sin_cos();
    for (src_plane, dst_plane) in src.chunks_exact(h * w).zip(dst.chunks_exact_mut(h * w)) {
        for (y, dst_row) in dst_plane.chunks_exact_mut(w).enumerate() {
            let ry = y as f64 - cy;
            for (x, out) in dst_row.iter_mut().enumerate() {
                let rx = x as f64 - cx;
                let sx = cx + cos * rx - sin * ry;
                let sy = cy + sin * rx + cos * ry;
                *out = bilinear(src_plane, w, h, sx, sy);
            }
        }
    }
}

/// [`rotate_into`] into a new image.
pub fn rotate(image: &[f32], dims: Dims, degrees: f32) -> Vec<f32> {
    let mut out = vec![0.0; image.len()];
    rotate_into(image, &mut out, dims, degrees);
    out
}

/// The bilinear sample of a `w × h` plane at `(sx, sy)` (rounded to 1/32 pixel), with zeros
/// outside the plane.
fn bilinear(plane: &[f32], w: usize, h: usize, sx: f64, sy: f64) -> f32 {
    let steps = ROTATE_SUBPIXELS as f64;
    // Far-away (or non-finite) positions saturate in `as` and are outside the plane below.
    let qx = (sx * steps + 0.5).floor() as i64;
    let qy = (sy * steps + 0.5).floor() as i64;
    let (x0, y0) = (
        qx.div_euclid(ROTATE_SUBPIXELS),
        qy.div_euclid(ROTATE_SUBPIXELS),
    );
    let fx = qx.rem_euclid(ROTATE_SUBPIXELS) as f32 / steps as f32;
    let fy = qy.rem_euclid(ROTATE_SUBPIXELS) as f32 / steps as f32;
    let at = |x: i64, y: i64| match (usize::try_from(x), usize::try_from(y)) {
        (Ok(x), Ok(y)) if x < w && y < h => plane[y * w + x],
        _ => 0.0,
    };
    let (x1, y1) = (x0.saturating_add(1), y0.saturating_add(1));
    let px = [at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1)];
    let weights = [
        (1.0 - fx) * (1.0 - fy),
        fx * (1.0 - fy),
        (1.0 - fx) * fy,
        fx * fy,
    ];
    let value: f32 = px.iter().zip(weights).map(|(p, k)| p * k).sum();
    let lo = px.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = px.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    value.clamp(lo, hi)
}

// ---------------------------------------------------------------------------------------------
// Shift
// ---------------------------------------------------------------------------------------------

/// Empty rows and columns around an image's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Margins {
    /// Empty columns on the left (index of the first lit column).
    pub left: usize,
    /// Empty columns on the right (`W − 1 −` index of the last lit column).
    pub right: usize,
    /// Empty rows at the top.
    pub top: usize,
    /// Empty rows at the bottom.
    pub bottom: usize,
}

/// The empty margins of `image` (shaped `dims`): a row or column is lit if it holds a pixel
/// `> 0` in any channel (for non-negative images the same as the original's "sum > 0").
/// `None` for an image with no lit pixel.
///
/// # Panics
/// If `image` does not hold exactly `dims.size()` values.
pub fn digit_margins(image: &[f32], dims: Dims) -> Option<Margins> {
    check_size("digit_margins", image.len(), dims);
    let (h, w) = (dims.height, dims.width);
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (usize::MAX, 0, usize::MAX, 0);
    for plane in image.chunks_exact(h * w) {
        for (y, row) in plane.chunks_exact(w).enumerate() {
            let Some(first) = row.iter().position(|&p| p > 0.0) else {
                continue;
            };
            let last = row.iter().rposition(|&p| p > 0.0).unwrap_or(first);
            x_min = x_min.min(first);
            x_max = x_max.max(last);
            y_min = y_min.min(y);
            y_max = y_max.max(y);
        }
    }
    (x_min != usize::MAX).then(|| Margins {
        left: x_min,
        right: w - 1 - x_max,
        top: y_min,
        bottom: h - 1 - y_max,
    })
}

/// The random part of the original's shift: a direction per axis (a fair coin each) and a
/// relative amount per axis drawn from `N⁺ = min(|N(0, 0.33)|, 0.9999)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarginShift {
    /// Move right (else left).
    pub right: bool,
    /// Move down (else up).
    pub down: bool,
    /// Horizontal amount in `[0, 1)`, a fraction of the margin on that side.
    pub a_x: f32,
    /// Vertical amount in `[0, 1)`.
    pub a_y: f32,
}

impl MarginShift {
    /// No movement.
    pub const NONE: Self = Self {
        right: true,
        down: true,
        a_x: 0.0,
        a_y: 0.0,
    };

    /// The original's integer shift for content with `margins`:
    ///
    /// - `dx = floor(a_x · (right + 1))` to the right, else `floor(−a_x · left)`;
    /// - `dy = floor(a_y · (bottom + 1))` down, else `floor(−a_y · top)`;
    ///
    /// computed in `f32` like the original. As `a < 1`, `|dx|` never exceeds the margin on
    /// its side, so the content stays inside (the result is clamped to the margins as well,
    /// which changes nothing for `a ∈ [0, 1)`). Note the original's asymmetry: a move left
    /// or up rounds away from zero, so it is at least 1 pixel whenever `a · margin > 0`.
    pub fn amounts(&self, margins: Margins) -> Shift {
        let amount = |positive: bool, a: f32, before: usize, after: usize| -> i32 {
            let d = if positive {
                (a * (after as f32 + 1.0)).floor()
            } else {
                (-a * before as f32).floor()
            };
            let bound = |m: usize| i32::try_from(m).unwrap_or(i32::MAX);
            (d as i32).clamp(-bound(before), bound(after))
        };
        Shift {
            dx: amount(self.right, self.a_x, margins.left, margins.right),
            dy: amount(self.down, self.a_y, margins.top, margins.bottom),
        }
    }
}

/// Shifts `src` (shaped `dims`) into `dst` as the original does: by
/// [`MarginShift::amounts`] of its [`digit_margins`] (all channels alike, zeros shifted in),
/// so no lit pixel leaves the image. A blank image is copied unchanged. Returns the shift
/// applied.
///
/// # Panics
/// If `src` or `dst` does not hold exactly `dims.size()` values.
pub fn shift_into(src: &[f32], dst: &mut [f32], dims: Dims, shift: MarginShift) -> Shift {
    check_size("shift: destination", dst.len(), dims);
    let applied = digit_margins(src, dims).map_or(Shift::NONE, |m| shift.amounts(m));
    shift_map(src, dst, dims, applied, 0.0, |p| p);
    applied
}

/// [`shift_into`] into a new image.
pub fn shift(image: &[f32], dims: Dims, shift: MarginShift) -> Vec<f32> {
    let mut out = vec![0.0; image.len()];
    shift_into(image, &mut out, dims, shift);
    out
}

// ---------------------------------------------------------------------------------------------
// Squish
// ---------------------------------------------------------------------------------------------

/// Squishes `src` (shaped `dims`) horizontally into `dst`: each row is resampled from `W` to
/// `W − w` columns, and the result is placed at column `w/2 + o` (integer division) of an
/// all-zero row, cropped to `W` columns. The original's `w = floor(7a₀ + 1) ∈ 1..=7` and
/// `o = floor(2a₁) ∈ {0, 1}` (MNIST); for `w ≥ 1` and `o ≤ 1` nothing is cropped, since then
/// `w/2 + o ≤ w`.
/// Rows (and channels) are independent; the height is unchanged.
///
/// **Deviation**: the original resizes with `tf.image.resize(…, LANCZOS3, antialias=True)`.
/// This uses exact **area averaging** instead: output column `j` is the mean of the source row
/// over `[j·W/(W−w), (j+1)·W/(W−w))` (pixel `i` covering `[i, i+1)`, the same half-pixel
/// geometry as TensorFlow). So outputs lie within the row's range (no Lanczos ringing), a
/// constant row stays constant over the output span, and each row's sum is scaled by exactly
/// `(W − w)/W` (before any cropping).
///
/// `w = 0` with `o = 0` is the identity.
///
/// # Panics
/// If `w ≥ W`, or `src` or `dst` does not hold exactly `dims.size()` values.
pub fn squish_into(src: &[f32], dst: &mut [f32], dims: Dims, w: usize, o: usize) {
    check_size("squish: source", src.len(), dims);
    check_size("squish: destination", dst.len(), dims);
    let width = dims.width;
    assert!(
        w < width,
        "squish: cannot remove {w} of {width} columns (at least one must remain)"
    );
    let n = width - w;
    let offset = w / 2 + o;
    dst.fill(0.0);
    // Output column j covers source [j·width/n, (j+1)·width/n), of length width/n.
    let edge = |j: usize| (j * width) as f64 / n as f64;
    let scale = n as f64 / width as f64;
    for (src_row, dst_row) in src.chunks_exact(width).zip(dst.chunks_exact_mut(width)) {
        for (j, out) in dst_row.iter_mut().skip(offset).take(n).enumerate() {
            let (lo, hi) = (edge(j), edge(j + 1));
            let first = lo.floor() as usize;
            let sum: f64 = src_row
                .iter()
                .enumerate()
                .skip(first)
                .take_while(|&(i, _)| (i as f64) < hi)
                .map(|(i, &p)| {
                    let overlap = hi.min(i as f64 + 1.0) - lo.max(i as f64);
                    overlap * f64::from(p)
                })
                .sum();
            *out = (sum * scale) as f32;
        }
    }
}

/// [`squish_into`] into a new image.
pub fn squish(image: &[f32], dims: Dims, w: usize, o: usize) -> Vec<f32> {
    let mut out = vec![0.0; image.len()];
    squish_into(image, &mut out, dims, w, o);
    out
}

// ---------------------------------------------------------------------------------------------
// Erase
// ---------------------------------------------------------------------------------------------

/// Zeroes the [`ERASE_SIZE`]×[`ERASE_SIZE`] (4×4) patch of rows `row..row + 4` and columns
/// `col..col + 4` of `image` (shaped `dims`) in every channel, clipped to the image. The
/// original draws `row = floor(19·u₀) + 4` and `col = floor(19·u₁) + 4`, both in `4..=22`.
///
/// # Panics
/// If `image` does not hold exactly `dims.size()` values.
pub fn erase(image: &mut [f32], dims: Dims, row: usize, col: usize) {
    check_size("erase", image.len(), dims);
    let (h, w) = (dims.height, dims.width);
    if dims.size() == 0 {
        return;
    }
    let (x0, x1) = (col.min(w), col.saturating_add(ERASE_SIZE).min(w));
    let (y0, y1) = (row.min(h), row.saturating_add(ERASE_SIZE).min(h));
    for plane in image.chunks_exact_mut(h * w) {
        for y in y0..y1 {
            plane[y * w + x0..y * w + x1].fill(0.0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The batch source
// ---------------------------------------------------------------------------------------------

/// An [`ImageSet`] with Efficient-CapsNet's MNIST training augmentation (rotate → shift →
/// squish → erase, see the [module documentation](self)) when a batch is rendered with a
/// random stream, and the plain images otherwise (evaluation).
#[derive(Debug, Clone)]
pub struct EfficientAugmented {
    /// The images.
    pub set: Arc<ImageSet>,
}

impl BatchSource for EfficientAugmented {
    fn len(&self) -> usize {
        self.set.len()
    }

    fn dims(&self) -> Dims {
        self.set.dims()
    }

    /// Writes the images at `indices` as `pixel / 255` (`[B, C, H, W]`) and their labels.
    /// With `augment = Some(rng)` each image, in batch order, takes its
    /// [`EfficientDraw::draw`] from `rng` and is transformed by [`EfficientDraw::apply`].
    fn fill(
        &self,
        indices: &[u32],
        mut augment: Option<&mut Rng>,
        batch: &mut Batch,
    ) -> Result<(), DataError> {
        check_indices(self.set.len(), indices)?;
        let dims = self.set.dims();
        let size = dims.size();
        batch.images.clear();
        batch.images.resize(indices.len() * size, 0.0);
        batch.labels.clear();
        batch.labels.extend(
            indices
                .iter()
                .map(|&i| i64::from(self.set.label(i as usize))),
        );
        let mut scratch = if augment.is_some() {
            vec![0.0; size]
        } else {
            Vec::new()
        };
        for (&i, out) in indices.iter().zip(batch.images.chunks_exact_mut(size)) {
            for (o, &p) in out.iter_mut().zip(self.set.image(i as usize)) {
                *o = f32::from(p) / 255.0;
            }
            if let Some(rng) = augment.as_deref_mut() {
                EfficientDraw::draw(rng, dims).apply(out, &mut scratch, dims);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MNIST: Dims = Dims {
        channels: 1,
        height: 28,
        width: 28,
    };

    fn at(x: usize, y: usize) -> usize {
        y * 28 + x
    }

    /// A random 28×28 "digit" with values in `[0, 1]`: two to four thick strokes with soft
    /// edges, inside `lo..hi` in both coordinates.
    fn digit(rng: &mut Rng, lo: f32, hi: f32) -> Vec<f32> {
        let mut img = vec![0.0f32; 784];
        let strokes = 2 + rng.below(3);
        let mut point = || {
            (
                lo + (hi - lo) * rng.f32(),
                lo + (hi - lo) * rng.f32(),
                lo + (hi - lo) * rng.f32(),
                lo + (hi - lo) * rng.f32(),
            )
        };
        for _ in 0..strokes {
            let (ax, ay, bx, by) = point();
            for y in 0..28 {
                for x in 0..28 {
                    let (px, py) = (x as f32, y as f32);
                    let (dx, dy) = (bx - ax, by - ay);
                    let len2 = (dx * dx + dy * dy).max(1e-6);
                    let t = (((px - ax) * dx + (py - ay) * dy) / len2).clamp(0.0, 1.0);
                    let d = ((px - ax - t * dx).powi(2) + (py - ay - t * dy).powi(2)).sqrt();
                    let v = (1.6 - d).clamp(0.0, 1.0);
                    img[at(x, y)] = img[at(x, y)].max(v);
                }
            }
        }
        // Quantise like a u8 image.
        img.iter_mut()
            .for_each(|p| *p = (*p * 255.0).round() / 255.0);
        img
    }

    fn u8_set(images: &[Vec<f32>]) -> Arc<ImageSet> {
        let pixels = images
            .iter()
            .flatten()
            .map(|&p| (p * 255.0).round() as u8)
            .collect();
        let labels = (0..images.len()).map(|i| (i % 10) as u8).collect();
        Arc::new(ImageSet::new(pixels, labels, MNIST, 10).unwrap())
    }

    fn random_image(rng: &mut Rng, dims: Dims) -> Vec<f32> {
        (0..dims.size()).map(|_| rng.f32()).collect()
    }

    // --- draws --------------------------------------------------------------------------

    #[test]
    fn normal_draws_have_the_right_moments_and_bounds() {
        let mut rng = Rng::new(11);
        let n = 40_000;
        let z: Vec<f64> = (0..n).map(|_| standard_normal(&mut rng)).collect();
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.03,
            "{mean} {var}"
        );
        assert!(z.iter().all(|v| v.is_finite()));
        for _ in 0..20_000 {
            let c = clipped_normal(&mut rng);
            assert!((-0.9999..=0.9999).contains(&c), "{c}");
            let h = half_normal(&mut rng);
            assert!((0.0..=0.9999).contains(&h), "{h}");
        }
        // E|N(0, 0.33)| = 0.33·√(2/π) ≈ 0.2633.
        let m = (0..20_000).map(|_| half_normal(&mut rng)).sum::<f32>() / 20_000.0;
        assert!((m - 0.2633).abs() < 0.01, "{m}");
    }

    #[test]
    fn drawn_parameters_cover_the_original_ranges() {
        let mut rng = Rng::new(5);
        let (mut rotated, mut abs_angle) = (0usize, 0.0f64);
        let mut widths = [0usize; 8];
        let mut offsets = [0usize; 2];
        let mut rows = [0usize; 28];
        let mut cols = [0usize; 28];
        let (mut right, mut down) = (0usize, 0usize);
        let n = 20_000;
        for _ in 0..n {
            let d = EfficientDraw::draw(&mut rng, MNIST);
            if let Some(a) = d.rotate {
                assert!((-29..=29).contains(&a), "{a}");
                rotated += 1;
                abs_angle += f64::from(a.abs());
            }
            widths[d.squish_width] += 1;
            offsets[d.squish_offset] += 1;
            rows[d.erase_row] += 1;
            cols[d.erase_col] += 1;
            right += usize::from(d.shift.right);
            down += usize::from(d.shift.down);
            assert!((0.0..1.0).contains(&d.shift.a_x) && (0.0..1.0).contains(&d.shift.a_y));
        }
        let frac = |k: usize| k as f64 / n as f64;
        assert!((frac(rotated) - 0.5).abs() < 0.02, "{rotated}");
        assert!((frac(right) - 0.5).abs() < 0.02 && (frac(down) - 0.5).abs() < 0.02);
        // E|trunc(30·N(0,0.33))| ≈ 7.9 − 0.5.
        let mean_angle = abs_angle / rotated as f64;
        assert!((6.5..8.5).contains(&mean_angle), "{mean_angle}");
        assert_eq!(widths[0], 0);
        assert!(widths[1..].iter().all(|&c| c > 0), "{widths:?}");
        assert!(widths[1] > widths[7], "{widths:?}");
        // P(o = 1) = P(|N(0, 0.33)| ≥ 0.5) ≈ 0.13.
        assert!((frac(offsets[1]) - 0.13).abs() < 0.02, "{offsets:?}");
        for counts in [rows, cols] {
            assert!(counts[..4].iter().chain(&counts[23..]).all(|&c| c == 0));
            assert!(
                counts[4..23].iter().all(|&c| (900..1200).contains(&c)),
                "{counts:?}"
            );
        }
    }

    #[test]
    fn generalised_constants_reduce_to_the_original_on_mnist() {
        assert_eq!(erase_start_count(28), 19);
        assert_eq!(erase_start_count(5), 1);
        assert_eq!(squish_width(0.0, 28), 1);
        assert_eq!(squish_width(0.9999, 28), 7);
        assert_eq!(squish_width(0.5, 28), 4);
        assert_eq!(squish_width(0.9999, 1), 0);
    }

    // --- rotate -------------------------------------------------------------------------

    #[test]
    fn rotation_by_zero_is_the_identity() {
        let mut rng = Rng::new(1);
        let img = random_image(&mut rng, MNIST);
        assert_eq!(rotate(&img, MNIST, 0.0), img);
        assert_eq!(rotate(&img, MNIST, 360.0), img);
    }

    #[test]
    fn rotation_by_90_degrees_turns_counter_clockwise_about_14_14() {
        // (x, y) relative to (14, 14) goes to (ry, −rx) for +90° (counter-clockwise on screen:
        // right of the centre goes up, below it goes right).
        let mut img = vec![0.0; 784];
        img[at(17, 14)] = 1.0; // right of the centre
        img[at(14, 16)] = 0.5; // below it
        img[at(20, 10)] = 0.25;
        let out = rotate(&img, MNIST, 90.0);
        let mut expect = vec![0.0; 784];
        expect[at(14, 11)] = 1.0; // now above
        expect[at(16, 14)] = 0.5; // now right
        expect[at(10, 8)] = 0.25;
        assert_eq!(out, expect);
        // −90° is clockwise: right of the centre goes down.
        let out = rotate(&img, MNIST, -90.0);
        assert_eq!(out[at(14, 17)], 1.0);
        assert_eq!(out[at(12, 14)], 0.5);
        assert_eq!(out.iter().filter(|&&p| p != 0.0).count(), 3);
    }

    #[test]
    fn rotation_by_180_degrees_shows_the_14_14_centre() {
        // About (14, 14), x ↦ 28 − x: column 0 leaves the image, column 1 lands on 27 (about
        // (13.5, 13.5) it would be x ↦ 27 − x).
        let mut img = vec![0.0; 784];
        img[at(1, 5)] = 1.0;
        img[at(0, 0)] = 1.0;
        img[at(14, 14)] = 0.5;
        let out = rotate(&img, MNIST, 180.0);
        let mut expect = vec![0.0; 784];
        expect[at(27, 23)] = 1.0;
        expect[at(14, 14)] = 0.5;
        assert_eq!(out, expect);
    }

    #[test]
    fn rotation_interpolates_bilinearly_with_a_zero_border() {
        // A constant image stays constant where the whole neighbourhood is inside, and the
        // corners, which sample outside, become 0.
        let ones = vec![1.0; 784];
        let out = rotate(&ones, MNIST, 45.0);
        for (y, x) in [(14, 14), (10, 14), (14, 20), (8, 8)] {
            assert_eq!(out[at(x, y)], 1.0, "({x}, {y})");
        }
        for (x, y) in [(0, 0), (27, 0), (0, 27), (27, 27)] {
            assert_eq!(out[at(x, y)], 0.0, "({x}, {y})");
        }
        // Half-way between two pixels gives their mean; 1/32-pixel rounding of positions.
        let plane = [0.0, 1.0, 0.5, 0.5];
        assert_eq!(bilinear(&plane, 2, 2, 0.5, 0.0), 0.5);
        assert_eq!(bilinear(&plane, 2, 2, 0.5, 0.5), 0.5);
        assert_eq!(bilinear(&plane, 2, 2, 0.25, 0.0), 0.25);
        assert_eq!(bilinear(&plane, 2, 2, 0.251, 0.0), 0.25);
        assert_eq!(bilinear(&plane, 2, 2, 1.5, 0.0), 0.5); // the right neighbour is outside
        assert_eq!(bilinear(&plane, 2, 2, -0.5, 0.0), 0.0);
        assert_eq!(bilinear(&plane, 2, 2, 1e30, -1e30), 0.0);
    }

    #[test]
    fn rotation_keeps_values_in_range_for_both_scales() {
        let mut rng = Rng::new(2);
        for k in 0..200 {
            let img = if k % 2 == 0 {
                random_image(&mut rng, MNIST)
            } else {
                digit(&mut rng, 4.0, 23.0)
            };
            let degrees = rng.symmetric(180) as f32 + rng.f32();
            let out = rotate(&img, MNIST, degrees);
            assert!(out.iter().all(|p| (0.0..=1.0).contains(p)), "{degrees}");
            let scaled: Vec<f32> = img.iter().map(|p| (p * 255.0).round()).collect();
            let out = rotate(&scaled, MNIST, degrees);
            assert!(out.iter().all(|p| (0.0..=255.0).contains(p)), "{degrees}");
        }
    }

    #[test]
    fn rotation_treats_every_channel_alike_on_any_shape() {
        let dims = Dims {
            channels: 3,
            height: 9,
            width: 12,
        };
        let plane = Dims {
            channels: 1,
            ..dims
        };
        let mut rng = Rng::new(3);
        let img = random_image(&mut rng, dims);
        let out = rotate(&img, dims, 17.0);
        for (c, got) in out.chunks_exact(9 * 12).enumerate() {
            let alone = rotate(&img[c * 108..(c + 1) * 108], plane, 17.0);
            assert_eq!(got, &alone[..], "channel {c}");
        }
        // The centre is (W/2, H/2) = (6, 4.5): a +90° turn samples output (x, y) at
        // (10.5 − y, x − 1.5), half-way between pixels, so the lit source pixel (3, 2) is
        // shared by four output pixels with weight ¼ each.
        let mut one = vec![0.0; 108];
        one[2 * 12 + 3] = 1.0;
        let turned = rotate(&one, plane, 90.0);
        for (x, y) in [(3, 7), (4, 7), (3, 8), (4, 8)] {
            assert_eq!(turned[y * 12 + x], 0.25, "({x}, {y})");
        }
        assert_eq!(turned.iter().filter(|&&p| p != 0.0).count(), 4);
    }

    // --- shift --------------------------------------------------------------------------

    #[test]
    fn margins_of_a_block_and_of_a_blank_image() {
        let mut img = vec![0.0; 784];
        for y in 6..20 {
            for x in 9..15 {
                img[at(x, y)] = 0.5;
            }
        }
        assert_eq!(
            digit_margins(&img, MNIST),
            Some(Margins {
                left: 9,
                right: 13,
                top: 6,
                bottom: 8
            })
        );
        assert_eq!(digit_margins(&vec![0.0; 784], MNIST), None);
        img[at(0, 27)] = 0.01;
        assert_eq!(
            digit_margins(&img, MNIST),
            Some(Margins {
                left: 0,
                right: 13,
                top: 6,
                bottom: 0
            })
        );
        // Channels are pooled.
        let dims = Dims {
            channels: 2,
            height: 3,
            width: 4,
        };
        let mut two = vec![0.0; 24];
        two[5] = 1.0; // channel 0 (1, 1)
        two[12 + 11] = 1.0; // channel 1 (3, 2)
        let m = digit_margins(&two, dims).unwrap();
        assert_eq!((m.left, m.right, m.top, m.bottom), (1, 0, 1, 0));
    }

    #[test]
    fn shift_amounts_follow_the_original_formulas() {
        let m = Margins {
            left: 5,
            right: 4,
            top: 3,
            bottom: 0,
        };
        let s = |right, down, a_x, a_y| {
            MarginShift {
                right,
                down,
                a_x,
                a_y,
            }
            .amounts(m)
        };
        // Right: floor(0.5 · 5) = 2; up: floor(−0.5 · 3) = −2 (rounds away from zero).
        assert_eq!(s(true, false, 0.5, 0.5), Shift { dx: 2, dy: -2 });
        // Left: floor(−0.1 · 5) = −1; down with no bottom margin: floor(0.9 · 1) = 0.
        assert_eq!(s(false, true, 0.1, 0.9), Shift { dx: -1, dy: 0 });
        // The largest amounts reach the margins exactly.
        assert_eq!(s(false, false, 0.9999, 0.9999), Shift { dx: -5, dy: -3 });
        assert_eq!(s(true, true, 0.9999, 0.9999), Shift { dx: 4, dy: 0 });
        assert_eq!(s(false, false, 0.0, 0.0), Shift::NONE);
        assert_eq!(MarginShift::NONE.amounts(m), Shift::NONE);
    }

    #[test]
    fn shift_never_moves_a_lit_pixel_out_and_equals_the_cyclic_roll() {
        let mut rng = Rng::new(4);
        let roll = |img: &[f32], s: Shift| {
            let mut out = vec![0.0; 784];
            for y in 0..28 {
                for x in 0..28 {
                    let ny = (y as i32 + s.dy).rem_euclid(28) as usize;
                    let nx = (x as i32 + s.dx).rem_euclid(28) as usize;
                    out[at(nx, ny)] = img[at(x, y)];
                }
            }
            out
        };
        let mut moved = 0;
        for k in 0..500 {
            // Centred digits, digits touching the border, rotated ones.
            let mut img = match k % 3 {
                0 => digit(&mut rng, 4.0, 23.0),
                1 => digit(&mut rng, 0.0, 27.0),
                _ => rotate(&digit(&mut rng, 2.0, 25.0), MNIST, 25.0),
            };
            if k % 7 == 0 {
                img[at(rng.below(28) as usize, rng.below(28) as usize)] = 1.0;
            }
            let draw = EfficientDraw::draw(&mut rng, MNIST).shift;
            let mut out = vec![0.0; 784];
            let s = shift_into(&img, &mut out, MNIST, draw);
            moved += usize::from(s != Shift::NONE);
            let lit = |v: &[f32]| v.iter().filter(|&&p| p > 0.0).count();
            assert_eq!(lit(&out), lit(&img), "{s:?}");
            let sorted = |v: &[f32]| {
                let mut v = v.to_vec();
                v.sort_by(f32::total_cmp);
                v
            };
            assert_eq!(sorted(&out), sorted(&img), "{s:?}");
            assert_eq!(out, roll(&img, s), "{s:?}");
            assert_eq!(shift(&img, MNIST, draw), out);
        }
        assert!(moved > 300, "{moved}");
        // A blank image stays blank.
        let blank = vec![0.0; 784];
        let s = MarginShift {
            right: false,
            down: false,
            a_x: 0.9,
            a_y: 0.9,
        };
        assert_eq!(shift(&blank, MNIST, s), blank);
    }

    // --- squish -------------------------------------------------------------------------

    #[test]
    fn squish_scales_row_sums_and_keeps_the_content_inside() {
        let mut rng = Rng::new(6);
        for k in 0..50 {
            let img = if k % 2 == 0 {
                digit(&mut rng, 0.0, 27.0)
            } else {
                random_image(&mut rng, MNIST)
            };
            for w in 1..=7 {
                for o in 0..=1 {
                    let out = squish(&img, MNIST, w, o);
                    let scale = (28 - w) as f32 / 28.0;
                    let offset = w / 2 + o;
                    for (src, dst) in img.chunks_exact(28).zip(out.chunks_exact(28)) {
                        let (s, d) = (src.iter().sum::<f32>(), dst.iter().sum::<f32>());
                        assert!((d - s * scale).abs() < 1e-4, "w{w} o{o}: {d} vs {s}");
                        // Zeros left of the offset and right of the resized span.
                        assert!(dst[..offset].iter().all(|&p| p == 0.0));
                        assert!(dst[offset + 28 - w..].iter().all(|&p| p == 0.0));
                        let max = src.iter().copied().fold(0.0, f32::max);
                        assert!(dst.iter().all(|&p| (0.0..=max + 1e-6).contains(&p)));
                    }
                }
            }
        }
    }

    #[test]
    fn squish_resamples_by_area() {
        let dims = Dims {
            channels: 2,
            height: 1,
            width: 4,
        };
        // Width 4 → 3: output j covers [4j/3, 4(j+1)/3), mean = sum · 3/4.
        let img = [3.0, 0.0, 6.0, 3.0, 1.0, 1.0, 1.0, 1.0];
        let out = squish(&img, dims, 1, 0);
        // [0, 4/3): 3 + ⅓·0; [4/3, 8/3): ⅔·0 + ⅔·6; [8/3, 4): ⅓·6 + 3.
        let expect_0 = [3.0 * 0.75, 4.0 * 0.75, 5.0 * 0.75];
        for (got, want) in out[..3].iter().zip(expect_0) {
            assert!((got - want).abs() < 1e-6, "{out:?}");
        }
        assert_eq!(out[3], 0.0);
        // A constant row stays constant over the span; offset w/2 + o = 0 + 1.
        let out = squish(&img, dims, 1, 1);
        assert_eq!(out[4], 0.0);
        assert!(out[5..].iter().all(|&p| (p - 1.0).abs() < 1e-6), "{out:?}");
        // w = 0, o = 0 is the identity; w = 2 halves: pairs averaged, offset 1.
        assert_eq!(squish(&img, dims, 0, 0), img);
        assert_eq!(
            squish(&img, dims, 2, 0),
            [0.0, 1.5, 4.5, 0.0, 0.0, 1.0, 1.0, 0.0]
        );
    }

    #[test]
    #[should_panic(expected = "at least one must remain")]
    fn squish_rejects_removing_every_column() {
        squish(&[0.0; 784], MNIST, 28, 0);
    }

    // --- erase --------------------------------------------------------------------------

    #[test]
    fn erase_zeroes_exactly_one_4x4_block_in_every_channel() {
        let dims = Dims {
            channels: 2,
            height: 28,
            width: 28,
        };
        for (row, col) in [(4, 4), (22, 22), (4, 22), (13, 7)] {
            let mut img = vec![1.0; dims.size()];
            erase(&mut img, dims, row, col);
            for c in 0..2 {
                for y in 0..28 {
                    for x in 0..28 {
                        let inside = (row..row + 4).contains(&y) && (col..col + 4).contains(&x);
                        let want = if inside { 0.0 } else { 1.0 };
                        assert_eq!(
                            img[c * 784 + at(x, y)],
                            want,
                            "({row},{col}) c{c} ({x},{y})"
                        );
                    }
                }
            }
            assert_eq!(img.iter().filter(|&&p| p == 0.0).count(), 32);
        }
        // Clipped at the border.
        let mut img = vec![1.0; 784];
        erase(&mut img, MNIST, 26, 27);
        assert_eq!(img.iter().filter(|&&p| p == 0.0).count(), 2);
        erase(&mut img, MNIST, 28, 40);
        assert_eq!(img.iter().filter(|&&p| p == 0.0).count(), 2);
    }

    // --- the batch source ---------------------------------------------------------------

    fn digits_set(n: usize, seed: u64) -> Arc<ImageSet> {
        let mut rng = Rng::new(seed);
        u8_set(
            &(0..n)
                .map(|_| digit(&mut rng, 4.0, 23.0))
                .collect::<Vec<_>>(),
        )
    }

    fn render(source: &EfficientAugmented, indices: &[u32], rng: Option<&mut Rng>) -> Batch {
        let mut batch = Batch::empty(source.dims(), 1);
        source.fill(indices, rng, &mut batch).unwrap();
        batch
    }

    #[test]
    fn without_a_stream_the_images_pass_unchanged() {
        let set = digits_set(12, 1);
        let source = EfficientAugmented { set: set.clone() };
        assert_eq!(
            (source.len(), source.dims(), source.targets()),
            (12, MNIST, 1)
        );
        let indices = [3, 0, 11, 3];
        let batch = render(&source, &indices, None);
        assert_eq!(batch.images.len(), 4 * 784);
        assert_eq!(batch.labels, [3, 0, 1, 3]);
        for (img, &i) in batch.images.chunks_exact(784).zip(&indices) {
            let plain: Vec<f32> = set
                .image(i as usize)
                .iter()
                .map(|&p| f32::from(p) / 255.0)
                .collect();
            assert_eq!(img, &plain[..]);
        }
        // The same as the crate's plain batches.
        let mut plain = Batch::empty(MNIST, 1);
        crate::ShiftedImages { set, shift_px: 0 }
            .fill(&indices, None, &mut plain)
            .unwrap();
        assert_eq!((batch.images, batch.labels), (plain.images, plain.labels));
    }

    #[test]
    fn augmented_batches_are_a_function_of_the_stream_state() {
        let source = EfficientAugmented {
            set: digits_set(20, 2),
        };
        let indices: Vec<u32> = (0..20).rev().collect();
        let a = render(&source, &indices, Some(&mut Rng::derive(7, &[1, 2])));
        let b = render(&source, &indices, Some(&mut Rng::derive(7, &[1, 2])));
        let c = render(&source, &indices, Some(&mut Rng::derive(7, &[1, 3])));
        assert_eq!(a, b);
        assert_ne!(a.images, c.images);
        assert_eq!(a.labels, c.labels);
        assert_eq!(a.images.len(), 20 * 784);
        assert_eq!(
            a.labels,
            indices
                .iter()
                .map(|&i| i64::from(i as u8 % 10))
                .collect::<Vec<_>>()
        );
        assert!(a.images.iter().all(|p| (0.0..=1.0).contains(p)));
        // Augmentation changed the images.
        let plain = render(&source, &indices, None);
        assert_ne!(a.images, plain.images);
        // The draw order: image by image, each from the stream left by the previous one.
        let mut rng = Rng::derive(7, &[1, 2]);
        let mut scratch = vec![0.0; 784];
        for (k, &i) in indices.iter().enumerate() {
            let mut img: Vec<f32> = source
                .set
                .image(i as usize)
                .iter()
                .map(|&p| f32::from(p) / 255.0)
                .collect();
            EfficientDraw::draw(&mut rng, MNIST).apply(&mut img, &mut scratch, MNIST);
            assert_eq!(&a.images[k * 784..(k + 1) * 784], &img[..], "image {k}");
        }
        // The stream is consumed: the next batch from it differs from the first.
        let d = render(&source, &indices, Some(&mut rng));
        assert_ne!(a.images, d.images);
    }

    #[test]
    fn fill_rejects_bad_indices_and_reuses_the_batch() {
        let source = EfficientAugmented {
            set: digits_set(3, 3),
        };
        let mut batch = render(&source, &[0, 1, 2], Some(&mut Rng::new(1)));
        let err = source.fill(&[0, 3], Some(&mut Rng::new(1)), &mut batch);
        assert!(matches!(err, Err(DataError::Invalid(_))), "{err:?}");
        source.fill(&[2], None, &mut batch).unwrap();
        assert_eq!(
            (batch.images.len(), batch.labels.as_slice()),
            (784, &[2][..])
        );
    }

    #[test]
    fn mean_pixel_mass_stays_in_a_sane_band() {
        let n = 300;
        let source = EfficientAugmented {
            set: digits_set(n, 4),
        };
        let indices: Vec<u32> = (0..n as u32).collect();
        let plain = render(&source, &indices, None);
        let aug = render(&source, &indices, Some(&mut Rng::new(9)));
        let mut ratios = Vec::new();
        for (p, a) in plain
            .images
            .chunks_exact(784)
            .zip(aug.images.chunks_exact(784))
        {
            let (mp, ma) = (p.iter().sum::<f32>(), a.iter().sum::<f32>());
            assert!(ma > 0.3 * mp && ma < 1.1 * mp, "{ma} vs {mp}");
            ratios.push(ma / mp);
        }
        // Squish keeps (28 − w)/28 ≈ 0.92 on average, the erase removes a little more.
        let mean = ratios.iter().sum::<f32>() / n as f32;
        assert!((0.75..0.97).contains(&mean), "{mean}");
    }
}
