//! Affine-transformed MNIST (Sabour, Frosst & Hinton 2017, section 5.2): the affNIST-like
//! test set of the robustness experiment, generated from MNIST digits by random affine warps.
//!
//! # Affine-transformed MNIST ([`AffineMnist`], [`warp`])
//!
//! A digit is first centred on the canvas (a 28×28 digit on a 40×40 canvas gets a 6-pixel
//! border, as in affNIST's "just centred" version), then transformed about its centre by
//!
//! `A = R(rotation) · Shear(shear) · diag(scale_x, scale_y)`, then translated by `(tx, ty)`:
//!
//! - `diag(scale_x, scale_y)` scales x and y independently;
//! - `Shear(shear)` is an x-shear, `x' = x + shear · y`;
//! - `R(θ)` rotates counter-clockwise on screen (rows grow downwards), so `(x, y)` relative to
//!   the centre goes to `(x cos θ + y sin θ, −x sin θ + y cos θ)`.
//!
//! So a source pixel at `p` lands at `q = c_canvas + t + A (p − c_source)`, where `c` is the
//! centre of an image (`((width − 1) / 2, (height − 1) / 2)` in pixel coordinates). Every canvas
//! pixel `q` takes the bilinear interpolation of the source at `c_source + A⁻¹ (q − c_canvas −
//! t)`, with zero outside the source (inverse mapping: no holes), rounded to the nearest byte.
//!
//! The default [`AffineRanges`] ([`AffineRanges::AFFNIST`]) approximate affNIST's
//! generation (random rotation, shear, scaling, and a translation that keeps the digit
//! whole) with these bounds:
//!
//! | parameter              | range                         |
//! |------------------------|-------------------------------|
//! | rotation               | uniform in −20° ..= 20°       |
//! | x-shear                | uniform in −0.2 ..= 0.2       |
//! | scale_x, scale_y       | each uniform in 0.8 ..= 1.2, independently |
//! | translation tx, ty     | uniform over the offsets that keep the whole (transformed) digit inside the canvas |
//!
//! The translation range depends on the digit: it is computed from the transformed bounding
//! box of its non-zero pixels (widened by one pixel for the interpolation), so no ink is ever
//! cut. A digit too large for the canvas along an axis is centred on its ink along it
//! instead; a blank image is not translated. Example `k` is source image
//! `k / per_digit` (affNIST's test set holds 32 transformations of each MNIST test digit) and
//! its parameters are drawn from `Rng::derive(seed, &[STREAM_AFFINE, k])` in the order
//! rotation, shear, scale_x, scale_y, tx, ty.
//!
//! These are affNIST-*like* data: the generator reproduces affNIST's kind and amount of
//! distortion, not its exact images. For the real set, see [`crate::affnist`].

use std::borrow::Borrow;

use crate::affnist::AFFNIST_SIDE;
use crate::expanded::canvas_dims;
use crate::{DataError, Dims, ImageSet, Rng};

/// Stream id of the affine-MNIST transformations (see [`Rng::derive`]).
pub const STREAM_AFFINE: u64 = 0x4146_464e; // "AFFN"

/// The ranges random affine transformations are drawn from (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffineRanges {
    /// Largest rotation either way, in degrees (affNIST: 20).
    pub max_rotation_deg: f64,
    /// Largest x-shear factor either way (affNIST: 0.2).
    pub max_shear: f64,
    /// Smallest scale factor, drawn independently for x and y (affNIST: 0.8).
    pub min_scale: f64,
    /// Largest scale factor (affNIST: 1.2).
    pub max_scale: f64,
    /// Translate the digit uniformly within the offsets that keep it whole on the canvas
    /// (affNIST: yes); if false, the digit stays centred.
    pub translate: bool,
}

impl Default for AffineRanges {
    /// The affNIST ranges, [`AffineRanges::AFFNIST`].
    fn default() -> Self {
        Self::AFFNIST
    }
}

/// A uniform draw in `[lo, hi)` (exactly `lo` when the range is empty).
fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * f64::from(rng.f32())
}

