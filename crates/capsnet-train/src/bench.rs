//! End-to-end throughput of an experiment's network (`capsnet bench`): speed only, on random
//! inputs, so no dataset is needed.

use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

use crate::config::ExperimentConfig;
use crate::device::training_device;
use crate::error::TrainError;
use crate::net::{Net, Targets};
use crate::optim::optimizer;

/// Benchmark settings.
#[derive(Debug, Clone, Copy)]
pub struct BenchOptions {
    /// Batch size.
    pub batch_size: usize,
    /// Untimed steps first (allocation, autotuning).
    pub warmup: usize,
    /// Timed training steps.
    pub steps: usize,
    /// The machine's peak GFLOP/s (fp32), if known, to report the fraction reached.
    pub peak_gflops: Option<f64>,
}

pub use capsnet_common::bench::BenchResult;

/// Times training steps and inference of `config`'s network on random data.
pub fn run(config: &ExperimentConfig, options: BenchOptions) -> Result<BenchResult, TrainError> {
    let device = training_device(config)?;
    device.seed(config.seed);
    let mut net = Net::init(config, &device)?;
    let mut optim = optimizer(config);
    let (images, labels) = random_batch(config, options.batch_size, &device);
    let mut times = Vec::with_capacity(options.steps);
    for i in 0..options.warmup + options.steps {
        let start = Instant::now();
        let out = net.step(images.clone(), &labels, &config.loss, true);
        let loss = out.total.clone().detach();
        let grads = GradientsParams::from_grads(out.total.backward(), &net);
        net = optim.step(1e-4, net, grads);
        let _: f64 = loss.into_scalar();
        if i >= options.warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let train_total: f64 = times.iter().sum();
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);

    let eval_device = device.clone().without_autodiff();
    let eval_net = net.valid();
    let (images, labels) = random_batch(config, options.batch_size, &eval_device);
    let mut infer_total = 0.0;
    for i in 0..options.warmup + options.steps {
        let start = Instant::now();
        let out = eval_net.step(images.clone(), &labels, &config.loss, false);
        let _ = out.scores.into_data();
        if i >= options.warmup {
            infer_total += start.elapsed().as_secs_f64();
        }
    }
    let images_timed = (options.batch_size * options.steps) as f64;
    let macs = crate::info::forward_macs(config);
    let train_ips = images_timed / train_total;
    let infer_ips = images_timed / infer_total;
    let train_gflops = train_ips * macs.train_flops() / 1e9;
    Ok(BenchResult {
        name: config.name.clone(),
        arch: config.arch.name().into(),
        backend: config.runtime.backend.name().into(),
        batch_size: options.batch_size,
        steps: options.steps,
        train_images_per_sec: train_ips,
        train_ms_per_step_median: median * 1e3,
        inference_images_per_sec: infer_ips,
        train_gflop_per_image: macs.train_flops() / 1e9,
        train_gflops,
        inference_gflops: infer_ips * macs.inference_flops() / 1e9,
        train_peak_fraction: options.peak_gflops.map(|p| train_gflops / p),
        peak_gflops: options.peak_gflops,
        peak_rss_mib: peak_rss_mib(),
        machine: crate::machine::current(),
        git_revision: crate::machine::build_revision().to_string(),
        // Idempotent: the settings in effect (the binary applied them at start).
        allocator: Some(crate::allocator::apply()),
    })
}

fn random_batch(config: &ExperimentConfig, batch: usize, device: &Device) -> (Tensor<4>, Targets) {
    let (c, h, w, classes) = config.network_input();
    let images = Tensor::random([batch, c, h, w], Distribution::Uniform(0.0, 1.0), device);
    let count = config.data.dataset.targets();
    // Example i has classes i, i + 1, … (mod classes): distinct when count ≤ classes.
    let labels: Vec<i64> = (0..batch)
        .flat_map(|i| (0..count).map(move |k| ((i + k) % classes) as i64))
        .collect();
    let labels = Tensor::from_data(TensorData::new(labels, [batch, count]), device);
    let parts = (count > 1).then(|| {
        Tensor::random(
            [batch, count, c * h * w],
            Distribution::Uniform(0.0, 1.0),
            device,
        )
    });
    (images, Targets { labels, parts })
}

/// Peak resident set size of this process (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
