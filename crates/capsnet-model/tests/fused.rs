//! capsnet-ops' fused kernels against burn's generic operations, in f64 on flex (or on LibTorch's
//! CPU with `CAPSNET_TEST_BACKEND=tch`, see `common::test_backend`): outputs and every gradient
//! of the convolution and of DigitCaps votes + routing (all routing options), then whole
//! networks with the kernels on and off. (Each test is its own process under
//! nextest, so the f64 device setting does not leak.)

mod common;

use burn::module::Param;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Int, Tensor, TensorData};
use capsnet_model::kernels::{self, ConvAlgorithm, Kernels};
use capsnet_model::{CapsNetConfig, DigitCaps, LossConfig, RoutingConfig, Squash, SquashKind};
use common::{f64_device, pseudo_random, tensor, values, weighted_sum};

/// Largest absolute difference divided by the largest reference magnitude.
fn scaled_diff(reference: &[f64], other: &[f64]) -> f64 {
    assert_eq!(reference.len(), other.len());
    let scale = reference
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-300);
    let diff = reference
        .iter()
        .zip(other)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

fn assert_close(name: &str, reference: &[f64], other: &[f64], tol: f64) {
    let d = scaled_diff(reference, other);
    assert!(d <= tol, "{name}: scaled difference {d:e} > {tol:e}");
    assert!(
        other.iter().all(|v| v.is_finite()),
        "{name}: non-finite values"
    );
}

#[test]
fn fused_kernels_are_available_on_flex_and_tch_only_in_f32_and_f64() {
    use burn::tensor::{DType, Device};
    use capsnet_ops::{KernelOp, kernel_available};
    let flex = Device::flex();
    for op in KernelOp::ALL {
        assert!(kernel_available(op, &flex, DType::F32), "{op:?}");
        assert!(
            kernel_available(op, &flex.clone().autodiff(), DType::F64),
            "{op:?}"
        );
        assert!(!kernel_available(op, &flex, DType::BF16), "{op:?}");
        #[allow(deprecated)] // burn-ndarray: the backend without the kernels
        let ndarray = Device::ndarray();
        assert!(!kernel_available(op, &ndarray, DType::F32), "{op:?}");
        #[cfg(feature = "tch")]
        {
            #[allow(deprecated)] // burn-tch: deprecated upstream, kept as the libtorch path
            let tch = Device::libtorch();
            assert!(
                kernel_available(op, &tch.clone().autodiff(), DType::F32),
                "{op:?}"
            );
            assert!(!kernel_available(op, &tch, DType::F16), "{op:?}");
        }
    }
}

#[test]
fn fused_convolution_matches_burn_conv2d_and_its_gradients() {
    let device = f64_device();
    for (xs, ws, stride, padding) in [
        ([2, 3, 11, 10], [4, 3, 3, 3], [1, 1], [0, 0]),
        ([3, 5, 20, 20], [6, 5, 9, 9], [2, 2], [0, 0]),
        ([2, 2, 7, 9], [3, 2, 3, 4], [2, 1], [1, 2]),
    ] {
        let n = |s: [usize; 4]| s.iter().product::<usize>();
        let x0 = pseudo_random(n(xs), 1, 1.0);
        let w0 = pseudo_random(n(ws), 2, 0.3);
        let run = |fused: Option<ConvAlgorithm>| {
            let x = tensor(x0.clone(), xs, &device).require_grad();
            let w = tensor(w0.clone(), ws, &device).require_grad();
            let y = if let Some(algorithm) = fused {
                capsnet_ops::conv2d_with(x.clone(), w.clone(), stride, padding, algorithm)
                    .expect("flex f64 has the fused convolution")
            } else {
                conv2d(
                    x.clone(),
                    w.clone(),
                    None,
                    ConvOptions::new(stride, padding, [1, 1], 1),
                )
            };
            let grads = weighted_sum(y.clone(), 3).backward();
            (
                values(y),
                values(x.grad(&grads).unwrap()),
                values(w.grad(&grads).unwrap()),
            )
        };
        let (y_g, dx_g, dw_g) = run(None);
        for algorithm in [
            ConvAlgorithm::Auto,
            ConvAlgorithm::Blocked,
            ConvAlgorithm::Spectral,
        ] {
            let (y_f, dx_f, dw_f) = run(Some(algorithm));
            let case = format!("{xs:?} {ws:?} stride {stride:?} padding {padding:?} {algorithm:?}");
            assert_close(&format!("output {case}"), &y_g, &y_f, 1e-12);
            assert_close(&format!("input gradient {case}"), &dx_g, &dx_f, 1e-12);
            assert_close(&format!("weight gradient {case}"), &dw_g, &dw_f, 1e-12);
        }
    }
}

