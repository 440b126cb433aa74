//! A user's own data through the `capsnet` binary: image folders (grey-scale and RGB, two
//! sizes, uneven classes, both layouts), user IDX files, the README's worked example from an
//! empty folder to predictions, and every bad case: a clear error naming the culprit, exit
//! code 1, and no run directory left behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assert_clean_failure, capsnet, ok, s, write_experiment};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `scripts/examples/make_shapes.py` (the README's generator) into `out`.
fn shapes(out: &Path, args: &[&str]) {
    // Any Python 3 runs it (standard library only): the tests' venv when xtask set it up.
    let python = std::env::var("CAPSNET_PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(python)
        .arg(repo().join("scripts/examples/make_shapes.py"))
        .arg(out)
        .args(args)
        .status()
        .expect("python3 runs");
    assert!(status.success());
}

/// A small CapsNet for `classes` classes of `c × h × w` inputs (seconds per epoch).
fn tiny(classes: usize, c: usize, h: usize, w: usize, data: &str) -> String {
    format!(
        r#"
seed = 1
[data]
shift_pixels = 0
{data}
[model]
classes = {classes}
input_channels = {c}
input_height = {h}
input_width = {w}
conv1_channels = 16
conv1_kernel = 5
primary_types = 4
primary_kernel = 5
decoder.hidden = [32, 64]
[train]
epochs = 2
batch_size = 16
checkpoint_every_steps = 0
eval_batch_size = 50
"#
    )
}

fn json(out: Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).unwrap()
}

fn classes_of(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("classes.json")).unwrap();
    serde_json::from_value(
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["classes"].clone(),
    )
    .unwrap()
}

