//! Routing algorithms and Efficient-CapsNet through the experiment layer: the schema and its
//! errors, older experiment files and run directories, and determinism and exact resume with
//! each algorithm.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use capsnet_model::{DynamicRouting, RoutingConfig, SelfAttentionRouting};
use capsnet_train::{ConfigError, load_experiment, train};
use common::{
    TINY, capsnet, data_root, final_weights, options, records, resuming, stderr, stop_after,
    write_experiment,
};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn error(result: Result<capsnet_train::load::Resolved, ConfigError>) -> String {
    result
        .expect_err("the experiment must be refused")
        .to_string()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn routing_defaults_to_dynamic_and_takes_self_attention() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = write(tmp.path(), "plain.toml", "name = \"plain\"\n");
    let config = load_experiment(&plain, &[]).unwrap().config;
    assert_eq!(config.model.routing, RoutingConfig::default());
    let sa = write(
        tmp.path(),
        "sa.toml",
        "name = \"sa\"\n[model.routing]\nalgorithm = \"self-attention\"\npriors = false\n",
    );
    let config = load_experiment(&sa, &[]).unwrap().config;
    assert_eq!(
        config.model.routing,
        RoutingConfig::SelfAttention(SelfAttentionRouting { priors: false })
    );
    // The resolved file records the algorithm and its options only.
    let text = capsnet_train::load::to_toml(&config);
    assert!(text.contains("algorithm = \"self-attention\""), "{text}");
    assert!(text.contains("priors = false"), "{text}");
    let routing_table = text.split("[model.routing]").nth(1).unwrap();
    let routing_table = routing_table.split("\n[").next().unwrap();
    assert!(!routing_table.contains("iterations"), "{routing_table}");
}

#[test]
fn a_file_that_switches_the_algorithm_drops_the_options_it_extends() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "base.toml",
        "[model.routing]\niterations = 5\nleaky = true\n",
    );
    let exp = write(
        tmp.path(),
        "exp.toml",
        "extends = [\"base.toml\"]\nname = \"x\"\n[model.routing]\nalgorithm = \"self-attention\"\n",
    );
    let config = load_experiment(&exp, &[]).unwrap().config;
    assert_eq!(
        config.model.routing,
        RoutingConfig::SelfAttention(SelfAttentionRouting::default())
    );
    // Without the switch the base's options hold; a later layer's option is checked against
    // the algorithm in force.
    let config = load_experiment(&exp, &["model.routing.algorithm=\"dynamic\"".into()])
        .unwrap()
        .config;
    assert_eq!(config.model.routing, RoutingConfig::default());
    let err = error(load_experiment(
        &exp,
        &["model.routing.iterations=2".into()],
    ));
    assert!(
        err.contains("`iterations` is not an option of routing algorithm \"self-attention\""),
        "{err}"
    );
    // A sweep's table override replaces the routing of the file below it.
    let config = load_experiment(
        &exp,
        &["model.routing={ algorithm = \"dynamic\", iterations = 1 }".into()],
    )
    .unwrap()
    .config;
    assert_eq!(
        config.model.routing,
        RoutingConfig::Dynamic(DynamicRouting {
            iterations: 1,
            ..Default::default()
        })
    );
}

#[test]
fn a_switch_never_drops_command_line_options_and_a_repeat_drops_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "base.toml", "[model.routing]\niterations = 1\n");
    let exp = write(
        tmp.path(),
        "exp.toml",
        "extends = [\"base.toml\"]\nname = \"x\"\n",
    );
    // Naming the algorithm already in force keeps the options below it.
    let config = load_experiment(&exp, &["model.routing.algorithm=\"dynamic\"".into()])
        .unwrap()
        .config;
    assert_eq!(config.model.routing.iterations(), Some(1));
    // An override's option dropped by a later override's switch is an error naming both.
    let err = error(load_experiment(
        &exp,
        &[
            "model.routing.leaky=true".into(),
            "model.routing.algorithm=\"self-attention\"".into(),
        ],
    ));
    assert!(
        err.contains("model.routing.leaky")
            && err.contains("override `model.routing.leaky=true`")
            && err.contains("switches model.routing.algorithm to \"self-attention\""),
        "{err}"
    );
    // Set after the switch, it is checked against the new algorithm.
    let err = error(load_experiment(
        &exp,
        &[
            "model.routing.algorithm=\"self-attention\"".into(),
            "model.routing.leaky=true".into(),
        ],
    ));
    assert!(err.contains("`leaky` is not an option"), "{err}");
}

