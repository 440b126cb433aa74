//! Shared helpers for the model tests: f64 devices, tensor construction, finite differences.
#![allow(dead_code)]

use burn::tensor::{Device, FloatDType, Tensor, TensorData};

/// The backend the model tests run on: flex, or LibTorch's CPU with `CAPSNET_TEST_BACKEND=tch`
/// in a build with the `tch` feature (the fused kernels are then libtorch's; see
/// docs/backends.md for the command).
pub fn test_backend() -> Device {
    match std::env::var("CAPSNET_TEST_BACKEND").as_deref() {
        Err(_) | Ok("" | "flex") => Device::flex(),
        #[cfg(feature = "tch")]
        #[allow(deprecated)] // burn-tch: deprecated upstream, kept as the libtorch path
        Ok("tch") => Device::libtorch(),
        Ok(other) => panic!(
            "CAPSNET_TEST_BACKEND={other:?}: this test build runs on \"flex\"{}",
            if cfg!(feature = "tch") {
                " or \"tch\""
            } else {
                " (build with --features tch for \"tch\")"
            }
        ),
    }
}

/// An autodiff device of [`test_backend`] whose default float type is f64 (for gradient
/// checks).
///
/// Device settings are per process; nextest runs each test in its own process.
pub fn f64_device() -> Device {
    let mut device = test_backend();
    device
        .configure(FloatDType::F64)
        .expect("configure f64 before any tensor exists (run the tests with cargo nextest)");
    device.autodiff()
}

/// An autodiff device of [`test_backend`] with the default f32 floats.
pub fn f32_device() -> Device {
    test_backend().autodiff()
}

/// Builds a tensor from values and a shape.
pub fn tensor<const D: usize>(values: Vec<f64>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Reads a tensor back as f64 values.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .try_into_vec_as::<f64>()
        .expect("readable tensor")
}

/// Deterministic pseudo-random values in [-scale, scale].
pub fn pseudo_random(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Compares the autodiff gradient of the scalar `f` at `x` with central differences
/// on up to `max_checks` coordinates; panics with the worst coordinate when they disagree.
pub fn gradcheck<const D: usize>(
    name: &str,
    x: &[f64],
    shape: [usize; D],
    device: &Device,
    max_checks: usize,
    f: impl Fn(Tensor<D>) -> Tensor<1>,
) -> Vec<f64> {
    let input = tensor(x.to_vec(), shape, device).require_grad();
    let out = f(input.clone());
    let grads = out.backward();
    let analytic = values(input.grad(&grads).expect("input has a gradient"));
    assert!(
        analytic.iter().all(|g| g.is_finite()),
        "{name}: non-finite gradient {analytic:?}"
    );

    let eval = |values_at: Vec<f64>| -> f64 { values(f(tensor(values_at, shape, device)))[0] };
    let step = (x.len() / max_checks).max(1);
    let h = 1e-6;
    for k in (0..x.len()).step_by(step) {
        let mut plus = x.to_vec();
        plus[k] += h;
        let mut minus = x.to_vec();
        minus[k] -= h;
        let numeric = (eval(plus) - eval(minus)) / (2.0 * h);
        let err = (numeric - analytic[k]).abs();
        assert!(
            err <= 1e-6 + 1e-4 * numeric.abs(),
            "{name}: coordinate {k}: autodiff {} vs finite difference {numeric} (|Δ| = {err:e})",
            analytic[k]
        );
    }
    analytic
}

/// `Σ t ⊙ w` with pseudo-random weights `w` (from `seed`): a scalar objective in which every
/// element of `t` matters, for gradient checks.
pub fn weighted_sum<const D: usize>(t: Tensor<D>, seed: u64) -> Tensor<1> {
    let shape = t.dims();
    let n = shape.iter().product();
    let w = tensor(pseudo_random(n, seed, 1.0), shape, &t.device());
    (t * w).sum().reshape([1])
}
