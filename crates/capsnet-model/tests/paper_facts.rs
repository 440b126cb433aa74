//! Facts from the paper: shapes, parameter counts, routing invariants, loss values.

mod common;

use burn::module::Module;
use burn::tensor::{Int, Tensor, TensorData};
use capsnet_model::{
    BaselineCnnConfig, CapsNetConfig, DynamicRouting, EfficientCapsNetConfig, LossConfig,
    ModelConfigError, RoutingConfig, SelfAttentionRouting, Squash, SquashKind,
    couplings_from_logits, margin_loss, route,
};
use common::{f32_device, pseudo_random, tensor, values};

/// Dynamic routing with `r` iterations and the other options at their defaults.
fn dynamic(iterations: usize) -> RoutingConfig {
    RoutingConfig::Dynamic(DynamicRouting {
        iterations,
        ..Default::default()
    })
}

#[test]
fn efficient_capsnet_parameter_counts_match_the_paper() {
    let device = f32_device();
    // Mazzia et al. 2021: 161,824 trainable parameters (the decoder excluded); batch norm's
    // running statistics are state, not parameters.
    let mut config = EfficientCapsNetConfig::paper_mnist();
    config.decoder.enabled = false;
    let net = config.init(&device).unwrap();
    assert_eq!(net.trainable_params(), 161_824);
    // burn's count includes the running mean and variance of the four batch norms.
    assert_eq!(net.num_params(), 161_824 + 2 * (32 + 64 + 64 + 128));
    let with_decoder = EfficientCapsNetConfig::paper_mnist().init(&device).unwrap();
    assert_eq!(with_decoder.trainable_params(), 161_824 + 1_411_344);
    assert_eq!(config.primary_capsules(), 16);
    assert_eq!(config.stem_shapes().last(), Some(&(128, 9, 9)));
    let images = tensor(pseudo_random(2 * 784, 30, 1.0), [2, 1, 28, 28], &device).abs();
    let out = with_decoder.forward(images, None);
    assert_eq!(out.capsules.dims(), [2, 10, 16]);
    assert_eq!(out.couplings.dims(), [2, 10, 16]);
    assert_eq!(out.reconstruction.unwrap().dims(), [2, 784]);
    // The quickstart-style CapsNet with self-attention routing: the priors [10, 288] are its
    // only extra parameters.
    let mut caps = CapsNetConfig::paper_mnist();
    caps.routing = RoutingConfig::SelfAttention(SelfAttentionRouting::default());
    let with_priors = caps.init(&device).unwrap().num_params();
    assert_eq!(with_priors, 8_215_568 + 10 * 1152);
}

/// Self-attention routing against the paper's equations written out as loops (child capsules,
/// parent capsules and dimensions all of different sizes).
#[test]
fn self_attention_routing_matches_its_equations_written_as_loops() {
    let device = common::f64_device();
    let (batch, parents, children, dim) = (2, 3, 4, 5);
    let u = pseudo_random(batch * parents * children * dim, 33, 1.0);
    let b = pseudo_random(parents * children, 34, 0.2);
    let votes = tensor(u.clone(), [batch, parents, children, dim], &device);
    let priors = tensor(b.clone(), [parents, children], &device);
    let config = RoutingConfig::SelfAttention(SelfAttentionRouting { priors: true });
    let squash = Squash {
        kind: SquashKind::Efficient,
        eps: 0.0,
    };
    let got = values(route(votes, None, Some(&priors), &config, &squash).parents);
    let at =
        |n: usize, j: usize, i: usize, d: usize| u[((n * parents + j) * children + i) * dim + d];
    for n in 0..batch {
        // a_ij = û_{j|i} · Σ_k û_{j|k} / √d
        let mut a = vec![vec![0.0; children]; parents];
        for (j, row) in a.iter_mut().enumerate() {
            for (i, a_ji) in row.iter_mut().enumerate() {
                *a_ji = (0..dim)
                    .map(|d| at(n, j, i, d) * (0..children).map(|k| at(n, j, k, d)).sum::<f64>())
                    .sum::<f64>()
                    / (dim as f64).sqrt();
            }
        }
        for j in 0..parents {
            // c_ij = softmax over parents of a_ij, plus the prior b_ij; s_j = Σ_i c_ij û_{j|i}.
            let mut s = vec![0.0; dim];
            for i in 0..children {
                let z: f64 = (0..parents).map(|p| a[p][i].exp()).sum();
                let c = a[j][i].exp() / z + b[j * children + i];
                for (d, s_d) in s.iter_mut().enumerate() {
                    *s_d += c * at(n, j, i, d);
                }
            }
            // v_j = (1 − e^−‖s‖) s / ‖s‖
            let norm = s.iter().map(|x| x * x).sum::<f64>().sqrt();
            for d in 0..dim {
                let want = (1.0 - (-norm).exp()) * s[d] / norm;
                let have = got[(n * parents + j) * dim + d];
                assert!(
                    (want - have).abs() < 1e-12,
                    "v[{n},{j},{d}]: {have} vs {want}"
                );
            }
        }
    }
}