/// The README's "Train on your own images", command for command: generate a folder, train
/// `experiments/image_folder.toml` on it, predict a folder of test images. `predict` gives the
/// test set the classes `eval` scores: as many right, image for image.
#[test]
fn readme_worked_example_from_an_empty_folder_to_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("my_shapes");
    shapes(&images, &[]);
    let run = dir.path().join("run");
    let exp = repo().join("experiments/image_folder.toml");
    ok(capsnet(&[
        "train",
        s(&exp),
        &format!("data.root={:?}", s(&images)),
        "--run-dir",
        s(&run),
        "--quiet",
    ]));
    assert_eq!(classes_of(&run), ["circle", "cross", "square", "triangle"]);
    let predicted = json(capsnet(&[
        "predict",
        "--checkpoint",
        s(&run),
        s(&images.join("test")),
        "--json",
        "--top-k",
        "2",
    ]));
    let predictions = predicted["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 80);
    let mut right = 0;
    for p in predictions {
        let file = PathBuf::from(p["file"].as_str().unwrap());
        let truth = file
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        right += usize::from(p["name"] == truth);
        assert_eq!(p["top"].as_array().unwrap().len(), 2);
        assert_eq!(p["scores"].as_array().unwrap().len(), 4);
        assert_eq!(p["top"][0]["name"], p["name"]);
    }
    let eval = json(capsnet(&["eval", "--checkpoint", s(&run), "--json"]));
    let accuracy = eval["sets"][0]["members"][0]["accuracy"].as_f64().unwrap();
    assert_eq!(
        right as f64 * 100.0 / 80.0,
        accuracy,
        "predict and eval disagree: {eval}"
    );
    assert!(accuracy > 50.0, "the example did not learn: {accuracy}%");
    // Image for image: the classes predict gives are those of the network on the run's own
    // test source (the path eval scores), in the same order (class folders, then file names).
    let predicted_classes: Vec<u64> = predictions
        .iter()
        .map(|p| p["class"].as_u64().unwrap())
        .collect();
    assert_eq!(predicted_classes, classes_on_test_source(&run));
    // Reconstructions: one PNG per image, input beside reconstruction.
    let recon = dir.path().join("recon");
    let out = ok(capsnet(&[
        "predict",
        "--checkpoint",
        s(&run),
        s(&images.join("test/circle/circle-0000.png")),
        "--reconstruct",
        s(&recon),
    ]));
    assert!(out.contains("circle-0000.png"), "{out}");
    let png = std::fs::read(recon.join("00000-circle-0000.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // 28 + 1 + 28 wide, 28 high.
    assert_eq!(&png[16..24], &[0, 0, 0, 57, 0, 0, 0, 28]);
}

/// The latest checkpoint's classes for the run's test set, as evaluation computes them.
fn classes_on_test_source(run: &Path) -> Vec<u64> {
    use capsnet_train::report::{ProgressMode, RunLog};
    let text = std::fs::read_to_string(run.join("config.resolved.toml")).unwrap();
    let config = capsnet_train::load::parse_str(&text, "resolved").unwrap();
    let device = capsnet_train::backend::BackendKind::Flex
        .device(Default::default())
        .unwrap();
    let ckpt = capsnet_train::checkpoint::latest(run).unwrap().unwrap();
    let net = capsnet_train::checkpoint::load_net(&ckpt, &config, &device).unwrap();
    let mut log = RunLog::stderr_only(ProgressMode::Quiet);
    let data = capsnet_train::data::load_experiment_data(&config, &mut log).unwrap();
    let loader = capsnet_data::Loader::from_source(
        data.test.source.clone(),
        capsnet_data::LoaderConfig::new(50),
    )
    .unwrap();
    let mut classes = Vec::new();
    for batch in loader {
        let (images, targets) = capsnet_train::net::batch_tensors(batch.unwrap(), &device);
        let scores = net.step(images, &targets, &config.loss, false).scores;
        let best = scores
            .argmax(1)
            .into_data()
            .try_into_vec_as::<i64>()
            .unwrap();
        classes.extend(best.into_iter().map(|c| c as u64));
    }
    classes
}

/// Grey-scale and RGB folders, two sizes, uneven classes, one tree split by seed: the run
/// trains, records its classes, and the split is the same each time.
#[test]
fn grey_and_rgb_folders_of_two_sizes_and_uneven_classes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args, c, side, resize) in [
        ("grey33", vec!["--size", "33", "--uneven"], 1, 20, "stretch"),
        (
            "rgb24",
            vec!["--size", "24", "--rgb", "--one-tree", "--uneven"],
            3,
            20,
            "center-crop",
        ),
    ] {
        let images = dir.path().join(name);
        let mut args = args.clone();
        args.extend(["--per-class", "12", "--test-per-class", "4"]);
        shapes(&images, &args);
        let exp = write_experiment(
            dir.path(),
            name,
            &tiny(
                4,
                c,
                side,
                side,
                &format!(
                    "dataset = \"image-folder\"\nroot = {:?}\nimage_folder.resize = {resize:?}\n",
                    s(&images)
                ),
            ),
        );
        let run = dir.path().join(format!("run-{name}"));
        ok(capsnet(&[
            "train",
            s(&exp),
            "--run-dir",
            s(&run),
            "--quiet",
        ]));
        assert_eq!(classes_of(&run), ["circle", "cross", "square", "triangle"]);
        let log = std::fs::read_to_string(run.join("train.log")).unwrap();
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap())
                .unwrap();
        assert!(
            summary["final_test_accuracy"].as_f64().is_some(),
            "{summary}"
        );
        if name == "grey33" {
            // 12·(1+2+3+4)/4 training and 4·(1+2+3+4)/4 test images.
            assert!(log.contains("(30 train, 10 test examples)"), "{log}");
        } else {
            // One tree of 16·k/4 images per class, ⌊n/5⌋ of each held out.
            assert!(log.contains("one-tree"), "{log}");
            assert!(log.contains("(34 train, 6 test examples)"), "{log}");
        }
    }
}

/// Writes an IDX image file and label file.
fn write_idx(
    dir: &Path,
    name: &str,
    rows: usize,
    cols: usize,
    labels: &[u8],
) -> (PathBuf, PathBuf) {
    let (images, label_file) = (
        dir.join(format!("{name}-images.idx")),
        dir.join(format!("{name}-labels.idx")),
    );
    let pixels: Vec<u8> = (0..labels.len() * rows * cols)
        .map(|i| {
            let (n, p) = (i / (rows * cols), i % (rows * cols));
            // Class k lights row band k: learnable.
            if (p / cols) * 3 / rows == usize::from(labels[n]).saturating_sub(1) % 3 {
                220
            } else {
                10
            }
        })
        .collect();
    let mut f = std::fs::File::create(&images).unwrap();
    capsnet_data::idx::write_idx_images(&mut f, rows, cols, &pixels).unwrap();
    let mut f = std::fs::File::create(&label_file).unwrap();
    capsnet_data::idx::write_idx_labels(&mut f, labels).unwrap();
    (images, label_file)
}

