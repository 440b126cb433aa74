//! The convolution in the frequency domain (flex backend): fewer FLOPs for wide, large-kernel
//! layers such as PrimaryCaps (256 → 256 channels, 9×9, stride 2).
//!
//! A strided "valid" convolution (cross-correlation) is the stride-1 correlation
//! `z[i'] = Σ_u xp[i'+u]·w[u]` of the zero-padded input `xp`, read at `i' = s·i`. On a grid of
//! `N = s·(O−1) + K` points (per axis) no index the output reads wraps around, so the circular
//! correlation equals the linear one there, and by the correlation theorem its DFT is
//! `X̂·conj(Ŵ)`, bin by bin. Summed over input channels, every frequency bin is one small
//! complex matrix product `[B, Ci]·[Ci, Co]`; with the half spectrum of real data along the
//! second axis there are `N₁·(⌊N₂/2⌋+1)` bins (190 for PrimaryCaps, against 81 taps × 36
//! positions for the direct product: 3.8× fewer multiply-adds in the channel mixing).
//!
//! - forward: `Ŷ = X̂·conj(Ŵ)`, read back at the strided output positions;
//! - input gradient: `dX̂ = dẐ·Ŵ` (a full convolution of the zero-upsampled output gradient
//!   `dz` with `w`), read back at the input positions;
//! - weight gradient: `dŴ = Σ_b conj(dẐ)·X̂` (the correlation of `dz` with `xp`), read back at
//!   the kernel taps.
//!
//! Each is exact in exact arithmetic (the unit tests compare with the direct convolution and
//! check the adjoint identities in f64); in f32 the transforms add rounding of the order of
//! 1e-7 relative to the summed magnitudes.
//!
//! The DFTs are dense (precomputed cosine/sine tables; the sizes are small and odd, so there
//! is no FFT to gain), separable, and run as batched GEMMs: one axis as real products, the
//! other as complex products written as real matrices `[[c, s], [−s, c]]`. Spectra are laid out
//! `[k₂][k₁][re, im][image]`, so every bin is a contiguous `[2·P, Q]` matrix and every stage
//! reads the previous one through a strided view, without a copy. All products are flex's own
//! GEMM (`burn_flex::ops::matmul`), as in [`super::conv`].

use burn::tensor::Shape;
use burn_flex::ops::matmul::matmul;
use burn_flex::{FlexTensor, Layout as FlexLayout};
use rayon::prelude::*;

use super::conv::{ConvGeometry, add_assign};
use super::{Real, contiguous_slice, tensor};

/// The frequency grid of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Grid rows `N₁ = s_h·(OH−1) + KH` (the padded input rows the output reads).
    pub n1: usize,
    /// Grid columns `N₂ = s_w·(OW−1) + KW`.
    pub n2: usize,
    /// Half-spectrum columns `⌊N₂/2⌋ + 1`.
    pub f2: usize,
}

impl Plan {
    pub fn new(g: &ConvGeometry) -> Self {
        let n1 = g.sh * (g.oh - 1) + g.kh;
        let n2 = g.sw * (g.ow - 1) + g.kw;
        Self {
            n1,
            n2,
            f2: n2 / 2 + 1,
        }
    }

    /// Frequency bins `N₁ · F₂`.
    pub fn bins(&self) -> usize {
        self.n1 * self.f2
    }

    /// Multiply-adds ×2 of [`forward_dft`] on `images` images of `rows × cols` used points.
    fn dft_flops(&self, images: usize, rows: usize, cols: usize) -> usize {
        4 * self.f2 * cols * rows * images + 8 * self.f2 * self.n1 * rows * images
    }

    /// Multiply-adds ×2 of [`inverse_dft`] to `rows × cols` points of `images` images.
    fn idft_flops(&self, images: usize, rows: usize, cols: usize) -> usize {
        8 * self.f2 * self.n1 * rows * images + 4 * rows * cols * self.f2 * images
    }
}

/// Input rows and columns a convolution reads (the rest never reaches the output).
fn used_input(g: &ConvGeometry, p: &Plan) -> (usize, usize) {
    (
        g.h.min(p.n1.saturating_sub(g.ph)),
        g.w.min(p.n2.saturating_sub(g.pw)),
    )
}

/// Estimated FLOPs of the spectral forward and of the direct (GEMM) forward; the backward
/// scales alike. Used to pick the algorithm per layer.
pub(crate) fn forward_flops(g: &ConvGeometry) -> (usize, usize) {
    let p = Plan::new(g);
    let (rows, cols) = used_input(g, &p);
    let spectral = p.dft_flops(g.batch * g.cin, rows, cols)
        + p.dft_flops(g.cout * g.cin, g.kh, g.kw)
        + 8 * g.batch * g.cin * g.cout * p.bins()
        + p.idft_flops(g.batch * g.cout, g.oh, g.ow);
    let direct = 2 * g.positions() * g.cout * g.reduction();
    (spectral, direct)
}

/// Sampled points along one axis: `count` points at grid positions `offset + i·step`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Axis {
    pub count: usize,
    pub offset: usize,
    pub step: usize,
}

impl Axis {
    fn pos(&self, i: usize) -> f64 {
        (self.offset + i * self.step) as f64
    }
}