#[test]
fn bad_routing_settings_are_config_errors_naming_the_key_and_the_choices() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str]); 5] = [
        (
            "[model.routing]\nalgorithm = \"em\"\n",
            &["model.routing.algorithm", "dynamic", "self-attention", "em"],
        ),
        (
            "[model.routing]\nalgorithm = \"self-attention\"\nleaky = true\n",
            &[
                "model.routing",
                "`leaky`",
                "\"self-attention\"",
                "priors",
                "\"dynamic\"",
            ],
        ),
        (
            "[model.routing]\npriors = true\n",
            &["model.routing", "`priors`", "\"dynamic\"", "iterations"],
        ),
        (
            "[model.routing]\nalgorithm = \"dynamic\"\niterations = 11\n",
            &["model.routing.iterations", "11", "between 0 and 10"],
        ),
        (
            "[runtime]\nconv_algorithm = \"winograd\"\n",
            &[
                "runtime.conv_algorithm",
                "winograd",
                "auto",
                "blocked",
                "spectral",
            ],
        ),
    ];
    for (i, (body, needles)) in cases.iter().enumerate() {
        let exp = write(
            tmp.path(),
            &format!("bad{i}.toml"),
            &format!("name = \"b\"\n{body}"),
        );
        let err = error(load_experiment(&exp, &[]));
        for needle in *needles {
            assert!(
                err.contains(needle),
                "case {i}: {needle:?} missing from: {err}"
            );
        }
        if i < 4 {
            assert!(
                err.contains(&format!("bad{i}.toml")) || i == 3,
                "case {i}: {err}"
            );
        }
    }
}

#[test]
#[allow(
    clippy::result_large_err,
    reason = "the jail's closure returns figment::Result, whose error is large"
)]
fn the_convolution_algorithm_is_an_experiment_key_also_from_the_environment() {
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        let exp = write(jail.directory(), "exp.toml", "name = \"c\"\n");
        let config = load_experiment(&exp, &["runtime.conv_algorithm=\"spectral\"".into()])
            .unwrap()
            .config;
        assert_eq!(
            config.runtime.conv_algorithm,
            capsnet_model::ConvAlgorithm::Spectral
        );
        assert!(capsnet_train::load::to_toml(&config).contains("conv_algorithm = \"spectral\""));
        jail.set_env("CAPSNET_RUNTIME__CONV_ALGORITHM", "blocked");
        let config = load_experiment(&exp, &[]).unwrap().config;
        assert_eq!(
            config.runtime.conv_algorithm,
            capsnet_model::ConvAlgorithm::Blocked
        );
        jail.set_env("CAPSNET_RUNTIME__CONV_ALGORITHM", "fastest");
        let err = error(load_experiment(&exp, &[]));
        assert!(
            err.contains("runtime.conv_algorithm")
                && err.contains("CAPSNET_RUNTIME__CONV_ALGORITHM"),
            "{err}"
        );
        jail.set_env("CAPSNET_RUNTIME__CONV_ALGORITHM", "auto");
        // The retired variable is refused, not silently ignored.
        jail.set_env("CAPSNET_CONV", "spectral");
        let err = error(load_experiment(&exp, &[]));
        assert!(
            err.contains("CAPSNET_CONV") && err.contains("runtime.conv_algorithm"),
            "{err}"
        );
        Ok(())
    });
}