#[test]
fn self_attention_couplings_are_a_softmax_over_parents_plus_the_priors() {
    let device = f32_device();
    let votes = tensor(pseudo_random(2 * 4 * 6 * 3, 31, 1.0), [2, 4, 6, 3], &device);
    let squash = Squash {
        kind: SquashKind::Efficient,
        eps: 1e-8,
    };
    let priors = tensor(pseudo_random(4 * 6, 32, 0.1), [4, 6], &device);
    let plain = RoutingConfig::SelfAttention(SelfAttentionRouting { priors: false });
    let with = RoutingConfig::SelfAttention(SelfAttentionRouting { priors: true });
    let a = route(votes.clone(), None, None, &plain, &squash);
    assert_eq!(a.parents.dims(), [2, 4, 3]);
    assert_eq!(a.coupling_history.len(), 1, "one pass");
    for sum in values(a.couplings.clone().sum_dim(1)) {
        assert!((sum - 1.0).abs() < 1e-5, "{sum}");
    }
    let b = route(votes, None, Some(&priors), &with, &squash);
    let prior_sums: Vec<f64> = values(priors.sum_dim(0));
    let sums = values(b.couplings.sum_dim(1));
    for (k, sum) in sums.iter().enumerate() {
        let expected = 1.0 + prior_sums[k % 6];
        assert!((sum - expected).abs() < 1e-5, "{sum} vs {expected}");
    }
    let lengths = values(a.parents.square().sum_dim(2).sqrt());
    assert!(lengths.iter().all(|&l| l > 0.0 && l < 1.0));
}

#[test]
fn parameter_counts_match_the_paper() {
    let device = f32_device();
    let with_decoder = CapsNetConfig::paper_mnist().init(&device).unwrap();
    assert_eq!(with_decoder.num_params(), 8_215_568);

    let mut config = CapsNetConfig::paper_mnist();
    config.decoder.enabled = false;
    assert_eq!(config.init(&device).unwrap().num_params(), 6_804_224);

    let baseline = BaselineCnnConfig::default().init(&device).unwrap();
    assert_eq!(baseline.num_params(), 35_445_522);
}

#[test]
fn paper_model_shapes() {
    let device = f32_device();
    let config = CapsNetConfig::paper_mnist();
    assert_eq!(config.primary_capsules(), 1152);
    let model = config.init(&device).unwrap();
    let images = tensor(pseudo_random(2 * 784, 1, 0.5), [2, 1, 28, 28], &device).abs();
    let out = model.forward(images, None);
    assert_eq!(out.capsules.dims(), [2, 10, 16]);
    assert_eq!(out.lengths.dims(), [2, 10]);
    assert_eq!(out.couplings.dims(), [2, 10, 1152]);
    assert_eq!(out.reconstruction.expect("decoder on").dims(), [2, 784]);
    let lengths = values(out.lengths);
    assert!(
        lengths.iter().all(|l| (0.0..1.0).contains(l)),
        "{lengths:?}"
    );
}

