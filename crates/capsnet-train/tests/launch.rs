//! `capsnet launch`: a sweep plan run two processes at once within a time budget, every job
//! that starts coming back with a result, packed into one archive.

mod common;

use std::path::Path;
use std::process::Output;

use common::{data_root, ok, s};

/// The binary with the shared datasets as `CAPSNET_DATA` (the jobs it starts inherit it).
fn capsnet(args: &[&str]) -> Output {
    common::capsnet_env(args, &[("CAPSNET_DATA", &data_root())])
}

/// The plan of `experiments/smoke_sweep.toml` (4 tiny jobs) with `overrides`, as JSON in `dir`.
fn plan(dir: &Path, name: &str, overrides: &[&str]) -> std::path::PathBuf {
    let exp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/smoke_sweep.toml");
    let mut args = vec!["sweep-plan", s(&exp)];
    args.extend_from_slice(overrides);
    args.extend(["--runs-dir", s(dir), "--json"]);
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, ok(capsnet(&args))).unwrap();
    path
}

fn states(out: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(out.join("launch-status.json")).unwrap();
    let status: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    status
        .iter()
        .map(|o| o["state"].as_str().unwrap().to_string())
        .collect()
}

/// Paths inside a `.tar.gz`.
fn archive_entries(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn runs_a_plan_in_parallel_and_packs_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), "smoke", &[]);
    let out = dir.path().join("out");
    let archive = dir.path().join("results.tar.gz");
    let text = ok(capsnet(&[
        "launch",
        s(&plan),
        "--parallel",
        "2",
        "--budget-secs",
        "300",
        "--reserve-secs",
        "5",
        "--min-run-secs",
        "5",
        "--out",
        s(&out),
        "--archive",
        s(&archive),
    ]));
    assert!(text.contains("results.tar.gz"), "{text}");
    assert_eq!(states(&out), ["completed"; 4]);
    let entries = archive_entries(&archive);
    assert!(
        entries.contains(&"launch-status.json".to_string()),
        "{entries:?}"
    );
    assert!(entries.contains(&"launch.log".to_string()), "{entries:?}");
    let summaries = entries
        .iter()
        .filter(|e| e.ends_with("/summary.json"))
        .count();
    assert_eq!(summaries, 4, "{entries:?}");
    assert!(
        entries
            .iter()
            .all(|e| !e.contains("checkpoints") && !e.contains("events")),
        "{entries:?}"
    );
}

/// Jobs longer than the budget stop in time with an evaluated result; jobs that would get less
/// than `--min-run-secs` are not started; nothing fails.
#[test]
fn a_short_budget_cuts_jobs_short_and_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), "long", &["train.epochs=500"]);
    let out = dir.path().join("out");
    ok(capsnet(&[
        "launch",
        s(&plan),
        "--parallel",
        "2",
        "--budget-secs",
        "25",
        "--reserve-secs",
        "10",
        "--min-run-secs",
        "5",
        "--out",
        s(&out),
    ]));
    assert_eq!(
        states(&out),
        ["cut-short", "cut-short", "not-started", "not-started"]
    );
    let text = std::fs::read_to_string(out.join("launch-status.json")).unwrap();
    let status: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let run = Path::new(status[0]["run_dir"].as_str().unwrap());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["completed"], false);
    let stopped = summary["stopped"].as_str().unwrap();
    assert!(
        stopped.starts_with("time budget of ") && stopped.contains(" s reached at step "),
        "{stopped}"
    );
    assert!(summary["final_test_accuracy"].as_f64().is_some());

    // A plan that is not one, and a bad budget, are clear errors.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{}").unwrap();
    let out = capsnet(&[
        "launch",
        s(&bad),
        "--budget-secs",
        "10",
        "--out",
        s(dir.path()),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is not a sweep plan"), "{err}");
    let out = capsnet(&[
        "launch",
        s(&plan),
        "--budget-secs",
        "0",
        "--out",
        s(dir.path()),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--budget-secs"));
}

/// `--parallel auto` measures before it launches: the first jobs trained for the warm-up time
/// with 1, then 2 processes, each trial's speed recorded; with `--fit-epochs`, a plan far
/// longer than the budget gets the epochs that fit, and every job runs with them. The warm-up
/// trained the real jobs, which go on from there (`--resume-or-start`).
#[test]
fn auto_parallel_measures_then_fits_the_epochs_to_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), "long", &["train.epochs=500"]);
    let out = dir.path().join("out");
    let archive = dir.path().join("results.tar.gz");
    ok(capsnet(&[
        "launch",
        s(&plan),
        "--parallel",
        "auto",
        "--max-parallel",
        "2",
        "--warmup-secs",
        "3",
        "--fit-epochs",
        "--budget-secs",
        "90",
        "--reserve-secs",
        "5",
        "--min-run-secs",
        "5",
        "--out",
        s(&out),
        "--archive",
        s(&archive),
    ]));
    let sizing: capsnet_train::launch::Sizing =
        serde_json::from_str(&std::fs::read_to_string(out.join("launch-sizing.json")).unwrap())
            .unwrap();
    assert_eq!(sizing.trials[0].processes, 1, "{sizing:?}");
    assert_eq!(sizing.trials[0].jobs, [0], "{sizing:?}");
    for trial in &sizing.trials {
        assert_eq!(trial.images_per_sec.len(), trial.processes);
        assert!(trial.images_per_sec.iter().all(|&v| v > 0.0), "{sizing:?}");
    }
    assert!(
        sizing.trials.iter().any(|t| t.processes == sizing.parallel),
        "{sizing:?}"
    );
    let epochs = sizing.epochs.expect("500 epochs cannot fit in 90 s");
    assert!((1..500).contains(&epochs), "{sizing:?}");
    assert!(sizing.note.contains("train.epochs="), "{}", sizing.note);
    // Every job that ran did so with the fitted epochs; none failed.
    let text = std::fs::read_to_string(out.join("launch-status.json")).unwrap();
    let status: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    for job in &status {
        assert_ne!(job["state"], "failed", "{status:?}");
        if job["state"] == "not-started" {
            continue;
        }
        let run = Path::new(job["run_dir"].as_str().unwrap());
        let summary: capsnet_common::summary::Summary =
            serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(summary.epochs, epochs, "{}", run.display());
    }
    assert!(archive_entries(&archive).contains(&"launch-sizing.json".to_string()));
}
