//! Training on real MNIST: the paper model learns; a stopped run resumes exactly.

mod common;

use capsnet_train::report::ProgressMode;
use capsnet_train::{load_experiment, train};
use common::{
    TINY, data_root, final_weights, first_and_last_loss, options, records, resuming, stop_after,
    write_experiment,
};

/// The paper's full-size CapsNet (8.2M parameters, r = 3, decoder) on 2,000 real MNIST images
/// for 200 steps: the loss falls and test accuracy is far above chance (10%).
#[test]
fn paper_model_learns_on_real_mnist() {
    let tmp = tempfile::tempdir().unwrap();
    let root = data_root();
    let exp = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/mnist.toml");
    let overrides: Vec<String> = [
        "data.train_limit=2000",
        "data.test_limit=500",
        "data.shift_pixels=0",
        "train.epochs=1",
        "train.batch_size=10",
        "train.log_every_steps=20",
        "train.checkpoint_every_steps=0",
        "train.eval_batch_size=100",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("data.root={:?}", root.display().to_string())])
    .collect();
    let resolved = load_experiment(&exp, &overrides).unwrap();
    assert_eq!(
        resolved.config.model,
        capsnet_model::CapsNetConfig::paper_mnist()
    );
    let run = tmp.path().join("run");
    let summary = train(&resolved, &options(&run)).unwrap();

    assert!(summary.completed);
    assert_eq!(summary.steps, 200);
    assert_eq!(summary.params, 8_215_568);
    let train = records(&run, "train");
    assert_eq!(train.len(), 10);
    let first = train[0]["loss"].as_f64().unwrap();
    let last = train[train.len() - 1]["loss"].as_f64().unwrap();
    assert!(last < 0.6 * first, "loss did not fall: {first} → {last}");
    let accuracy = summary.final_test_accuracy.unwrap();
    assert!(accuracy > 70.0, "test accuracy {accuracy}% after 200 steps");
    assert_eq!(summary.final_eval_epoch, Some(1));
}

/// A run stopped after 5 steps (mid-epoch, between checkpoints) and resumed ends with exactly
/// the weights, metrics and test results of an uninterrupted run.
#[test]
fn stopped_run_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = write_experiment(tmp.path(), "tiny", TINY);
    let overrides = vec![format!("data.root={:?}", data_root().display().to_string())];
    let resolved = load_experiment(&exp, &overrides).unwrap();

    let straight = tmp.path().join("straight");
    let a = train(&resolved, &options(&straight)).unwrap();

    let interrupted = tmp.path().join("interrupted");
    let stopped = train(&resolved, &stop_after(&interrupted, 5)).unwrap();
    assert!(!stopped.completed);
    assert_eq!(stopped.steps, 5);
    // Resuming without --resume is refused; with it, the run continues.
    assert!(train(&resolved, &options(&interrupted)).is_err());
    let b = train(&resolved, &resuming(&interrupted)).unwrap();

    assert!(a.completed && b.completed);
    assert_eq!(a.steps, b.steps);
    assert_eq!(a.final_test_loss, b.final_test_loss);
    assert_eq!(a.final_test_accuracy, b.final_test_accuracy);
    let strip = |v: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        v.into_iter()
            .map(|mut r| {
                r.as_object_mut().unwrap().remove("images_per_sec");
                r
            })
            .collect()
    };
    assert_eq!(
        strip(records(&straight, "eval")),
        strip(records(&interrupted, "eval"))
    );
    assert_eq!(
        strip(records(&straight, "train")),
        strip(records(&interrupted, "train"))
    );
    assert!(
        final_weights(&straight) == final_weights(&interrupted),
        "final weights differ"
    );
}

