//! Backend parity on the CPU backends compiled into the test build (`flex` and `ndarray`; the
//! workspace build enables `ndarray` through capsnet-bench): same weights and inputs, same
//! lengths, reconstructions, losses and gradients within the f32 tolerances.
#![cfg(all(feature = "flex", feature = "ndarray"))]

use capsnet_train::backend::BackendKind;
use capsnet_train::load_experiment;
use capsnet_train::parity::check;

fn experiment(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../experiments")
        .join(name)
}

#[test]
fn ndarray_matches_flex_on_the_quickstart_capsnet() {
    let resolved = load_experiment(&experiment("quickstart.toml"), &[]).unwrap();
    let report = check(&resolved.config, BackendKind::Flex, BackendKind::Ndarray, 4).unwrap();
    assert!(report.ok, "{report:#?}");
    let names: Vec<&str> = report.quantities.iter().map(|q| q.name.as_str()).collect();
    for needed in [
        "loss",
        "scores",
        "margin loss",
        "reconstruction loss",
        "reconstructions",
    ] {
        assert!(names.contains(&needed), "{names:?}");
    }
    // conv1 (w, b), primary conv (w, b), W, decoder 3×(w, b).
    assert_eq!(names.iter().filter(|n| n.starts_with("grad")).count(), 11);
}

#[test]
fn ndarray_matches_flex_on_multimnist_and_the_baseline() {
    let overrides = [
        "model.conv1_channels=16".to_string(),
        "model.primary_types=4".into(),
    ];
    let resolved = load_experiment(&experiment("multimnist.toml"), &overrides).unwrap();
    let report = check(&resolved.config, BackendKind::Flex, BackendKind::Ndarray, 3).unwrap();
    assert!(report.ok, "{report:#?}");
    let overrides = [
        "baseline.conv_channels=[16, 8]".to_string(),
        "baseline.hidden=[32]".into(),
    ];
    let resolved = load_experiment(&experiment("multimnist_baseline.toml"), &overrides).unwrap();
    let report = check(&resolved.config, BackendKind::Flex, BackendKind::Ndarray, 3).unwrap();
    assert!(report.ok, "{report:#?}");
}

/// capsnet-ops' fused kernels (conv, votes + routing) against burn's generic operations on the
/// same backend: every output, loss and parameter gradient within the f32 tolerances, for the
/// quickstart and the paper's network and the routing options.
#[test]
fn fused_kernels_match_the_generic_path_on_flex() {
    use capsnet_train::parity::{Side, check_sides};
    let generic = Side {
        backend: BackendKind::Flex,
        fused: false,
    };
    let fused = Side {
        backend: BackendKind::Flex,
        fused: true,
    };
    for (name, overrides, batch) in [
        ("quickstart.toml", vec![], 4),
        ("mnist.toml", vec![], 2),
        (
            "quickstart.toml",
            vec!["model.routing.stop_gradient=true".to_string()],
            3,
        ),
        (
            "quickstart.toml",
            vec![
                "model.routing.leaky=true".to_string(),
                "model.routing.iterations=5".into(),
                "model.digit_bias=true".into(),
            ],
            3,
        ),
    ] {
        let resolved = load_experiment(&experiment(name), &overrides).unwrap();
        let report = check_sides(&resolved.config, generic, fused, batch).unwrap();
        assert!(report.ok, "{name} {overrides:?}: {report:#?}");
        assert_eq!(report.other, "flex");
        assert_eq!(report.reference, "flex (generic ops)");
        assert!(
            report
                .quantities
                .iter()
                .filter(|q| q.name.starts_with("grad"))
                .count()
                >= 11,
            "{report:#?}"
        );
        // Not the same code path twice: fused and generic sum in different orders.
        assert!(report.quantities.iter().any(|q| q.max_abs_diff > 0.0));
    }
}
