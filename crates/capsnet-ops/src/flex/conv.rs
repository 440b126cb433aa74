//! The convolution as GEMMs over blocks (flex backend), never building the whole im2col matrix.
//!
//! Forward: the transposed im2col matrix `Pᵀ` (one row per (input channel, kernel row, kernel
//! column), one column per output position) is built a block of input channels at a time from
//! the input as it is (`[B, Ci, H, W]`) and multiplied by the weight as it is (`[Co, Ci·KH·KW]`,
//! a column slice per block): `Yᵀ[Co, M] += W[:, blk] · Pᵀ_blk`. No copy of the weight or input.
//!
//! Backward: the input is copied once to channels-last (`[B, H, W, Ci]`), so that the im2col matrix `P`,
//! one row per output position (example, output row, output column) and one column per
//! (kernel tap, input channel), is made of contiguous runs of `Ci` (or `KW·Ci`) input values:
//! plain copies instead of element-wise gathers. The whole `P` of the PrimaryCaps layer is
//! `[32·36, 81·256]` (95 MB at batch 32); it is never built. The taps are cut into blocks whose
//! `P` columns fit in about [`BLOCK_ELEMS`] elements, and each block is used at once:
//!
//! - forward: `Y[M, Co] += P_blk · W[:, blk]ᵀ` (one GEMM per block, summed);
//! - weight gradient: `dW[:, blk] = dYᵀ · P_blk` (one GEMM per block, written in place);
//! - input gradient: `dP_blk = dY · W[:, blk]`, added back (col2im) into `dX`, in parallel over
//!   examples (each example's windows only touch its own slice of `dX`).
//!
//! `W` is used tap-major (`[Co, KH, KW, Ci]`, one copy of the weight per call). The backward pass
//! rebuilds `P_blk` from the saved input instead of keeping it, so memory stays at one block.
//! The GEMM is flex's own (`burn_flex::ops::matmul`, the `gemm` crate), which reads the
//! transposed and column-sliced operands through strides without copying them.

use burn::tensor::Shape;
use burn_flex::FlexTensor;
use burn_flex::ops::matmul::matmul;
use rayon::prelude::*;

use super::{Real, contiguous_slice, tensor};

/// Target size (elements) of one block of im2col columns: 4 MiB in f32, cache-sized.
const BLOCK_ELEMS: usize = 1 << 20;

/// Shapes of one 2-D convolution (no groups, no dilation, symmetric zero padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub batch: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub oh: usize,
    pub ow: usize,
    /// Input channels per forward block (see [`BLOCK_ELEMS`]).
    pub block_channels: usize,
    /// Kernel taps per backward block (see [`BLOCK_ELEMS`]).
    pub block_taps: usize,
}

impl ConvGeometry {
    /// Geometry from the input `[B, Ci, H, W]` and weight `[Co, Ci, KH, KW]` shapes.
    ///
    /// Panics when the shapes do not make a convolution: the public wrapper checks them first.
    pub fn new(x: &[usize], weight: &[usize], stride: [usize; 2], padding: [usize; 2]) -> Self {
        assert_eq!(x.len(), 4, "input must be [batch, channels, height, width]");
        assert_eq!(weight.len(), 4, "weight must be [out, in, kh, kw]");
        assert_eq!(x[1], weight[1], "input channels differ from the weight's");
        let (h, w) = (x[2], x[3]);
        let (kh, kw) = (weight[2], weight[3]);
        assert!(stride[0] > 0 && stride[1] > 0, "stride must be positive");
        assert!(
            h + 2 * padding[0] >= kh && w + 2 * padding[1] >= kw,
            "kernel larger than the padded input"
        );
        let mut g = Self {
            batch: x[0],
            cin: x[1],
            h,
            w,
            cout: weight[0],
            kh,
            kw,
            sh: stride[0],
            sw: stride[1],
            ph: padding[0],
            pw: padding[1],
            oh: (h + 2 * padding[0] - kh) / stride[0] + 1,
            ow: (w + 2 * padding[1] - kw) / stride[1] + 1,
            block_channels: 1,
            block_taps: 1,
        };
        g.block_channels = (BLOCK_ELEMS / (g.taps() * g.positions()).max(1)).clamp(1, g.cin.max(1));
        g.block_taps = (BLOCK_ELEMS / (g.cin * g.positions()).max(1)).clamp(1, g.taps().max(1));
        g
    }

    /// Output positions `M = B · OH · OW` (rows of `P`).
    pub fn positions(&self) -> usize {
        self.batch * self.oh * self.ow
    }

