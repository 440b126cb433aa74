//! Weights that travel: `capsnet export` → `capsnet import` evaluates bit for bit like the
//! original run; a file that does not fit the network is refused with the names, shapes or
//! settings at fault; and, when `CAPSNET_TORCH_PYTHON` names a Python with torch, the PyTorch
//! reference recomputes the exported network's outputs, losses and gradients
//! (`scripts/reference/check_export.py`) for CapsNet and Efficient-CapsNet.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{
    TINY, assert_clean_failure, capsnet, capsnet_env, data_root, ok, s, write_experiment,
};

/// A small Efficient-CapsNet on a subset of MNIST (seconds on a CPU).
const EFFICIENT_TINY: &str = r#"
arch = "efficient-capsnet"
seed = 3
[data]
train_limit = 320
test_limit = 100
shift_pixels = 0
[efficient]
decoder.hidden = [64, 128]
[train]
epochs = 1
batch_size = 32
eval_batch_size = 100
"#;

/// `capsnet export --checkpoint run --out file [extra…]`, which must succeed; its stdout.
fn export(run: &Path, file: &Path, extra: &[&str]) -> String {
    let mut args = vec!["export", "--checkpoint", s(run), "--out", s(file)];
    args.extend_from_slice(extra);
    ok(capsnet(&args))
}

/// `capsnet import file --experiment exp [extra…] --run-dir run`.
fn import(file: &Path, exp: &Path, run: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["import", s(file), "--experiment", s(exp)];
    args.extend_from_slice(extra);
    args.extend(["--run-dir", s(run)]);
    capsnet(&args)
}

/// Trains `body` for its few steps into `dir/run-<name>`; returns the experiment and run.
fn trained(dir: &Path, name: &str, body: &str) -> (PathBuf, PathBuf) {
    let exp = write_experiment(dir, name, body);
    let run = dir.join(format!("run-{name}"));
    ok(capsnet(&[
        "train",
        s(&exp),
        "--run-dir",
        s(&run),
        "--data-dir",
        s(&data_root()),
        "--quiet",
    ]));
    (exp, run)
}

fn eval_json(run: &Path) -> serde_json::Value {
    let out = ok(capsnet(&[
        "eval",
        "--checkpoint",
        s(run),
        "--data-dir",
        s(&data_root()),
        "--json",
    ]));
    let mut json: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Everything but the timing and the checkpoint's path must be equal.
    for set in json["sets"].as_array_mut().unwrap() {
        set["images_per_sec"] = serde_json::Value::Null;
        for member in set["members"].as_array_mut().unwrap() {
            member["checkpoint"] = serde_json::Value::Null;
        }
    }
    json["checkpoint"] = serde_json::Value::Null;
    json
}

/// Tensor names with their shapes, and the metadata, of a safetensors file.
type Header = (
    Vec<(String, Vec<usize>)>,
    std::collections::HashMap<String, String>,
);

/// The tensor names and shapes of a safetensors file, and its metadata.
fn header(path: &Path) -> Header {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut names: Vec<(String, Vec<usize>)> = meta
        .tensors()
        .iter()
        .map(|(k, v)| (k.clone(), v.shape.clone()))
        .collect();
    names.sort();
    (names, meta.metadata().clone().unwrap_or_default())
}

#[test]
fn export_then_import_evaluates_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let (exp, run) = trained(dir.path(), "tiny", TINY);
    let file = dir.path().join("tiny.safetensors");
    export(&run, &file, &[]);
    let (names, meta) = header(&file);
    assert_eq!(meta["capsnet.arch"], "capsnet");
    // PyTorch's names and layouts: Linear weights as [out, in].
    let expected = [
        ("conv1.bias", vec![16]),
        ("conv1.weight", vec![16, 1, 9, 9]),
        ("decoder.0.bias", vec![64]),
        ("decoder.0.weight", vec![64, 160]),
        ("decoder.1.bias", vec![128]),
        ("decoder.1.weight", vec![128, 64]),
        ("decoder.2.bias", vec![784]),
        ("decoder.2.weight", vec![784, 128]),
        ("primary.bias", vec![32]),
        ("primary.weight", vec![32, 16, 9, 9]),
        ("weight", vec![144, 8, 160]),
    ];
    let expected: Vec<(String, Vec<usize>)> = expected
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
    assert_eq!(names, expected);

    let imported = dir.path().join("imported");
    ok(import(&file, &exp, &imported, &[]));
    assert_eq!(eval_json(&imported), eval_json(&run));
    // Re-exporting the imported weights gives the same tensors and metadata.
    let again = dir.path().join("again.safetensors");
    export(&imported, &again, &[]);
    assert_eq!(header(&again), header(&file));
    let (a, b) = (
        std::fs::read(&file).unwrap(),
        std::fs::read(&again).unwrap(),
    );
    let (a, b) = (
        safetensors::SafeTensors::deserialize(&a).unwrap(),
        safetensors::SafeTensors::deserialize(&b).unwrap(),
    );
    for (name, view) in a.tensors() {
        assert!(
            view.data() == b.tensor(&name).unwrap().data(),
            "{name} differs"
        );
    }
    // The imported run trains on (fine-tuning) with --resume.
    // (data.root is part of a run's experiment, and the import was given none: the data
    // comes from CAPSNET_DATA.)
    let data = data_root();
    ok(capsnet_env(
        &[
            "train",
            s(&exp),
            "train.epochs=1",
            "--run-dir",
            s(&imported),
            "--resume",
            "--quiet",
        ],
        &[("CAPSNET_DATA", &data)],
    ));

    // Another network shape: the differing keys are named, nothing is written.
    let elsewhere = dir.path().join("elsewhere");
    let out = import(
        &file,
        &exp,
        &elsewhere,
        &["--set", "model.conv1_channels=8"],
    );
    assert_clean_failure(&out, &["conv1_channels", "16 in the file, 8 here"]);
    assert!(!elsewhere.exists());
    // Another architecture.
    let out = import(&file, &exp, &elsewhere, &["--set", "arch=\"baseline-cnn\""]);
    assert_clean_failure(&out, &["holds a capsnet network", "baseline-cnn"]);

    // A file without capsnet's metadata (as PyTorch would write it), one tensor short and one
    // of the wrong shape.
    let bytes = std::fs::read(&file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut kept: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .filter(|(name, _)| name != "weight")
        .collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    let short = dir.path().join("short.safetensors");
    std::fs::write(&short, safetensors::serialize(kept.clone(), None).unwrap()).unwrap();
    let out = import(&short, &exp, &elsewhere, &[]);
    assert_clean_failure(&out, &["short.safetensors", "digit.weight"]);
    assert!(!elsewhere.exists());
    let zeros = vec![0u8; 4 * 7];
    kept.push((
        "weight".into(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![7], &zeros).unwrap(),
    ));
    let wrong = dir.path().join("wrong.safetensors");
    std::fs::write(&wrong, safetensors::serialize(kept, None).unwrap()).unwrap();
    let out = import(&wrong, &exp, &elsewhere, &[]);
    assert_clean_failure(&out, &["wrong.safetensors", "weight"]);
    // Not a safetensors file at all.
    std::fs::write(&wrong, b"garbage").unwrap();
    let out = import(&wrong, &exp, &elsewhere, &[]);
    assert_clean_failure(&out, &["wrong.safetensors", "not a safetensors file"]);
    assert!(!elsewhere.exists());
}