/// Votes + routing with the kernels on and off, for every routing algorithm × option of the
/// generated grid (`RoutingConfig::option_grid`), with and without the bias, under both squash
/// functions: outputs, couplings and every gradient. Where no kernel exists (self-attention,
/// the Efficient squash) both sides run the generic path and must agree exactly.
#[test]
fn fused_votes_and_routing_match_the_generic_path_for_every_option() {
    let device = f64_device();
    let (batch, children, in_dim, parents, dim) = (3, 13, 4, 5, 6);
    let u0 = pseudo_random(batch * children * in_dim, 4, 1.0);
    let w0 = pseudo_random(children * in_dim * parents * dim, 5, 0.7);
    let b0 = pseudo_random(parents * dim, 6, 0.2);
    let p0 = pseudo_random(parents * children, 9, 0.1);
    let grid = RoutingConfig::option_grid();
    assert!(grid.len() >= 18, "the grid covers every algorithm");
    let mut fused_cases = 0;
    for routing in grid {
        for squash_kind in [SquashKind::Sabour, SquashKind::Efficient] {
            for with_bias in [false, true] {
                let squash = Squash {
                    kind: squash_kind,
                    eps: 1e-8,
                };
                let run = |fused: bool| {
                    let u = tensor(u0.clone(), [batch, children, in_dim], &device).require_grad();
                    let w = tensor(w0.clone(), [children, in_dim, parents * dim], &device);
                    let b = with_bias.then(|| tensor(b0.clone(), [parents, dim], &device));
                    let p = routing
                        .priors_shape(parents, children)
                        .map(|shape| tensor(p0.clone(), shape, &device));
                    let layer = DigitCaps::from_weight(w, b, p, dim);
                    let kernels = Kernels {
                        fused,
                        ..Kernels::default()
                    };
                    let routed = layer.forward(u.clone(), &routing, &squash, kernels);
                    let history: Vec<f64> = routed
                        .coupling_history
                        .iter()
                        .flat_map(|c| values(c.clone()))
                        .collect();
                    let grads = weighted_sum(routed.parents.clone(), 7).backward();
                    let mut out = vec![
                        values(routed.parents),
                        history,
                        values(u.grad(&grads).unwrap()),
                        values(layer.weight.val().grad(&grads).unwrap()),
                    ];
                    for param in [&layer.bias, &layer.priors].into_iter().flatten() {
                        out.push(values(param.val().grad(&grads).unwrap()));
                    }
                    out
                };
                let generic = run(false);
                let fused = run(true);
                let has_kernel = kernels::routing_fused(
                    &routing,
                    &squash,
                    Kernels::default(),
                    &device,
                    burn::tensor::DType::F64,
                );
                fused_cases += usize::from(has_kernel);
                let case = format!("{routing:?} {squash_kind:?} bias={with_bias}");
                assert_eq!(generic.len(), fused.len(), "{case}");
                for (k, (g, f)) in generic.iter().zip(&fused).enumerate() {
                    assert_close(&format!("quantity #{k} ({case})"), g, f, 1e-11);
                    if !has_kernel {
                        assert_eq!(g, f, "quantity #{k} ({case}): same generic path");
                    }
                }
            }
        }
    }
    // Dynamic routing with Sabour's squash has a kernel on flex: 16 options × 2 biases.
    assert_eq!(fused_cases, 32);
}

fn small_paper_like() -> CapsNetConfig {
    let mut config = CapsNetConfig::paper_mnist();
    config.conv1_channels = 16;
    config.primary_types = 4;
    config.decoder.hidden = vec![32, 64];
    config
}

