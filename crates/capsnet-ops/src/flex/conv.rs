//! The convolution as GEMMs over channel blocks (flex backend).
//!
//! `P` is the im2col matrix of the input: one row per (input channel, kernel row, kernel column),
//! one column per output position (example, output row, output column). The whole `P` of the
//! PrimaryCaps layer is `[256·81, 32·36]` (95 MB at batch 32); it is never built. The input
//! channels are cut into blocks whose `P` rows fit in about [`BLOCK_ELEMS`] elements, and each
//! block is used at once:
//!
//! - forward: `Yᵀ[Co, M] += W[:, blk] · P_blk` (one GEMM per block, summed);
//! - weight gradient: `dW[:, blk] = dYᵀ · P_blkᵀ` (one GEMM per block, written in place);
//! - input gradient: `dP_blk = W[:, blk]ᵀ · dYᵀ`, scattered back (col2im) into the block's
//!   channels of `dX`, which no other block touches.
//!
//! The backward pass rebuilds `P_blk` from the saved input instead of keeping it, so memory stays
//! at one block. The GEMM is flex's own (`burn_flex::ops::matmul`, the `gemm` crate), which reads
//! the transposed and column-sliced operands through strides without copying them.

use burn::tensor::{Shape, TensorData};
use burn_flex::FlexTensor;
use burn_flex::ops::matmul::matmul;
use rayon::prelude::*;

use super::Real;

/// Target size (elements) of one block of im2col rows: 4 MiB in f32, cache-sized.
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
        Self {
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
        }
    }

    /// Output positions `M = B · OH · OW` (columns of `P`).
    pub fn positions(&self) -> usize {
        self.batch * self.oh * self.ow
    }

    /// Kernel taps per input channel.
    pub fn taps(&self) -> usize {
        self.kh * self.kw
    }

    /// Input channels per block.
    pub fn block_channels(&self) -> usize {
        (BLOCK_ELEMS / (self.taps() * self.positions()).max(1)).clamp(1, self.cin.max(1))
    }

    /// `(first, end)` input channel of every block.
    pub fn blocks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let step = self.block_channels();
        (0..self.cin)
            .step_by(step)
            .map(move |c0| (c0, (c0 + step).min(self.cin)))
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
}

/// Rows `(ci, kh, kw)` for `ci` in `c0..c1` of the im2col matrix, `[(c1-c0)·KH·KW, M]`.
pub(crate) fn im2col_rows<T: Real>(x: &[T], g: &ConvGeometry, c0: usize, c1: usize) -> Vec<T> {
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

/// Adds the im2col-shaped gradient rows of channels `c0..c1` back into `dx` `[B, Ci, H, W]`.
pub(crate) fn col2im_add<T: Real>(
    dcol: &[T],
    g: &ConvGeometry,
    c0: usize,
    c1: usize,
    dx: &mut [T],
) {
    let m = g.positions();
    let taps = g.taps();
    dx.par_chunks_mut(g.h * g.w)
        .enumerate()
        .filter(|(p, _)| (c0..c1).contains(&(p % g.cin)))
        .for_each(|(p, plane)| {
            let (b, ci) = (p / g.cin, p % g.cin);
            for kh in 0..g.kh {
                for kw in 0..g.kw {
                    let row = &dcol[((ci - c0) * taps + kh * g.kw + kw) * m..][..m];
                    for oh in 0..g.oh {
                        let Some(ih) = g.input_row(oh, kh) else {
                            continue;
                        };
                        let dst = &mut plane[ih * g.w..][..g.w];
                        let src = &row[(b * g.oh + oh) * g.ow..][..g.ow];
                        if g.sw == 1 && g.pw == 0 {
                            for (d, &s) in dst[kw..kw + g.ow].iter_mut().zip(src) {
                                *d += s;
                            }
                        } else if g.pw == 0 {
                            for (d, &s) in dst[kw..].iter_mut().step_by(g.sw).zip(src) {
                                *d += s;
                            }
                        } else {
                            for (ow, &s) in src.iter().enumerate() {
                                if let Some(iw) = g.input_col(ow, kw) {
                                    dst[iw] += s;
                                }
                            }
                        }
                    }
                }
            }
        });
}

fn tensor<T: Real>(data: Vec<T>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape.into()))
}

fn contiguous_slice<T: Real>(t: &FlexTensor) -> &[T] {
    t.as_slice::<T>()
        .expect("capsnet-ops: tensor made contiguous just before")
}

/// `out += part`, element-wise, in parallel.
fn add_assign<T: Real>(out: &mut [T], part: &[T]) {
    out.par_chunks_mut(1 << 14)
        .zip(part.par_chunks(1 << 14))
        .for_each(|(o, p)| {
            for (a, &b) in o.iter_mut().zip(p) {
                *a += b;
            }
        });
}

