//! Criterion benchmarks: routing forward+backward (dynamic r = 1, 3, 5 and self-attention, on
//! the paper's votes), a full training step and inference of the paper's MNIST CapsNet at
//! batch 32.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Distribution, Tensor};
use capsnet_bench::{device, mnist_batch};
use capsnet_model::{
    CapsNetConfig, DynamicRouting, LossConfig, RoutingConfig, SelfAttentionRouting, Squash, route,
};
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
    let priors: Tensor<2> = Tensor::zeros([10, 1152], &device);
    let configs = [1, 3, 5]
        .map(|iterations| {
            RoutingConfig::Dynamic(DynamicRouting {
                iterations,
                ..Default::default()
            })
        })
        .into_iter()
        .chain([RoutingConfig::SelfAttention(SelfAttentionRouting::default())]);
    for config in configs {
        let name = match config.iterations() {
            Some(r) => format!("r{r}"),
            None => config.algorithm().name().to_string(),
        };
        let p = config.priors_shape(10, 1152).map(|_| priors.clone());
        group.bench_function(name, |b| {
            b.iter(|| {
                let u = votes.clone().require_grad();
                let v = route(u.clone(), None, p.as_ref(), &config, &Squash::default()).parents;
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