#[test]
fn couplings_are_a_distribution_over_parents() {
    let device = f32_device();
    let logits = tensor(pseudo_random(3 * 5 * 7, 2, 4.0), [3, 5, 7], &device);
    let c = couplings_from_logits(logits.clone(), false);
    assert!(values(c.clone()).iter().all(|&v| v >= 0.0));
    for sum in values(c.sum_dim(1)) {
        assert!((sum - 1.0).abs() < 1e-5, "coupling sum over parents {sum}");
    }
    // Leaky routing keeps some mass on the dropped "leak" parent.
    let leaky = couplings_from_logits(logits, true);
    for sum in values(leaky.sum_dim(1)) {
        assert!(sum > 0.0 && sum < 1.0, "leaky coupling sum {sum}");
    }
}

#[test]
fn routed_couplings_sum_to_one_after_agreement_updates() {
    let device = f32_device();
    let votes = tensor(pseudo_random(2 * 4 * 6 * 3, 3, 1.0), [2, 4, 6, 3], &device);
    let config = dynamic(3);
    let routed = route(votes, None, None, &config, &Squash::default());
    assert_eq!(routed.parents.dims(), [2, 4, 3]);
    let c = values(routed.couplings.clone());
    assert!(c.iter().all(|&v| v >= 0.0));
    // After two updates the couplings are no longer uniform (1/4).
    assert!(c.iter().any(|&v| (v - 0.25).abs() > 1e-3));
    for sum in values(routed.couplings.sum_dim(1)) {
        assert!((sum - 1.0).abs() < 1e-5);
    }
}

#[test]
fn zero_iterations_is_uniform_coupling_and_equals_one_iteration() {
    let device = f32_device();
    let votes = tensor(pseudo_random(2 * 4 * 6 * 3, 4, 1.0), [2, 4, 6, 3], &device);
    let r0 = route(votes.clone(), None, None, &dynamic(0), &Squash::default());
    let r1 = route(votes, None, None, &dynamic(1), &Squash::default());
    assert!(
        values(r0.couplings)
            .iter()
            .all(|&c| (c - 0.25).abs() < 1e-7)
    );
    assert_eq!(values(r0.parents), values(r1.parents));
}

#[test]
fn batch_of_one_equals_the_same_image_inside_a_batch() {
    let device = f32_device();
    let mut config = small_config();
    config.routing = dynamic(3);
    let model = config.init(&device).unwrap();
    let batch = tensor(pseudo_random(4 * 16 * 16, 5, 1.0), [4, 1, 16, 16], &device).abs();
    let all = model.forward(batch.clone(), None);
    for i in 0..4 {
        let one = model.forward(batch.clone().narrow(0, i, 1), None);
        let a = values(one.lengths);
        let b = values(all.lengths.clone().narrow(0, i, 1));
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() < 1e-5,
                "image {i}: alone {a:?} vs in batch {b:?}"
            );
        }
        let ra = values(one.reconstruction.unwrap());
        let rb = values(all.reconstruction.clone().unwrap().narrow(0, i, 1));
        assert!(ra.iter().zip(&rb).all(|(x, y)| (x - y).abs() < 1e-5));
    }
}

#[test]
fn margin_loss_golden_values() {
    let device = f32_device();
    // Two examples, three classes; targets 0 and 2.
    let lengths = tensor(vec![0.95, 0.3, 0.05, 0.5, 0.08, 0.6], [2, 3], &device);
    let targets = tensor(vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0], [2, 3], &device);
    // Example 1: present 0.95 ≥ 0.9 → 0; absent 0.3 → 0.5·0.2² = 0.02; 0.05 < 0.1 → 0.
    // Example 2: absent 0.5 → 0.5·0.4² = 0.08; 0.08 → 0; present 0.6 → (0.3)² = 0.09.
    // Mean over the batch: (0.02 + 0.17) / 2 = 0.095.
    let loss = values(margin_loss(lengths, targets, &LossConfig::default()))[0];
    assert!((loss - 0.095).abs() < 1e-6, "margin loss {loss}");
}