/// A strided view of the contiguous tensor `t`: element `idx` at
/// `offset + Σ idx[d]·strides[d]` of its storage, checked to stay inside it (flex's GEMM reads
/// views through raw strides).
fn view<T: Real>(t: &FlexTensor, shape: &[usize], strides: &[usize], offset: usize) -> FlexTensor {
    let layout = t.layout();
    assert!(
        layout.is_contiguous(),
        "spectral view of a non-contiguous tensor"
    );
    let offset = layout.start_offset() + offset;
    let last = offset
        + shape
            .iter()
            .zip(strides)
            .map(|(&n, &s)| n.saturating_sub(1) * s)
            .sum::<usize>();
    assert!(
        shape.iter().all(|&n| n > 0) && last < t.storage::<T>().len(),
        "spectral view {shape:?}/{strides:?}+{offset} outside {} elements",
        t.storage::<T>().len()
    );
    let strides = strides.iter().map(|&s| s as isize).collect();
    t.clone().with_layout(FlexLayout::new(
        Shape::from(shape.to_vec()),
        strides,
        offset,
    ))
}

fn angle(k: usize, pos: f64, n: usize) -> f64 {
    std::f64::consts::TAU * k as f64 * pos / n as f64
}

fn cast<T: Real>(v: f64) -> T {
    T::from(v).expect("f64 table value fits the kernel type")
}

/// The half spectrum of real images `src` `[images, H, W]`, `[F₂, N₁·2, images]` (bin
/// `(k₂, k₁)`, then re/im), from their first `rows.count × cols.count` points, which sit at the
/// grid positions of `rows` × `cols` (every other grid point is zero).
pub(crate) fn forward_dft<T: Real>(
    src: &FlexTensor,
    rows: Axis,
    cols: Axis,
    p: &Plan,
) -> FlexTensor {
    let n_img = src.layout().shape()[0];
    let (nr, nc, f2, n1) = (rows.count, cols.count, p.f2, p.n1);
    if nr == 0 || nc == 0 {
        return tensor(vec![T::zero(); f2 * n1 * 2 * n_img], [f2, 2 * n1, n_img]);
    }
    // Along the columns (real → complex), batched over rows r:
    // t1[r][(ri, k2)][img] = Σ_c A[(ri, k2)][c] · x[img][r][c], A = [cos; −sin].
    let mut a = vec![T::zero(); 2 * f2 * nc];
    for k2 in 0..f2 {
        for c in 0..nc {
            let t = angle(k2, cols.pos(c), p.n2);
            a[k2 * nc + c] = cast(t.cos());
            a[(f2 + k2) * nc + c] = cast(-t.sin());
        }
    }
    let x = src
        .clone()
        .narrow(1, 0, nr)
        .narrow(2, 0, nc)
        .permute(&[1, 2, 0]); // [r, c, img], strided
    let t1 = matmul(tensor(a, [1, 2 * f2, nc]), x); // [r, (ri, k2), img]
    // Along the rows (complex → complex), batched over k2:
    // out[k2][(k1, ri)][img] = B[(k1, ri)][(r, ri')] · t1[r][ri'][k2][img], with
    // B = [[cos, sin], [−sin, cos]] (the real form of multiplying by e^{−iθ}). For a fixed k2
    // the rows (r, ri') of t1 are evenly spaced (r's stride is twice ri's), so this is a view.
    let mut b = vec![T::zero(); 2 * n1 * 2 * nr];
    for k1 in 0..n1 {
        for r in 0..nr {
            let t = angle(k1, rows.pos(r), n1);
            let (c, s) = (cast::<T>(t.cos()), cast::<T>(t.sin()));
            let re = (2 * k1) * 2 * nr;
            let im_row = (2 * k1 + 1) * 2 * nr;
            b[re + 2 * r] = c;
            b[re + 2 * r + 1] = s;
            b[im_row + 2 * r] = -s;
            b[im_row + 2 * r + 1] = c;
        }
    }
    let t1 = t1
        .reshape(Shape::new([2 * nr, f2, n_img]))
        .permute(&[1, 0, 2]); // [k2, (r, ri'), img]
    matmul(tensor(b, [1, 2 * n1, 2 * nr]), t1)
}

/// A matrix `[m, n]` as `[1, m, n]`, to multiply a batch of matrices.
fn batch_of_one(t: FlexTensor) -> FlexTensor {
    let shape = t.layout().shape().to_vec();
    t.reshape(Shape::new([1, shape[0], shape[1]]))
}

/// The inverse DFT along k1 to the points of `rows`, as a real `[(ri, r), (k1, ri')]` matrix:
/// multiplying by e^{+iθ}, i.e. `[[cos, −sin], [sin, cos]]`.
fn inverse_rows<T: Real>(rows: Axis, n1: usize) -> FlexTensor {
    let nr = rows.count;
    let mut b = vec![T::zero(); 2 * nr * 2 * n1];
    for r in 0..nr {
        for k1 in 0..n1 {
            let t = angle(k1, rows.pos(r), n1);
            let (c, s) = (cast::<T>(t.cos()), cast::<T>(t.sin()));
            let re = r * 2 * n1;
            let im_row = (nr + r) * 2 * n1;
            b[re + 2 * k1] = c;
            b[re + 2 * k1 + 1] = -s;
            b[im_row + 2 * k1] = s;
            b[im_row + 2 * k1 + 1] = c;
        }
    }
    tensor(b, [2 * nr, 2 * n1])
}