    /// Kernel taps `KH · KW`.
    pub fn taps(&self) -> usize {
        self.kh * self.kw
    }

    /// Reduction length `K = KH · KW · Ci` (columns of `P`).
    pub fn reduction(&self) -> usize {
        self.taps() * self.cin
    }

    /// `(first, end)` input channel of every forward block.
    pub fn channel_blocks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let step = self.block_channels.max(1);
        (0..self.cin)
            .step_by(step)
            .map(move |c0| (c0, (c0 + step).min(self.cin)))
    }

    /// `(first, end)` tap (row-major over `KH × KW`) of every backward block.
    pub fn blocks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let step = self.block_taps.max(1);
        (0..self.taps())
            .step_by(step)
            .map(move |t0| (t0, (t0 + step).min(self.taps())))
    }

    /// Input column read by output column `ow` at kernel column `kw`, if inside the input.
    fn input_col(&self, ow: usize, kw: usize) -> Option<usize> {
        (ow * self.sw + kw)
            .checked_sub(self.pw)
            .filter(|&c| c < self.w)
    }

    /// Input row read by output row `oh` at kernel row `kh`, if inside the input.
    fn input_row(&self, oh: usize, kh: usize) -> Option<usize> {
        (oh * self.sh + kh)
            .checked_sub(self.ph)
            .filter(|&r| r < self.h)
    }

    /// The taps `t0..t1` as runs of one kernel row: `(kh, kw_first, kw_end, column offset)`.
    fn runs(&self, t0: usize, t1: usize) -> Vec<(usize, usize, usize, usize)> {
        let mut runs = Vec::new();
        let mut t = t0;
        while t < t1 {
            let (kh, kw0) = (t / self.kw, t % self.kw);
            let kw1 = (kw0 + (t1 - t)).min(self.kw);
            runs.push((kh, kw0, kw1, (t - t0) * self.cin));
            t += kw1 - kw0;
        }
        runs
    }
}

/// The im2col columns of taps `t0..t1`, `[M, (t1-t0)·Ci]`, from the channels-last input.
pub(crate) fn im2col<T: Real>(xn: &[T], g: &ConvGeometry, t0: usize, t1: usize) -> Vec<T> {
    let kb = (t1 - t0) * g.cin;
    let runs = g.runs(t0, t1);
    let mut col = vec![T::zero(); g.positions() * kb];
    // One task per (example, output row): OW rows of P.
    col.par_chunks_mut(g.ow * kb)
        .enumerate()
        .for_each(|(r, rows)| {
            let (b, oh) = (r / g.oh, r % g.oh);
            for (ow, row) in rows.chunks_mut(kb).enumerate() {
                for &(kh, kw0, kw1, off) in &runs {
                    let Some(ih) = g.input_row(oh, kh) else {
                        continue; // zero padding: the row stays zero
                    };
                    let line = &xn[(b * g.h + ih) * g.w * g.cin..][..g.w * g.cin];
                    let dst = &mut row[off..off + (kw1 - kw0) * g.cin];
                    match (g.input_col(ow, kw0), g.input_col(ow, kw1 - 1)) {
                        // The whole run is inside the input: one contiguous copy.
                        (Some(first), Some(_)) => {
                            dst.copy_from_slice(&line[first * g.cin..][..dst.len()]);
                        }
                        _ => {
                            for (k, chunk) in dst.chunks_mut(g.cin).enumerate() {
                                if let Some(iw) = g.input_col(ow, kw0 + k) {
                                    chunk.copy_from_slice(&line[iw * g.cin..][..g.cin]);
                                }
                            }
                        }
                    }
                }
            }
        });
    col
}