impl AffineRanges {
    /// affNIST's ranges: rotation ±20°, x-shear ±0.2, scales 0.8–1.2, translation keeping
    /// the digit on the canvas.
    pub const AFFNIST: Self = Self {
        max_rotation_deg: 20.0,
        max_shear: 0.2,
        min_scale: 0.8,
        max_scale: 1.2,
        translate: true,
    };

    /// Checks that every bound is finite, the maxima are not negative and
    /// `0 < min_scale <= max_scale`.
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |what: String| Err(DataError::Invalid(format!("affine ranges: {what}")));
        if !(self.max_rotation_deg.is_finite() && self.max_rotation_deg >= 0.0) {
            return bad(format!(
                "max_rotation_deg is {}, expected a finite value >= 0",
                self.max_rotation_deg
            ));
        }
        if !(self.max_shear.is_finite() && self.max_shear >= 0.0) {
            return bad(format!(
                "max_shear is {}, expected a finite value >= 0",
                self.max_shear
            ));
        }
        let scales_ok = self.min_scale.is_finite()
            && self.max_scale.is_finite()
            && self.min_scale > 0.0
            && self.min_scale <= self.max_scale;
        if !scales_ok {
            return bad(format!(
                "scale range {}..={} is invalid, expected 0 < min_scale <= max_scale (finite)",
                self.min_scale, self.max_scale
            ));
        }
        Ok(())
    }

    /// Draws rotation, shear, `scale_x` and `scale_y` (in that order) uniformly from the
    /// ranges; the translation is zero.
    pub fn sample_linear(&self, rng: &mut Rng) -> AffineParams {
        let rotation_deg = uniform(rng, -self.max_rotation_deg, self.max_rotation_deg);
        let shear = uniform(rng, -self.max_shear, self.max_shear);
        let scale_x = uniform(rng, self.min_scale, self.max_scale);
        let scale_y = uniform(rng, self.min_scale, self.max_scale);
        AffineParams {
            rotation_deg,
            shear,
            scale_x,
            scale_y,
            tx: 0.0,
            ty: 0.0,
        }
    }

    /// Draws a whole transformation of `image` (shaped `src`) onto a `height`×`width`
    /// canvas: [`AffineRanges::sample_linear`], then `tx` and `ty` uniformly among the
    /// translations that keep every non-zero pixel of the warped image on the canvas (see
    /// the [module docs](self)). Always draws six numbers, so the stream does not depend on
    /// the image.
    ///
    /// Fails with [`DataError::Invalid`] if the ranges are invalid or `image` is not
    /// `src`-shaped.
    pub fn sample(
        &self,
        rng: &mut Rng,
        image: &[u8],
        src: Dims,
        height: usize,
        width: usize,
    ) -> Result<AffineParams, DataError> {
        self.validate()?;
        check_image(image, src)?;
        let mut params = self.sample_linear(rng);
        let (ux, uy) = (f64::from(rng.f32()), f64::from(rng.f32()));
        if !self.translate {
            return Ok(params);
        }
        if let Some([(x_lo, x_hi), (y_lo, y_hi)]) =
            params.translation_range(image, src, height, width)
        {
            let pick = |lo: f64, hi: f64, u: f64| {
                if lo <= hi {
                    lo + (hi - lo) * u
                } else {
                    (lo + hi) / 2.0
                }
            };
            params.tx = pick(x_lo, x_hi, ux);
            params.ty = pick(y_lo, y_hi, uy);
        }
        Ok(params)
    }
}

/// One affine transformation (see the [module docs](self) for the conventions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffineParams {
    /// Counter-clockwise rotation on screen, in degrees.
    pub rotation_deg: f64,
    /// x-shear factor: `x' = x + shear · y`.
    pub shear: f64,
    /// Horizontal scale factor.
    pub scale_x: f64,
    /// Vertical scale factor.
    pub scale_y: f64,
    /// Horizontal translation from the centred position, in pixels (positive: right).
    pub tx: f64,
    /// Vertical translation from the centred position, in pixels (positive: down).
    pub ty: f64,
}

impl Default for AffineParams {
    /// [`AffineParams::IDENTITY`].
    fn default() -> Self {
        Self::IDENTITY
    }
}

/// Centre of an axis of `n` pixels, in pixel coordinates.
fn centre(n: usize) -> f64 {
    (n as f64 - 1.0) / 2.0
}

