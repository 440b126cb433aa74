//! Where a training step of the paper's CapsNet spends its time on this backend (batch 32):
//! each stage timed on its own with a read-back, forward and forward+backward, plus Adam.
//!
//!     cargo build --release --workspace --all-targets && target/release/examples/profile_step
//!
//! Speed only; see docs/performance.md for the numbers and what they suggest.

use burn::module::Module;
use burn::nn::conv::Conv2dConfig;
use burn::tensor::activation::relu;
use burn::tensor::{Distribution, Tensor};
use capsnet_model::{CapsNetConfig, LossConfig, RoutingConfig, route};
use std::time::Instant;

fn time<F: FnMut()>(name: &str, reps: usize, mut f: F) {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    println!(
        "{name:<40} {:>8.1} ms",
        t.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
}

fn main() {
    let b = 32;
    let dev = capsnet_bench::device().1.without_autodiff();
    let ad = dev.clone().autodiff();
    let x = Tensor::<4>::random([b, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &dev);
    let conv1 = Conv2dConfig::new([1, 256], [9, 9]).init(&dev);
    let prim = Conv2dConfig::new([256, 256], [9, 9])
        .with_stride([2, 2])
        .init(&dev);
    let f1 = relu(conv1.forward(x.clone()));
    time("fwd conv1 (1->256 9x9)", 5, || {
        let _ = conv1.forward(x.clone()).into_data();
    });
    time("fwd primary conv (256->256 9x9 s2)", 5, || {
        let _ = prim.forward(f1.clone()).into_data();
    });
    let votes = Tensor::<4>::random([b, 10, 1152, 16], Distribution::Normal(0.0, 0.05), &dev);
    let cfg = RoutingConfig::default();
    time("fwd routing r=3", 5, || {
        let _ = route(votes.clone(), None, &cfg).parents.into_data();
    });
    let u = Tensor::<3>::random([b, 1152, 8], Distribution::Normal(0.0, 0.1), &dev);
    let w = Tensor::<3>::random([1152, 8, 160], Distribution::Normal(0.0, 0.01), &dev);
    time("fwd votes (bmm 1152x[B,8]x[8,160])", 5, || {
        let _ = u
            .clone()
            .swap_dims(0, 1)
            .matmul(w.clone())
            .reshape([1152, b, 10, 16])
            .permute([1, 2, 0, 3])
            .into_data();
    });
    // autodiff pieces
    let conv1a = Conv2dConfig::new([1, 256], [9, 9]).init(&ad);
    let prima = Conv2dConfig::new([256, 256], [9, 9])
        .with_stride([2, 2])
        .init(&ad);
    let xa = Tensor::<4>::random([b, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &ad);
    time("fwd+bwd conv1", 3, || {
        let y = conv1a.forward(xa.clone());
        let g = y.sum().backward();
        let _ = conv1a.weight.val().grad(&g).unwrap().into_data();
    });
    let fa =
        Tensor::<4>::random([b, 256, 20, 20], Distribution::Uniform(0.0, 1.0), &ad).require_grad();
    time("fwd+bwd primary conv", 3, || {
        let y = prima.forward(fa.clone());
        let g = y.sum().backward();
        let _ = prima.weight.val().grad(&g).unwrap().into_data();
    });
    let va =
        Tensor::<4>::random([b, 10, 1152, 16], Distribution::Normal(0.0, 0.05), &ad).require_grad();
    time("fwd+bwd routing r=3", 3, || {
        let v = route(va.clone(), None, &cfg).parents;
        let g = v.sum().backward();
        let _ = va.grad(&g).unwrap().into_data();
    });
    let net = CapsNetConfig::paper_mnist().init(&ad).unwrap();
    let labels = burn::tensor::Tensor::<1, burn::tensor::Int>::from_data(
        burn::tensor::TensorData::new((0..b as i64).map(|i| i % 10).collect::<Vec<_>>(), [b]),
        &ad,
    );
    time("full fwd (autodiff graph)", 3, || {
        let o = net.forward(xa.clone(), Some(labels.clone()));
        let _ = o.lengths.into_data();
    });
    time("full fwd+loss+bwd", 3, || {
        let o = net.forward(xa.clone(), Some(labels.clone()));
        let l = net
            .loss(&o, xa.clone(), labels.clone(), &LossConfig::default())
            .total;
        let g = l.backward();
        let _ = net.digit.weight.val().grad(&g).unwrap().into_data();
    });
    let ua = Tensor::<3>::random([b, 1152, 8], Distribution::Normal(0.0, 0.1), &ad).require_grad();
    let wa =
        Tensor::<3>::random([1152, 8, 160], Distribution::Normal(0.0, 0.01), &ad).require_grad();
    time("fwd+bwd votes", 3, || {
        let v = ua
            .clone()
            .swap_dims(0, 1)
            .matmul(wa.clone())
            .reshape([1152, b, 10, 16])
            .permute([1, 2, 0, 3]);
        let g = v.sum().backward();
        let _ = wa.grad(&g).unwrap().into_data();
    });
    let mut net2 = CapsNetConfig::paper_mnist().init(&ad).unwrap();
    let mut optim = burn::optim::AdamConfig::new().init();
    let o = net2.forward(xa.clone(), Some(labels.clone()));
    let l = net2
        .loss(&o, xa.clone(), labels.clone(), &LossConfig::default())
        .total;
    let grads = burn::optim::GradientsParams::from_grads(l.backward(), &net2);
    net2 = optim.step(1e-3, net2, grads);
    for _ in 0..3 {
        let o = net2.forward(xa.clone(), Some(labels.clone()));
        let l = net2
            .loss(&o, xa.clone(), labels.clone(), &LossConfig::default())
            .total;
        let g = l.backward();
        let grads = burn::optim::GradientsParams::from_grads(g, &net2);
        let t = Instant::now();
        net2 = optim.step(1e-3, net2, grads);
        let _ = net2.digit.weight.val().narrow(0, 0, 1).into_data();
        println!(
            "{:<40} {:>8.1} ms",
            "adam step (8.2M params)",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let _ = net.num_params();
}
