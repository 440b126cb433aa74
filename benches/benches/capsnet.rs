//! Criterion benchmarks: routing forward+backward (r = 1, 3, 5), a full training step and
//! inference of the paper's MNIST CapsNet at batch 32.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Distribution, Tensor};
use capsnet_bench::{device, mnist_batch};
use capsnet_model::{CapsNetConfig, LossConfig, RoutingConfig, route};
use criterion::{Criterion, criterion_group, criterion_main};

const BATCH: usize = 32;

fn routing(c: &mut Criterion) {
    let (kind, device) = device();
    let mut group = c.benchmark_group(format!("{}/routing_fwd_bwd_b{BATCH}", kind.name()));
    group.sample_size(10);
    let votes: Tensor<4> = Tensor::random(
        [BATCH, 10, 1152, 16],
        Distribution::Normal(0.0, 0.05),
        &device,
    );
    for iterations in [1, 3, 5] {
        let config = RoutingConfig {
            iterations,
            ..Default::default()
        };
        group.bench_function(format!("r{iterations}"), |b| {
            b.iter(|| {
                let u = votes.clone().require_grad();
                let v = route(u.clone(), None, &config).parents;
                let grads = v.sum().backward();
                let _ = u.grad(&grads).expect("gradient").into_data();
            })
        });
    }
    group.finish();
}

fn paper_model(c: &mut Criterion) {
    let (kind, device) = device();
    let mut group = c.benchmark_group(format!("{}/paper_capsnet_b{BATCH}", kind.name()));
    group.sample_size(10);
    let loss = LossConfig::default();
    let mut net = CapsNetConfig::paper_mnist()
        .init(&device)
        .expect("paper config is valid");
    let mut optim = burn::optim::AdamConfig::new().init();
    let (images, labels) = mnist_batch(BATCH, &device);
    group.bench_function("train_step", |b| {
        b.iter(|| {
            let out = net.forward(images.clone(), Some(labels.clone()));
            let total = net.loss(&out, images.clone(), labels.clone(), &loss).total;
            let grads = GradientsParams::from_grads(total.backward(), &net);
            net = optim.step(1e-4, net.clone(), grads);
            let _ = net.digit.weight.val().narrow(0, 0, 1).into_data();
        })
    });
    let eval_net = net.valid();
    let inner = device.clone().without_autodiff();
    let (images, _) = mnist_batch(BATCH, &inner);
    group.bench_function("inference", |b| {
        b.iter(|| {
            let out = eval_net.forward(images.clone(), None);
            let _ = out.lengths.into_data();
        })
    });
    group.finish();
}

criterion_group!(benches, routing, paper_model);
criterion_main!(benches);