/// `[B, Ci, H, W] ⊛ [Co, Ci, KH, KW] → [B, Co, OH, OW]` (no bias).
pub(crate) fn forward<T: Real>(x: FlexTensor, weight: FlexTensor, g: &ConvGeometry) -> FlexTensor {
    let x = x.to_contiguous();
    let xs = contiguous_slice::<T>(&x);
    let k = g.cin * g.taps();
    let w2 = weight.to_contiguous().reshape(Shape::new([g.cout, k]));
    let m = g.positions();
    let mut acc: Option<Vec<T>> = None;
    for (c0, c1) in g.blocks() {
        let rows = (c1 - c0) * g.taps();
        let col = tensor(im2col_rows(xs, g, c0, c1), [rows, m]);
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
    let taps = g.taps();
    let k = g.cin * taps;
    // dYᵀ: [Co, M], contiguous.
    let dyt = grad
        .to_contiguous()
        .reshape(Shape::new([g.batch, g.cout, g.oh * g.ow]))
        .permute(&[1, 0, 2])
        .to_contiguous()
        .reshape(Shape::new([g.cout, m]));
    let x = x.to_contiguous();
    let xs = contiguous_slice::<T>(&x);
    let w2 = weight.to_contiguous().reshape(Shape::new([g.cout, k]));
    let mut dw = need_weight.then(|| vec![T::zero(); g.cout * k]);
    let mut dx = need_x.then(|| vec![T::zero(); g.batch * g.cin * g.h * g.w]);
    let trace = std::env::var_os("CAPSNET_OPS_TRACE").is_some();
    let mut t = [0f64; 5];
    for (c0, c1) in g.blocks() {
        let rows = (c1 - c0) * taps;
        if let Some(dw) = dw.as_mut() {
            let s0 = std::time::Instant::now();
            let col = tensor(im2col_rows(xs, g, c0, c1), [rows, m]);
            let s1 = std::time::Instant::now();
            let part = matmul(dyt.clone(), col.transpose(0, 1)).to_contiguous();
            let s2 = std::time::Instant::now();
            let part = contiguous_slice::<T>(&part);
            dw.par_chunks_mut(k)
                .zip(part.par_chunks(rows))
                .for_each(|(dst, src)| dst[c0 * taps..c0 * taps + rows].copy_from_slice(src));
            t[0] += (s1 - s0).as_secs_f64();
            t[1] += (s2 - s1).as_secs_f64();
            t[2] += s2.elapsed().as_secs_f64();
        }
        if let Some(dx) = dx.as_mut() {
            let s0 = std::time::Instant::now();
            let wbt = w2.narrow(1, c0 * taps, rows).transpose(0, 1);
            let dcol = matmul(wbt, dyt.clone()).to_contiguous();
            let s1 = std::time::Instant::now();
            col2im_add(contiguous_slice::<T>(&dcol), g, c0, c1, dx);
            t[3] += (s1 - s0).as_secs_f64();
            t[4] += s1.elapsed().as_secs_f64();
        }
    }
    if trace {
        eprintln!(
            "conv bwd {:?}: im2col {:.1} dW-gemm {:.1} dW-copy {:.1} dcol-gemm {:.1} col2im {:.1} ms",
            (g.cin, g.cout, g.batch),
            t[0] * 1e3,
            t[1] * 1e3,
            t[2] * 1e3,
            t[3] * 1e3,
            t[4] * 1e3
        );
    }
    (
        dx.map(|d| tensor(d, [g.batch, g.cin, g.h, g.w])),
        dw.map(|d| tensor(d, [g.cout, g.cin, g.kh, g.kw])),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct (six-loop) convolution in f64, the reference for the blocked one.
    fn direct(x: &[f64], w: &[f64], g: &ConvGeometry) -> Vec<f64> {
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
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
            })
            .collect()
    }

    #[test]
    fn blocked_forward_matches_the_direct_convolution_with_stride_and_padding() {
        for (stride, padding) in [([1, 1], [0, 0]), ([2, 2], [0, 0]), ([2, 1], [1, 2])] {
            let g = ConvGeometry::new(&[3, 5, 9, 8], &[4, 5, 3, 4], stride, padding);
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
    fn blocks_cover_every_channel_once() {
        let g = ConvGeometry::new(&[32, 256, 20, 20], &[256, 256, 9, 9], [2, 2], [0, 0]);
        assert_eq!((g.oh, g.ow), (6, 6));
        let blocks: Vec<_> = g.blocks().collect();
        assert!(blocks.len() > 1, "the PrimaryCaps im2col must be split");
        assert_eq!(blocks.first().unwrap().0, 0);
        assert_eq!(blocks.last().unwrap().1, 256);
        assert!(blocks.windows(2).all(|w| w[0].1 == w[1].0));
        assert!(g.block_channels() * g.taps() * g.positions() <= BLOCK_ELEMS);
    }

    #[test]
    fn backward_is_the_adjoint_of_the_forward() {
        // <dY, conv(x, w)> is linear in x and in w, so its gradients are exactly
        // conv's adjoints: check <dY, conv(δx, w)> = <backward_x(dY), δx>, same for w.
        let (xs, ws) = ([2, 3, 7, 6], [5, 3, 3, 2]);
        let g = ConvGeometry::new(&xs, &ws, [2, 1], [1, 0]);
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
