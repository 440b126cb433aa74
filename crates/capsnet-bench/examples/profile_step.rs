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
    let wflat = prima.weight.val().reshape([256, 256 * 81]);
    let unfold_conv = |x: Tensor<4>, w: Tensor<2>| -> Tensor<2> {
        let [bn, c, _, _] = x.dims();
        let p: Tensor<6> = x.unfold::<5, _>(2, 9, 2).unfold(3, 9, 2);
        let p = p.permute([0, 2, 3, 1, 4, 5]).reshape([bn * 36, c * 81]);
        p.matmul(w.transpose())
    };
    time("fwd primary conv unfold+matmul", 3, || {
        let _ = unfold_conv(fa.clone().inner(), wflat.clone().inner()).into_data();
    });
    time("fwd+bwd primary conv unfold+matmul", 3, || {
        let w = prima.weight.val().reshape([256, 256 * 81]);
        let y = unfold_conv(fa.clone(), w);
        let g = y.sum().backward();
        let _ = prima.weight.val().grad(&g).unwrap().into_data();
        let _ = fa.grad(&g).unwrap().into_data();
    });
    time("fwd+bwd primary conv (x grad too)", 3, || {
        let y = prima.forward(fa.clone());
        let g = y.sum().backward();
        let _ = prima.weight.val().grad(&g).unwrap().into_data();
        let _ = fa.grad(&g).unwrap().into_data();
    });
    {
        let pm = Tensor::<2>::random([b * 36, 20736], Distribution::Uniform(0.0, 1.0), &dev);
        let wm = Tensor::<2>::random([256, 20736], Distribution::Uniform(0.0, 1.0), &dev);
        let gm = Tensor::<2>::random([b * 36, 256], Distribution::Uniform(0.0, 1.0), &dev);
        time("mm P.W^T [1152,20736]x[20736,256]", 3, || {
            let _ = pm.clone().matmul(wm.clone().transpose()).into_data();
        });
        time("mm G.W [1152,256]x[256,20736]", 3, || {
            let _ = gm.clone().matmul(wm.clone()).into_data();
        });
        time("mm P^T.G [20736,1152]x[1152,256]", 3, || {
            let _ = pm.clone().transpose().matmul(gm.clone()).into_data();
        });
        time("mm G^T.P [256,1152]x[1152,20736]", 3, || {
            let _ = gm.clone().transpose().matmul(pm.clone()).into_data();
        });
        let f = fa.clone().inner();
        time("unfold copy", 3, || {
            let p: Tensor<6> = f.clone().unfold::<5, _>(2, 9, 2).unfold(3, 9, 2);
            let _ = p
                .permute([0, 2, 3, 1, 4, 5])
                .reshape([b * 36, 256 * 81])
                .into_data();
        });
    }
    {
        let idx: Vec<i64> = (0..6)
            .flat_map(|oh| {
                (0..6).flat_map(move |ow| {
                    (0..9).flat_map(move |kh| {
                        (0..9).map(move |kw| ((2 * oh + kh) * 20 + 2 * ow + kw) as i64)
                    })
                })
            })
            .collect();
        let idx = burn::tensor::Tensor::<1, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(idx, [2916]),
            &ad,
        );
        let sel_conv = |x: Tensor<4>, w: Tensor<4>| -> Tensor<2> {
            let [bn, c, h, wd] = x.dims();
            let xn = x.permute([0, 2, 3, 1]).reshape([bn, h * wd, c]);
            let p = xn.select(1, idx.clone()).reshape([bn * 36, 81 * c]);
            let wp = w.permute([0, 2, 3, 1]).reshape([256, 81 * c]);
            p.matmul(wp.transpose())
        };
        time("fwd+bwd primary conv select+matmul", 3, || {
            let y = sel_conv(fa.clone(), prima.weight.val());
            let g = y.sum().backward();
            let _ = prima.weight.val().grad(&g).unwrap().into_data();
            let _ = fa.grad(&g).unwrap().into_data();
        });
        time("fwd primary conv select+matmul", 3, || {
            let _ = sel_conv(fa.clone(), prima.weight.val()).into_data();
        });
        let wm = Tensor::<2>::random([256, 20736], Distribution::Uniform(0.0, 1.0), &dev);
        let gm = Tensor::<2>::random([b * 36, 256], Distribution::Uniform(0.0, 1.0), &dev);
        time("mm W^T.G^T [20736,256]x[256,1152]", 3, || {
            let _ = wm
                .clone()
                .transpose()
                .matmul(gm.clone().transpose())
                .into_data();
        });
    }
    {
        use burn::tensor::module::{conv_transpose2d, conv2d_weight_backward};
        use burn::tensor::ops::ConvOptions;
        use burn::tensor::ops::ConvTransposeOptions;
        let x = Tensor::<4>::random([b, 256, 20, 20], Distribution::Uniform(0.0, 1.0), &dev);
        let w = Tensor::<4>::random([256, 256, 9, 9], Distribution::Uniform(0.0, 1.0), &dev);
        let g = Tensor::<4>::random([b, 256, 6, 6], Distribution::Uniform(0.0, 1.0), &dev);
        let opt = ConvOptions::new([2, 2], [0, 0], [1, 1], 1);
        time("native conv2d_x_backward", 3, || {
            let o = ConvTransposeOptions::new([2, 2], [0, 0], [1, 1], [1, 1], 1);
            let _ = conv_transpose2d(g.clone(), w.clone(), None, o).into_data();
        });
        time("native conv2d_weight_backward", 3, || {
            let _ =
                conv2d_weight_backward(x.clone(), w.clone(), g.clone(), opt.clone()).into_data();
        });
    }
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
