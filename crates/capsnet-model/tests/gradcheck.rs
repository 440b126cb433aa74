//! Finite-difference gradient checks in f64 (each test is its own process under nextest, so
//! configuring the flex device to f64 does not leak into other tests).

mod common;

use burn::module::Param;
use burn::tensor::{Int, Tensor, TensorData};
use capsnet_model::squash::squash_efficient;
use capsnet_model::{
    CapsNetConfig, DynamicRouting, LossConfig, RoutingConfig, SelfAttentionRouting, Squash,
    SquashKind, capsule_lengths, cross_entropy, margin_loss, reconstruction_sse, route, squash,
};
use common::{f64_device, gradcheck, pseudo_random, tensor, values, weighted_sum};

#[test]
fn squash_gradient() {
    let device = f64_device();
    let x = pseudo_random(3 * 4 * 5, 11, 2.0);
    gradcheck("squash", &x, [3, 4, 5], &device, 60, |s| {
        weighted_sum(squash(s, 2, 1e-8), 1)
    });
}

#[test]
fn squash_and_length_are_finite_at_zero() {
    let device = f64_device();
    let zero = tensor(vec![0.0; 2 * 3 * 4], [2, 3, 4], &device).require_grad();
    let v = squash(zero.clone(), 2, 1e-8);
    let out = capsule_lengths(v.clone(), 1e-8).sum() + v.clone().sum();
    let grads = out.backward();
    let g = values(zero.grad(&grads).unwrap());
    assert!(
        g.iter().all(|x| x.is_finite()),
        "NaN/inf gradient at zero: {g:?}"
    );
    assert!(values(v).iter().all(|x| *x == 0.0));
}

#[test]
fn squash_keeps_direction_and_bounds_length() {
    let device = f64_device();
    let s = tensor(vec![3.0, 4.0, 0.0, 0.03, -0.04, 0.0], [1, 2, 3], &device);
    let v = values(squash(s, 2, 0.0));
    // ‖(3,4,0)‖ = 5 → length 25/26, direction (0.6, 0.8).
    let long = 25.0 / 26.0;
    assert!((v[0] - 0.6 * long).abs() < 1e-12 && (v[1] - 0.8 * long).abs() < 1e-12);
    // ‖(0.03,-0.04,0)‖ = 0.05 → length 0.0025/1.0025.
    let short = 0.0025 / 1.0025;
    assert!((v[3] - 0.6 * short).abs() < 1e-12 && (v[4] + 0.8 * short).abs() < 1e-12);
}

#[test]
fn efficient_squash_gradient_and_values() {
    let device = f64_device();
    let x = pseudo_random(3 * 4 * 5, 21, 2.0);
    gradcheck("efficient squash", &x, [3, 4, 5], &device, 60, |s| {
        weighted_sum(squash_efficient(s, 2, 1e-8), 1)
    });
    // ‖(3,4,0)‖ = 5 → length 1 − e^−5, direction (0.6, 0.8); finite gradient at zero.
    let s = tensor(vec![3.0, 4.0, 0.0], [1, 1, 3], &device);
    let v = values(squash_efficient(s, 2, 0.0));
    let long = 1.0 - (-5.0f64).exp();
    assert!((v[0] - 0.6 * long).abs() < 1e-12 && (v[1] - 0.8 * long).abs() < 1e-12);
    let zero = tensor(vec![0.0; 6], [1, 2, 3], &device).require_grad();
    let grads = squash_efficient(zero.clone(), 2, 1e-8).sum().backward();
    assert!(
        values(zero.grad(&grads).unwrap())
            .iter()
            .all(|g| g.is_finite())
    );
}

/// Finite-difference check of the votes' gradient for every routing algorithm × option of the
/// generated grid (`RoutingConfig::option_grid`), under both squash functions.
#[test]
fn routing_gradient_for_every_algorithm_and_option() {
    let device = f64_device();
    let votes = pseudo_random(2 * 3 * 5 * 4, 12, 1.0);
    let priors = tensor(pseudo_random(3 * 5, 16, 0.1), [3, 5], &device);
    for config in RoutingConfig::option_grid() {
        // Iterations 0 and 1 compute the same function (tested in paper_facts). Stop-gradient
        // is by design not the gradient of the forward function (tested below).
        if config.iterations() == Some(0) || config.dynamic().is_some_and(|d| d.stop_gradient) {
            continue;
        }
        for kind in [SquashKind::Sabour, SquashKind::Efficient] {
            let squash = Squash { kind, eps: 1e-8 };
            let p = config.priors_shape(3, 5).map(|_| priors.clone());
            let name = format!("{config:?} {kind:?}");
            gradcheck(&name, &votes, [2, 3, 5, 4], &device, 40, |u| {
                weighted_sum(route(u, None, p.as_ref(), &config, &squash).parents, 2)
            });
        }
    }
}

/// The priors of self-attention routing get the finite-difference gradient too.
#[test]
fn self_attention_priors_gradient() {
    let device = f64_device();
    let votes = tensor(pseudo_random(2 * 3 * 5 * 4, 17, 1.0), [2, 3, 5, 4], &device);
    let priors = pseudo_random(3 * 5, 18, 0.1);
    let config = RoutingConfig::SelfAttention(SelfAttentionRouting { priors: true });
    let squash = Squash {
        kind: SquashKind::Efficient,
        eps: 1e-8,
    };
    gradcheck("self-attention priors", &priors, [3, 5], &device, 15, |p| {
        weighted_sum(
            route(votes.clone(), None, Some(&p), &config, &squash).parents,
            5,
        )
    });
}

