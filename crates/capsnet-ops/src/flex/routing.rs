//! Votes and routing-by-agreement fused per example (flex backend).
//!
//! For one example, the votes `û_{j|i} = u_i · W_i` (`[children, parents·dim]`, 737 KB for the
//! paper's network) are computed into a per-thread buffer, all `r` iterations of Procedure 1 run
//! on it while it is in cache, and only the parent capsules `v_j` and the couplings leave. The
//! backward pass recomputes the votes and the iterations of the example (cheap next to re-reading
//! vote-sized tensors from memory) and walks the iterations backwards:
//!
//! ```text
//! b₀ = 0;  c_t = softmax_j(b_t);  s_t = Σ_i c_t û + bias;  v_t = squash(s_t);  b_{t+1} = b_t + û·v_t
//! ```
//!
//! With `stop_gradient` the inner iterations see detached votes: their terms are left out of
//! `dû` (the bias still receives them, as in the generic path). Examples run in parallel; each
//! worker sums its own `dW` and the workers' sums are added in a fixed order.

use rayon::prelude::*;

use burn::tensor::Shape;
use burn_flex::ops::matmul::matmul;

use super::{Real, contiguous_slice, tensor};

/// Sizes and options of one fused votes + routing call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RouteShape {
    pub batch: usize,
    /// Child capsules `i`.
    pub children: usize,
    /// Child capsule dimension.
    pub in_dim: usize,
    /// Parent capsules `j`.
    pub parents: usize,
    /// Parent capsule dimension.
    pub dim: usize,
    /// Routing iterations `r ≥ 1`.
    pub iterations: usize,
    pub stop_gradient: bool,
    pub leaky: bool,
    pub eps: f64,
}

impl RouteShape {
    fn jd(&self) -> usize {
        self.parents * self.dim
    }
    fn votes_len(&self) -> usize {
        self.children * self.jd()
    }
    fn logits_len(&self) -> usize {
        self.parents * self.children
    }
    fn history_len(&self) -> usize {
        self.iterations * self.logits_len()
    }
}

/// `y += a · x`.
#[inline]
fn axpy<T: Real>(a: T, x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// Dot product with eight independent partial sums (vectorisable).
#[inline]
fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for k in chunks * 8..a.len() {
        sum += a[k] * b[k];
    }
    sum
}

/// Squash scale `‖s‖² / ((1 + ‖s‖²) · sqrt(‖s‖² + ε))` and its derivative in `‖s‖²`.
#[inline]
fn squash_scale<T: Real>(n2: T, eps: T) -> (T, T) {
    let one = T::one();
    let root = (n2 + eps).sqrt();
    let scale = n2 / ((one + n2) * root);
    // d/dn2 of n2 · (1+n2)⁻¹ · (n2+ε)^-½, written without dividing by n2 (finite at 0).
    let half = T::from(0.5).expect("0.5 fits every float type");
    let dscale = one / ((one + n2) * root) - scale / (one + n2) - half * scale / (n2 + eps);
    (scale, dscale)
}

/// Per-thread buffers for one example.
struct Work<T> {
    votes: Vec<T>,
    logits: Vec<T>,
    /// Couplings of every iteration `[r, J, I]`.
    c: Vec<T>,
    /// `s_t` and `v_t` of every iteration `[r, J, D]`.
    s: Vec<T>,
    v: Vec<T>,
    // Backward only.
    dvotes: Vec<T>,
    g_logits: Vec<T>,
    g_c: Vec<T>,
    gv: Vec<T>,
    gs: Vec<T>,
}