#[test]
fn reconstruction_loss_is_weighted_per_image_sse() {
    let device = f32_device();
    let mut config = small_config();
    config.routing = dynamic(1);
    let model = config.init(&device).unwrap();
    let images = tensor(pseudo_random(2 * 256, 6, 1.0), [2, 1, 16, 16], &device).abs();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 3], [2]), &device);
    let out = model.forward(images.clone(), Some(targets.clone()));
    let parts = model.loss(&out, images.clone(), targets, &LossConfig::default());
    let recon = values(out.reconstruction.unwrap());
    let pixels = values(images);
    let sse: f64 = recon
        .iter()
        .zip(&pixels)
        .map(|(r, x)| (r - x).powi(2))
        .sum::<f64>()
        / 2.0;
    let got = values(parts.reconstruction.unwrap())[0];
    assert!((got - sse).abs() < 1e-3 * sse, "sse {got} vs by hand {sse}");
    let total = values(parts.total)[0];
    let margin = values(parts.margin)[0];
    assert!((total - (margin + 0.0005 * sse)).abs() < 1e-5);
}

#[test]
fn decoder_ignores_non_target_capsules() {
    let device = f32_device();
    let model = small_config().init(&device).unwrap();
    let caps = pseudo_random(2 * 10 * 6, 7, 0.3);
    let mut changed = caps.clone();
    // Change every capsule except the target (class 4 for example 0, class 9 for example 1).
    for b in 0..2 {
        let target = [4, 9][b];
        for j in (0..10).filter(|&j| j != target) {
            for d in 0..6 {
                changed[(b * 10 + j) * 6 + d] += 0.5;
            }
        }
    }
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![4i64, 9], [2]), &device);
    let a = model
        .reconstruct(tensor(caps, [2, 10, 6], &device), labels.clone())
        .unwrap();
    let b = model
        .reconstruct(tensor(changed.clone(), [2, 10, 6], &device), labels)
        .unwrap();
    assert_eq!(values(a.clone()), values(b));
    // …while changing the target capsule does change it.
    changed[4 * 6] += 0.5;
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![4i64, 9], [2]), &device);
    let c = model
        .reconstruct(tensor(changed, [2, 10, 6], &device), labels)
        .unwrap();
    assert_ne!(values(a), values(c));
}

#[test]
fn test_time_mask_uses_the_longest_capsule() {
    let device = f32_device();
    let model = small_config().init(&device).unwrap();
    let images = tensor(pseudo_random(3 * 256, 8, 1.0), [3, 1, 16, 16], &device).abs();
    let out = model.forward(images.clone(), None);
    let predicted = capsnet_model::predictions(out.lengths.clone());
    let masked_by_prediction = model.forward(images, Some(predicted));
    assert_eq!(
        values(out.reconstruction.unwrap()),
        values(masked_by_prediction.reconstruction.unwrap())
    );
}

#[test]
fn invalid_configs_are_rejected_with_the_key() {
    let mut config = CapsNetConfig::paper_mnist();
    config.input_height = 12;
    assert!(matches!(
        config.validate(),
        Err(ModelConfigError::InputTooSmall { .. })
    ));

    let mut config = CapsNetConfig::paper_mnist();
    config.routing = dynamic(11);
    let err = config.validate().unwrap_err();
    assert!(err.to_string().contains("routing.iterations"), "{err}");
    let self_attention = RoutingConfig::SelfAttention(SelfAttentionRouting::default());
    let err = self_attention.with_iterations(3).unwrap_err().to_string();
    assert!(
        err.contains("does not iterate") && err.contains("priors"),
        "{err}"
    );

    let mut config = EfficientCapsNetConfig::paper_mnist();
    config.input_height = 20;
    assert!(matches!(
        config.validate(),
        Err(ModelConfigError::InputTooSmall { needed: 27, .. })
    ));
    let mut config = EfficientCapsNetConfig::paper_mnist();
    config.primary_dim = 7;
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("primary_dim") && err.contains("128"), "{err}");

    let mut config = CapsNetConfig::paper_mnist();
    config.primary_dim = 0;
    assert_eq!(
        config.validate(),
        Err(ModelConfigError::NotPositive { key: "primary_dim" })
    );

    let config = BaselineCnnConfig {
        dropout: 1.0,
        ..Default::default()
    };
    assert!(
        config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("dropout")
    );
}

