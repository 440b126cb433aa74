//! The `capsnet` binary: bad input gives a clear message and exit code 1 (never a panic);
//! a killed training run resumes exactly.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    TINY, assert_clean_failure, capsnet_env, data_root, final_weights, stderr, write_experiment,
};

#[test]
fn info_prints_the_paper_parameter_count() {
    let exp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/mnist.toml");
    let out = capsnet_env(&["info", exp.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("8,215,568") && text.contains("[1152, 8]"),
        "{text}"
    );
    let out = capsnet_env(
        &[
            "info",
            exp.to_str().unwrap(),
            "model.decoder.enabled=false",
            "--json",
        ],
        &[],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["params"], 6_804_224);
}

/// The binary reads `CAPSNET_…__…` variables as keys (below the command line's overrides) and
/// leaves the project's other `CAPSNET_` variables alone.
#[test]
fn environment_variables_set_keys_below_the_command_line() {
    let exp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/mnist.toml");
    let exp = exp.to_str().unwrap();
    let params = |args: &[&str], env: &[(&str, &Path)]| -> serde_json::Value {
        let out = capsnet_env(args, env);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["params"].clone()
    };
    let project = [
        ("CAPSNET_PYTHON", Path::new("/nonexistent/python3")),
        ("CAPSNET_BENCH_BACKEND", Path::new("tpu")),
        ("CAPSNET_CIFAR_MIRROR", Path::new("http://127.0.0.1:9/")),
    ];
    assert_eq!(params(&["info", exp, "--json"], &project), 8_215_568);
    let no_decoder = [
        project[0],
        project[1],
        project[2],
        ("CAPSNET_MODEL__DECODER__ENABLED", Path::new("false")),
    ];
    assert_eq!(params(&["info", exp, "--json"], &no_decoder), 6_804_224);
    assert_eq!(
        params(
            &["info", exp, "model.decoder.enabled=true", "--json"],
            &no_decoder
        ),
        8_215_568
    );
    assert_clean_failure(
        &capsnet_env(
            &["info", exp],
            &[("CAPSNET_MODEL__ROUTING__ITERATION", Path::new("2"))],
        ),
        &[
            "model.routing.iteration",
            "CAPSNET_MODEL__ROUTING__ITERATION",
            "model.routing.iterations",
        ],
    );
}

#[test]
fn backends_lists_flex() {
    let out = capsnet_env(&["backends"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("flex") && l.contains("compiled in: cpu (")),
        "{text}"
    );
}

#[test]
fn bad_experiments_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.toml");
    assert_clean_failure(
        &capsnet_env(&["train", missing.to_str().unwrap()], &[]),
        &["missing.toml"],
    );

    let exp = write_experiment(tmp.path(), "typo", "[train]\nepochz = 3\n");
    assert_clean_failure(
        &capsnet_env(&["train", exp.to_str().unwrap()], &[]),
        &["train.epochz", "typo.toml", "train.epochs"],
    );
    let exp = write_experiment(tmp.path(), "ok", TINY);
    assert_clean_failure(
        &capsnet_env(&["train", exp.to_str().unwrap(), "train.lr=-1"], &[]),
        &["train.lr"],
    );
    assert_clean_failure(
        &capsnet_env(&["train", exp.to_str().unwrap(), "--backend", "tch"], &[]),
        &["--features tch"],
    );
}

#[test]
fn missing_and_corrupt_data_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let exp = write_experiment(tmp.path(), "tiny", TINY);
    let run = tmp.path().join("run");
    let args = [
        "train",
        exp.to_str().unwrap(),
        "data.download=false",
        "--run-dir",
        run.to_str().unwrap(),
    ];
    let env = [
        ("CAPSNET_DATA", empty.as_path()),
        ("HOME", empty.as_path()),
        ("XDG_CACHE_HOME", empty.as_path()),
    ];
    assert_clean_failure(
        &capsnet_env(&args, &env),
        &["train-images-idx3-ubyte", "CAPSNET_DATA"],
    );

    // A corrupt copy: real labels, images with flipped bytes.
    let bad = tmp.path().join("bad/mnist");
    std::fs::create_dir_all(&bad).unwrap();
    let real = data_root().join("mnist");
    for f in [
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::fs::copy(real.join(f), bad.join(f)).unwrap();
    }
    let raw = capsnet_data::idx::read_file(&real.join("train-images-idx3-ubyte.gz")).unwrap();
    let mut flipped = raw.clone();
    flipped[5000] ^= 0xff;
    std::fs::write(bad.join("train-images-idx3-ubyte"), &flipped).unwrap();
    let env = [
        ("CAPSNET_DATA", bad.parent().unwrap()),
        ("HOME", empty.as_path()),
        ("XDG_CACHE_HOME", empty.as_path()),
    ];
    let args = [
        "train",
        exp.to_str().unwrap(),
        "data.download=false",
        "--run-dir",
        run.to_str().unwrap(),
        "--overwrite",
    ];
    assert_clean_failure(
        &capsnet_env(&args, &env),
        &["train-images-idx3-ubyte", "SHA-256"],
    );

    // Truncated: wrong size is reported as such.
    std::fs::write(bad.join("train-images-idx3-ubyte"), &raw[..raw.len() - 100]).unwrap();
    assert_clean_failure(
        &capsnet_env(&args, &env),
        &["train-images-idx3-ubyte", "truncated"],
    );
}