/// The inverse real DFT from the half spectrum along k2 to the points of `cols`, as a real
/// `[c, (k2, ri)]` matrix: `α_k2/(N₁N₂)·[cos, −sin]`, α = 1 for the bins that are their own
/// mirror image (k2 = 0 and, for even N₂, N₂/2), else 2.
fn inverse_cols<T: Real>(cols: Axis, p: &Plan) -> FlexTensor {
    let (nc, f2) = (cols.count, p.f2);
    let scale = 1.0 / (p.n1 * p.n2) as f64;
    let mut a = vec![T::zero(); nc * 2 * f2];
    for c in 0..nc {
        for k2 in 0..f2 {
            let alpha = if k2 == 0 || 2 * k2 == p.n2 { 1.0 } else { 2.0 };
            let t = angle(k2, cols.pos(c), p.n2);
            a[c * 2 * f2 + 2 * k2] = cast(alpha * scale * t.cos());
            a[c * 2 * f2 + 2 * k2 + 1] = cast(-alpha * scale * t.sin());
        }
    }
    tensor(a, [nc, 2 * f2])
}

/// Real images `[images, rows.count, cols.count]` from a half spectrum `[F₂, N₁·2, images]`
/// (that of real data), at the grid positions of `rows` × `cols`.
pub(crate) fn inverse_dft<T: Real>(
    spec: FlexTensor,
    rows: Axis,
    cols: Axis,
    p: &Plan,
) -> FlexTensor {
    let n_img = spec.layout().shape()[2];
    let (nr, nc, f2, n1) = (rows.count, cols.count, p.f2, p.n1);
    if nr == 0 || nc == 0 {
        return tensor(vec![T::zero(); n_img * nr * nc], [n_img, nr, nc]);
    }
    // Along k1 (complex → complex), batched over k2:
    // z[k2][(ri, r)][img] = B[(ri, r)][(k1, ri')] · spec[k2][(k1, ri')][img].
    let z = matmul(batch_of_one(inverse_rows::<T>(rows, n1)), spec); // [k2, (ri, r), img]
    // Along k2 (half spectrum → real), batched over r: x[c] = Σ_(k2, ri) A[c][(k2, ri)] ·
    // z[k2][ri][r]. For a fixed r the rows (k2, ri) of z are evenly spaced.
    let z = z
        .reshape(Shape::new([2 * f2, nr, n_img]))
        .permute(&[1, 0, 2]); // [r, (k2, ri), img]
    matmul(batch_of_one(inverse_cols::<T>(cols, p)), z) // [r, c, img]
        .permute(&[2, 0, 1])
        .to_contiguous()
}

/// The spectra's geometry for one convolution: images and sampled points of each tensor.
struct Layout {
    plan: Plan,
    x_rows: Axis,
    x_cols: Axis,
    y_rows: Axis,
    y_cols: Axis,
    w_rows: Axis,
    w_cols: Axis,
}

impl Layout {
    fn new(g: &ConvGeometry) -> Self {
        let plan = Plan::new(g);
        let (rows, cols) = used_input(g, &plan);
        Self {
            plan,
            x_rows: Axis {
                count: rows,
                offset: g.ph,
                step: 1,
            },
            x_cols: Axis {
                count: cols,
                offset: g.pw,
                step: 1,
            },
            y_rows: Axis {
                count: g.oh,
                offset: 0,
                step: g.sh,
            },
            y_cols: Axis {
                count: g.ow,
                offset: 0,
                step: g.sw,
            },
            w_rows: Axis {
                count: g.kh,
                offset: 0,
                step: 1,
            },
            w_cols: Axis {
                count: g.kw,
                offset: 0,
                step: 1,
            },
        }
    }

    fn x_spectrum<T: Real>(&self, x: &FlexTensor, g: &ConvGeometry) -> FlexTensor {
        let x = x.clone().reshape(Shape::new([g.batch * g.cin, g.h, g.w]));
        forward_dft::<T>(&x, self.x_rows, self.x_cols, &self.plan)
    }

    /// The weight's spectra, `[Co, bins, 2, Ci]`: one output channel at a time (its `Ci`
    /// kernels, a few hundred KB, stay in cache), in parallel over output channels.
    fn w_spectrum<T: Real>(&self, w: &FlexTensor, g: &ConvGeometry) -> FlexTensor {
        let per_out = self.plan.bins() * 2 * g.cin;
        let kernel = g.kh * g.kw;
        let mut out = vec![T::zero(); g.cout * per_out];
        out.par_chunks_mut(per_out)
            .enumerate()
            .for_each(|(o, chunk)| {
                let kernels = view::<T>(
                    w,
                    &[g.cin, g.kh, g.kw],
                    &[kernel, g.kw, 1],
                    o * g.cin * kernel,
                );
                let spec = forward_dft::<T>(&kernels, self.w_rows, self.w_cols, &self.plan);
                chunk.copy_from_slice(contiguous_slice::<T>(&spec));
            });
        tensor(out, [g.cout, self.plan.bins(), 2, g.cin])
    }

