//! The datasets beyond MNIST, end to end: MultiMNIST (two targets), expanded MNIST with the
//! affine test set, and CIFAR-10 (crops, 3 channels, leaky routing) with ensemble evaluation.

mod common;

use std::path::Path;
use std::process::Command;

use capsnet_train::{load_experiment, train};
use common::{
    data_root, first_and_last_loss, options, records, resuming, stop_after, write_experiment,
};

fn root_override() -> String {
    format!("data.root={:?}", data_root().display().to_string())
}

const MULTI: &str = r#"
seed = 1
[data]
dataset = "multimnist"
shift_pixels = 0
train_limit = 600
test_limit = 100
multimnist.train_pairs_per_digit = 2
multimnist.test_pairs_per_digit = 3
[model]
input_height = 36
input_width = 36
conv1_channels = 16
primary_types = 4
decoder.hidden = [64, 128]
[train]
epochs = 1
batch_size = 40
lr = 3e-3
log_every_steps = 5
checkpoint_every_steps = 0
eval_batch_size = 100
"#;

/// CapsNet on MultiMNIST: two labels per example, each digit reconstructed; the loss falls and
/// the test set holds `test_limit × test_pairs_per_digit` pairs.
#[test]
fn multimnist_capsnet_trains_on_pairs() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = write_experiment(tmp.path(), "multi", MULTI);
    let resolved = load_experiment(&exp, &[root_override()]).unwrap();
    let run = tmp.path().join("run");
    let summary = train(&resolved, &options(&run)).unwrap();
    assert!(summary.completed);
    assert_eq!(summary.train_images, 1200);
    assert_eq!(summary.test_images, 300);
    assert_eq!(summary.steps, 30);
    let (first, last) = first_and_last_loss(&run);
    assert!(last < first, "loss did not fall: {first} → {last}");
    let train = records(&run, "train");
    assert!(train[0]["recon_loss"].as_f64().is_some(), "{:?}", train[0]);
    let accuracy = summary.final_test_accuracy.unwrap();
    assert!((0.0..=100.0).contains(&accuracy));
}

/// The paper's MultiMNIST baseline layout (pooling, sigmoid cross-entropy), shrunk.
#[test]
fn multimnist_baseline_trains_with_sigmoid_cross_entropy() {
    let tmp = tempfile::tempdir().unwrap();
    let body = format!(
        "{MULTI}\n{}",
        r#"
[baseline]
input_height = 36
input_width = 36
conv_channels = [16, 8]
kernels = [9, 5]
pool = true
hidden = [32]
dropout = 0.0
"#
    )
    .replace("seed = 1", "seed = 1\narch = \"baseline-cnn\"");
    let exp = write_experiment(tmp.path(), "multi_cnn", &body);
    let resolved = load_experiment(&exp, &[root_override()]).unwrap();
    let run = tmp.path().join("run");
    let summary = train(&resolved, &options(&run)).unwrap();
    assert!(summary.completed);
    assert_eq!(summary.arch, "baseline-cnn");
    // 16·81+16 + 8·16·25+8 + 8·9·9·32+32 + 32·10+10
    assert_eq!(summary.params, 1312 + 3208 + 20768 + 330);
    let (first, last) = first_and_last_loss(&run);
    // Ten independent sigmoids at 0 cost 10·ln 2 ≈ 6.9 per example; training brings it down.
    assert!(first > 2.0 && last < first, "loss {first} → {last}");
}

/// A tiny CapsNet on expanded MNIST (40×40 canvas, full-canvas shifts, 2 affine versions of
/// each of 60 test digits).
const EXPANDED: &str = r#"
seed = 2
[data]
dataset = "expanded-mnist"
shift_pixels = 6
train_limit = 200
test_limit = 60
affnist.affine_per_digit = 2
[model]
input_height = 40
input_width = 40
conv1_channels = 8
primary_types = 2
decoder.hidden = [32, 64]
[train]
epochs = 1
batch_size = 50
checkpoint_every_steps = 0
eval_batch_size = 60
"#;