/// SIGKILL a training run once it has written a checkpoint, resume it, and compare with an
/// uninterrupted run: the same final weights and test metrics, whenever the kill landed. The
/// interrupted run is started and resumed with `--resume-or-start`, as sweep jobs are.
#[test]
fn killed_run_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = write_experiment(tmp.path(), "tiny", TINY);
    let data = data_root();
    let env = [("CAPSNET_DATA", data.as_path())];
    let straight = tmp.path().join("straight");
    let out = capsnet_env(
        &[
            "train",
            exp.to_str().unwrap(),
            "--quiet",
            "--run-dir",
            straight.to_str().unwrap(),
        ],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let killed = tmp.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_capsnet"))
        .args([
            "train",
            exp.to_str().unwrap(),
            "--quiet",
            "--resume-or-start",
            "--run-dir",
            killed.to_str().unwrap(),
        ])
        .env("CAPSNET_DATA", &data)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !killed.join("checkpoints/latest").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint written"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let out = capsnet_env(
        &[
            "train",
            exp.to_str().unwrap(),
            "--quiet",
            "--resume-or-start",
            "--run-dir",
            killed.to_str().unwrap(),
        ],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // A folder that holds something other than a run is neither resumed nor overwritten.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let out = capsnet_env(
        &[
            "train",
            exp.to_str().unwrap(),
            "--resume-or-start",
            "--run-dir",
            other.to_str().unwrap(),
        ],
        &env,
    );
    assert_clean_failure(&out, &["already exists"]);
    assert!(other.join("notes.txt").exists());

    let summary = |run: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
    };
    let (a, b) = (summary(&straight), summary(&killed));
    assert_eq!(b["completed"], true);
    for key in [
        "steps",
        "final_test_loss",
        "final_test_accuracy",
        "epochs_completed",
    ] {
        assert_eq!(a[key], b[key], "{key}");
    }
    assert!(
        final_weights(&straight) == final_weights(&killed),
        "final weights differ"
    );

    // The checkpoint evaluates to the summary's accuracy.
    let out = capsnet_env(
        &["eval", "--checkpoint", killed.to_str().unwrap(), "--json"],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(eval["test_accuracy"], b["final_test_accuracy"]);
}

/// `capsnet download` fetches MNIST from a mirror (a local HTTP server standing in for the
/// public ones), verifies the checksums and leaves the files where the tests and offline runs
/// find them.
#[test]
fn download_command_fetches_and_verifies() {
    use capsnet_data::test_server::{Reply, Server};
    let source = data_root().join("mnist");
    let routes: Vec<(String, Reply)> = std::fs::read_dir(&source)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let path = format!("/mnist/{}", entry.file_name().to_string_lossy());
            (path, Reply::Body(std::fs::read(entry.path()).unwrap()))
        })
        .collect();
    let server = Server::start(routes);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_capsnet"))
        .args([
            "download",
            "--dataset",
            "mnist",
            "--dir",
            dir.to_str().unwrap(),
        ])
        .env_remove("CAPSNET_DATA")
        .env("CAPSNET_MNIST_MIRROR", server.url("mnist"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("mnist train: 60000 images, checksums verified"),
        "{text}"
    );
    assert!(text.contains("mnist test: 10000 images"), "{text}");
    for f in ["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        assert!(dir.join("mnist").join(f).is_file(), "{f} not downloaded");
    }
    // An unknown dataset is a clean error.
    assert_clean_failure(
        &capsnet_env(&["download", "--dataset", "cifar100"], &[]),
        &["cifar100"],
    );
}