    /// The weight gradient `[Co, Ci, KH, KW]` from the spectra of the output gradient `dz`
    /// (`[bins, 2B, Co]`) and of the input `xs` (`[bins, 2B, Ci]`): per bin
    /// `dŴ = Σ_b conj(dẐ)·X̂`, i.e. `dWr = dZrᵀXr + dZiᵀXi` and `dWi = dZrᵀXi − dZiᵀXr`
    /// (`[Co, Ci]` each), taken back to the kernel taps. One
    /// column `k₂` of bins at a time: its `N₁` products, then at once the inverse DFT along
    /// `k₁` to the kernel rows; so the whole gradient spectrum (`bins·2·Co·Ci` values) never
    /// exists, only its `KH` rows per column. Last, the sum along `k₂` to the kernel columns.
    fn w_grad<T: Real>(&self, x: &FlexTensor, dy: &FlexTensor, g: &ConvGeometry) -> FlexTensor {
        let (co, ci) = (g.cout, g.cin);
        let (n1, f2) = (self.plan.n1, self.plan.f2);
        let (kh, kw) = (g.kh, g.kw);
        let img = co * ci;
        // Along k1 → kernel row u ([(ri, u), (k1, ri')]).
        let rows_of = inverse_rows::<T>(self.w_rows, n1);
        // z[k2][(ri, u)][(o, c)]: the gradient spectrum taken back to kernel rows.
        let mut z = vec![T::zero(); f2 * 2 * kh * img];
        // The batch a chunk at a time (the spectra of a chunk's input and output gradient),
        // its share of every column added into z.
        for (b0, gc) in batch_chunks(g) {
            let b = gc.batch;
            let xs = self.per_bin(
                self.x_spectrum::<T>(&x.clone().narrow(0, b0, b), &gc),
                b,
                ci,
            );
            let dz = self.dz_spectrum::<T>(&dy.clone().narrow(0, b0, b), &gc);
            let dz = contiguous_slice::<T>(&dz);
            for (k2, z) in z.chunks_mut(2 * kh * img).enumerate() {
                // Qᵀ = [[dZrᵀ, dZiᵀ], [−dZiᵀ, dZrᵀ]] ([2Co, 2B]) for the column's bins, so
                // that Qᵀ·[Xr; Xi] = [dWr; dWi].
                let mut q = vec![T::zero(); n1 * 4 * co * b];
                let src = &dz[k2 * n1 * 2 * b * co..][..n1 * 2 * b * co];
                q.par_chunks_mut(4 * co * b)
                    .zip(src.par_chunks(2 * b * co))
                    .for_each(|(q, d)| {
                        let (dr, di) = d.split_at(b * co);
                        for o in 0..co {
                            for bi in 0..b {
                                let (r, i) = (dr[bi * co + o], di[bi * co + o]);
                                q[o * 2 * b + bi] = r;
                                q[o * 2 * b + b + bi] = i;
                                q[(co + o) * 2 * b + bi] = -i;
                                q[(co + o) * 2 * b + b + bi] = r;
                            }
                        }
                    });
                let q = tensor(q, [n1, 2 * co, 2 * b]);
                let xk = xs.clone().narrow(0, k2 * n1, n1); // [N₁, 2B, Ci]
                let spec = matmul(q, xk).reshape(Shape::new([2 * n1, img])); // [(k1, ri), (o, c)]
                let rows = matmul(rows_of.clone(), spec);
                add_assign(z, contiguous_slice::<T>(&rows));
            }
        }
        // Along k2 → kernel column v, batched over rows u: out[u][v][img] =
        // Σ_(k2, ri) A[v][(k2, ri)]·z[k2][ri][u][img].
        let z = tensor(z, [2 * f2 * kh * img]);
        let zv = view::<T>(&z, &[kh, 2 * f2, img], &[img, kh * img, 1], 0);
        matmul(batch_of_one(inverse_cols::<T>(self.w_cols, &self.plan)), zv) // [KH, KW, (o, c)]
            .permute(&[2, 0, 1])
            .to_contiguous()
            .reshape(Shape::new([co, ci, kh, kw]))
    }

    /// The output gradient's spectrum, `[bins, 2B, Co]` (`dy` placed at the strided output
    /// positions of the grid).
    fn dz_spectrum<T: Real>(&self, dy: &FlexTensor, g: &ConvGeometry) -> FlexTensor {
        let dy = dy
            .clone()
            .reshape(Shape::new([g.batch * g.cout, g.oh, g.ow]));
        let dz = forward_dft::<T>(&dy, self.y_rows, self.y_cols, &self.plan);
        self.per_bin(dz, g.batch, g.cout)
    }

    /// Spectrum `[F₂, N₁·2, P·Q]` as one `[2P, Q]` matrix per bin.
    fn per_bin(&self, spec: FlexTensor, p: usize, q: usize) -> FlexTensor {
        spec.reshape(Shape::new([self.plan.bins(), 2 * p, q]))
    }
}