/// `--reference-batch`: the batch, capsnet's outputs and its gradients, named like the weights.
#[test]
fn reference_batch_holds_outputs_and_nonzero_gradients() {
    let dir = tempfile::tempdir().unwrap();
    let (_, run) = trained(dir.path(), "tiny", TINY);
    let file = dir.path().join("tiny.safetensors");
    let out = export(
        &run,
        &file,
        &["--reference-batch", "6", "--data-dir", s(&data_root())],
    );
    assert_eq!(out.lines().count(), 3, "{out}");
    let (batch, meta) = header(&dir.path().join("tiny.batch.safetensors"));
    assert!(meta.contains_key("capsnet.loss"));
    let names: Vec<&str> = batch.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "images",
            "labels",
            "lengths",
            "loss",
            "margin_loss",
            "reconstruction",
            "reconstruction_loss"
        ]
    );
    assert_eq!(batch[0].1, [6, 1, 28, 28]);
    let grads_path = dir.path().join("tiny.grads.safetensors");
    let (grads, meta) = header(&grads_path);
    assert_eq!(meta["capsnet.content"], "gradients");
    assert_eq!(grads, header(&file).0);
    let bytes = std::fs::read(&grads_path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, view) in st.tensors() {
        assert!(
            view.data().iter().any(|&b| b != 0),
            "gradient of {name} is all zeros"
        );
    }
}

/// The PyTorch reference on capsnet's exported weights and batch (needs `CAPSNET_TORCH_PYTHON`,
/// a Python with torch; skipped, saying so, without it). Numbers: docs/interop.md.
#[test]
fn pytorch_reference_recomputes_outputs_losses_and_gradients() {
    let Some(python) = std::env::var_os("CAPSNET_TORCH_PYTHON").filter(|p| !p.is_empty()) else {
        eprintln!(
            "skipped: set CAPSNET_TORCH_PYTHON to a Python with torch to run the PyTorch cross-check"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/reference/check_export.py");
    for (name, body) in [("capsnet", TINY), ("efficient", EFFICIENT_TINY)] {
        let (_, run) = trained(dir.path(), name, body);
        let file = dir.path().join(format!("{name}.safetensors"));
        export(
            &run,
            &file,
            &["--reference-batch", "8", "--data-dir", s(&data_root())],
        );
        let out = Command::new(&python)
            .arg(&script)
            .arg(&file)
            .arg("--json")
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert!(
            out.status.success() && report["ok"] == true,
            "{name}: {report:#}"
        );
        // Every trainable parameter's gradient was compared.
        let grads = report["quantities"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|q| q["name"].as_str().unwrap().starts_with("grad "))
            .count();
        assert_eq!(
            grads,
            header(&file)
                .0
                .iter()
                .filter(|(n, _)| !n.contains("running"))
                .count(),
            "{report:#}"
        );
    }
}

/// Efficient-CapsNet (batch norm: weight/bias renamed, running statistics carried) travels too:
/// export → import evaluates identically (evaluation uses the running statistics).
#[test]
fn efficient_capsnet_export_then_import_evaluates_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let (exp, run) = trained(dir.path(), "efficient", EFFICIENT_TINY);
    let file = dir.path().join("efficient.safetensors");
    export(&run, &file, &[]);
    let names: Vec<String> = header(&file).0.into_iter().map(|(n, _)| n).collect();
    for name in [
        "norms.0.weight",
        "norms.0.bias",
        "norms.0.running_mean",
        "norms.3.running_var",
        "convs.3.weight",
        "primary.weight",
        "priors",
        "weight",
    ] {
        assert!(
            names.contains(&name.to_string()),
            "{name} missing: {names:?}"
        );
    }
    let imported = dir.path().join("imported");
    ok(import(&file, &exp, &imported, &[]));
    assert_eq!(eval_json(&imported), eval_json(&run));
}