/// Every parameter's gradient, in module order (state without gradients, batch norm's running
/// statistics, is left out: clones of a module share it).
fn param_grads<M: burn::module::Module>(
    model: &M,
    grads: &burn::tensor::Gradients,
) -> Vec<Vec<f64>> {
    use burn::module::ModuleVisitor;
    use burn::tensor::Gradients;

    struct Collect<'a>(&'a Gradients, Vec<Vec<f64>>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            if !value.is_require_grad() {
                return;
            }
            self.1.push(values(
                value.grad(self.0).expect("every parameter has a gradient"),
            ));
        }
    }
    let mut collect = Collect(grads, Vec::new());
    model.visit(&mut collect);
    collect.1
}

/// A batch of 4 MNIST-sized images in [0, 1] and their labels.
fn images_and_labels(device: &burn::tensor::Device) -> (Tensor<4>, Tensor<1, Int>) {
    let images = tensor(
        pseudo_random(4 * 784, 8, 0.5)
            .iter()
            .map(|v| v + 0.5)
            .collect(),
        [4, 1, 28, 28],
        device,
    );
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![3i64, 0, 9, 4], [4]), device);
    (images, labels)
}

/// Runs `step(fused)` with the kernels off and on, and compares every quantity it returns.
fn kernels_on_and_off_agree(step: impl Fn(bool) -> Vec<Vec<f64>>, tol: f64) {
    let generic = step(false);
    let fused = step(true);
    assert_eq!(generic.len(), fused.len());
    assert!(generic.len() > 8, "parameters missing");
    for (i, (g, f)) in generic.iter().zip(&fused).enumerate() {
        assert_close(&format!("quantity #{i}"), g, f, tol);
    }
}

/// The whole network (conv1, PrimaryCaps, DigitCaps, decoder, losses) with the kernels on and
/// off, under each routing algorithm: loss, lengths, reconstructions and the gradient of every
/// parameter.
#[test]
fn whole_network_with_and_without_fused_kernels_agrees() {
    let device = f64_device();
    for routing in [
        RoutingConfig::default(),
        RoutingConfig::SelfAttention(Default::default()),
    ] {
        device.seed(3);
        let mut config = small_paper_like();
        config.routing = routing;
        let model = config.init(&device).unwrap();
        let (images, labels) = images_and_labels(&device);
        let loss = LossConfig::default();
        kernels_on_and_off_agree(
            |fused| {
                let model = model.clone().with_kernels(Kernels {
                    fused,
                    ..Kernels::default()
                });
                assert_eq!(model.kernels().fused, fused);
                let out = model.forward(images.clone(), Some(labels.clone()));
                let parts = model.loss(&out, images.clone(), labels.clone(), &loss);
                let grads = parts.total.backward();
                let mut all = vec![
                    values(parts.total),
                    values(out.lengths),
                    values(out.reconstruction.unwrap()),
                ];
                all.extend(param_grads(&model, &grads));
                all
            },
            1e-10,
        );
    }
}

/// Efficient-CapsNet (stem convolutions fused, batch norm, depthwise convolution and
/// self-attention routing generic) with the kernels on and off.
#[test]
fn efficient_capsnet_with_and_without_fused_kernels_agrees() {
    let device = f64_device();
    device.seed(5);
    let mut config = capsnet_model::EfficientCapsNetConfig::paper_mnist();
    config.decoder.hidden = vec![32, 64];
    let model = config.init(&device).unwrap();
    let (images, labels) = images_and_labels(&device);
    let loss = LossConfig::default();
    kernels_on_and_off_agree(
        |fused| {
            let model = model.clone().with_kernels(Kernels {
                fused,
                ..Kernels::default()
            });
            let out = model.forward(images.clone(), Some(labels.clone()));
            let parts = model.loss(&out, images.clone(), labels.clone(), &loss);
            let grads = parts.total.backward();
            let mut all = vec![
                values(parts.total),
                values(out.lengths),
                values(out.reconstruction.unwrap()),
            ];
            all.extend(param_grads(&model, &grads));
            all
        },
        1e-10,
    );
}
