//! Experiment files: the shipped ones resolve; layering, overrides and strictness.

use std::path::{Path, PathBuf};

use capsnet_train::{Arch, ConfigError, load_experiment};

fn experiments_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn shipped_experiments_resolve() {
    let dir = experiments_dir();
    let quick = load_experiment(&dir.join("quickstart.toml"), &[])
        .unwrap()
        .config;
    assert_eq!(quick.name, "quickstart");
    assert_eq!(quick.model.conv1_channels, 64);

    let paper = load_experiment(&dir.join("mnist.toml"), &[])
        .unwrap()
        .config;
    assert_eq!(paper.arch, Arch::Capsnet);
    assert_eq!(paper.model, capsnet_model::CapsNetConfig::paper_mnist());
    assert_eq!(paper.train.batch_size, 128);
    assert_eq!(paper.train.lr_decay_steps, 2000);
    assert_eq!(paper.data.shift_pixels, 2);

    let cnn = load_experiment(&dir.join("baseline_cnn.toml"), &[])
        .unwrap()
        .config;
    assert_eq!(cnn.arch, Arch::BaselineCnn);
    assert_eq!(cnn.baseline.conv_channels, vec![256, 256, 128]);
}

#[test]
fn overrides_are_toml_literals_and_win() {
    let dir = experiments_dir();
    let overrides = [
        "model.routing.iterations=5".to_string(),
        "train.lr=5e-4".to_string(),
        "data.dataset=fashion-mnist".to_string(),
        "model.decoder.enabled=false".to_string(),
        "model.decoder.hidden=[256, 512]".to_string(),
    ];
    let resolved = load_experiment(&dir.join("mnist.toml"), &overrides).unwrap();
    let c = resolved.config;
    assert_eq!(c.model.routing.iterations().unwrap(), 5);
    assert_eq!(c.train.lr, 5e-4);
    assert_eq!(c.data.dataset, capsnet_train::config::Dataset::FashionMnist);
    assert!(!c.model.decoder.enabled);
    assert_eq!(c.model.decoder.hidden, vec![256, 512]);
    assert_eq!(resolved.overrides.len(), 5);
}

#[test]
fn extends_layers_files_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("model")).unwrap();
    write(
        tmp.path(),
        "base.toml",
        "seed = 7\n[train]\nepochs = 3\nbatch_size = 16\n",
    );
    write(
        tmp.path(),
        "model/small.toml",
        "[model]\nconv1_channels = 32\n[train]\nepochs = 4\n",
    );
    let exp = write(
        tmp.path(),
        "exp.toml",
        "extends = [\"base.toml\", \"model/small.toml\"]\nname = \"layered\"\n[train]\nbatch_size = 8\n",
    );
    let resolved = load_experiment(&exp, &["train.epochs=9".into()]).unwrap();
    let c = &resolved.config;
    assert_eq!(c.seed, 7);
    assert_eq!(c.model.conv1_channels, 32);
    assert_eq!(c.train.batch_size, 8);
    assert_eq!(c.train.epochs, 9);
    let names: Vec<_> = resolved
        .files
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["base.toml", "small.toml", "exp.toml"]);
    // Without the override the later file wins.
    assert_eq!(load_experiment(&exp, &[]).unwrap().config.train.epochs, 4);
}

#[test]
fn unknown_key_names_key_file_and_suggestion() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = write(
        tmp.path(),
        "typo.toml",
        "name = \"t\"\n[model.routing]\niteration = 2\n",
    );
    let err = load_experiment(&exp, &[]).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConfigError::UnknownKey { .. }), "{text}");
    assert!(text.contains("model.routing.iteration"), "{text}");
    assert!(text.contains("typo.toml"), "{text}");
    assert!(text.contains("model.routing.iterations"), "{text}");
}

#[test]
fn unknown_key_from_an_override_says_so() {
    let err = load_experiment(
        &experiments_dir().join("mnist.toml"),
        &["train.epoch=3".into()],
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("train.epoch") && text.contains("override"),
        "{text}"
    );
    assert!(text.contains("train.epochs"), "{text}");
}