/// `train.steps` on a class-balanced `train_subset`, with the training images evaluated too:
/// exactly that many steps (the last pass cut short), one evaluation at the end on both sets,
/// and a run stopped mid-way resumes to the same result.
#[test]
fn step_budget_on_a_balanced_subset_with_train_error() {
    let tmp = tempfile::tempdir().unwrap();
    let body = TINY
        .replace("train_limit = 320", "train_subset = 50\neval_train = true")
        .replace(
            "epochs = 2",
            "steps = 7\neval_every_epochs = 100\ncheckpoint_every_epochs = 100",
        );
    let exp = write_experiment(tmp.path(), "budget", &body);
    let overrides = vec![format!("data.root={:?}", data_root().display().to_string())];
    let resolved = load_experiment(&exp, &overrides).unwrap();
    let straight = tmp.path().join("straight");
    let a = train(&resolved, &options(&straight)).unwrap();
    // 50 images in batches of 32: 2 steps per pass, so 7 steps are 4 passes, the last of 1 step.
    assert!(a.completed);
    assert_eq!((a.steps, a.epochs, a.epochs_completed), (7, 4, 4));
    assert_eq!((a.train_images, a.final_eval_epoch), (50, Some(4)));
    let train_accuracy = a.final_extra_accuracy["train"];
    assert!((0.0..=100.0).contains(&train_accuracy), "{train_accuracy}");
    let steps: Vec<u64> = records(&straight, "train")
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [2, 4, 6, 7]);
    let evals = records(&straight, "eval");
    let sets: Vec<(&str, u64)> = evals
        .iter()
        .map(|r| {
            (
                r["set"].as_str().unwrap_or("test"),
                r["step"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sets, [("test", 7), ("train", 7)]);
    assert_eq!(evals[1]["test_images"].as_u64(), Some(50));

    let interrupted = tmp.path().join("interrupted");
    train(&resolved, &stop_after(&interrupted, 3)).unwrap();
    let b = train(&resolved, &resuming(&interrupted)).unwrap();
    assert_eq!(b.steps, 7);
    assert_eq!(a.final_test_loss, b.final_test_loss);
    assert_eq!(a.final_extra_accuracy, b.final_extra_accuracy);
    assert!(final_weights(&straight) == final_weights(&interrupted));
}

/// A validation split held out of a balanced subset, evaluated every few steps mid-epoch
/// (`train.eval_every_steps`) with the margin and reconstruction losses in each record; the
/// evaluation of the run's last step is not repeated at the epoch's end; resuming from a
/// checkpoint between evaluations gives the same records and weights.
#[test]
fn validation_split_and_step_evaluations_resume_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let body = TINY
        .replace("train_limit = 320", "train_subset = 60\nvalidation = 20")
        .replace(
            "epochs = 2",
            "steps = 6\neval_every_steps = 3\neval_every_epochs = 100\ncheckpoint_every_epochs = 100",
        )
        .replace("checkpoint_every_steps = 4", "checkpoint_every_steps = 2");
    let exp = write_experiment(tmp.path(), "validation", &body);
    let overrides = vec![format!("data.root={:?}", data_root().display().to_string())];
    let resolved = load_experiment(&exp, &overrides).unwrap();
    let straight = tmp.path().join("straight");
    let a = train(&resolved, &options(&straight)).unwrap();
    // 60 images, 20 held out: 40 trained on, 2 steps per pass of 32.
    assert_eq!((a.train_images, a.steps, a.epochs), (40, 6, 3));
    // The evaluation at step 6 ends the last epoch and is numbered with it.
    assert_eq!(a.final_eval_epoch, Some(3));
    assert!(a.final_extra_accuracy.contains_key("validation"));
    let evals = records(&straight, "eval");
    let seen: Vec<(&str, u64)> = evals
        .iter()
        .map(|r| {
            (
                r["set"].as_str().unwrap_or("test"),
                r["step"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("test", 3),
            ("validation", 3),
            ("test", 6),
            ("validation", 6)
        ]
    );
    assert_eq!(evals[1]["test_images"].as_u64(), Some(20));
    for r in &evals {
        let margin = r["margin_loss"].as_f64().unwrap();
        let recon = r["recon_loss"].as_f64().unwrap();
        let total = r["test_loss"].as_f64().unwrap();
        assert!(
            (margin + 0.0005 * recon - total).abs() < 1e-4 * total.max(1.0),
            "{r}"
        );
    }

    let interrupted = tmp.path().join("interrupted");
    train(&resolved, &stop_after(&interrupted, 4)).unwrap();
    let b = train(&resolved, &resuming(&interrupted)).unwrap();
    assert_eq!(a.final_test_loss, b.final_test_loss);
    assert_eq!(a.final_extra_accuracy, b.final_extra_accuracy);
    let strip = |v: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        v.into_iter()
            .map(|mut r| {
                r.as_object_mut().unwrap().remove("images_per_sec");
                r
            })
            .collect()
    };
    assert_eq!(strip(evals), strip(records(&interrupted, "eval")));
    assert!(final_weights(&straight) == final_weights(&interrupted));

    // Holding out every image is a clear error naming the key, before anything trains.
    let mut all = overrides.clone();
    all.push("data.validation=60".into());
    let resolved = load_experiment(&exp, &all).unwrap();
    let err = train(&resolved, &options(&tmp.path().join("all")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data.validation") && err.contains("leaves nothing"),
        "{err}"
    );
}

/// The baseline CNN with a reconstruction decoder: its loss is the cross-entropy plus the
/// weighted SSE, logged apart, and it is refused on a two-digit dataset.
#[test]
fn baseline_cnn_with_a_decoder_trains_and_logs_its_reconstruction_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let body = format!(
        "arch = \"baseline-cnn\"\n{}\n[baseline]\nconv_channels = [8, 8]\npool = true\nhidden = [32]\ndecoder.enabled = true\ndecoder.hidden = [16]\n",
        TINY.replace("epochs = 2", "epochs = 1")
    );
    let exp = write_experiment(tmp.path(), "cnn_decoder", &body);
    let overrides = vec![format!("data.root={:?}", data_root().display().to_string())];
    let resolved = load_experiment(&exp, &overrides).unwrap();
    let run = tmp.path().join("run");
    let a = train(&resolved, &options(&run)).unwrap();
    // conv 1→8 5×5, 8→8 5×5, fc 8·7·7→32, fc 32→10; decoder 32→16→784.
    let expected = (25 * 8 + 8)
        + (200 * 8 + 8)
        + (392 * 32 + 32)
        + (32 * 10 + 10)
        + (32 * 16 + 16)
        + (16 * 784 + 784);
    assert_eq!(a.params, expected);
    for r in records(&run, "train") {
        assert!(r["recon_loss"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r.get("margin_loss").is_none(), "{r}");
    }
    let eval = &records(&run, "eval")[0];
    assert!(eval["recon_loss"].as_f64().unwrap() > 0.0, "{eval}");

    let mut multi = overrides.clone();
    multi.push("data.dataset=\"multimnist\"".into());
    multi.push("data.shift_pixels=0".into());
    let err = match load_experiment(&exp, &multi) {
        Err(e) => e.to_string(),
        Ok(_) => String::from("accepted"),
    };
    assert!(err.contains("baseline.decoder.enabled"), "{err}");
}

/// Resuming with a changed experiment (other than more epochs) is refused with the key.
#[test]
fn resume_refuses_a_different_experiment() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = write_experiment(tmp.path(), "tiny", TINY);
    let root = vec![format!("data.root={:?}", data_root().display().to_string())];
    let run = tmp.path().join("run");
    let resolved = load_experiment(&exp, &root).unwrap();
    train(&resolved, &stop_after(&run, 2)).unwrap();
    let mut changed = root.clone();
    changed.push("train.lr=0.01".into());
    let resolved = load_experiment(&exp, &changed).unwrap();
    let err = train(&resolved, &resuming(&run)).unwrap_err();
    assert!(err.to_string().contains("train.lr"), "{err}");
    // More epochs is allowed and continues from the checkpoint, on another device index too
    // (a sweep's `--devices` hands an interrupted job to whichever device is free).
    let mut longer = root;
    longer.push("train.epochs=3".into());
    longer.push("runtime.device=1".into());
    let resolved = load_experiment(&exp, &longer).unwrap();
    let summary = train(&resolved, &resuming(&run)).unwrap();
    assert_eq!(summary.epochs_completed, 3);
    assert_eq!(summary.steps, 30);
}

/// The run's TensorBoard event file holds every dashboard: scalars, reconstruction images,
/// histograms, the config text and the HParams records.
#[test]
fn run_writes_tensorboard_dashboards() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = write_experiment(tmp.path(), "tiny", TINY);
    let root = vec![
        format!("data.root={:?}", data_root().display().to_string()),
        "model.routing.iterations=2".into(),
    ];
    let resolved = load_experiment(&exp, &root).unwrap();
    let run = tmp.path().join("run");
    train(&resolved, &options(&run)).unwrap();
    let file = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .contains("tfevents")
        })
        .expect("an event file in the run directory");
    let events = capsnet_tensorboard::read_events(&file).unwrap();
    let mut tags = std::collections::BTreeMap::<String, Vec<i64>>::new();
    for event in &events {
        if let Some(capsnet_tensorboard::proto::event::What::Summary(summary)) = &event.what {
            for value in &summary.value {
                tags.entry(value.tag.clone()).or_default().push(event.step);
            }
        }
    }
    for tag in [
        "train/loss",
        "train/margin_loss",
        "train/recon_loss",
        "train/accuracy",
        "train/lr",
        "test/error_pct",
        "test/accuracy",
        "reconstructions",
        "capsules/lengths",
        "routing/couplings_iter1",
        "routing/couplings_iter2",
        "weights/digitcaps_w_norms",
        "config",
        "_hparams_/experiment",
        "_hparams_/session_start_info",
        "_hparams_/session_end_info",
    ] {
        assert!(
            tags.contains_key(tag),
            "missing {tag}; have {:?}",
            tags.keys()
        );
    }
    // 2 epochs of 10 steps, logged every 2 steps; evaluated after each epoch.
    assert_eq!(tags["train/loss"], vec![2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
    assert_eq!(tags["test/error_pct"], vec![10, 20]);
    assert!(!tags.contains_key("routing/couplings_iter3"));
}

/// `figures` draws Fig. 3 (inputs above reconstructions) and Fig. 4 (16 dimensions × 11
/// offsets) from a trained checkpoint, as PNG files of the expected size.
#[test]
fn figures_from_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = write_experiment(tmp.path(), "tiny", TINY);
    let root = vec![format!("data.root={:?}", data_root().display().to_string())];
    let resolved = load_experiment(&exp, &root).unwrap();
    let run = tmp.path().join("run");
    train(&resolved, &stop_after(&run, 3)).unwrap();
    let ckpt = capsnet_train::checkpoint::latest(&run).unwrap().unwrap();
    let device = capsnet_train::backend::BackendKind::Flex
        .device(Default::default())
        .unwrap();
    let capsnet_train::net::Net::Capsnet(net) =
        capsnet_train::checkpoint::load_net(&ckpt, &resolved.config, &device).unwrap()
    else {
        panic!("a CapsNet run");
    };
    let mut log = capsnet_train::report::RunLog::stderr_only(ProgressMode::Quiet);
    let data = capsnet_train::data::load_experiment_data(&resolved.config, &mut log).unwrap();
    let out = tmp.path().join("figures");
    let options = capsnet_train::figures::FigureOptions {
        images: 5,
        perturbed: 2,
        step: 3,
    };
    let figures =
        capsnet_train::figures::write(&net, &data.test.source, options, &out, None, &device)
            .unwrap();
    assert_eq!(figures.files.len(), 3);
    let png_size = |path: &std::path::Path| {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        (w, h)
    };
    // 5 columns × 2 rows of 28×28 tiles with 1-px gaps.
    assert_eq!(png_size(&figures.files[0]), (5 * 28 + 4, 2 * 28 + 1));
    // 11 offsets × 16 capsule dimensions.
    assert_eq!(png_size(&figures.files[1]), (11 * 28 + 10, 16 * 28 + 15));
}

