//! Where a training step of the paper's CapsNet spends its time, stage by stage, with
//! capsnet-ops' fused kernels and with burn's generic operations (same backend, same inputs),
//! against this machine's GEMM rate (the practical limit for the convolutions).
//!
//!     cargo build --release --workspace --all-targets && target/release/examples/profile_step [BATCH]
//!
//! Each figure is the median of several timed repetitions after a warm-up, with a read-back of
//! the result. Speed only; docs/performance.md has the numbers and what they say.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use capsnet_model::{CapsNetConfig, DigitCaps, Kernels, LossConfig, RoutingConfig, Squash};
use std::time::Instant;

/// The kernels on (`fused`) or off.
fn kernels(fused: bool) -> Kernels {
    Kernels {
        fused,
        ..Kernels::default()
    }
}

/// `conv` through the model's kernel seam.
fn conv_forward(conv: &Conv2d, x: Tensor<4>, fused: bool) -> Tensor<4> {
    capsnet_model::kernels::conv2d(conv, x, kernels(fused))
}

/// Median wall time of `reps` runs of `f` (after one warm-up run), in milliseconds.
fn median_ms<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

struct Row {
    stage: String,
    generic: f64,
    fused: f64,
    gflop: Option<f64>,
}

fn print_rows(rows: &[Row], gemm_rate: f64) {
    println!(
        "| stage | generic ms | fused ms | speed-up | fused GFLOP/s | of GEMM rate |\n|---|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let (rate, share) = match r.gflop {
            Some(g) => {
                let rate = g / (r.fused / 1e3);
                (
                    format!("{rate:.0}"),
                    format!("{:.0}%", 100.0 * rate / gemm_rate),
                )
            }
            None => ("".into(), "".into()),
        };
        println!(
            "| {} | {:.1} | {:.1} | {:.2}× | {rate} | {share} |",
            r.stage,
            r.generic,
            r.fused,
            r.generic / r.fused
        );
    }
}

fn conv(device: &Device, cin: usize, cout: usize, stride: usize) -> Conv2d {
    Conv2dConfig::new([cin, cout], [9, 9])
        .with_stride([stride, stride])
        .init(device)
}