/// A user's IDX files (3 classes of 18×18, labelled 1–3 as EMNIST's letters): trained with a
/// label offset and class names; a label beyond the classes and mismatched counts are errors.
#[test]
fn user_idx_files_train_with_offset_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let train_labels: Vec<u8> = (0..60).map(|i| 1 + (i % 3) as u8).collect();
    let test_labels: Vec<u8> = (0..15).map(|i| 1 + (i % 3) as u8).collect();
    write_idx(dir.path(), "train", 18, 18, &train_labels);
    write_idx(dir.path(), "test", 18, 18, &test_labels);
    let data = format!(
        r#"dataset = "idx"
root = {:?}
idx.train_images = "train-images.idx"
idx.train_labels = "train-labels.idx"
idx.test_images = "test-images.idx"
idx.test_labels = "test-labels.idx"
idx.label_offset = 1
idx.transpose = true
idx.class_names = ["a", "b", "c"]
"#,
        s(dir.path())
    );
    let exp = write_experiment(dir.path(), "idx", &tiny(3, 1, 18, 18, &data));
    let run = dir.path().join("run");
    ok(capsnet(&[
        "train",
        s(&exp),
        "--run-dir",
        s(&run),
        "--quiet",
    ]));
    assert_eq!(classes_of(&run), ["a", "b", "c"]);

    // Without the offset, label 3 is beyond 3 classes: the label file and index are named.
    let run2 = dir.path().join("run2");
    let out = capsnet(&[
        "train",
        s(&exp),
        "data.idx.label_offset=0",
        "--run-dir",
        s(&run2),
    ]);
    assert_clean_failure(&out, &["train-labels.idx", "label #2 is 3", "3 classes"]);
    assert!(!run2.exists(), "a failed run left {}", run2.display());
    // Another image size than the network's: the keys to change are named.
    let out = capsnet(&[
        "train",
        s(&exp),
        "model.input_height=20",
        "--run-dir",
        s(&run2),
    ]);
    assert_clean_failure(&out, &["model.input_height", "1x18x18"]);
    // A missing file key.
    let out = capsnet(&[
        "train",
        s(&exp),
        "data.idx.test_labels=\"missing.idx\"",
        "--run-dir",
        s(&run2),
    ]);
    assert_clean_failure(&out, &["missing.idx"]);
    assert!(!run2.exists());
}