/// The weight's spectrum `[Co, bins, 2, Ci]` (see [`forward`]); `w` contiguous.
pub(crate) fn weight_spectrum<T: Real>(w: &FlexTensor, g: &ConvGeometry) -> FlexTensor {
    let mut trace = Trace::new();
    let ws = Layout::new(g).w_spectrum::<T>(w, g);
    trace.mark("w DFT");
    trace.print("spectral weight", g);
    ws
}

/// Weight spectra of the latest inference calls, each with a handle on its weight's storage.
///
/// Holding that handle keeps the storage alive and shared, so flex never updates it in place
/// (its in-place paths copy shared storage first): while an entry exists, the same storage
/// means the same weight values. An entry whose weight nobody else holds any more is dropped.
struct CachedSpectrum {
    weight: FlexTensor,
    plan: Plan,
    spectrum: FlexTensor,
}

static CACHE: std::sync::Mutex<Vec<CachedSpectrum>> = std::sync::Mutex::new(Vec::new());

/// Weight spectra kept for inference (one per layer of a network is enough).
const CACHE_ENTRIES: usize = 4;

/// The weight's spectrum for an inference call: computed once per weight and reused while
/// the same, unchanged weight storage comes back (a trained network's layers, batch after
/// batch); `compute` makes it on a miss. Training passes go through [`weight_spectrum`]
/// directly. The weight's layout (so its shape) and dtype are part of the key, with the grid.
pub(crate) fn cached_weight_spectrum(
    w: &FlexTensor,
    g: &ConvGeometry,
    compute: impl FnOnce() -> FlexTensor,
) -> FlexTensor {
    let data = w.data_arc();
    let plan = Plan::new(g);
    let same = |c: &CachedSpectrum| {
        std::sync::Arc::ptr_eq(&c.weight.data_arc(), &data)
            && c.weight.layout() == w.layout()
            && c.weight.dtype() == w.dtype()
            && c.plan == plan
    };
    let lock = || {
        CACHE
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    };
    {
        let mut cache = lock();
        // The entry's own handle, plus the temporary one `data_arc` makes: nobody else.
        cache.retain(|c| std::sync::Arc::strong_count(&c.weight.data_arc()) > 2);
        if let Some(c) = cache.iter().find(|c| same(c)) {
            return c.spectrum.clone();
        }
    }
    let spectrum = compute();
    let mut cache = lock();
    cache.insert(
        0,
        CachedSpectrum {
            weight: w.clone(),
            plan,
            spectrum: spectrum.clone(),
        },
    );
    cache.truncate(CACHE_ENTRIES);
    spectrum
}

/// Largest batch-sized spectrum (`bins·2·chunk·channels` values) made at once: 3 Mi values,
/// 12 MiB in f32, which is 32 examples of the paper's PrimaryCaps layer (the peak memory in
/// results/bench was measured with that) and a whole batch of 64 of the quickstart's.
const CHUNK_VALUES: usize = 3 << 20;

/// Examples per chunk of the batch: the spectra of the input, the output and their gradients
/// are made a chunk at a time, which bounds memory at large batches (the products' shapes barely
/// change). Chunks are as even as possible.
pub(crate) fn chunk_examples(g: &ConvGeometry) -> usize {
    // The unit tests use a small bound, so that their small shapes run in several chunks.
    let limit = if cfg!(test) { 1 << 9 } else { CHUNK_VALUES };
    chunk_examples_within(g, limit)
}

fn chunk_examples_within(g: &ConvGeometry, limit: usize) -> usize {
    let per_example = Plan::new(g).bins() * 2 * g.cin.max(g.cout);
    let most = (limit / per_example.max(1)).max(1);
    let chunks = g.batch.div_ceil(most).max(1);
    g.batch.div_ceil(chunks).max(1)
}

/// The batch's chunks ([`chunk_examples`]): first example and the chunk's geometry.
fn batch_chunks(g: &ConvGeometry) -> impl Iterator<Item = (usize, ConvGeometry)> + '_ {
    let chunk = chunk_examples(g);
    (0..g.batch).step_by(chunk).map(move |b0| {
        let batch = chunk.min(g.batch - b0);
        (b0, ConvGeometry { batch, ..*g })
    })
}

/// `f` on the batch `[B, …]` of `t` a chunk at a time (with the chunk's geometry), the results
/// `[n, …]` concatenated along the batch.
fn by_chunks<T: Real>(
    t: &FlexTensor,
    g: &ConvGeometry,
    f: impl Fn(&FlexTensor, &ConvGeometry) -> FlexTensor,
) -> FlexTensor {
    if g.batch <= chunk_examples(g) {
        return f(t, g);
    }
    let parts: Vec<_> = batch_chunks(g)
        .map(|(b0, gc)| f(&t.clone().narrow(0, b0, gc.batch), &gc))
        .collect();
    let mut shape = parts[0].layout().shape().to_vec();
    shape[0] = g.batch;
    let mut out = Vec::with_capacity(shape.iter().product());
    for part in &parts {
        out.extend_from_slice(contiguous_slice::<T>(part));
    }
    tensor(out, shape)
}

/// `[B, Ci, H, W] ⊛ [Co, Ci, KH, KW] → [B, Co, OH, OW]` (no bias), through the spectra: `x`
/// contiguous, `ws` the weight's [`weight_spectrum`].
pub(crate) fn forward<T: Real>(x: &FlexTensor, ws: &FlexTensor, g: &ConvGeometry) -> FlexTensor {
    by_chunks::<T>(x, g, |x, g| forward_chunk::<T>(x, ws, g))
}