impl<T: Real> Work<T> {
    fn new(sh: &RouteShape, backward: bool) -> Self {
        let z = |n: usize| vec![T::zero(); n];
        let (b_votes, b_logits, b_jd) = if backward {
            (sh.votes_len(), sh.logits_len(), sh.jd())
        } else {
            (0, 0, 0)
        };
        Self {
            votes: z(sh.votes_len()),
            logits: z(sh.logits_len()),
            c: z(sh.history_len()),
            s: z(sh.iterations * sh.jd()),
            v: z(sh.iterations * sh.jd()),
            dvotes: z(b_votes),
            g_logits: z(b_logits),
            g_c: z(b_logits),
            gv: z(b_jd),
            gs: z(b_jd),
        }
    }
}

/// `û[i, :] = Σ_k u[i, k] · W[i, k, :]` for one example.
fn votes<T: Real>(u: &[T], w: &[T], sh: &RouteShape, out: &mut [T]) {
    let jd = sh.jd();
    for i in 0..sh.children {
        let dst = &mut out[i * jd..][..jd];
        dst.fill(T::zero());
        for k in 0..sh.in_dim {
            axpy(
                u[i * sh.in_dim + k],
                &w[(i * sh.in_dim + k) * jd..][..jd],
                dst,
            );
        }
    }
}

/// Softmax of `logits` `[J, I]` over the parents (with an extra zero logit when leaky).
fn softmax_parents<T: Real>(logits: &[T], sh: &RouteShape, c: &mut [T]) {
    let (nj, ni) = (sh.parents, sh.children);
    for i in 0..ni {
        let mut max = if sh.leaky {
            T::zero()
        } else {
            T::neg_infinity()
        };
        for j in 0..nj {
            max = max.max(logits[j * ni + i]);
        }
        let mut sum = if sh.leaky { (-max).exp() } else { T::zero() };
        for j in 0..nj {
            let e = (logits[j * ni + i] - max).exp();
            c[j * ni + i] = e;
            sum += e;
        }
        for j in 0..nj {
            c[j * ni + i] = c[j * ni + i] / sum;
        }
    }
}

/// All iterations of Procedure 1 for one example whose votes are in `work.votes`.
fn route_one<T: Real>(bias: &[T], sh: &RouteShape, work: &mut Work<T>) {
    let (nj, ni, d, jd) = (sh.parents, sh.children, sh.dim, sh.jd());
    let eps = T::from(sh.eps).expect("eps fits the float type");
    work.logits.fill(T::zero());
    for t in 0..sh.iterations {
        let c = &mut work.c[t * nj * ni..][..nj * ni];
        softmax_parents(&work.logits, sh, c);
        let s = &mut work.s[t * jd..][..jd];
        s.copy_from_slice(bias);
        for i in 0..ni {
            let vi = &work.votes[i * jd..][..jd];
            for j in 0..nj {
                axpy(c[j * ni + i], &vi[j * d..][..d], &mut s[j * d..][..d]);
            }
        }
        let v = &mut work.v[t * jd..][..jd];
        for j in 0..nj {
            let sj = &s[j * d..][..d];
            let (scale, _) = squash_scale(dot(sj, sj), eps);
            for (vk, &sk) in v[j * d..][..d].iter_mut().zip(sj) {
                *vk = sk * scale;
            }
        }
        if t + 1 < sh.iterations {
            for i in 0..ni {
                let vi = &work.votes[i * jd..][..jd];
                for j in 0..nj {
                    work.logits[j * ni + i] += dot(&vi[j * d..][..d], &v[j * d..][..d]);
                }
            }
        }
    }
}