impl AffineParams {
    /// No transformation: the digit is only centred.
    pub const IDENTITY: Self = Self {
        rotation_deg: 0.0,
        shear: 0.0,
        scale_x: 1.0,
        scale_y: 1.0,
        tx: 0.0,
        ty: 0.0,
    };

    /// The linear part `A = R · Shear · diag(scale_x, scale_y)`, row-major: a vector `(x, y)`
    /// becomes `(A[0][0] x + A[0][1] y, A[1][0] x + A[1][1] y)`.
    pub fn matrix(&self) -> [[f64; 2]; 2] {
        let (s, c) = self.rotation_deg.to_radians().sin_cos();
        let (sx, sy, h) = (self.scale_x, self.scale_y, self.shear);
        // R = [[c, s], [-s, c]], Shear · diag = [[sx, h sy], [0, sy]].
        [[c * sx, (c * h + s) * sy], [-s * sx, (c - s * h) * sy]]
    }

    /// Where the source pixel `(x, y)` of a `src`-shaped image lands on a `height`×`width`
    /// canvas (column, row; fractional).
    pub fn map_point(&self, src: Dims, height: usize, width: usize, x: f64, y: f64) -> (f64, f64) {
        let a = self.matrix();
        let (dx, dy) = (x - centre(src.width), y - centre(src.height));
        (
            centre(width) + self.tx + a[0][0] * dx + a[0][1] * dy,
            centre(height) + self.ty + a[1][0] * dx + a[1][1] * dy,
        )
    }

    /// `A⁻¹`, or an error naming the parameters if they are not finite or `A` is singular.
    fn inverse(&self) -> Result<[[f64; 2]; 2], DataError> {
        let finite = [
            self.rotation_deg,
            self.shear,
            self.scale_x,
            self.scale_y,
            self.tx,
            self.ty,
        ]
        .iter()
        .all(|v| v.is_finite());
        let [[a, b], [c, d]] = self.matrix();
        let det = a * d - b * c;
        if !finite || det == 0.0 || !det.is_finite() {
            return Err(DataError::Invalid(format!(
                "affine transformation {self:?} is not invertible (scales must be finite and \
                 non-zero, every parameter finite)"
            )));
        }
        Ok([[d / det, -b / det], [-c / det, a / det]])
    }

    /// The ranges of `tx` and `ty` (ignoring this transformation's own translation) that keep
    /// every pixel the warp may make non-zero on a `height`×`width` canvas; `None` for a
    /// blank image. A range with `lo > hi` means the digit does not fit along that axis.
    fn translation_range(
        &self,
        image: &[u8],
        src: Dims,
        height: usize,
        width: usize,
    ) -> Option<[(f64, f64); 2]> {
        let (xmin, xmax, ymin, ymax) = ink_box(image, src)?;
        let a = self.matrix();
        let (cx, cy) = (centre(src.width), centre(src.height));
        let (mut umin, mut umax) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        // A source pixel at p influences the bilinear samples within (p - 1, p + 1).
        for x in [xmin as f64 - 1.0, xmax as f64 + 1.0] {
            for y in [ymin as f64 - 1.0, ymax as f64 + 1.0] {
                let (dx, dy) = (x - cx, y - cy);
                let u = [a[0][0] * dx + a[0][1] * dy, a[1][0] * dx + a[1][1] * dy];
                for i in 0..2 {
                    umin[i] = umin[i].min(u[i]);
                    umax[i] = umax[i].max(u[i]);
                }
            }
        }
        // Samples strictly inside (-1, n) are the pixels 0..n.
        let range =
            |i: usize, n: usize| (-1.0 - centre(n) - umin[i], n as f64 - centre(n) - umax[i]);
        Some([range(0, width), range(1, height)])
    }
}

/// Columns and rows spanned by the non-zero pixels of `image` (any channel).
fn ink_box(image: &[u8], dims: Dims) -> Option<(usize, usize, usize, usize)> {
    let (h, w) = (dims.height, dims.width);
    let mut bbox: Option<(usize, usize, usize, usize)> = None;
    for plane in image.chunks_exact(h * w) {
        for (y, row) in plane.chunks_exact(w).enumerate() {
            for (x, _) in row.iter().enumerate().filter(|(_, p)| **p != 0) {
                bbox = Some(match bbox {
                    None => (x, x, y, y),
                    Some((x0, x1, y0, y1)) => (x0.min(x), x1.max(x), y0.min(y), y1.max(y)),
                });
            }
        }
    }
    bbox
}

