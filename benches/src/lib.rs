//! Shared setup for capsnet's criterion benchmarks. Speed only: correctness lives in tests.
//!
//! The backend comes from `CAPSNET_BENCH_BACKEND` (default `flex`); benchmark names are
//! prefixed with it so results from different backends never mix.

use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

/// The same global allocator as the `capsnet` binary (see docs/performance.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use capsnet_train::backend::BackendKind;

/// The backend named by `CAPSNET_BENCH_BACKEND` (default `flex`) and its autodiff device.
/// The first call applies the `capsnet` binary's allocator settings to this process
/// ([`capsnet_train::allocator::apply`]) and prints them, so the benches time what users run.
pub fn device() -> (BackendKind, Device) {
    static ALLOCATOR_SETTINGS: std::sync::Once = std::sync::Once::new();
    ALLOCATOR_SETTINGS.call_once(|| {
        let settings = capsnet_train::allocator::apply();
        eprintln!(
            "allocator: {}, purge delay {} ms; glibc: {}",
            settings.global, settings.mimalloc_purge_delay_ms, settings.glibc
        );
    });
    let name = std::env::var("CAPSNET_BENCH_BACKEND").unwrap_or_else(|_| "flex".into());
    let kind = BackendKind::parse(&name).unwrap_or_else(|e| panic!("CAPSNET_BENCH_BACKEND: {e}"));
    let device = kind
        .device(Default::default())
        .unwrap_or_else(|e| panic!("{e}"));
    (kind, device.autodiff())
}

/// Random MNIST-shaped images and cycling labels.
pub fn mnist_batch(batch: usize, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let images = Tensor::random([batch, 1, 28, 28], Distribution::Uniform(0.0, 1.0), device);
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 10).collect();
    (
        images,
        Tensor::from_data(TensorData::new(labels, [batch]), device),
    )
}