fn forward_chunk<T: Real>(x: &FlexTensor, ws: &FlexTensor, g: &ConvGeometry) -> FlexTensor {
    let lay = Layout::new(g);
    let (b, ci, co) = (g.batch, g.cin, g.cout);
    let mut trace = Trace::new();
    let xs = lay.per_bin(lay.x_spectrum::<T>(x, g), b, ci); // [bins, 2B, Ci]: [Xr; Xi]
    trace.mark("x DFT");
    // Per bin: Pr = [Xr; Xi]·Wrᵀ and Pi = [Xr; Xi]·Wiᵀ ([2B, Co] each), then
    // Ŷ = X̂·conj(Ŵ): Yr = XrWrᵀ + XiWiᵀ, Yi = XiWrᵀ − XrWiᵀ, laid out [Yr; Yi] ([2B, Co]).
    let bins = lay.plan.bins();
    let [mut pr, pi] = [0, 1].map(|ri| {
        let wt = view::<T>(ws, &[bins, ci, co], &[2 * ci, 1, bins * 2 * ci], ri * ci);
        matmul(xs.clone(), wt)
    });
    drop(xs);
    trace.mark("products");
    complex_combine::<T>(&mut pr, &pi, b * co, T::one());
    drop(pi);
    let ys = pr.reshape(Shape::new([lay.plan.f2, 2 * lay.plan.n1, b * co]));
    trace.mark("combine");
    let y = inverse_dft::<T>(ys, lay.y_rows, lay.y_cols, &lay.plan)
        .reshape(Shape::new([b, co, g.oh, g.ow]));
    trace.mark("y inverse DFT");
    trace.print("spectral forward", g);
    y
}

/// Per bin, with `p = [Pt; Pb]` and `c = [Ct; Cb]` (halves of `half` elements):
/// `p ← [Pt + sign·Cb; Pb − sign·Ct]`, in place: the real and imaginary parts of a complex
/// product assembled from its four real products.
fn complex_combine<T: Real>(p: &mut FlexTensor, c: &FlexTensor, half: usize, sign: T) {
    let c = contiguous_slice::<T>(c);
    let p = p.storage_mut::<T>();
    assert_eq!(p.len(), c.len(), "complex_combine: operands differ in size");
    p.par_chunks_mut(2 * half)
        .zip(c.par_chunks(2 * half))
        .for_each(|(p, c)| {
            let (pt, pb) = p.split_at_mut(half);
            let (ct, cb) = c.split_at(half);
            for k in 0..half {
                pt[k] += sign * cb[k];
                pb[k] -= sign * ct[k];
            }
        });
}

/// Times of the parts of one call, printed when `CAPSNET_OPS_TRACE` is set.
pub(crate) struct Trace {
    on: bool,
    last: std::time::Instant,
    parts: Vec<(&'static str, f64)>,
}

impl Trace {
    pub fn new() -> Self {
        Self {
            on: std::env::var_os("CAPSNET_OPS_TRACE").is_some(),
            last: std::time::Instant::now(),
            parts: Vec::new(),
        }
    }

    pub fn mark(&mut self, part: &'static str) {
        if self.on {
            if std::env::var_os("CAPSNET_OPS_HWM").is_some() {
                let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
                let grab = |k: &str| {
                    status
                        .lines()
                        .find(|l| l.starts_with(k))
                        .unwrap_or("")
                        .to_string()
                };
                eprintln!("  {part}: {} {}", grab("VmRSS"), grab("VmHWM"));
            }
            let now = std::time::Instant::now();
            self.parts
                .push((part, (now - self.last).as_secs_f64() * 1e3));
            self.last = now;
        }
    }