fn check_image(image: &[u8], dims: Dims) -> Result<(), DataError> {
    if dims.size() == 0 || image.len() != dims.size() {
        return Err(DataError::Invalid(format!(
            "image of {} pixels does not have the shape {dims:?}",
            image.len()
        )));
    }
    Ok(())
}

/// Returns `image` (shaped `src`) centred on a black `height`×`width` canvas and transformed
/// by `params`, with bilinear interpolation (see the [module docs](self)).
///
/// Fails with [`DataError::Invalid`] if `image` is not `src`-shaped, the canvas is empty or
/// `params` is not invertible.
pub fn warp(
    image: &[u8],
    src: Dims,
    params: &AffineParams,
    height: usize,
    width: usize,
) -> Result<Vec<u8>, DataError> {
    let size = src
        .channels
        .checked_mul(height)
        .and_then(|n| n.checked_mul(width))
        .ok_or_else(|| DataError::Invalid(format!("canvas {height}x{width} overflows")))?;
    let mut out = vec![0; size];
    warp_into(image, src, params, &mut out, height, width)?;
    Ok(out)
}

/// Like [`warp`], writing into `out` (`src.channels × height × width` bytes).
pub fn warp_into(
    image: &[u8],
    src: Dims,
    params: &AffineParams,
    out: &mut [u8],
    height: usize,
    width: usize,
) -> Result<(), DataError> {
    check_image(image, src)?;
    if height == 0 || width == 0 || src.channels.checked_mul(height * width) != Some(out.len()) {
        return Err(DataError::Invalid(format!(
            "warp output of {} bytes does not hold {} channels of {height}x{width}",
            out.len(),
            src.channels
        )));
    }
    let inv = params.inverse()?;
    let (h, w) = (src.height, src.width);
    let (csx, csy) = (centre(w), centre(h));
    let (cdx, cdy) = (centre(width) + params.tx, centre(height) + params.ty);
    let (src_plane, dst_plane) = (h * w, height * width);
    for qy in 0..height {
        for qx in 0..width {
            let (dx, dy) = (qx as f64 - cdx, qy as f64 - cdy);
            let px = csx + inv[0][0] * dx + inv[0][1] * dy;
            let py = csy + inv[1][0] * dx + inv[1][1] * dy;
            let (x0, y0) = (px.floor(), py.floor());
            let q = qy * width + qx;
            if !(x0 >= -1.0 && x0 < w as f64 && y0 >= -1.0 && y0 < h as f64) {
                for c in 0..src.channels {
                    out[c * dst_plane + q] = 0;
                }
                continue;
            }
            let (fx, fy) = (px - x0, py - y0);
            let (x0, y0) = (x0 as isize, y0 as isize);
            let taps = [
                (x0, y0, (1.0 - fx) * (1.0 - fy)),
                (x0 + 1, y0, fx * (1.0 - fy)),
                (x0, y0 + 1, (1.0 - fx) * fy),
                (x0 + 1, y0 + 1, fx * fy),
            ];
            for c in 0..src.channels {
                let plane = &image[c * src_plane..(c + 1) * src_plane];
                let mut v = 0.0;
                for &(x, y, weight) in &taps {
                    if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
                        v += weight * f64::from(plane[y as usize * w + x as usize]);
                    }
                }
                out[c * dst_plane + q] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Ok(())
}

/// Settings of an [`AffineMnist`] generator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffineConfig {
    /// Where the transformations are drawn from (default: affNIST's).
    pub ranges: AffineRanges,
    /// Side of the square canvas (affNIST: 40).
    pub canvas: usize,
    /// Transformed versions of each source image (affNIST: 32); at least 1.
    pub per_digit: usize,
    /// Seed of the transformations.
    pub seed: u64,
}

impl Default for AffineConfig {
    /// affNIST's ranges on a 40×40 canvas, one version per digit, seed 0.
    fn default() -> Self {
        Self {
            ranges: AffineRanges::AFFNIST,
            canvas: AFFNIST_SIDE,
            per_digit: 1,
            seed: 0,
        }
    }
}

/// One affine-transformed digit.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AffineExample {
    /// The transformed digit on the canvas.
    pub image: Vec<u8>,
    /// Its class.
    pub label: u8,
    /// Index of the digit in the source.
    pub source: usize,
    /// The transformation applied.
    pub params: AffineParams,
}