#[test]
fn stop_gradient_keeps_forward_and_changes_backward() {
    let device = f64_device();
    let data = pseudo_random(2 * 3 * 5 * 4, 14, 1.0);
    let run = |stop_gradient: bool| {
        let config = RoutingConfig::Dynamic(DynamicRouting {
            iterations: 3,
            stop_gradient,
            ..Default::default()
        });
        let u = tensor(data.clone(), [2, 3, 5, 4], &device).require_grad();
        let v = route(u.clone(), None, None, &config, &Squash::default()).parents;
        let grads = weighted_sum(v.clone(), 4).backward();
        (values(v), values(u.grad(&grads).unwrap()))
    };
    let (v_full, g_full) = run(false);
    let (v_stop, g_stop) = run(true);
    assert_eq!(v_full, v_stop);
    let diff: f64 = g_full.iter().zip(&g_stop).map(|(a, b)| (a - b).abs()).sum();
    assert!(diff > 1e-6, "stop-gradient did not change the gradient");
}

#[test]
fn margin_loss_gradient() {
    let device = f64_device();
    let lengths: Vec<f64> = pseudo_random(4 * 5, 15, 0.5)
        .iter()
        .map(|x| x + 0.5)
        .collect();
    let mut onehot = vec![0.0; 20];
    for (b, t) in [1usize, 0, 4, 2].iter().enumerate() {
        onehot[b * 5 + t] = 1.0;
    }
    let targets = tensor(onehot, [4, 5], &device);
    let config = LossConfig::default();
    gradcheck("margin loss", &lengths, [4, 5], &device, 20, |l| {
        margin_loss(l, targets.clone(), &config)
    });
}

#[test]
fn reconstruction_and_cross_entropy_gradients() {
    let device = f64_device();
    let images = tensor(pseudo_random(3 * 7, 16, 1.0), [3, 7], &device);
    let recon = pseudo_random(3 * 7, 17, 1.0);
    gradcheck("reconstruction", &recon, [3, 7], &device, 21, |r| {
        reconstruction_sse(r, images.clone())
    });
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0, 3], [3]), &device);
    let logits = pseudo_random(3 * 4, 18, 2.0);
    gradcheck("cross-entropy", &logits, [3, 4], &device, 12, |z| {
        cross_entropy(z, labels.clone())
    });
}

fn tiny_config() -> CapsNetConfig {
    let mut config = CapsNetConfig::paper_mnist();
    config.input_height = 10;
    config.input_width = 10;
    config.conv1_channels = 3;
    config.conv1_kernel = 3;
    config.primary_types = 2;
    config.primary_dim = 3;
    config.primary_kernel = 3;
    config.primary_stride = 2;
    config.classes = 3;
    config.class_dim = 4;
    config.weight_init_std = 0.5;
    config.decoder.hidden = vec![5];
    config
}

#[test]
fn small_capsnet_gradient_wrt_input() {
    let device = f64_device();
    let config = tiny_config();
    let model = config.init(&device).unwrap();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0], [2]), &device);
    let loss_config = LossConfig {
        recon_weight: 0.05,
        ..Default::default()
    };
    let images: Vec<f64> = pseudo_random(2 * 100, 19, 0.5)
        .iter()
        .map(|x| x + 0.5)
        .collect();
    gradcheck("capsnet input", &images, [2, 1, 10, 10], &device, 50, |x| {
        let out = model.forward(x.clone(), Some(labels.clone()));
        model.loss(&out, x, labels.clone(), &loss_config).total
    });
}

#[test]
fn small_capsnet_gradient_wrt_digitcaps_weights() {
    let device = f64_device();
    let config = tiny_config();
    let mut model = config.init(&device).unwrap();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 2], [2]), &device);
    let images = tensor(
        pseudo_random(2 * 100, 20, 0.5)
            .iter()
            .map(|x| x + 0.5)
            .collect(),
        [2, 1, 10, 10],
        &device,
    );
    let shape = model.digit.weight.val().dims();
    let w0 = values(model.digit.weight.val());
    let loss_config = LossConfig::default();
    // Gradient through the module parameter (what the optimizer sees)…
    model.digit.weight = Param::from_tensor(tensor(w0.clone(), shape, &device).require_grad());
    let out = model.forward(images.clone(), Some(labels.clone()));
    let grads = model
        .loss(&out, images.clone(), labels.clone(), &loss_config)
        .total
        .backward();
    let param_grad = values(model.digit.weight.val().grad(&grads).unwrap());
    // …equals the finite-difference gradient of the loss as a function of W.
    let checked = gradcheck("digitcaps W", &w0, shape, &device, 60, |w| {
        let mut m = model.clone();
        m.digit.weight = Param::from_tensor(w);
        let out = m.forward(images.clone(), Some(labels.clone()));
        m.loss(&out, images.clone(), labels.clone(), &loss_config)
            .total
    });
    for (a, b) in param_grad.iter().zip(&checked) {
        assert!(
            (a - b).abs() < 1e-12,
            "parameter gradient {a} vs checked {b}"
        );
    }
}