#[test]
fn unknown_top_level_key_and_extends_file() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "base.toml", "bogus = 1\n");
    let exp = write(tmp.path(), "exp.toml", "extends = [\"base.toml\"]\n");
    let text = load_experiment(&exp, &[]).unwrap_err().to_string();
    assert!(
        text.contains("`bogus`") && text.contains("base.toml"),
        "{text}"
    );
}

#[test]
fn wrong_type_names_key_and_expected_type() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = write(tmp.path(), "wrong.toml", "[train]\nepochs = \"ten\"\n");
    let err = load_experiment(&exp, &[]).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConfigError::WrongType { .. }), "{text}");
    assert!(
        text.contains("train.epochs") && text.contains("wrong.toml"),
        "{text}"
    );
    assert!(text.contains("expected usize"), "{text}");
}

#[test]
fn wrong_type_from_an_override_names_the_override() {
    let exp = experiments_dir().join("mnist.toml");
    let err = load_experiment(&exp, &["train.epochs=ten".into()]).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConfigError::WrongType { .. }), "{text}");
    assert!(
        text.contains("`train.epochs`") && text.contains("override `train.epochs=ten`"),
        "{text}"
    );
    assert!(text.contains("expected usize"), "{text}");

    // Of two overrides of one key, the later one is the value (and the source) that counts.
    let text = load_experiment(&exp, &["seed=1".into(), "seed=\"one\"".into()])
        .unwrap_err()
        .to_string();
    assert!(text.contains("override `seed=\"one\"`"), "{text}");
    assert!(
        load_experiment(&exp, &["seed=\"one\"".into(), "seed=1".into()]).is_ok(),
        "a later override replaces the bad value"
    );
}

#[test]
fn errors_inside_arrays_and_tables_name_the_layer_that_set_them() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "base.toml",
        "[model.decoder]\nhidden = [64, \"wide\"]\n",
    );
    let exp = write(
        tmp.path(),
        "exp.toml",
        "extends = [\"base.toml\"]\n[model.decoder]\nenabled = true\n",
    );
    let text = load_experiment(&exp, &[]).unwrap_err().to_string();
    assert!(
        text.contains("`model.decoder.hidden[1]`") && text.contains("base.toml"),
        "{text}"
    );
    assert!(!text.contains("exp.toml"), "{text}");

    // An unknown key inside a table the override creates.
    let text = load_experiment(
        &experiments_dir().join("mnist.toml"),
        &["model.decodr.enabled=false".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("`model.decodr`")
            && text.contains("override `model.decodr.enabled=false`")
            && text.contains("did you mean `model.decoder`"),
        "{text}"
    );
}

#[test]
fn invalid_values_are_rejected_before_training() {
    let exp = experiments_dir().join("mnist.toml");
    for (over, key) in [
        ("train.lr=0.0", "train.lr"),
        ("train.lr=-1e-3", "train.lr"),
        ("data.train_limit=0", "data.train_limit"),
        ("train.batch_size=0", "train.batch_size"),
        ("model.routing.iterations=11", "routing.iterations"),
        ("data.dataset=\"cifar100\"", "data.dataset"),
        ("model.input_height=5", "too small"),
        ("data.train_subset=0", "data.train_subset"),
        ("train.steps=0", "train.steps"),
        (
            "train.checkpoint_every_epochs=0",
            "train.checkpoint_every_epochs",
        ),
    ] {
        let text = load_experiment(&exp, &[over.into()])
            .unwrap_err()
            .to_string();
        assert!(text.contains(key), "{over}: {text}");
    }
}

#[test]
fn training_subsets_are_checked() {
    let mnist = experiments_dir().join("mnist.toml");
    let both = [
        "data.train_limit=100".into(),
        "data.train_subset=100".into(),
    ];
    let text = load_experiment(&mnist, &both).unwrap_err().to_string();
    assert!(
        text.contains("data.train_subset") && text.contains("not both"),
        "{text}"
    );
    let multimnist = experiments_dir().join("multimnist.toml");
    for over in [
        "data.eval_train=true",
        "data.train_subset=100",
        "data.validation=10",
    ] {
        let text = load_experiment(&multimnist, &[over.into()])
            .unwrap_err()
            .to_string();
        let key = over.split('=').next().unwrap();
        assert!(
            text.contains(key) && text.contains("multimnist"),
            "{over}: {text}"
        );
    }
    let ok = [
        "data.train_subset=300".into(),
        "data.eval_train=true".into(),
    ];
    let config = load_experiment(&mnist, &ok).unwrap().config;
    assert_eq!(config.data.train_subset, Some(300));
    let text = load_experiment(&mnist, &["data.validation=0".into()])
        .unwrap_err()
        .to_string();
    assert!(text.contains("data.validation"), "{text}");
}