/// Rows `(ci, kh, kw)` for `ci` in `c0..c1` of the im2col matrix, `[(c1-c0)·KH·KW, M]`.
pub(crate) fn im2col_channel_rows<T: Real>(
    x: &[T],
    g: &ConvGeometry,
    c0: usize,
    c1: usize,
) -> Vec<T> {
    let m = g.positions();
    let taps = g.taps();
    let mut col = vec![T::zero(); (c1 - c0) * taps * m];
    col.par_chunks_mut(m).enumerate().for_each(|(r, row)| {
        let ci = c0 + r / taps;
        let (kh, kw) = ((r % taps) / g.kw, r % g.kw);
        for b in 0..g.batch {
            let plane = &x[(b * g.cin + ci) * g.h * g.w..][..g.h * g.w];
            for oh in 0..g.oh {
                let Some(ih) = g.input_row(oh, kh) else {
                    continue;
                };
                let src = &plane[ih * g.w..][..g.w];
                let out = &mut row[(b * g.oh + oh) * g.ow..][..g.ow];
                if g.sw == 1 && g.pw == 0 {
                    out.copy_from_slice(&src[kw..kw + g.ow]);
                } else if g.pw == 0 {
                    // Every column is inside the input: a plain strided gather.
                    for (o, &v) in out.iter_mut().zip(src[kw..].iter().step_by(g.sw)) {
                        *o = v;
                    }
                } else {
                    for (ow, o) in out.iter_mut().enumerate() {
                        if let Some(iw) = g.input_col(ow, kw) {
                            *o = src[iw];
                        }
                    }
                }
            }
        }
    });
    col
}