fn main() {
    let b: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("BATCH is a positive number"))
        .unwrap_or(32);
    let dev = capsnet_bench::device().1.without_autodiff();
    let ad = dev.clone().autodiff();
    let reps = 5;
    println!(
        "paper CapsNet stages, batch {b}, backend {:?}",
        capsnet_bench::device().0
    );

    // The practical limit: one GEMM of the PrimaryCaps forward's shape.
    let (m, k, n) = (b * 36, 256 * 81, 256);
    let pm = Tensor::<2>::random([m, k], Distribution::Uniform(0.0, 1.0), &dev);
    let wm = Tensor::<2>::random([k, n], Distribution::Uniform(0.0, 1.0), &dev);
    let gemm_ms = median_ms(reps, || {
        let _ = pm.clone().matmul(wm.clone()).into_data();
    });
    let gemm_rate = 2.0 * (m * k * n) as f64 / 1e9 / (gemm_ms / 1e3);
    println!("GEMM [{m}, {k}]·[{k}, {n}]: {gemm_ms:.1} ms = {gemm_rate:.0} GFLOP/s");
    drop((pm, wm));

    let mut rows = Vec::new();
    let mut both = |stage: &str, gflop: Option<f64>, f: &mut dyn FnMut(bool)| {
        let generic = median_ms(reps, || f(false));
        let fused = median_ms(reps, || f(true));
        rows.push(Row {
            stage: stage.into(),
            generic,
            fused,
            gflop,
        });
    };

    // conv1: 1 → 256, 9×9, 28×28 → 20×20.
    let conv1 = conv(&ad, 1, 256, 1);
    let images = Tensor::<4>::random([b, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &ad);
    let conv1_gflop = 2.0 * (b * 400 * 81 * 256) as f64 / 1e9;
    both("conv1 forward", Some(conv1_gflop), &mut |fused| {
        let x = images.clone().inner();
        let c = conv1.valid();
        let _ = conv_forward(&c, x, fused).into_data();
    });
    both(
        "conv1 forward + weight gradient",
        Some(2.0 * conv1_gflop),
        &mut |fused| {
            let y = conv_forward(&conv1, images.clone(), fused);
            let g = y.sum().backward();
            let _ = conv1.weight.val().grad(&g).unwrap().into_data();
        },
    );

    // PrimaryCaps convolution: 256 → 256, 9×9, stride 2, 20×20 → 6×6.
    let prim = conv(&ad, 256, 256, 2);
    let prim_inner = prim.valid();
    let features =
        Tensor::<4>::random([b, 256, 20, 20], Distribution::Uniform(0.0, 1.0), &ad).require_grad();
    let prim_gflop = 2.0 * (b * 36 * 256 * 81 * 256) as f64 / 1e9;
    both("PrimaryCaps conv forward", Some(prim_gflop), &mut |fused| {
        let _ = conv_forward(&prim_inner, features.clone().inner(), fused).into_data();
    });
    both(
        "PrimaryCaps conv forward + both gradients",
        Some(3.0 * prim_gflop),
        &mut |fused| {
            let y = conv_forward(&prim, features.clone(), fused);
            let g = y.sum().backward();
            let _ = prim.weight.val().grad(&g).unwrap().into_data();
            let _ = features.grad(&g).unwrap().into_data();
        },
    );

    // DigitCaps: votes û = W u and routing (r = 3).
    let routing = RoutingConfig::default();
    let weight = Tensor::<3>::random([1152, 8, 160], Distribution::Normal(0.0, 0.01), &ad);
    let digit = DigitCaps::from_weight(weight, None, None, 16);
    let squash = Squash::default();
    let u = Tensor::<3>::random([b, 1152, 8], Distribution::Normal(0.0, 0.2), &ad).require_grad();
    both("votes + routing r=3 forward", None, &mut |fused| {
        let _ = digit
            .forward(u.clone().inner(), &routing, &squash, kernels(fused))
            .parents
            .into_data();
    });
    both(
        "votes + routing r=3 forward + backward",
        None,
        &mut |fused| {
            let v = digit
                .forward(u.clone(), &routing, &squash, kernels(fused))
                .parents;
            let g = v.sum().backward();
            let _ = digit.weight.val().grad(&g).unwrap().into_data();
            let _ = u.grad(&g).unwrap().into_data();
        },
    );

    // The whole network and its loss.
    let net = CapsNetConfig::paper_mnist().init(&ad).unwrap();
    let net_inner = net.valid();
    let labels = Tensor::<1, Int>::from_data(
        TensorData::new((0..b as i64).map(|i| i % 10).collect::<Vec<_>>(), [b]),
        &ad,
    );
    let loss = LossConfig::default();
    both("whole network, inference", None, &mut |fused| {
        let net_inner = net_inner.clone().with_kernels(kernels(fused));
        let o = net_inner.forward(images.clone().inner(), None);
        let _ = o.lengths.into_data();
    });
    both(
        "whole network + loss, forward + backward",
        None,
        &mut |fused| {
            let net = net.clone().with_kernels(kernels(fused));
            let o = net.forward(images.clone(), Some(labels.clone()));
            let l = net.loss(&o, images.clone(), labels.clone(), &loss).total;
            let g = l.backward();
            let _ = net.digit.weight.val().grad(&g).unwrap().into_data();
        },
    );

    // Adam over the 8.2M parameters (state created by a first step, not timed).
    let train = capsnet_train::config::TrainConfig::default();
    let mut adam_times = [0.0f64; 2];
    for fused in [false, true] {
        let mut model = CapsNetConfig::paper_mnist().init(&ad).unwrap();
        let mut optim = capsnet_train::optim::adam(&train, fused);
        let mut times = Vec::new();
        for step in 0..reps + 1 {
            let o = model.forward(images.clone(), Some(labels.clone()));
            let l = model.loss(&o, images.clone(), labels.clone(), &loss).total;
            let grads = GradientsParams::from_grads(l.backward(), &model);
            let t = Instant::now();
            model = optim.step(1e-3, model, grads);
            let _ = model.digit.weight.val().narrow(0, 0, 1).into_data();
            if step > 0 {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        times.sort_by(f64::total_cmp);
        adam_times[usize::from(fused)] = times[times.len() / 2];
    }
    rows.push(Row {
        stage: "Adam step (8.2M parameters)".into(),
        generic: adam_times[0],
        fused: adam_times[1],
        gflop: None,
    });
    print_rows(&rows, gemm_rate);
}