/// `runtime.precision = "bf16"` trains every tensor in bfloat16 (parameters included) and still
/// learns; the summary and checkpoints are written as usual.
#[test]
fn bf16_precision_trains_in_bfloat16() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = write_experiment(tmp.path(), "tiny_bf16", TINY);
    let overrides = vec![
        format!("data.root={:?}", data_root().display().to_string()),
        "runtime.precision=\"bf16\"".into(),
    ];
    let resolved = load_experiment(&exp, &overrides).unwrap();
    let device = capsnet_train::device::training_device(&resolved.config).unwrap();
    let net = capsnet_train::net::Net::init(&resolved.config, &device).unwrap();
    struct Dtypes(Vec<burn::tensor::DType>);
    impl burn::module::ModuleVisitor for Dtypes {
        fn visit_float<const D: usize>(
            &mut self,
            p: &burn::module::Param<burn::tensor::Tensor<D>>,
        ) {
            self.0.push(p.val().dtype());
        }
    }
    let mut dtypes = Dtypes(Vec::new());
    burn::module::Module::visit(&net, &mut dtypes);
    assert!(!dtypes.0.is_empty());
    assert!(
        dtypes.0.iter().all(|d| *d == burn::tensor::DType::BF16),
        "{:?}",
        dtypes.0
    );
    let run = tmp.path().join("run");
    let summary = train(&resolved, &options(&run)).unwrap();
    assert!(summary.completed);
    let (first, last) = first_and_last_loss(&run);
    assert!(last.is_finite() && last < first, "loss {first} → {last}");
}