/// Backward of [`route_one`]: `work.dvotes = ∂L/∂û`, `gbias = ∂L/∂bias` for this example,
/// given `gv_out = ∂L/∂v` of the last iteration. `work` must hold this example's forward.
fn route_one_backward<T: Real>(
    gv_out: &[T],
    sh: &RouteShape,
    need_bias: bool,
    work: &mut Work<T>,
    gbias: &mut [T],
) {
    let (nj, ni, d, jd) = (sh.parents, sh.children, sh.dim, sh.jd());
    let eps = T::from(sh.eps).expect("eps fits the float type");
    let Work {
        votes,
        c,
        s,
        v,
        dvotes,
        g_logits,
        g_c,
        gv,
        gs,
        ..
    } = work;
    dvotes.fill(T::zero());
    g_logits.fill(T::zero());
    gbias.fill(T::zero());
    let r = sh.iterations;
    for t in (0..r).rev() {
        let last = t + 1 == r;
        let into_votes = last || !sh.stop_gradient;
        if !last && !into_votes && !need_bias {
            break;
        }
        let (ct, st, vt) = (
            &c[t * nj * ni..][..nj * ni],
            &s[t * jd..][..jd],
            &v[t * jd..][..jd],
        );
        // ∂L/∂v_t: the output gradient (last iteration) or the agreement b_{t+1} = b_t + û·v_t.
        if last {
            gv.copy_from_slice(gv_out);
        } else {
            gv.fill(T::zero());
            for i in 0..ni {
                let vi = &votes[i * jd..][..jd];
                let dvi = &mut dvotes[i * jd..][..jd];
                for j in 0..nj {
                    let g = g_logits[j * ni + i];
                    axpy(g, &vi[j * d..][..d], &mut gv[j * d..][..d]);
                    if into_votes {
                        axpy(g, &vt[j * d..][..d], &mut dvi[j * d..][..d]);
                    }
                }
            }
        }
        // Through the squash.
        for j in 0..nj {
            let sj = &st[j * d..][..d];
            let gvj = &gv[j * d..][..d];
            let (scale, dscale) = squash_scale(dot(sj, sj), eps);
            let k = (dscale + dscale) * dot(gvj, sj);
            for ((g, &sk), &gk) in gs[j * d..][..d].iter_mut().zip(sj).zip(gvj) {
                *g = scale * gk + k * sk;
            }
        }
        for (b, &g) in gbias.iter_mut().zip(gs.iter()) {
            *b += g;
        }
        // s_t = Σ_i c_t[j, i] û[i, j] + bias.
        for i in 0..ni {
            let vi = &votes[i * jd..][..jd];
            let dvi = &mut dvotes[i * jd..][..jd];
            for j in 0..nj {
                let gsj = &gs[j * d..][..d];
                g_c[j * ni + i] = dot(&vi[j * d..][..d], gsj);
                if into_votes {
                    axpy(ct[j * ni + i], gsj, &mut dvi[j * d..][..d]);
                }
            }
        }
        if t == 0 {
            break; // b_0 = 0 is a constant.
        }
        // Softmax over the parents: ∂b = c ⊙ (∂c − Σ_j c ∂c); adds to ∂L/∂b_t.
        for i in 0..ni {
            let mut inner = T::zero();
            for j in 0..nj {
                inner += ct[j * ni + i] * g_c[j * ni + i];
            }
            for j in 0..nj {
                g_logits[j * ni + i] += ct[j * ni + i] * (g_c[j * ni + i] - inner);
            }
        }
    }
}

/// Workers for the backward pass: examples are split into this many contiguous ranges.
fn workers(batch: usize) -> usize {
    rayon::current_num_threads().clamp(1, batch.max(1))
}

/// Forward: `u` `[B, I, Din]`, `w` `[I, Din, J·D]`, `bias` `[J·D]` → parents `[B, J·D]` and the
/// couplings of every iteration `[B, r, J, I]`.
pub(crate) fn forward<T: Real>(u: &[T], w: &[T], bias: &[T], sh: &RouteShape) -> (Vec<T>, Vec<T>) {
    let jd = sh.jd();
    let mut parents = vec![T::zero(); sh.batch * jd];
    let mut history = vec![T::zero(); sh.batch * sh.history_len()];
    let u_len = sh.children * sh.in_dim;
    parents
        .par_chunks_mut(jd)
        .zip(history.par_chunks_mut(sh.history_len()))
        .enumerate()
        .for_each_init(
            || Work::new(sh, false),
            |work, (b, (v_out, c_out))| {
                votes(&u[b * u_len..][..u_len], w, sh, &mut work.votes);
                route_one(bias, sh, work);
                v_out.copy_from_slice(&work.v[(sh.iterations - 1) * jd..][..jd]);
                c_out.copy_from_slice(&work.c);
            },
        );
    (parents, history)
}