/// A small CapsNet on 16×16 inputs: conv1 8@5×5 → 12×12, primary 4 types × 4-D @5×5 s2 → 4×4.
pub fn small_config() -> CapsNetConfig {
    let mut config = CapsNetConfig::paper_mnist();
    config.input_height = 16;
    config.input_width = 16;
    config.conv1_channels = 8;
    config.conv1_kernel = 5;
    config.primary_types = 4;
    config.primary_dim = 4;
    config.primary_kernel = 5;
    config.class_dim = 6;
    config.decoder.hidden = vec![12];
    config.weight_init_std = 0.5;
    config
}

#[test]
fn multimnist_parameter_counts_match_the_paper() {
    let device = f32_device();
    let mut config = CapsNetConfig::paper_mnist();
    config.input_height = 36;
    config.input_width = 36;
    assert_eq!(config.primary_capsules(), 3200);
    assert_eq!(config.init(&device).unwrap().num_params(), 11_361_808);
    let baseline = BaselineCnnConfig::paper_multimnist().init(&device).unwrap();
    assert_eq!(baseline.num_params(), 24_563_978);
    let images = tensor(pseudo_random(2 * 1296, 3, 1.0), [2, 1, 36, 36], &device).abs();
    assert_eq!(baseline.forward(images).dims(), [2, 10]);
}

#[test]
fn two_target_loss_has_both_classes_present_and_reconstructs_each_part() {
    let device = f32_device();
    let model = small_config().init(&device).unwrap();
    let images = tensor(pseudo_random(2 * 256, 11, 1.0), [2, 1, 16, 16], &device).abs();
    let parts_values = pseudo_random(2 * 2 * 256, 12, 1.0)
        .into_iter()
        .map(f64::abs)
        .collect::<Vec<_>>();
    let parts = tensor(parts_values.clone(), [2, 2, 256], &device);
    let pairs = [[1i64, 7], [4, 2]];
    let targets = Tensor::<2, Int>::from_data(TensorData::new(pairs.concat(), [2, 2]), &device);
    let config = LossConfig::default();
    let out = model.forward(images, None);
    let got = model.loss_two_targets(&out, targets, parts, &config);

    // Margin loss by hand: both classes of each example are present.
    let lengths = values(out.lengths.clone());
    let mut margin = 0.0;
    for (b, pair) in pairs.iter().enumerate() {
        for k in 0..10 {
            let l = lengths[b * 10 + k];
            margin += if pair.contains(&(k as i64)) {
                (0.9 - l).max(0.0).powi(2)
            } else {
                0.5 * (l - 0.1).max(0.0).powi(2)
            };
        }
    }
    margin /= 2.0;
    assert!((values(got.margin)[0] - margin).abs() < 1e-5);

    // Reconstruction: each digit from the capsule of its own class, against its own part.
    let mut sse = 0.0;
    for k in 0..2 {
        let labels = Tensor::<1, Int>::from_data(
            TensorData::new(vec![pairs[0][k], pairs[1][k]], [2]),
            &device,
        );
        let recon = values(model.reconstruct(out.capsules.clone(), labels).unwrap());
        for b in 0..2 {
            for p in 0..256 {
                let target = parts_values[(b * 2 + k) * 256 + p];
                sse += (recon[b * 256 + p] - target).powi(2);
            }
        }
    }
    sse /= 2.0;
    let got_sse = values(got.reconstruction.unwrap())[0];
    assert!((got_sse - sse).abs() < 1e-3 * sse, "{got_sse} vs {sse}");
}

#[test]
fn sigmoid_cross_entropy_matches_the_definition() {
    let device = f32_device();
    let logits = [2.0, -1.0, 30.0, -30.0, 0.0, 0.5];
    let targets = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
    let got = values(capsnet_model::sigmoid_cross_entropy(
        tensor(logits.to_vec(), [2, 3], &device),
        tensor(targets.to_vec(), [2, 3], &device),
    ))[0];
    let want: f64 = logits
        .iter()
        .zip(&targets)
        .map(|(&x, &t)| {
            let p = 1.0 / (1.0 + (-x).exp());
            -(t * p.max(1e-300).ln() + (1.0 - t) * (1.0 - p).max(1e-300).ln())
        })
        .sum::<f64>()
        / 2.0;
    assert!((got - want).abs() < 1e-4 * want.max(1.0), "{got} vs {want}");
}