/// A run whose time budget runs out stops at a step boundary with a result: evaluated where it
/// stands, checkpointed, its summary marked as cut short; resumed, it ends where an
/// uninterrupted run ends, weight for weight.
#[test]
fn time_budget_stops_with_a_result_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = write_experiment(tmp.path(), "budget", TINY);
    let root = format!("data.root={:?}", data_root().display().to_string());
    let resolved = load_experiment(&exp, std::slice::from_ref(&root)).unwrap();
    let cut = tmp.path().join("cut");
    // A zero budget: the first step boundary is past it.
    let summary = train(
        &resolved,
        &capsnet_train::TrainOptions {
            stop_after_secs: Some(0.0),
            ..options(&cut)
        },
    )
    .unwrap();
    assert!(!summary.completed);
    assert_eq!(summary.steps, 1);
    let why = summary.stopped.as_deref().unwrap();
    assert!(
        why.starts_with("time budget of 0 s reached at step 1"),
        "{why}"
    );
    assert!(summary.final_test_accuracy.is_some());
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cut.join("summary.json")).unwrap()).unwrap();
    assert_eq!(written["stopped"], why);
    assert_eq!(records(&cut, "eval").len(), 1);

    let done = train(&resolved, &resuming(&cut)).unwrap();
    assert!(done.completed && done.stopped.is_none());
    let whole = tmp.path().join("whole");
    train(&resolved, &options(&whole)).unwrap();
    assert_eq!(final_weights(&cut), final_weights(&whole));
}