/// Examples whose vote gradients a worker keeps at once before turning them into `∂u` and `∂W`
/// with two batched GEMMs (16 × 1152 × 160 values, 11.8 MB, for the paper's DigitCaps).
const DVOTE_EXAMPLES: usize = 16;

/// Gradients of [`forward`]'s parents: `(du [B, I, Din], dw [I, Din, J·D], dbias [J·D])`.
pub(crate) fn backward<T: Real>(
    u: &[T],
    w: &[T],
    bias: &[T],
    grad: &[T],
    sh: &RouteShape,
    need_bias: bool,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (jd, u_len, votes_len) = (sh.jd(), sh.children * sh.in_dim, sh.votes_len());
    let (children, in_dim) = (sh.children, sh.in_dim);
    let mut du = vec![T::zero(); sh.batch * u_len];
    let per = sh.batch.div_ceil(workers(sh.batch)).max(1);
    // Wᵢᵀ `[I, J·D, Din]` and u `[B, I, Din]` as tensors, for the GEMMs.
    let w_t = tensor(w.to_vec(), [children, in_dim, jd]).transpose(1, 2);
    let u_all = tensor(u.to_vec(), [sh.batch, children, in_dim]);
    let partial: Vec<(Vec<T>, Vec<T>)> = du
        .par_chunks_mut(per * u_len)
        .enumerate()
        .map(|(chunk, du_chunk)| {
            let mut work = Work::new(sh, true);
            let mut dw = vec![T::zero(); w.len()];
            let mut dbias = vec![T::zero(); jd];
            let mut gbias = vec![T::zero(); jd];
            let examples = du_chunk.len() / u_len;
            for s0 in (0..examples).step_by(DVOTE_EXAMPLES) {
                let n = DVOTE_EXAMPLES.min(examples - s0);
                let b0 = chunk * per + s0;
                let mut dvotes = vec![T::zero(); n * votes_len];
                for (k, dv) in dvotes.chunks_mut(votes_len).enumerate() {
                    let b = b0 + k;
                    votes(&u[b * u_len..][..u_len], w, sh, &mut work.votes);
                    route_one(bias, sh, &mut work);
                    route_one_backward(&grad[b * jd..][..jd], sh, need_bias, &mut work, &mut gbias);
                    for (acc, &g) in dbias.iter_mut().zip(&gbias) {
                        *acc += g;
                    }
                    dv.copy_from_slice(&work.dvotes);
                }
                // û[b, i] = u[b, i] · W[i], per child i over the n examples:
                // ∂u[·, i] = ∂û[·, i] · W[i]ᵀ and ∂W[i] += u[·, i]ᵀ · ∂û[·, i].
                let dv = tensor(dvotes, [n, children, jd]).permute(&[1, 0, 2]); // [I, n, J·D]
                let du_i = matmul(dv.clone(), w_t.clone()); // [I, n, Din]
                let du_i = contiguous_slice::<T>(&du_i);
                for (i, rows) in du_i.chunks(n * in_dim).enumerate() {
                    for (k, row) in rows.chunks(in_dim).enumerate() {
                        du_chunk[(s0 + k) * u_len + i * in_dim..][..in_dim].copy_from_slice(row);
                    }
                }
                let u_i = u_all.clone().narrow(0, b0, n).permute(&[1, 2, 0]); // [I, Din, n]
                let part = matmul(u_i, dv).reshape(Shape::new([w.len()]));
                for (a, &p) in dw.iter_mut().zip(contiguous_slice::<T>(&part)) {
                    *a += p;
                }
            }
            (dw, dbias)
        })
        .collect();
    let mut parts = partial.into_iter();
    let (mut dw, mut dbias) = parts.next().expect("at least one example");
    for (p_dw, p_db) in parts {
        for (a, b) in dw.iter_mut().zip(&p_dw) {
            *a += *b;
        }
        for (a, b) in dbias.iter_mut().zip(&p_db) {
            *a += *b;
        }
    }
    (du, dw, dbias)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::flex::test_values as values;

    fn shape(iterations: usize, stop_gradient: bool, leaky: bool) -> RouteShape {
        RouteShape {
            batch: 3,
            children: 7,
            in_dim: 4,
            parents: 3,
            dim: 5,
            iterations,
            stop_gradient,
            leaky,
            eps: 1e-8,
        }
    }

    /// Loss `Σ (parents ⊙ weights)`, whose gradient with respect to the parents is `weights`.
    fn loss(u: &[f64], w: &[f64], bias: &[f64], sh: &RouteShape, weights: &[f64]) -> f64 {
        let (v, _) = forward(u, w, bias, sh);
        v.iter().zip(weights).map(|(a, b)| a * b).sum()
    }

    /// Central finite differences in f64 against the hand-written backward, for every option.
    #[test]
    fn backward_matches_finite_differences() {
        for (r, stop, leaky) in [
            (1, false, false),
            (3, false, false),
            (3, true, false),
            (2, false, true),
            (4, true, true),
        ] {
            let sh = shape(r, stop, leaky);
            let u = values(sh.batch * sh.children * sh.in_dim, 11, 1.0);
            let w = values(sh.children * sh.in_dim * sh.jd(), 12, 1.0);
            let bias = values(sh.jd(), 13, 0.2);
            let weights = values(sh.batch * sh.jd(), 14, 1.0);
            let (du, dw, db) = backward(&u, &w, &bias, &weights, &sh, true);
            let h = 1e-6;
            let check = |name: &str, base: &[f64], grad: &[f64], which: usize| {
                for idx in (0..base.len()).step_by(base.len().div_ceil(23)) {
                    let mut plus = base.to_vec();
                    let mut minus = base.to_vec();
                    plus[idx] += h;
                    minus[idx] -= h;
                    let args = |p: &[f64]| match which {
                        0 => loss(p, &w, &bias, &sh, &weights),
                        1 => loss(&u, p, &bias, &sh, &weights),
                        _ => loss(&u, &w, p, &sh, &weights),
                    };
                    let numeric = (args(&plus) - args(&minus)) / (2.0 * h);
                    let err = (numeric - grad[idx]).abs();
                    assert!(
                        err <= 1e-6 * (1.0 + numeric.abs()),
                        "{name}[{idx}] r={r} stop={stop} leaky={leaky}: numeric {numeric}, \
                         analytic {}",
                        grad[idx]
                    );
                }
            };
            check("bias", &bias, &db, 2);
            if stop {
                // The inner iterations see detached votes: finite differences see them move,
                // so only the last iteration's direct term is compared (see the generic path).
                continue;
            }
            check("u", &u, &du, 0);
            check("w", &w, &dw, 1);
        }
    }

    #[test]
    fn couplings_sum_to_one_over_parents_unless_leaky() {
        for leaky in [false, true] {
            let sh = shape(3, false, leaky);
            let u = values(sh.batch * sh.children * sh.in_dim, 1, 1.0);
            let w = values(sh.children * sh.in_dim * sh.jd(), 2, 1.0);
            let (_, history) = forward(&u, &w, &vec![0.0; sh.jd()], &sh);
            for c in history.chunks(sh.logits_len()) {
                for i in 0..sh.children {
                    let total: f64 = (0..sh.parents).map(|j| c[j * sh.children + i]).sum();
                    if leaky {
                        assert!(total < 1.0 && total > 0.0);
                    } else {
                        assert!((total - 1.0).abs() < 1e-12);
                    }
                }
            }
        }
    }
}