/// Expanded MNIST on a 40×40 canvas, scored on the placed test digits and on the affine set.
#[test]
fn expanded_mnist_reports_the_affine_test_set() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = write_experiment(tmp.path(), "expanded", EXPANDED);
    let resolved = load_experiment(&exp, &[root_override()]).unwrap();
    let run = tmp.path().join("run");
    let summary = train(&resolved, &options(&run)).unwrap();
    assert_eq!(summary.test_images, 60);
    let affine = summary.final_extra_accuracy["affine"];
    assert!((0.0..=100.0).contains(&affine));
    let evals = records(&run, "eval");
    assert_eq!(evals.len(), 2, "{evals:?}");
    assert!(evals[0].get("set").is_none());
    assert_eq!(evals[1]["set"], "affine");
    assert_eq!(evals[1]["test_images"], 120);

    // The model's input must match the canvas: a clear error naming the key.
    let err = load_experiment(&exp, &[root_override(), "model.input_height=28".into()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.input_height") && err.contains("1x40x40"),
        "{err}"
    );
}

/// Writes CIFAR-10 batch files with `per_file` random records each (labels cycle 0..9).
fn write_cifar_fixture(root: &Path, per_file: usize) {
    let dir = root.join("cifar10").join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut byte = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 24) as u8
    };
    let files = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    for name in files {
        let mut bytes = Vec::new();
        for r in 0..per_file {
            bytes.push((r % 10) as u8);
            bytes.extend((0..3072).map(|_| byte()));
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

const CIFAR: &str = r#"
[data]
dataset = "cifar10"
shift_pixels = 0
crop = 24
flip = true
download = false
verify_checksums = false
[model]
input_channels = 3
input_height = 24
input_width = 24
conv1_channels = 8
primary_types = 4
routing.leaky = true
decoder.hidden = [32, 64]
[train]
epochs = 1
batch_size = 25
checkpoint_every_steps = 0
eval_batch_size = 20
"#;

/// CIFAR-10 in the real binary layout: 3-channel 24×24 crops, leaky routing; two seeds are
/// then evaluated alone and as an ensemble by `capsnet eval`.
#[test]
fn cifar10_fixture_trains_and_ensembles() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_cifar_fixture(&data, 20);
    let exp = write_experiment(tmp.path(), "cifar", CIFAR);
    let root = format!("data.root={:?}", data.display().to_string());
    let mut runs = Vec::new();
    for seed in [0, 1] {
        let resolved = load_experiment(&exp, &[root.clone(), format!("seed={seed}")]).unwrap();
        let run = tmp.path().join(format!("run{seed}"));
        let summary = train(&resolved, &options(&run)).unwrap();
        assert_eq!(summary.train_images, 100);
        assert_eq!(summary.test_images, 20);
        runs.push(run);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_capsnet"))
        .args(["eval", "--json", "--data-dir"])
        .arg(&data)
        .arg("--checkpoint")
        .arg(&runs[0])
        .arg("--checkpoint")
        .arg(&runs[1])
        .env_remove("CAPSNET_DATA")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let set = &json["sets"][0];
    assert_eq!(set["set"], "test");
    assert_eq!(set["images"], 20);
    assert_eq!(set["members"].as_array().unwrap().len(), 2);
    let on_grid = |v: &serde_json::Value| {
        let a = v.as_f64().unwrap();
        (0.0..=100.0).contains(&a) && (a / 5.0 - (a / 5.0).round()).abs() < 1e-9
    };
    assert!(on_grid(&set["ensemble_accuracy"]), "{set}");
    for m in set["members"].as_array().unwrap() {
        assert!(on_grid(&m["accuracy"]), "{m}");
    }
    // Each member alone matches what training reported at its final epoch.
    for (k, run) in runs.iter().enumerate() {
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(
            set["members"][k]["accuracy"].as_f64().unwrap(),
            summary["final_test_accuracy"].as_f64().unwrap()
        );
    }

    // An ensemble of runs trained on different data is refused.
    let other_exp = write_experiment(
        tmp.path(),
        "cifar_flipless",
        &CIFAR.replace("flip = true", "flip = false"),
    );
    let resolved = load_experiment(&other_exp, std::slice::from_ref(&root)).unwrap();
    let other = tmp.path().join("other");
    train(&resolved, &options(&other)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_capsnet"))
        .args(["eval", "--data-dir"])
        .arg(&data)
        .arg("--checkpoint")
        .arg(&runs[0])
        .arg("--checkpoint")
        .arg(&other)
        .env_remove("CAPSNET_DATA")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("different data"), "{stderr}");
}

/// Generated data resumes exactly too: expanded MNIST (random placements every draw) stopped
/// mid-epoch and resumed ends with the weights, main and `affine` evaluations of a straight run.
#[test]
fn expanded_mnist_run_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = write_experiment(tmp.path(), "expanded_resume", EXPANDED);
    // Two epochs of 10 steps, so that the stop at step 4 falls inside the first epoch.
    let overrides = [
        root_override(),
        "train.epochs=2".into(),
        "train.batch_size=20".into(),
    ];
    let resolved = load_experiment(&exp, &overrides).unwrap();
    let straight = tmp.path().join("straight");
    let a = train(&resolved, &options(&straight)).unwrap();
    let interrupted = tmp.path().join("interrupted");
    let stopped = train(&resolved, &stop_after(&interrupted, 4)).unwrap();
    assert_eq!(stopped.steps, 4);
    let b = train(&resolved, &resuming(&interrupted)).unwrap();
    assert!(a.completed && b.completed);
    assert_eq!(a.final_test_accuracy, b.final_test_accuracy);
    assert_eq!(a.final_extra_accuracy, b.final_extra_accuracy);
    assert_eq!(
        common::final_weights(&straight),
        common::final_weights(&interrupted)
    );
}

/// A small deterministic byte stream for fixture pixels.
fn fixture_bytes(seed: u64) -> impl FnMut() -> u8 {
    let mut state = seed | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 24) as u8
    }
}