#[test]
fn missing_files_and_bad_syntax_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let text = load_experiment(&tmp.path().join("nope.toml"), &[])
        .unwrap_err()
        .to_string();
    assert!(text.contains("nope.toml"), "{text}");

    let exp = write(tmp.path(), "ext.toml", "extends = [\"missing.toml\"]\n");
    let text = load_experiment(&exp, &[]).unwrap_err().to_string();
    assert!(
        text.contains("missing.toml") && text.contains("does not exist"),
        "{text}"
    );

    let exp = write(tmp.path(), "bad.toml", "[train\nepochs = 1\n");
    let text = load_experiment(&exp, &[]).unwrap_err().to_string();
    assert!(text.contains("bad.toml") && text.contains("TOML"), "{text}");

    let a = write(tmp.path(), "a.toml", "extends = [\"b.toml\"]\n");
    write(tmp.path(), "b.toml", "extends = [\"a.toml\"]\n");
    let text = load_experiment(&a, &[]).unwrap_err().to_string();
    assert!(text.contains("cycle"), "{text}");

    let text = load_experiment(&experiments_dir().join("mnist.toml"), &["novalue".into()])
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("novalue") && text.contains("dotted.key=value"),
        "{text}"
    );
}

#[test]
fn backend_not_compiled_names_the_feature() {
    let exp = experiments_dir().join("mnist.toml");
    let err = load_experiment(&exp, &["runtime.backend=\"wgpu\"".into()]);
    if cfg!(feature = "wgpu") {
        assert!(err.is_ok());
    } else {
        let text = err.unwrap_err().to_string();
        assert!(text.contains("--features wgpu"), "{text}");
    }
    let text = load_experiment(&exp, &["runtime.backend=\"tpu\"".into()])
        .unwrap_err()
        .to_string();
    assert!(text.contains("unknown backend `tpu`"), "{text}");
}

#[test]
fn resolved_config_round_trips_through_toml() {
    let c = load_experiment(
        &experiments_dir().join("quickstart.toml"),
        &["data.train_limit=100".into()],
    )
    .unwrap()
    .config;
    let text = capsnet_train::load::to_toml(&c);
    let back = capsnet_train::load::parse_str(&text, "roundtrip").unwrap();
    assert_eq!(back, c);
}

#[test]
fn dataset_specific_settings_are_checked_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, &str); 5] = [
        (
            "[data]\ndataset = \"expanded-mnist\"\nshift_pixels = 2\n[model]\ninput_height = 40\ninput_width = 40\n",
            "data.shift_pixels",
        ),
        (
            "[data]\ndataset = \"expanded-mnist\"\nshift_pixels = 6\ncrop = 32\n[model]\ninput_height = 32\ninput_width = 32\n",
            "data.crop",
        ),
        (
            "[data]\ndataset = \"expanded-mnist\"\nshift_pixels = 6\naffnist.canvas = 41\n[model]\ninput_height = 41\ninput_width = 41\n",
            "data.affnist.canvas",
        ),
        (
            "[data]\ndataset = \"multimnist\"\nshift_pixels = 0\ncrop = 30\n[model]\ninput_height = 30\ninput_width = 30\n",
            "data.crop",
        ),
        (
            "[data]\ndataset = \"multimnist\"\nshift_pixels = 0\nmultimnist.padding = 9223372036854775807\nmultimnist.max_shift = 4\n[model]\ninput_height = 36\ninput_width = 36\n",
            "model.input_height",
        ),
    ];
    for (i, (body, key)) in cases.iter().enumerate() {
        let path = tmp.path().join(format!("case{i}.toml"));
        std::fs::write(&path, format!("name = \"case{i}\"\n{body}")).unwrap();
        let err = capsnet_train::load_experiment(&path, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "case {i}: {err}");
    }
}