/// A deterministic generator of affine-transformed digits: an affNIST-like test set
/// (see the [module docs](self)).
///
/// `S` is anything that borrows an [`ImageSet`] (`&ImageSet`, `ImageSet`, `Arc<ImageSet>`).
#[derive(Debug, Clone)]
pub struct AffineMnist<S> {
    source: S,
    config: AffineConfig,
    canvas: Dims,
    len: usize,
}

impl<S: Borrow<ImageSet>> AffineMnist<S> {
    /// A generator of `source.len() * config.per_digit` examples.
    ///
    /// Fails with [`DataError::Invalid`] if the ranges are invalid, `per_digit` is 0, or the
    /// canvas is empty or overflows.
    pub fn new(source: S, config: AffineConfig) -> Result<Self, DataError> {
        config.ranges.validate()?;
        if config.per_digit == 0 {
            return Err(DataError::Invalid(
                "affine MNIST: per_digit must be at least 1".into(),
            ));
        }
        let set = source.borrow();
        let canvas = canvas_dims(set.dims(), config.canvas)?;
        let len = set.len().checked_mul(config.per_digit).ok_or_else(|| {
            DataError::Invalid(format!(
                "affine MNIST: {} images × {} versions overflows",
                set.len(),
                config.per_digit
            ))
        })?;
        Ok(Self {
            source,
            config,
            canvas,
            len,
        })
    }

    /// Number of examples: source images × `per_digit`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the source is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The settings.
    pub fn config(&self) -> &AffineConfig {
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

    /// The transformation of example `k`.
    ///
    /// Fails with [`DataError::Invalid`] if `k` is out of range.
    pub fn params(&self, k: usize) -> Result<AffineParams, DataError> {
        if k >= self.len {
            return Err(DataError::Invalid(format!(
                "affine-MNIST example {k} out of range for a generator of {} examples",
                self.len
            )));
        }
        let set = self.source();
        let mut rng = Rng::derive(self.config.seed, &[STREAM_AFFINE, k as u64]);
        self.config.ranges.sample(
            &mut rng,
            set.image(k / self.config.per_digit),
            set.dims(),
            self.canvas.height,
            self.canvas.width,
        )
    }

    /// Example `k`, computed from the seed and `k` alone.
    pub fn example(&self, k: usize) -> Result<AffineExample, DataError> {
        let mut out = AffineExample::default();
        self.example_into(k, &mut out)?;
        Ok(out)
    }

    /// Like [`AffineMnist::example`], reusing the image buffer of `out`.
    pub fn example_into(&self, k: usize, out: &mut AffineExample) -> Result<(), DataError> {
        let params = self.params(k)?;
        let set = self.source();
        let i = k / self.config.per_digit;
        out.image.clear();
        out.image.resize(self.canvas.size(), 0);
        warp_into(
            set.image(i),
            set.dims(),
            &params,
            &mut out.image,
            self.canvas.height,
            self.canvas.width,
        )?;
        out.label = set.label(i);
        out.source = i;
        out.params = params;
        Ok(())
    }

    /// The examples `0..n` as an [`ImageSet`] (`n` may not exceed [`AffineMnist::len`]).
    pub fn materialize(&self, n: usize) -> Result<ImageSet, DataError> {
        if n > self.len {
            return Err(DataError::Invalid(format!(
                "cannot materialize {n} affine-MNIST examples from a generator of {}",
                self.len
            )));
        }
        let mut images = Vec::with_capacity(n * self.canvas.size());
        let mut labels = Vec::with_capacity(n);
        let mut ex = AffineExample::default();
        for k in 0..n {
            self.example_into(k, &mut ex)?;
            images.extend_from_slice(&ex.image);
            labels.push(ex.label);
        }
        ImageSet::new(images, labels, self.canvas, self.source().num_classes())
    }
}
