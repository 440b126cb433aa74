//! The `CAPSNET_` environment layer: between the experiment file and the overrides, only
//! variables with `__` (or a top-level key) are keys, errors name the variable, and
//! `sources.json` records what applied.
//!
//! Every test runs inside `figment::Jail`, which holds a process-wide lock and restores the
//! environment afterwards, so the tests of this binary never see each other's variables (and
//! no other test binary shares this process).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use capsnet_train::{ConfigError, load_experiment};
use figment::Jail;

/// Runs `f` in a figment jail: a process-wide lock, the environment restored afterwards.
#[allow(
    clippy::result_large_err,
    reason = "the jail's closure returns figment::Result, whose error is large"
)]
fn jailed(f: impl FnOnce(&mut Jail)) {
    Jail::expect_with(|jail| {
        f(jail);
        Ok(())
    });
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// An experiment extending a base file, in the jail's directory.
fn layered_experiment(jail: &Jail) -> PathBuf {
    let dir = jail.directory();
    write(dir, "base.toml", "seed = 7\n[train]\nepochs = 3\n");
    write(
        dir,
        "exp.toml",
        "extends = [\"base.toml\"]\nname = \"env\"\n[train]\nepochs = 4\nbatch_size = 16\n",
    )
}

/// The project's own variables, with values that would break a load if read as keys.
const PROJECT_VARIABLES: [(&str, &str); 7] = [
    ("CAPSNET_DATA", "/nonexistent/datasets"),
    ("CAPSNET_PYTHON", "/nonexistent/python3"),
    ("CAPSNET_BENCH_BACKEND", "tpu"),
    ("CAPSNET_CIFAR_MIRROR", "http://127.0.0.1:9/"),
    ("CAPSNET_MNIST_MIRROR", "http://127.0.0.1:9/"),
    ("CAPSNET_GPU_EPOCHS", "many"),
    ("CAPSNET_TCH_TARGET", "/nonexistent"),
];

#[test]
fn env_sits_between_the_file_and_the_overrides() {
    jailed(|jail| {
        jail.clear_env();
        let exp = layered_experiment(jail);
        jail.set_env("CAPSNET_TRAIN__EPOCHS", "5");
        jail.set_env("CAPSNET_TRAIN__LR", "5e-4");
        jail.set_env("CAPSNET_MODEL__ROUTING__ITERATIONS", "1");
        jail.set_env("CAPSNET_MODEL__DECODER__HIDDEN", "[64, 128]");
        jail.set_env("CAPSNET_DATA__DATASET", "fashion-mnist");
        jail.set_env("CAPSNET_SEED", "11");
        for (name, value) in PROJECT_VARIABLES {
            jail.set_env(name, value);
        }

        let resolved = load_experiment(&exp, &[]).unwrap();
        let c = &resolved.config;
        assert_eq!(c.train.epochs, 5, "env beats the experiment file");
        assert_eq!(
            c.train.batch_size, 16,
            "the file still sets what env does not"
        );
        assert_eq!(c.train.lr, 5e-4, "values read as TOML literals");
        assert_eq!(c.model.routing.iterations().unwrap(), 1);
        assert_eq!(c.model.decoder.hidden, vec![64, 128]);
        assert_eq!(c.data.dataset, capsnet_train::config::Dataset::FashionMnist);
        assert_eq!(c.seed, 11, "a top-level key without `__`");
        assert_eq!(c.data.root, None, "CAPSNET_DATA is not data.root");
        let expected: BTreeMap<String, String> = [
            ("CAPSNET_DATA__DATASET", "fashion-mnist"),
            ("CAPSNET_MODEL__DECODER__HIDDEN", "[64, 128]"),
            ("CAPSNET_MODEL__ROUTING__ITERATIONS", "1"),
            ("CAPSNET_SEED", "11"),
            ("CAPSNET_TRAIN__EPOCHS", "5"),
            ("CAPSNET_TRAIN__LR", "5e-4"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(resolved.env, expected);

        // Overrides beat the environment.
        let resolved = load_experiment(
            &exp,
            &["train.epochs=9".into(), "model.routing.iterations=2".into()],
        )
        .unwrap();
        assert_eq!(resolved.config.train.epochs, 9);
        assert_eq!(resolved.config.model.routing.iterations().unwrap(), 2);
        assert_eq!(resolved.config.train.lr, 5e-4);
    });
}

#[test]
fn project_variables_alone_change_nothing() {
    jailed(|jail| {
        jail.clear_env();
        let exp = layered_experiment(jail);
        let plain = load_experiment(&exp, &[]).unwrap();
        for (name, value) in PROJECT_VARIABLES {
            jail.set_env(name, value);
        }
        let with_project_variables = load_experiment(&exp, &[]).unwrap();
        assert_eq!(with_project_variables.config, plain.config);
        assert!(with_project_variables.env.is_empty());
    });
}

#[test]
fn unknown_key_from_env_names_the_variable_and_the_closest_key() {
    jailed(|jail| {
        jail.clear_env();
        let exp = layered_experiment(jail);
        jail.set_env("CAPSNET_TRAIN__EPOCHZ", "3");
        let err = load_experiment(&exp, &[]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ConfigError::UnknownKey { .. }), "{text}");
        assert!(text.contains("`train.epochz`"), "{text}");
        assert!(text.contains("CAPSNET_TRAIN__EPOCHZ"), "{text}");
        assert!(text.contains("did you mean `train.epochs`"), "{text}");

        // A misspelt section: the whole table is unknown, named by its variables.
        jail.clear_env();
        jail.set_env("CAPSNET_TRIAN__EPOCHS", "3");
        jail.set_env("CAPSNET_TRIAN__LR", "0.1");
        let text = load_experiment(&exp, &[]).unwrap_err().to_string();
        assert!(text.contains("`trian`"), "{text}");
        assert!(
            text.contains("CAPSNET_TRIAN__EPOCHS, CAPSNET_TRIAN__LR"),
            "{text}"
        );
        assert!(text.contains("did you mean `train`"), "{text}");
    });
}

#[test]
fn wrong_type_from_env_names_the_variable_and_the_expected_type() {
    jailed(|jail| {
        jail.clear_env();
        let exp = layered_experiment(jail);
        jail.set_env("CAPSNET_TRAIN__EPOCHS", "ten");
        let err = load_experiment(&exp, &[]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ConfigError::WrongType { .. }), "{text}");
        assert!(
            text.contains("`train.epochs`") && text.contains("CAPSNET_TRAIN__EPOCHS"),
            "{text}"
        );
        assert!(text.contains("expected usize"), "{text}");

        // An element of an array: the index is part of the key.
        jail.clear_env();
        jail.set_env("CAPSNET_MODEL__DECODER__HIDDEN", "[64, \"wide\"]");
        let text = load_experiment(&exp, &[]).unwrap_err().to_string();
        assert!(
            text.contains("`model.decoder.hidden[1]`")
                && text.contains("CAPSNET_MODEL__DECODER__HIDDEN"),
            "{text}"
        );

        // A later override of the same key fixes it: the error was the environment's.
        assert_eq!(
            load_experiment(&exp, &["model.decoder.hidden=[64, 32]".into()])
                .unwrap()
                .config
                .model
                .decoder
                .hidden,
            vec![64, 32]
        );
    });
}

#[test]
fn env_values_are_validated_like_any_other() {
    jailed(|jail| {
        jail.clear_env();
        let exp = layered_experiment(jail);
        jail.set_env("CAPSNET_TRAIN__BATCH_SIZE", "0");
        let text = load_experiment(&exp, &[]).unwrap_err().to_string();
        assert!(text.contains("train.batch_size"), "{text}");
    });
}

#[test]
fn sweeps_cannot_come_from_the_environment() {
    jailed(|jail| {
        jail.clear_env();
        let exp = layered_experiment(jail);
        jail.set_env("CAPSNET_SWEEP__GRID__SEED", "[1, 2]");
        let text = load_experiment(&exp, &[]).unwrap_err().to_string();
        assert!(
            text.contains("CAPSNET_SWEEP__GRID__SEED") && text.contains("not the environment"),
            "{text}"
        );
    });
}

#[test]
fn sources_json_records_the_variables_that_applied() {
    jailed(|jail| {
        jail.clear_env();
        let exp = layered_experiment(jail);
        jail.set_env("CAPSNET_TRAIN__EPOCHS", "2");
        jail.set_env("CAPSNET_DATA", "/nonexistent/datasets");
        let resolved = load_experiment(&exp, &["seed=1".into()]).unwrap();
        let run = jail.directory().join("run");
        capsnet_train::run_dir::prepare(&run, &resolved, false, false).unwrap();
        let sources: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("sources.json")).unwrap())
                .unwrap();
        assert_eq!(
            sources["env"],
            serde_json::json!({ "CAPSNET_TRAIN__EPOCHS": "2" })
        );
        assert_eq!(sources["overrides"], serde_json::json!(["seed=1"]));
        assert_eq!(sources["files"].as_array().unwrap().len(), 2);
    });
}