/// Adds the im2col-shaped gradient of taps `t0..t1` back into `dxn` `[B, H, W, Ci]`.
pub(crate) fn col2im_add<T: Real>(
    dcol: &[T],
    g: &ConvGeometry,
    t0: usize,
    t1: usize,
    dxn: &mut [T],
) {
    let kb = (t1 - t0) * g.cin;
    let runs = g.runs(t0, t1);
    let per_example = g.oh * g.ow * kb;
    dxn.par_chunks_mut(g.h * g.w * g.cin)
        .zip(dcol.par_chunks(per_example))
        .for_each(|(dx, dcol_b)| {
            for (p, row) in dcol_b.chunks(kb).enumerate() {
                let (oh, ow) = (p / g.ow, p % g.ow);
                for &(kh, kw0, kw1, off) in &runs {
                    let Some(ih) = g.input_row(oh, kh) else {
                        continue;
                    };
                    let line = &mut dx[ih * g.w * g.cin..][..g.w * g.cin];
                    let src = &row[off..off + (kw1 - kw0) * g.cin];
                    match (g.input_col(ow, kw0), g.input_col(ow, kw1 - 1)) {
                        (Some(first), Some(_)) => {
                            for (d, &s) in line[first * g.cin..][..src.len()].iter_mut().zip(src) {
                                *d += s;
                            }
                        }
                        _ => {
                            for (k, chunk) in src.chunks(g.cin).enumerate() {
                                if let Some(iw) = g.input_col(ow, kw0 + k) {
                                    for (d, &s) in line[iw * g.cin..][..g.cin].iter_mut().zip(chunk)
                                    {
                                        *d += s;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
}

/// `out += part`, element-wise, in parallel.
pub(crate) fn add_assign<T: Real>(out: &mut [T], part: &[T]) {
    out.par_chunks_mut(1 << 14)
        .zip(part.par_chunks(1 << 14))
        .for_each(|(o, p)| {
            for (a, &b) in o.iter_mut().zip(p) {
                *a += b;
            }
        });
}

/// `[B, Ci, H, W]` → contiguous `[B, H, W, Ci]`.
fn channels_last(x: FlexTensor) -> FlexTensor {
    x.permute(&[0, 2, 3, 1]).to_contiguous()
}

/// `[Co, Ci, KH, KW]` → contiguous tap-major `[Co, KH·KW·Ci]`.
fn tap_major(weight: FlexTensor, g: &ConvGeometry) -> FlexTensor {
    weight
        .permute(&[0, 2, 3, 1])
        .to_contiguous()
        .reshape(Shape::new([g.cout, g.reduction()]))
}

/// `[B, Ci, H, W] ⊛ [Co, Ci, KH, KW] → [B, Co, OH, OW]` (no bias).
pub(crate) fn forward<T: Real>(x: FlexTensor, weight: FlexTensor, g: &ConvGeometry) -> FlexTensor {
    let x = x.to_contiguous();
    let xs = contiguous_slice::<T>(&x);
    let k = g.reduction();
    let w2 = weight.to_contiguous().reshape(Shape::new([g.cout, k]));
    let m = g.positions();
    let mut acc: Option<Vec<T>> = None;
    for (c0, c1) in g.channel_blocks() {
        let rows = (c1 - c0) * g.taps();
        let col = tensor(im2col_channel_rows(xs, g, c0, c1), [rows, m]);
        let part = matmul(w2.narrow(1, c0 * g.taps(), rows), col);
        let part = part.to_contiguous();
        match acc.as_mut() {
            None => acc = Some(contiguous_slice::<T>(&part).to_vec()),
            Some(sum) => add_assign(sum, contiguous_slice::<T>(&part)),
        }
    }
    let yt = tensor(
        acc.expect("at least one input channel"),
        [g.cout, g.batch, g.oh * g.ow],
    );
    yt.permute(&[1, 0, 2])
        .to_contiguous()
        .reshape(Shape::new([g.batch, g.cout, g.oh, g.ow]))
}

/// Gradients of [`forward`] with respect to the input (if `need_x`) and the weight (if
/// `need_weight`), given the output gradient `grad` `[B, Co, OH, OW]`.
pub(crate) fn backward<T: Real>(
    x: FlexTensor,
    weight: FlexTensor,
    grad: FlexTensor,
    g: &ConvGeometry,
    need_x: bool,
    need_weight: bool,
) -> (Option<FlexTensor>, Option<FlexTensor>) {
    let m = g.positions();
    let k = g.reduction();
    // dY: [M, Co], contiguous.
    let dy = grad
        .to_contiguous()
        .reshape(Shape::new([g.batch, g.cout, g.oh * g.ow]))
        .permute(&[0, 2, 1])
        .to_contiguous()
        .reshape(Shape::new([m, g.cout]));
    let xn = need_weight.then(|| channels_last(x));
    let wt = need_x.then(|| tap_major(weight, g));
    let mut dw = need_weight.then(|| vec![T::zero(); g.cout * k]);
    let mut dxn = need_x.then(|| vec![T::zero(); g.batch * g.h * g.w * g.cin]);
    let trace = std::env::var_os("CAPSNET_OPS_TRACE").is_some();
    let mut t = [0f64; 4];
    for (t0, t1) in g.blocks() {
        let kb = (t1 - t0) * g.cin;
        if let (Some(dw), Some(xn)) = (dw.as_mut(), xn.as_ref()) {
            let s0 = std::time::Instant::now();
            let col = tensor(im2col(contiguous_slice::<T>(xn), g, t0, t1), [m, kb]);
            let s1 = std::time::Instant::now();
            let part = matmul(dy.clone().transpose(0, 1), col).to_contiguous();
            let part = contiguous_slice::<T>(&part);
            dw.par_chunks_mut(k)
                .zip(part.par_chunks(kb))
                .for_each(|(dst, src)| dst[t0 * g.cin..t0 * g.cin + kb].copy_from_slice(src));
            t[0] += (s1 - s0).as_secs_f64();
            t[1] += s1.elapsed().as_secs_f64();
        }
        if let (Some(dxn), Some(wt)) = (dxn.as_mut(), wt.as_ref()) {
            let s0 = std::time::Instant::now();
            let dcol = matmul(dy.clone(), wt.narrow(1, t0 * g.cin, kb)).to_contiguous();
            let s1 = std::time::Instant::now();
            col2im_add(contiguous_slice::<T>(&dcol), g, t0, t1, dxn);
            t[2] += (s1 - s0).as_secs_f64();
            t[3] += s1.elapsed().as_secs_f64();
        }
    }
    if trace {
        eprintln!(
            "conv backward {:?}: im2col {:.1} ms, dW GEMM {:.1} ms, dP GEMM {:.1} ms, col2im {:.1} ms",
            (g.batch, g.cin, g.cout),
            t[0] * 1e3,
            t[1] * 1e3,
            t[2] * 1e3,
            t[3] * 1e3
        );
    }
    (
        dxn.map(|d| {
            tensor(d, [g.batch, g.h, g.w, g.cin])
                .permute(&[0, 3, 1, 2])
                .to_contiguous()
        }),
        dw.map(|d| {
            tensor(d, [g.cout, g.kh, g.kw, g.cin])
                .permute(&[0, 3, 1, 2])
                .to_contiguous()
        }),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Direct (six-loop) convolution in f64, the reference for the blocked and spectral ones.
    pub(crate) fn direct(x: &[f64], w: &[f64], g: &ConvGeometry) -> Vec<f64> {
        let mut y = vec![0.0; g.batch * g.cout * g.oh * g.ow];
        for b in 0..g.batch {
            for co in 0..g.cout {
                for oh in 0..g.oh {
                    for ow in 0..g.ow {
                        let mut acc = 0.0;
                        for ci in 0..g.cin {
                            for kh in 0..g.kh {
                                for kw in 0..g.kw {
                                    if let (Some(ih), Some(iw)) =
                                        (g.input_row(oh, kh), g.input_col(ow, kw))
                                    {
                                        acc += x[((b * g.cin + ci) * g.h + ih) * g.w + iw]
                                            * w[((co * g.cin + ci) * g.kh + kh) * g.kw + kw];
                                    }
                                }
                            }
                        }
                        y[((b * g.cout + co) * g.oh + oh) * g.ow + ow] = acc;
                    }
                }
            }
        }
        y
    }

    fn values(n: usize, seed: u64) -> Vec<f64> {
        crate::flex::test_values(n, seed, 1.0)
    }

    #[test]
    fn blocked_forward_matches_the_direct_convolution_with_stride_and_padding() {
        for (stride, padding) in [([1, 1], [0, 0]), ([2, 2], [0, 0]), ([2, 1], [1, 2])] {
            let mut g = ConvGeometry::new(&[3, 5, 9, 8], &[4, 5, 3, 4], stride, padding);
            // Forward blocks of 2 input channels (2, 2, 1): the partial sums are added.
            g.block_channels = 2;
            let x = values(3 * 5 * 9 * 8, 1);
            let w = values(4 * 5 * 3 * 4, 2);
            let y = forward::<f64>(
                tensor(x.clone(), [3, 5, 9, 8]),
                tensor(w.clone(), [4, 5, 3, 4]),
                &g,
            );
            let want = direct(&x, &w, &g);
            let got = y.as_slice::<f64>().unwrap();
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() < 1e-12,
                    "{a} vs {b} ({stride:?}, {padding:?})"
                );
            }
        }
    }

    #[test]
    fn blocks_cover_every_channel_and_tap_once() {
        let g = ConvGeometry::new(&[32, 256, 20, 20], &[256, 256, 9, 9], [2, 2], [0, 0]);
        assert_eq!((g.oh, g.ow), (6, 6));
        let blocks: Vec<_> = g.blocks().collect();
        assert!(blocks.len() > 1, "the PrimaryCaps im2col must be split");
        assert_eq!(blocks.first().unwrap().0, 0);
        assert_eq!(blocks.last().unwrap().1, 81);
        assert!(blocks.windows(2).all(|w| w[0].1 == w[1].0));
        assert!(g.block_taps * g.cin * g.positions() <= BLOCK_ELEMS);
        let channels: Vec<_> = g.channel_blocks().collect();
        assert!(channels.len() > 1, "the forward im2col must be split too");
        assert_eq!((channels[0].0, channels.last().unwrap().1), (0, 256));
        assert!(channels.windows(2).all(|w| w[0].1 == w[1].0));
        assert!(g.block_channels * g.taps() * g.positions() <= BLOCK_ELEMS);
        // Runs split a block at kernel-row ends and cover it in order.
        let runs = g.runs(7, 20);
        assert_eq!(
            runs,
            vec![(0, 7, 9, 0), (1, 0, 9, 2 * 256), (2, 0, 2, 11 * 256)]
        );
    }

    #[test]
    fn backward_is_the_adjoint_of_the_forward() {
        // <dY, conv(x, w)> is linear in x and in w, so its gradients are exactly
        // conv's adjoints: check <dY, conv(δx, w)> = <backward_x(dY), δx>, same for w.
        let (xs, ws) = ([2, 3, 7, 6], [5, 3, 3, 2]);
        let mut g = ConvGeometry::new(&xs, &ws, [2, 1], [1, 0]);
        g.block_taps = 4;
        let n = |s: [usize; 4]| s.iter().product::<usize>();
        let x = values(n(xs), 3);
        let w = values(n(ws), 4);
        let dy = values(g.batch * g.cout * g.oh * g.ow, 5);
        let dir_x = values(n(xs), 6);
        let dir_w = values(n(ws), 7);
        let (dx, dw) = backward::<f64>(
            tensor(x.clone(), xs),
            tensor(w.clone(), ws),
            tensor(dy.clone(), [g.batch, g.cout, g.oh, g.ow]),
            &g,
            true,
            true,
        );
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
        let lhs_x = dot(&dy, &direct(&dir_x, &w, &g));
        let rhs_x = dot(dx.unwrap().as_slice::<f64>().unwrap(), &dir_x);
        assert!((lhs_x - rhs_x).abs() < 1e-10 * lhs_x.abs().max(1.0));
        let lhs_w = dot(&dy, &direct(&x, &dir_w, &g));
        let rhs_w = dot(dw.unwrap().as_slice::<f64>().unwrap(), &dir_w);
        assert!((lhs_w - rhs_w).abs() < 1e-10 * lhs_w.abs().max(1.0));
    }
}