    pub fn print(&self, what: &str, g: &ConvGeometry) {
        if self.on {
            let parts: Vec<String> = self
                .parts
                .iter()
                .map(|(p, ms)| format!("{p} {ms:.1} ms"))
                .collect();
            eprintln!(
                "{what} {:?}: {}",
                (g.batch, g.cin, g.cout),
                parts.join(", ")
            );
        }
    }
}

/// Gradients of [`forward`] with respect to the input (if `need_x`; `ws`, the weight's
/// spectrum, must then be given) and the weight (if `need_w`), given the output gradient `dy`
/// `[B, Co, OH, OW]`. `x` and `dy` contiguous.
pub(crate) fn backward<T: Real>(
    x: &FlexTensor,
    ws: Option<FlexTensor>,
    dy: &FlexTensor,
    g: &ConvGeometry,
    need_x: bool,
    need_w: bool,
) -> (Option<FlexTensor>, Option<FlexTensor>) {
    let lay = Layout::new(g);
    let mut trace = Trace::new();
    let dx = need_x.then(|| {
        let ws = ws.expect("the input gradient needs the weight spectrum");
        let dx = by_chunks::<T>(dy, g, |dy, g| input_grad_chunk::<T>(dy, &ws, g));
        drop(ws); // the weight spectrum is not needed any more: free it before dŴ
        dx
    });
    trace.mark("input gradient");
    let dw = need_w.then(|| {
        let dw = lay.w_grad::<T>(x, dy, g);
        trace.mark("weight gradient");
        dw
    });
    trace.print("spectral backward", g);
    (dx, dw)
}

/// `∂x` of [`forward`] for one chunk of the batch.
fn input_grad_chunk<T: Real>(dy: &FlexTensor, ws: &FlexTensor, g: &ConvGeometry) -> FlexTensor {
    let lay = Layout::new(g);
    let (b, ci) = (g.batch, g.cin);
    let bins = lay.plan.bins();
    let co = g.cout;
    let dz = lay.dz_spectrum::<T>(dy, g);
    // dX̂ = dẐ·Ŵ per bin: A = [dZr; dZi]·Wr, C = [dZr; dZi]·Wi, then
    // dXr = dZr·Wr − dZi·Wi, dXi = dZi·Wr + dZr·Wi.
    let [mut a, c] = [0, 1].map(|ri| {
        let wh = view::<T>(ws, &[bins, co, ci], &[2 * ci, bins * 2 * ci, 1], ri * ci);
        matmul(dz.clone(), wh)
    });
    complex_combine::<T>(&mut a, &c, b * ci, -T::one());
    drop(c);
    let dxs = a.reshape(Shape::new([lay.plan.f2, 2 * lay.plan.n1, b * ci]));
    let (rows, cols) = (lay.x_rows, lay.x_cols);
    let part = inverse_dft::<T>(dxs, rows, cols, &lay.plan);
    if (rows.count, cols.count) == (g.h, g.w) {
        return part.reshape(Shape::new([b, ci, g.h, g.w]));
    }
    // Input points the convolution never reads keep a zero gradient.
    let part = contiguous_slice::<T>(&part);
    let mut dx = vec![T::zero(); b * ci * g.h * g.w];
    dx.par_chunks_mut(g.h * g.w)
        .zip(part.par_chunks(rows.count * cols.count))
        .for_each(|(d, s)| {
            for (r, line) in s.chunks(cols.count).enumerate() {
                d[r * g.w..][..cols.count].copy_from_slice(line);
            }
        });
    tensor(dx, [b, ci, g.h, g.w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flex::conv::tests::direct;

    fn values(n: usize, seed: u64) -> Vec<f64> {
        crate::flex::test_values(n, seed, 1.0)
    }

    /// Shapes with odd and even grids, strides 1–3, padding, unused trailing input rows.
    /// The last one has a batch of several chunks (checked below).
    /// Input shape, weight shape, stride, padding.
    type Case = ([usize; 4], [usize; 4], [usize; 2], [usize; 2]);

    const CASES: [Case; 6] = [
        ([2, 3, 9, 8], [4, 3, 3, 4], [1, 1], [0, 0]),
        ([3, 5, 10, 10], [4, 5, 5, 5], [2, 2], [0, 0]),
        ([2, 4, 9, 8], [3, 4, 3, 4], [2, 1], [1, 2]),
        ([1, 2, 11, 7], [2, 2, 4, 3], [3, 2], [0, 1]),
        ([2, 3, 20, 20], [3, 3, 9, 9], [2, 2], [0, 0]),
        ([69, 40, 5, 5], [50, 40, 3, 3], [1, 1], [0, 0]),
    ];

    #[test]
    fn forward_matches_the_direct_convolution() {
        for (i, (xs, ws, stride, padding)) in CASES.into_iter().enumerate() {
            let g = ConvGeometry::new(&xs, &ws, stride, padding);
            let x = values(xs.iter().product(), 10 + i as u64);
            let w = values(ws.iter().product(), 20 + i as u64);
            let wspec = weight_spectrum::<f64>(&tensor(w.clone(), ws), &g);
            let got = forward::<f64>(&tensor(x.clone(), xs), &wspec, &g);
            let got = got.as_slice::<f64>().unwrap();
            let want = direct(&x, &w, &g);
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "case {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn chunks_are_even_and_bounded() {
        // Every test case with a batch above 1 runs in several chunks.
        for (xs, ws, stride, padding) in CASES {
            let g = ConvGeometry::new(&xs, &ws, stride, padding);
            assert!(
                g.batch == 1 || chunk_examples(&g) < g.batch,
                "{xs:?} in one chunk"
            );
        }
        // The real bound: 32 of the paper's PrimaryCaps examples, a whole quickstart batch.
        let within = |g: &ConvGeometry| chunk_examples_within(g, CHUNK_VALUES);
        let paper = |b| ConvGeometry::new(&[b, 256, 20, 20], &[256, 256, 9, 9], [2, 2], [0, 0]);
        assert_eq!(within(&paper(32)), 32);
        assert_eq!(within(&paper(128)), 32);
        assert_eq!(
            within(&paper(100)),
            25,
            "even chunks: 4 of 25, not 3 of 32 and one of 4"
        );
        let quick = ConvGeometry::new(&[64, 64, 20, 20], &[64, 64, 9, 9], [2, 2], [0, 0]);
        assert_eq!(within(&quick), 64);
    }

    #[test]
    fn backward_is_the_adjoint_of_the_forward() {
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
        for (i, (xs, ws, stride, padding)) in CASES.into_iter().enumerate() {
            let g = ConvGeometry::new(&xs, &ws, stride, padding);
            let n = |s: [usize; 4]| s.iter().product::<usize>();
            let seed = 30 + 10 * i as u64;
            let x = values(n(xs), seed);
            let w = values(n(ws), seed + 1);
            let dy = values(g.batch * g.cout * g.oh * g.ow, seed + 2);
            let dir_x = values(n(xs), seed + 3);
            let dir_w = values(n(ws), seed + 4);
            let dyt = tensor(dy.clone(), [g.batch, g.cout, g.oh, g.ow]);
            let wspec = weight_spectrum::<f64>(&tensor(w.clone(), ws), &g);
            let (dx, dw) =
                backward::<f64>(&tensor(x.clone(), xs), Some(wspec), &dyt, &g, true, true);
            let lhs_x = dot(&dy, &direct(&dir_x, &w, &g));
            let rhs_x = dot(dx.unwrap().as_slice::<f64>().unwrap(), &dir_x);
            assert!(
                (lhs_x - rhs_x).abs() < 1e-10 * lhs_x.abs().max(1.0),
                "case {i}: input gradient {rhs_x} vs {lhs_x}"
            );
            let lhs_w = dot(&dy, &direct(&x, &dir_w, &g));
            let rhs_w = dot(dw.unwrap().as_slice::<f64>().unwrap(), &dir_w);
            assert!(
                (lhs_w - rhs_w).abs() < 1e-10 * lhs_w.abs().max(1.0),
                "case {i}: weight gradient {rhs_w} vs {lhs_w}"
            );
        }
    }

    #[test]
    fn only_the_requested_gradients_are_computed() {
        let (xs, ws, stride, padding) = CASES[1];
        let g = ConvGeometry::new(&xs, &ws, stride, padding);
        let x = tensor(values(xs.iter().product(), 1), xs);
        let w = tensor(values(ws.iter().product(), 2), ws);
        let dy = values(g.batch * g.cout * g.oh * g.ow, 3);
        let dy = tensor(dy, [g.batch, g.cout, g.oh, g.ow]);
        let w = Some(weight_spectrum::<f64>(&w, &g));
        let (dx, dw) = backward::<f64>(&x, w.clone(), &dy, &g, true, false);
        assert!(dx.is_some() && dw.is_none());
        let (dx2, dw2) = backward::<f64>(&x, None, &dy, &g, false, true);
        assert!(dx2.is_none() && dw2.is_some());
        let both = backward::<f64>(&x, w, &dy, &g, true, true);
        assert_eq!(
            dx.unwrap().as_slice::<f64>().unwrap(),
            both.0.unwrap().as_slice::<f64>().unwrap()
        );
    }

    #[test]
    fn the_inference_cache_reuses_a_spectrum_only_for_the_same_unchanged_weight() {
        // Geometry unique to this test (the cache is process-wide).
        let (xs, ws) = ([2, 3, 13, 13], [5, 3, 5, 5]);
        let g = ConvGeometry::new(&xs, &ws, [2, 2], [1, 1]);
        let x_vals = values(xs.iter().product(), 7);
        let w_vals = values(ws.iter().product(), 8);
        let x = tensor(x_vals.clone(), xs);
        let w = tensor(w_vals.clone(), ws);
        let first = cached_weight_spectrum(&w, &g, || weight_spectrum::<f64>(&w, &g));
        let again = cached_weight_spectrum(&w.clone(), &g, || unreachable!("a hit"));
        assert!(
            std::sync::Arc::ptr_eq(&first.data_arc(), &again.data_arc()),
            "not reused"
        );
        // Writing to a clone copies the shared storage: a new weight, a new spectrum, and the
        // cached one still belongs to the old values.
        let mut w2 = w.clone();
        w2.storage_mut::<f64>()[0] += 1.0;
        let second = cached_weight_spectrum(&w2, &g, || weight_spectrum::<f64>(&w2, &g));
        assert!(!std::sync::Arc::ptr_eq(
            &first.data_arc(),
            &second.data_arc()
        ));
        let mut w2_vals = w_vals.clone();
        w2_vals[0] += 1.0;
        for (spec, wv) in [(&first, &w_vals), (&second, &w2_vals)] {
            let y = forward::<f64>(&x, spec, &g);
            for (a, b) in y
                .as_slice::<f64>()
                .unwrap()
                .iter()
                .zip(direct(&x_vals, wv, &g))
            {
                assert!((a - b).abs() < 1e-12, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn the_primarycaps_layer_is_cheaper_in_the_frequency_domain_and_conv1_is_not() {
        let prim = ConvGeometry::new(&[32, 256, 20, 20], &[256, 256, 9, 9], [2, 2], [0, 0]);
        let p = Plan::new(&prim);
        assert_eq!((p.n1, p.n2, p.f2, p.bins()), (19, 19, 10, 190));
        let (spectral, direct) = forward_flops(&prim);
        assert!(2 * spectral < direct, "{spectral} vs {direct}");
        let conv1 = ConvGeometry::new(&[32, 1, 28, 28], &[256, 1, 9, 9], [1, 1], [0, 0]);
        let (spectral, direct) = forward_flops(&conv1);
        assert!(spectral > direct, "{spectral} vs {direct}");
    }
}
