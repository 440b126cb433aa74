//! Adam in one pass (flex backend): the same f32 arithmetic, in the same order, as burn-optim's
//! `AdaptiveMomentum::transform` followed by `Adam::step`, so the two agree bit for bit in f32:
//!
//! ```text
//! m₁ = m₁·β₁ + g·(1−β₁);  m₂ = m₂·β₂ + g²·(1−β₂)
//! p  = p − lr · (m₁·c) / (√m₂ + ε·√(1−β₂ᵗ)),   c = √(1−β₂ᵗ) / (1−β₁ᵗ)
//! ```
//!
//! The parameter and moments are updated in place when this call holds the only reference
//! (copied first otherwise).

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::Real;
use crate::extension::AdamStep;

fn owned<T: Real>(t: FlexTensor) -> FlexTensor {
    let t = if t.is_contiguous() && t.layout().start_offset() == 0 {
        t
    } else {
        t.to_contiguous()
    };
    // Exact-length storage, so `storage_mut` covers exactly the logical elements.
    if t.bytes().len() == t.layout().num_elements() * std::mem::size_of::<T>() {
        t
    } else {
        t.to_contiguous()
    }
}

pub(crate) fn step<T: Real>(
    param: FlexTensor,
    grad: FlexTensor,
    moment_1: FlexTensor,
    moment_2: FlexTensor,
    s: &AdamStep,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let cast = |v: f32| T::from(v).expect("f32 fits the float type");
    let time = s.time as i32;
    let bias_correction2_sqrt = (1.0 - s.beta_2.powi(time)).sqrt();
    let combined = bias_correction2_sqrt / (1.0 - s.beta_1.powi(time));
    let (b1, f1) = (cast(s.beta_1), cast(1.0 - s.beta_1));
    let (b2, f2) = (cast(s.beta_2), cast(1.0 - s.beta_2));
    let combined = cast(combined);
    let eps = cast(s.epsilon * bias_correction2_sqrt);
    let lr = T::from(s.lr).expect("learning rate fits the float type");

    let grad = grad.to_contiguous();
    let g = grad
        .as_slice::<T>()
        .expect("contiguous gradient of the parameter's type");
    let (mut p, mut m1, mut m2) = (
        owned::<T>(param),
        owned::<T>(moment_1),
        owned::<T>(moment_2),
    );
    {
        let ps = p.storage_mut::<T>();
        let m1s = m1.storage_mut::<T>();
        let m2s = m2.storage_mut::<T>();
        const CHUNK: usize = 1 << 14;
        ps.par_chunks_mut(CHUNK)
            .zip(m1s.par_chunks_mut(CHUNK))
            .zip(m2s.par_chunks_mut(CHUNK))
            .zip(g.par_chunks(CHUNK))
            .for_each(|(((p, m1), m2), g)| {
                for (((p, m1), m2), &g) in p.iter_mut().zip(m1).zip(m2).zip(g) {
                    *m1 = *m1 * b1 + g * f1;
                    *m2 = *m2 * b2 + (g * g) * f2;
                    let update = (*m1 * combined) / (m2.sqrt() + eps);
                    *p -= update * lr;
                }
            });
    }
    (p, m1, m2)
}
