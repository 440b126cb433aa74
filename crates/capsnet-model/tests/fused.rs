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
use capsnet_model::{CapsNetConfig, DigitCaps, LossConfig, RoutingConfig};
use capsnet_ops::ConvAlgorithm;
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
    let flex = Device::flex();
    assert!(capsnet_ops::fused_available(&flex, DType::F32));
    assert!(capsnet_ops::fused_available(
        &flex.clone().autodiff(),
        DType::F64
    ));
    assert!(!capsnet_ops::fused_available(&flex, DType::BF16));
    #[allow(deprecated)] // burn-ndarray: the backend without the kernels
    let ndarray = Device::ndarray();
    assert!(!capsnet_ops::fused_available(&ndarray, DType::F32));
    #[cfg(feature = "tch")]
    {
        #[allow(deprecated)] // burn-tch: deprecated upstream, kept as the libtorch path
        let tch = Device::libtorch();
        assert!(capsnet_ops::fused_available(
            &tch.clone().autodiff(),
            DType::F32
        ));
        assert!(!capsnet_ops::fused_available(&tch, DType::F16));
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

#[test]
fn fused_votes_and_routing_match_the_generic_path_for_every_option() {
    let device = f64_device();
    let (batch, children, in_dim, parents, dim) = (3, 13, 4, 5, 6);
    let u0 = pseudo_random(batch * children * in_dim, 4, 1.0);
    let w0 = pseudo_random(children * in_dim * parents * dim, 5, 0.7);
    let b0 = pseudo_random(parents * dim, 6, 0.2);
    for iterations in [0, 1, 3, 5] {
        for stop_gradient in [false, true] {
            for leaky in [false, true] {
                for with_bias in [false, true] {
                    let routing = RoutingConfig {
                        iterations,
                        stop_gradient,
                        leaky,
                        ..Default::default()
                    };
                    let run = |fused: bool| {
                        let u =
                            tensor(u0.clone(), [batch, children, in_dim], &device).require_grad();
                        let w = tensor(w0.clone(), [children, in_dim, parents * dim], &device);
                        let b = with_bias.then(|| tensor(b0.clone(), [parents, dim], &device));
                        let mut layer = DigitCaps::from_weight(w, b, dim);
                        layer.set_fused(fused);
                        let routed = layer.forward(u.clone(), &routing);
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
                        if let Some(b) = &layer.bias {
                            out.push(values(b.val().grad(&grads).unwrap()));
                        }
                        out
                    };
                    let generic = run(false);
                    let fused = run(true);
                    let case = format!(
                        "r={iterations} stop_gradient={stop_gradient} leaky={leaky} bias={with_bias}"
                    );
                    let names = ["parents", "couplings", "∂u", "∂W", "∂bias"];
                    assert_eq!(generic.len(), fused.len());
                    for ((name, g), f) in names.iter().zip(&generic).zip(&fused) {
                        assert_close(&format!("{name} ({case})"), g, f, 1e-11);
                    }
                }
            }
        }
    }
}

fn small_paper_like() -> CapsNetConfig {
    let mut config = CapsNetConfig::paper_mnist();
    config.conv1_channels = 16;
    config.primary_types = 4;
    config.decoder.hidden = vec![32, 64];
    config
}

/// The whole network (conv1, PrimaryCaps, DigitCaps, decoder, losses) with the kernels on and
/// off: loss, lengths, reconstructions and the gradient of every parameter.
#[test]
fn whole_network_with_and_without_fused_kernels_agrees() {
    use burn::module::{Module, ModuleVisitor};
    use burn::tensor::Gradients;

    struct Collect<'a>(&'a Gradients, Vec<Vec<f64>>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.1.push(values(
                param
                    .val()
                    .grad(self.0)
                    .expect("every parameter has a gradient"),
            ));
        }
    }

    let device = f64_device();
    device.seed(3);
    let mut model = small_paper_like().init(&device).unwrap();
    let images = tensor(
        pseudo_random(4 * 784, 8, 0.5)
            .iter()
            .map(|v| v + 0.5)
            .collect(),
        [4, 1, 28, 28],
        &device,
    );
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![3i64, 0, 9, 4], [4]), &device);
    let loss = LossConfig::default();
    let mut run = |fused: bool| {
        model.set_fused_ops(fused);
        assert_eq!(model.fused_ops(), fused);
        let out = model.forward(images.clone(), Some(labels.clone()));
        let parts = model.loss(&out, images.clone(), labels.clone(), &loss);
        let grads = parts.total.backward();
        let mut collect = Collect(&grads, Vec::new());
        model.visit(&mut collect);
        let mut all = vec![
            values(parts.total),
            values(out.lengths),
            values(out.reconstruction.unwrap()),
        ];
        all.extend(collect.1);
        all
    };
    let generic = run(false);
    let fused = run(true);
    assert_eq!(generic.len(), fused.len());
    assert!(generic.len() > 8, "parameters missing");
    for (i, (g, f)) in generic.iter().zip(&fused).enumerate() {
        assert_close(&format!("quantity #{i}"), g, f, 1e-10);
    }
}