/// A NORB matrix file: little-endian magic, rank, `max(3, rank)` dimensions, elements.
fn norb_matrix(magic: u32, dims: &[i32], body: &[u8]) -> Vec<u8> {
    let mut out = magic.to_le_bytes().to_vec();
    out.extend((dims.len() as i32).to_le_bytes());
    for k in 0..dims.len().max(3) {
        out.extend(dims.get(k).copied().unwrap_or(1).to_le_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// smallNORB `-dat` / `-cat` files of `pairs` stereo pairs (96×96) per split, in
/// `<root>/smallnorb/` under the canonical names; labels cycle 0..4.
fn write_norb_fixture(root: &Path, pairs: usize) {
    let dir = root.join("smallnorb");
    std::fs::create_dir_all(&dir).unwrap();
    let mut byte = fixture_bytes(0x4e4f_5242);
    for split in [capsnet_data::Split::Train, capsnet_data::Split::Test] {
        let files = capsnet_data::norb::norb_files(split);
        let pixels: Vec<u8> = (0..pairs * 2 * 96 * 96).map(|_| byte()).collect();
        let dat = norb_matrix(
            capsnet_data::norb::NORB_UINT8_MAGIC,
            &[pairs as i32, 2, 96, 96],
            &pixels,
        );
        let labels: Vec<u8> = (0..pairs)
            .flat_map(|i| (i as i32 % 5).to_le_bytes())
            .collect();
        let cat = norb_matrix(
            capsnet_data::norb::NORB_INT32_MAGIC,
            &[pairs as i32],
            &labels,
        );
        std::fs::write(dir.join(files.dat), dat).unwrap();
        std::fs::write(dir.join(files.cat), cat).unwrap();
    }
}

/// One MAT level-5 data element: type, byte count, data padded to 8 bytes.
fn mat_element(ty: u32, data: &[u8]) -> Vec<u8> {
    let mut out = ty.to_le_bytes().to_vec();
    out.extend((data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(8), 0);
    out
}

/// An uncompressed miMATRIX: array flags (class), dimensions, name, real part.
fn mat_matrix(name: &str, class: u32, dims: &[i32], storage: u32, real: &[u8]) -> Vec<u8> {
    const MI_INT8: u32 = 1;
    const MI_INT32: u32 = 5;
    const MI_UINT32: u32 = 6;
    const MI_MATRIX: u32 = 14;
    let mut body = mat_element(MI_UINT32, &[class.to_le_bytes(), [0; 4]].concat());
    let dims: Vec<u8> = dims.iter().flat_map(|d| d.to_le_bytes()).collect();
    body.extend(mat_element(MI_INT32, &dims));
    body.extend(mat_element(MI_INT8, name.as_bytes()));
    body.extend(mat_element(storage, real));
    mat_element(MI_MATRIX, &body)
}

/// SVHN format-2 files (`X`: uint8 32×32×3×N, column-major; `y`: double N×1, 10 for the digit
/// 0) of `n` digits per split in `<root>/svhn/`; digits cycle 0..9.
fn write_svhn_fixture(root: &Path, n: usize) {
    const MX_DOUBLE: u32 = 6;
    const MX_UINT8: u32 = 9;
    const MI_UINT8: u32 = 2;
    const MI_DOUBLE: u32 = 9;
    let dir = root.join("svhn");
    std::fs::create_dir_all(&dir).unwrap();
    let mut byte = fixture_bytes(0x5356_484e);
    for split in [capsnet_data::Split::Train, capsnet_data::Split::Test] {
        let mut file =
            b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024"
                .to_vec();
        file.resize(116, b' ');
        file.extend_from_slice(&[0; 8]);
        file.extend_from_slice(&0x0100u16.to_le_bytes());
        file.extend_from_slice(b"IM");
        let pixels: Vec<u8> = (0..n * 3072).map(|_| byte()).collect();
        file.extend(mat_matrix(
            "X",
            MX_UINT8,
            &[32, 32, 3, n as i32],
            MI_UINT8,
            &pixels,
        ));
        let labels: Vec<u8> = (0..n)
            .flat_map(|i| {
                (if i % 10 == 0 {
                    10.0f64
                } else {
                    (i % 10) as f64
                })
                .to_le_bytes()
            })
            .collect();
        file.extend(mat_matrix(
            "y",
            MX_DOUBLE,
            &[n as i32, 1],
            MI_DOUBLE,
            &labels,
        ));
        std::fs::write(dir.join(capsnet_data::svhn::svhn_file(split)), file).unwrap();
    }
}

/// A tiny CapsNet for a stored-image dataset of `channels`×`side`² inputs and `classes`.
fn stored_experiment(
    dataset: &str,
    channels: usize,
    side: usize,
    classes: usize,
    crop: bool,
) -> String {
    format!(
        r#"
[data]
dataset = "{dataset}"
shift_pixels = {shift}
{crop}
download = false
verify_checksums = false
[model]
input_channels = {channels}
input_height = {side}
input_width = {side}
classes = {classes}
conv1_channels = 8
primary_types = 4
decoder.hidden = [32, 64]
[train]
epochs = 1
batch_size = 10
checkpoint_every_steps = 0
log_every_steps = 1
eval_batch_size = 20
"#,
        shift = if crop { 0 } else { 2 },
        crop = if crop {
            format!("crop = {side}")
        } else {
            String::new()
        },
    )
}

/// smallNORB from its NORB matrix files, prepared as the paper does (both cameras as 2
/// channels, 48×48, random 32×32 crops, the central crop at test): 5 classes end to end, and
/// a network with 10 classes is refused with the key.
#[test]
fn smallnorb_fixture_trains_on_stereo_crops() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_norb_fixture(&data, 30);
    let body = stored_experiment("smallnorb", 2, 32, 5, true);
    let exp = write_experiment(tmp.path(), "norb", &body);
    let root = vec![format!("data.root={:?}", data.display().to_string())];
    let resolved = load_experiment(&exp, &root).unwrap();
    let run = tmp.path().join("run");
    let summary = train(&resolved, &options(&run)).unwrap();
    assert!(summary.completed);
    assert_eq!(summary.dataset, "smallnorb");
    assert_eq!((summary.train_images, summary.test_images), (30, 30));
    assert_eq!(summary.steps, 3);
    let (first, last) = first_and_last_loss(&run);
    assert!(first.is_finite() && last.is_finite());
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(log.contains("data: smallnorb from"), "{log}");

    let mut ten = root.clone();
    ten.push("model.classes=10".into());
    let err = load_experiment(&exp, &ten).unwrap_err().to_string();
    assert!(
        err.contains("model.classes") && err.contains("5 classes"),
        "{err}"
    );
}

/// SVHN from its MAT files (labels 10 → digit 0), 3×32×32 with shifts, a class-balanced
/// subset and train error.
#[test]
fn svhn_fixture_trains_with_a_balanced_subset() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_svhn_fixture(&data, 40);
    let body = stored_experiment("svhn", 3, 32, 10, false);
    let exp = write_experiment(tmp.path(), "svhn", &body);
    let overrides = vec![
        format!("data.root={:?}", data.display().to_string()),
        "data.train_subset=20".into(),
        "data.eval_train=true".into(),
    ];
    let resolved = load_experiment(&exp, &overrides).unwrap();
    let run = tmp.path().join("run");
    let summary = train(&resolved, &options(&run)).unwrap();
    assert!(summary.completed);
    assert_eq!(summary.dataset, "svhn");
    assert_eq!((summary.train_images, summary.test_images), (20, 40));
    assert!(summary.final_extra_accuracy.contains_key("train"));
}