#[test]
fn parity_command_checks_a_compiled_backend_and_names_missing_ones() {
    let exp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/quickstart.toml");
    let exp = exp.to_str().unwrap();
    if cfg!(feature = "ndarray") {
        let out = capsnet_env(
            &[
                "parity",
                exp,
                "--backend",
                "ndarray",
                "--batch-size",
                "2",
                "--json",
            ],
            &[],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["ok"], true);
        assert_eq!(report["other"], "ndarray");
        assert!(report["quantities"].as_array().unwrap().len() > 10);
    }
    assert_clean_failure(
        &capsnet_env(&["parity", exp, "--backend", "wgpu"], &[]),
        &["--features wgpu"],
    );
    assert_clean_failure(
        &capsnet_env(&["parity", exp, "--backend", "tpu"], &[]),
        &["tpu"],
    );
}

/// A value that validation rejects names the layer it came from: the environment variable,
/// the override or the file (as type errors do).
#[test]
fn rejected_values_name_where_they_were_set() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = write_experiment(tmp.path(), "bad", "[train]\nlr = -1.0\n");
    let exp = exp.to_str().unwrap();
    let out = capsnet_env(&["info", exp], &[]);
    assert_clean_failure(&out, &["`train.lr` = -1", "set by", "bad.toml"]);
    let out = capsnet_env(&["info", exp, "train.lr=0.001", "train.batch_size=0"], &[]);
    assert_clean_failure(
        &out,
        &[
            "`train.batch_size` = 0",
            "set by override `train.batch_size=0`",
        ],
    );
    let out = capsnet_env(
        &["info", exp, "train.lr=0.001"],
        &[("CAPSNET_TRAIN__EPOCHS", Path::new("0"))],
    );
    assert_clean_failure(
        &out,
        &[
            "`train.epochs` = 0",
            "set by environment variable CAPSNET_TRAIN__EPOCHS",
        ],
    );
    // A default rejected because of another key says so.
    let out = capsnet_env(
        &["info", exp, "train.lr=0.001", "data.dataset=\"smallnorb\""],
        &[],
    );
    assert_clean_failure(&out, &["`model.classes` = 10", "the default value"]);
}

/// The allocator settings are applied in-process (no second process, nothing in the child's
/// environment) and `capsnet bench` records them: the purge delay in effect is read back from
/// mimalloc, so a user's `MIMALLOC_PURGE_DELAY` showing up there also checks the option index
/// `allocator::apply` writes to.
#[test]
fn bench_records_the_allocator_settings_applied_in_process() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = write_experiment(tmp.path(), "tiny", TINY);
    let bench = |env: &[(&str, &str)]| -> capsnet_common::bench::BenchResult {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_capsnet"));
        cmd.args(["bench", exp.to_str().unwrap()])
            .args(["--batch-size", "4", "--steps", "1", "--warmup", "0"])
            .env_remove("MIMALLOC_PURGE_DELAY")
            .env_remove("GLIBC_TUNABLES");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let ours = bench(&[]).allocator.expect("allocator settings recorded");
    assert_eq!(ours.global, "mimalloc");
    assert_eq!(ours.mimalloc_purge_delay_ms, 1000);
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        assert!(ours.glibc.contains("M_MMAP_MAX=0"), "{}", ours.glibc);
    }
    let users = bench(&[
        ("MIMALLOC_PURGE_DELAY", "250"),
        ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1048576"),
    ])
    .allocator
    .unwrap();
    assert_eq!(
        users.mimalloc_purge_delay_ms, 250,
        "the user's setting is kept"
    );
    assert!(users.glibc.contains("(the user's)"), "{}", users.glibc);
}

/// The data-efficiency comparison's four networks have the parameter counts its write-up
/// states: the quickstart CapsNet with and without its decoder, the CNN of its size with and
/// without the same decoder (which reads the CNN's 640-unit hidden layer).
#[test]
fn data_efficiency_networks_have_the_stated_parameter_counts() {
    let exp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/data_efficiency.toml");
    let exp = exp.to_str().unwrap();
    let params = |overrides: &[&str]| -> u64 {
        let mut args = vec!["info", exp, "--json"];
        args.extend(overrides);
        let out = capsnet_env(&args, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["params"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(params(&["arch=\"capsnet\""]), 2_117_072);
    assert_eq!(
        params(&["arch=\"capsnet\"", "model.decoder.enabled=false"]),
        705_728
    );
    assert_eq!(params(&["arch=\"baseline-cnn\""]), 2_118_218);
    assert_eq!(
        params(&["arch=\"baseline-cnn\"", "baseline.decoder.enabled=true"]),
        3_775_322
    );
}
