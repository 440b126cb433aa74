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
