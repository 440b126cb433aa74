//! Where a training step of Efficient-CapsNet (Mazzia et al. 2021, the MNIST network) spends
//! its time on this backend, stage by stage: each stem convolution with burn's generic
//! convolution and with capsnet-ops' blocked and spectral kernels, batch norm, the depthwise
//! convolution, the capsule layer with self-attention routing, the decoder, and the whole step.
//!
//!     cargo build --release --workspace --all-targets
//!     target/release/examples/profile_efficient [BATCH]
//!
//! (`capsnet_bench::device` applies the `capsnet` binary's allocator settings first.)
//! Each figure is the median of several timed repetitions after a warm-up, forward + backward
//! with the gradients read back. Speed only; docs/performance.md has the numbers.

use burn::module::Module;
use burn::nn::conv::Conv2dConfig;
use burn::nn::{BatchNormConfig, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use capsnet_model::kernels::{ConvAlgorithm, Kernels, conv2d};
use capsnet_model::{
    DigitCaps, EfficientCapsNetConfig, LossConfig, RoutingConfig, Squash, SquashKind,
};
use std::time::Instant;

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

fn main() {
    let b: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("BATCH is a positive number"))
        .unwrap_or(16);
    let ad = capsnet_bench::device().1.autodiff();
    let reps = 5;
    println!(
        "Efficient-CapsNet stages, batch {b}, backend {:?}; forward + backward, ms (median of {reps})\n",
        capsnet_bench::device().0
    );
    println!("| stage | burn generic | blocked | spectral |\n|---|---:|---:|---:|");
    let config = EfficientCapsNetConfig::paper_mnist();
    let mut shape = (1, 28, 28);
    for (i, layer) in config.stem.iter().enumerate() {
        let conv = Conv2dConfig::new([shape.0, layer.channels], [layer.kernel, layer.kernel])
            .with_stride([layer.stride, layer.stride])
            .init(&ad);
        let x = Tensor::<4>::random([b, shape.0, shape.1, shape.2], Distribution::Default, &ad)
            .require_grad();
        let time = |kernels: Kernels| {
            median_ms(reps, || {
                let y = conv2d(&conv, x.clone(), kernels);
                let g = y.sum().backward();
                let _ = conv.weight.val().grad(&g).unwrap().into_data();
                let _ = x.grad(&g).unwrap().into_data();
            })
        };
        let fused = |conv| Kernels { fused: true, conv };
        println!(
            "| conv{} {}→{} {k}×{k}/{} on {}×{} | {:.2} | {:.2} | {:.2} |",
            i + 1,
            shape.0,
            layer.channels,
            layer.stride,
            shape.1,
            shape.2,
            time(Kernels::generic()),
            time(fused(ConvAlgorithm::Blocked)),
            time(fused(ConvAlgorithm::Spectral)),
            k = layer.kernel,
        );
        shape = config.stem_shapes()[i];
    }
    let other = |stage: &str, f: &mut dyn FnMut()| {
        println!("| {stage} | {:.2} | | |", median_ms(reps, f));
    };
    let (c, h, w) = shape;
    let x = Tensor::<4>::random([b, c, h, w], Distribution::Default, &ad).require_grad();
    let norm = BatchNormConfig::new(c).init(&ad);
    other(
        &format!("batch norm on {c}×{h}×{w} (+ ReLU)"),
        &mut || {
            let y = norm.forward(relu(x.clone()));
            let g = y.sum().backward();
            let _ = x.grad(&g).unwrap().into_data();
        },
    );
    let big = Tensor::<4>::random([b, 64, 22, 22], Distribution::Default, &ad).require_grad();
    let norm64 = BatchNormConfig::new(64).init(&ad);
    other("batch norm on 64×22×22 (+ ReLU)", &mut || {
        let y = norm64.forward(relu(big.clone()));
        let g = y.sum().backward();
        let _ = big.grad(&g).unwrap().into_data();
    });
    let depthwise = Conv2dConfig::new([c, c], [9, 9]).with_groups(c).init(&ad);
    other("depthwise 9×9 on 128×9×9 (burn)", &mut || {
        let y = depthwise.forward(x.clone());
        let g = y.sum().backward();
        let _ = depthwise.weight.val().grad(&g).unwrap().into_data();
        let _ = x.grad(&g).unwrap().into_data();
    });
    let u = Tensor::<3>::random([b, 16, 8], Distribution::Default, &ad).require_grad();
    let routing = RoutingConfig::SelfAttention(Default::default());
    let squash = Squash {
        kind: SquashKind::Efficient,
        eps: 1e-8,
    };
    let caps = DigitCaps::init(16, 8, 10, 16, false, &routing, 0.04, &ad);
    other("FCCaps votes + self-attention routing", &mut || {
        let v = caps.forward(u.clone(), &routing, &squash, Kernels::default());
        let g = v.parents.sum().backward();
        let _ = caps.weight.val().grad(&g).unwrap().into_data();
        let _ = u.grad(&g).unwrap().into_data();
    });
    let fc: Vec<_> = [(160, 512), (512, 1024), (1024, 784)]
        .iter()
        .map(|&(i, o)| LinearConfig::new(i, o).init(&ad))
        .collect();
    let d = Tensor::<2>::random([b, 160], Distribution::Default, &ad).require_grad();
    other("decoder 160→512→1024→784", &mut || {
        let mut y = d.clone();
        for layer in &fc {
            y = relu(layer.forward(y));
        }
        let g = y.sum().backward();
        let _ = d.grad(&g).unwrap().into_data();
    });
    let net = config.init(&ad).unwrap();
    let images = Tensor::<4>::random([b, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &ad);
    let labels = Tensor::<1, Int>::from_data(
        TensorData::new((0..b as i64).map(|i| i % 10).collect::<Vec<_>>(), [b]),
        &ad,
    );
    let loss = LossConfig::default();
    for (name, kernels) in [
        ("whole network + loss (generic)", Kernels::generic()),
        ("whole network + loss (fused, auto)", Kernels::default()),
        (
            "whole network + loss (fused, blocked)",
            Kernels {
                fused: true,
                conv: ConvAlgorithm::Blocked,
            },
        ),
    ] {
        let net = net.clone().with_kernels(kernels);
        other(name, &mut || {
            let o = net.forward(images.clone(), Some(labels.clone()));
            let l = net.loss(&o, images.clone(), labels.clone(), &loss).total;
            let g = l.backward();
            let _ = net.capsules.weight.val().grad(&g).unwrap().into_data();
        });
    }
    let _ = net.valid();
}