/// Every bad folder: the message names the file or folder at fault, the exit code is 1 and no
/// run directory is written (an existing one is left as it was, even with --overwrite).
#[test]
fn bad_image_folders_fail_early_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let grey = dir.path().join("grey");
    shapes(
        &grey,
        &["--per-class", "3", "--test-per-class", "2", "--size", "28"],
    );
    let rgb = dir.path().join("rgb");
    shapes(
        &rgb,
        &[
            "--per-class",
            "1",
            "--test-per-class",
            "1",
            "--size",
            "28",
            "--rgb",
        ],
    );
    let exp = write_experiment(
        dir.path(),
        "folder",
        &tiny(
            4,
            1,
            28,
            28,
            &format!("dataset = \"image-folder\"\nroot = {:?}\n", s(&grey)),
        ),
    );
    let run = dir.path().join("run");
    let train = |extra: &[&str]| {
        let mut args = vec!["train", s(&exp), "--run-dir", s(&run), "--quiet"];
        args.extend_from_slice(extra);
        capsnet(&args)
    };
    // The folder is fine: the run trains.
    ok(train(&[]));
    let before = std::fs::read_to_string(run.join("summary.json")).unwrap();

    // Wrong number of classes: the class folders are listed, before anything is decoded.
    let out = train(&["model.classes=5", "--overwrite"]);
    assert_clean_failure(
        &out,
        &[
            "model.classes",
            "4 classes",
            "circle, cross, square, triangle",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(run.join("summary.json")).unwrap(),
        before
    );
    let fresh = dir.path().join("fresh");
    let fresh_train = |extra: &[&str]| {
        let mut args = vec!["train", s(&exp), "--run-dir", s(&fresh), "--quiet"];
        args.extend_from_slice(extra);
        let out = capsnet(&args);
        assert!(!fresh.exists(), "a failed run left {}", fresh.display());
        out
    };
    // Grey images, a colour network.
    let out = fresh_train(&["model.input_channels=3"]);
    assert_clean_failure(&out, &["model.input_channels", "1x28x28"]);
    // data.root unset.
    let out = fresh_train(&["data.root=\"\""]);
    assert!(out.status.code() == Some(1));

    // A truncated PNG.
    let victim = grey.join("train/cross/cross-0001.png");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
    assert_clean_failure(&fresh_train(&[]), &["cross-0001.png"]);
    std::fs::write(&victim, b"not an image at all").unwrap();
    assert_clean_failure(&fresh_train(&[]), &["cross-0001.png"]);
    std::fs::write(&victim, &bytes).unwrap();

    // A colour image among grey ones.
    let stray = grey.join("train/square/zz-colour.png");
    std::fs::copy(rgb.join("train/square/square-0000.png"), &stray).unwrap();
    assert_clean_failure(
        &fresh_train(&[]),
        &["zz-colour.png", "mixed channel counts"],
    );
    // ... which converting every image fixes.
    let converted = dir.path().join("converted");
    ok(capsnet(&[
        "train",
        s(&exp),
        "data.image_folder.color=\"gray\"",
        "--run-dir",
        s(&converted),
        "--quiet",
    ]));
    std::fs::remove_file(&stray).unwrap();

    // An empty class folder; a class only in test/; a stray file.
    std::fs::create_dir(grey.join("train/star")).unwrap();
    assert_clean_failure(&fresh_train(&[]), &["star", "no images"]);
    std::fs::remove_dir(grey.join("train/star")).unwrap();
    std::fs::create_dir(grey.join("test/star")).unwrap();
    std::fs::copy(
        grey.join("test/circle/circle-0000.png"),
        grey.join("test/star/0.png"),
    )
    .unwrap();
    assert_clean_failure(&fresh_train(&[]), &["`star`", "not in train/"]);
    std::fs::remove_dir_all(grey.join("test/star")).unwrap();
    std::fs::write(grey.join("train/circle/notes.txt"), b"x").unwrap();
    assert_clean_failure(&fresh_train(&[]), &["notes.txt", "not an image"]);
    std::fs::remove_file(grey.join("train/circle/notes.txt")).unwrap();
    // A folder that does not exist.
    assert_clean_failure(
        &fresh_train(&["data.root=\"/nonexistent/images\""]),
        &["/nonexistent/images"],
    );
    // An image smaller than an unscaled centre crop.
    assert_clean_failure(
        &fresh_train(&[
            "data.image_folder.resize=\"center-crop\"",
            "model.input_height=32",
            "model.input_width=32",
        ]),
        &["smaller than the 32x32 centre crop"],
    );

    // predict: a missing file, and reconstructions from a network without a decoder.
    let out = capsnet(&["predict", "--checkpoint", s(&run), "/nonexistent.png"]);
    assert_clean_failure(&out, &["/nonexistent.png"]);
    let no_decoder = dir.path().join("no-decoder");
    ok(capsnet(&[
        "train",
        s(&exp),
        "model.decoder.enabled=false",
        "train.epochs=1",
        "--run-dir",
        s(&no_decoder),
        "--quiet",
    ]));
    let out = capsnet(&[
        "predict",
        "--checkpoint",
        s(&no_decoder),
        s(&grey.join("test")),
        "--reconstruct",
        s(&dir.path().join("r")),
    ]);
    assert_clean_failure(&out, &["--reconstruct", "decoder"]);
    // Without --reconstruct it classifies.
    let text = ok(capsnet(&[
        "predict",
        "--checkpoint",
        s(&no_decoder),
        s(&grey.join("test")),
    ]));
    assert_eq!(text.lines().count(), 8, "{text}");
}