/// Every experiment file of the repository and every committed run record
/// (`results/raw/*/*/config.resolved.toml`, written by earlier versions, with
/// `model.routing.squash_eps`) loads; the records keep their routing and ε.
#[test]
fn older_experiment_files_and_run_records_load_unchanged() {
    for entry in std::fs::read_dir(repo().join("experiments")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            load_experiment(&path, &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
    let mut records = 0;
    for table in std::fs::read_dir(repo().join("results/raw")).unwrap() {
        for job in std::fs::read_dir(table.unwrap().path()).unwrap() {
            let path = job.unwrap().path().join("config.resolved.toml");
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let config = capsnet_train::load::parse_str(&text, &path.display().to_string())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let stored: toml::Table = text.parse().unwrap();
            let routing = &stored["model"]["routing"];
            if let Some(r) = routing.get("iterations") {
                assert_eq!(
                    config.model.routing.iterations(),
                    Some(r.as_integer().unwrap() as usize),
                    "{}",
                    path.display()
                );
            }
            if let Some(eps) = routing.get("squash_eps") {
                assert_eq!(config.model.squash_eps, eps.as_float().unwrap());
            }
            records += 1;
        }
    }
    assert!(records >= 90, "only {records} run records found");
}

/// A run directory written by the previous version (committed fixture: `config.resolved.toml`
/// with `model.routing.squash_eps`, a checkpoint) evaluates and resumes.
#[test]
fn a_run_from_the_previous_version_evaluates_and_resumes() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-run");
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("legacy-run");
    copy_dir(&fixture, &run);
    let eval = capsnet(&[
        "eval",
        "--checkpoint",
        run.to_str().unwrap(),
        "--data-dir",
        data_root().to_str().unwrap(),
        "--limit",
        "200",
        "--json",
    ]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    let report: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    let text = report.to_string();
    assert!(text.contains("accuracy"), "{text}");
    // The experiment it was trained from, two more epochs: resume continues from the checkpoint.
    let exp = write(tmp.path(), "legacy.toml", LEGACY_EXPERIMENT);
    // The data through CAPSNET_DATA, as when the fixture was written (`data.root` is part of
    // the experiment a resume must match).
    let resume = Command::new(env!("CARGO_BIN_EXE_capsnet"))
        .args([
            "train",
            exp.to_str().unwrap(),
            "--run-dir",
            run.to_str().unwrap(),
            "--resume",
            "--plain",
            "train.epochs=2",
        ])
        .env("CAPSNET_DATA", data_root())
        .output()
        .unwrap();
    assert!(resume.status.success(), "{}", stderr(&resume));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["completed"], true);
    assert_eq!(summary["epochs_completed"], 2);
    assert_eq!(summary["routing"], "dynamic r=2");
}

/// The experiment the legacy fixture was trained from (by the previous version of `capsnet`).
const LEGACY_EXPERIMENT: &str = include_str!("fixtures/legacy-run.toml");

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A tiny Efficient-CapsNet experiment (the paper's network, a small decoder).
const TINY_EFFICIENT: &str = r#"
seed = 3
arch = "efficient-capsnet"
[data]
train_limit = 320
test_limit = 200
shift_pixels = 0
augmentation = "efficient-capsnet"
[efficient]
decoder.hidden = [64, 128]
[train]
epochs = 2
batch_size = 32
checkpoint_every_steps = 4
log_every_steps = 2
eval_batch_size = 100
"#;

/// For self-attention routing on the CapsNet and for Efficient-CapsNet (batch norm's running
/// statistics included): two uninterrupted runs are identical, and a run stopped after 5 steps
/// and resumed ends identical to them.
#[test]
fn each_routing_algorithm_is_deterministic_and_resumes_exactly() {
    let self_attention = TINY.replacen(
        "[model]\n",
        "[model]\nrouting.algorithm = \"self-attention\"\n",
        1,
    );
    assert_ne!(self_attention, TINY);
    for (name, body) in [
        ("sa", self_attention.as_str()),
        ("efficient", TINY_EFFICIENT),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let exp = write_experiment(tmp.path(), name, body);
        let overrides = vec![format!("data.root={:?}", data_root().display().to_string())];
        let resolved = load_experiment(&exp, &overrides).unwrap();
        let a = train(&resolved, &options(&tmp.path().join("a"))).unwrap();
        let again = train(&resolved, &options(&tmp.path().join("again"))).unwrap();
        let interrupted = tmp.path().join("interrupted");
        let stopped = train(&resolved, &stop_after(&interrupted, 5)).unwrap();
        assert_eq!(stopped.steps, 5);
        let b = train(&resolved, &resuming(&interrupted)).unwrap();
        assert!(a.completed && b.completed, "{name}");
        let strip = |v: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
            v.into_iter()
                .map(|mut r| {
                    r.as_object_mut().unwrap().remove("images_per_sec");
                    r
                })
                .collect()
        };
        for (label, run, summary) in [("again", "again", &again), ("resumed", "interrupted", &b)] {
            assert_eq!(a.final_test_loss, summary.final_test_loss, "{name} {label}");
            assert_eq!(
                a.final_test_accuracy, summary.final_test_accuracy,
                "{name} {label}"
            );
            for kind in ["train", "eval"] {
                assert_eq!(
                    strip(records(&tmp.path().join("a"), kind)),
                    strip(records(&tmp.path().join(run), kind)),
                    "{name} {label} {kind} records"
                );
            }
            assert!(
                final_weights(&tmp.path().join("a")) == final_weights(&tmp.path().join(run)),
                "{name} {label}: final weights differ"
            );
        }
        // The run learned something and reports its routing.
        let (first, last) = common::first_and_last_loss(&tmp.path().join("a"));
        assert!(last < first, "{name}: loss {first} → {last}");
        assert_eq!(a.routing.as_deref(), Some("self-attention"), "{name}");
    }
}

/// `experiments/routing_algorithms.toml`: 3 seeds × (dynamic r = 1, r = 3, self-attention) on
/// the same network, seeds slowest.
#[test]
fn the_routing_algorithms_sweep_plans_nine_comparable_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = capsnet_train::sweep::plan(
        &repo().join("experiments/routing_algorithms.toml"),
        &[],
        tmp.path(),
    )
    .unwrap();
    let jobs: Vec<(u64, String)> = plan
        .jobs
        .iter()
        .map(|j| {
            (
                j.resolved.config.seed,
                j.resolved.config.model.routing.describe(),
            )
        })
        .collect();
    let routings = ["dynamic r=1", "dynamic r=3", "self-attention"];
    let expected: Vec<(u64, String)> = (0..3)
        .flat_map(|seed| routings.map(|r| (seed, r.to_string())))
        .collect();
    assert_eq!(jobs, expected);
    let names: Vec<&str> = plan.jobs.iter().map(|j| j.job.name.as_str()).collect();
    assert_eq!(names[0], "seed-0_routing-dynamic-1");
    assert_eq!(names[2], "seed-0_routing-self-attention");
    // Everything but the routing is the same network and schedule.
    let base = &plan.jobs[0].resolved.config;
    for job in &plan.jobs {
        let c = &job.resolved.config;
        assert_eq!(c.model.conv1_channels, base.model.conv1_channels);
        assert_eq!(c.model.primary_types, base.model.primary_types);
        assert_eq!(c.model.squash, base.model.squash);
        assert_eq!(c.train, base.train);
        assert_eq!(c.data, base.data);
    }
}
