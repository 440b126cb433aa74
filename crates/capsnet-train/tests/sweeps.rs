//! The shipped sweep files resolve into the documented grids; bad sweeps fail before anything runs.

use std::path::{Path, PathBuf};

use capsnet_train::sweep::plan;

fn experiments() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments")
}

#[test]
fn routing_iters_is_six_iterations_by_decoder_by_stop_gradient_by_three_seeds() {
    let runs = tempfile::tempdir().unwrap();
    let p = plan(&experiments().join("routing_iters.toml"), &[], runs.path()).unwrap();
    assert_eq!(p.jobs.len(), 72);
    assert_eq!(p.dir, runs.path().join("routing_iters"));
    let mut seen = std::collections::BTreeSet::new();
    for job in &p.jobs {
        let c = &job.resolved.config;
        assert_eq!(c.model.conv1_channels, 256, "paper model");
        assert!(seen.insert((
            c.model.routing.iterations().unwrap(),
            c.model.decoder.enabled,
            c.model.routing.dynamic().unwrap().stop_gradient,
            c.seed
        )));
        assert_eq!(job.run_dir, p.dir.join(&job.job.name));
    }
    assert_eq!(seen.len(), 72);
    assert_eq!(
        p.jobs[0].job.name,
        "iterations-0_decoder-true_stop-gradient-false_seed-0"
    );
}

#[test]
fn table1_is_the_papers_grid() {
    let runs = tempfile::tempdir().unwrap();
    let p = plan(&experiments().join("table1.toml"), &[], runs.path()).unwrap();
    assert_eq!(p.jobs.len(), 15);
    let rows: std::collections::BTreeSet<_> = p
        .jobs
        .iter()
        .map(|j| {
            let c = &j.resolved.config;
            match c.arch {
                capsnet_train::Arch::BaselineCnn => "baseline".to_string(),
                capsnet_train::Arch::Capsnet => {
                    format!(
                        "r{}-{}",
                        c.model.routing.iterations().unwrap(),
                        c.model.decoder.enabled
                    )
                }
                capsnet_train::Arch::EfficientCapsnet => "efficient".to_string(),
            }
        })
        .collect();
    let expected: std::collections::BTreeSet<String> =
        ["baseline", "r1-false", "r1-true", "r3-false", "r3-true"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    assert_eq!(rows, expected);
    assert!(
        p.jobs
            .iter()
            .all(|j| j.resolved.config.data.shift_pixels == 2)
    );
}

#[test]
fn backends_sweep_covers_every_compiled_backend() {
    let runs = tempfile::tempdir().unwrap();
    let p = plan(&experiments().join("backends.toml"), &[], runs.path()).unwrap();
    let compiled: Vec<&str> = capsnet_train::backend::BackendKind::ALL
        .into_iter()
        .filter(|k| k.compiled())
        .map(|k| k.name())
        .collect();
    let backends: Vec<&str> = p
        .jobs
        .iter()
        .map(|j| j.resolved.config.runtime.backend.name())
        .collect();
    assert_eq!(backends, compiled);
}

#[test]
fn smoke_sweep_and_overrides_apply_to_every_job() {
    let runs = tempfile::tempdir().unwrap();
    let p = plan(
        &experiments().join("smoke_sweep.toml"),
        &["train.epochs=2".into()],
        runs.path(),
    )
    .unwrap();
    assert_eq!(p.jobs.len(), 4);
    assert!(p.jobs.iter().all(|j| j.resolved.config.train.epochs == 2));
    // Seeds can come from the command line too.
    let p = plan(
        &experiments().join("quickstart.toml"),
        &["seeds=[0, 1, 2]".into()],
        runs.path(),
    )
    .unwrap();
    assert_eq!(p.jobs.len(), 3);
    assert_eq!(p.jobs[2].resolved.config.seed, 2);
    // No sweep: a single job in the experiment's own directory.
    let p = plan(&experiments().join("quickstart.toml"), &[], runs.path()).unwrap();
    assert_eq!(p.jobs.len(), 1);
    assert_eq!(p.jobs[0].run_dir, runs.path().join("quickstart"));
}

#[test]
fn bad_sweeps_fail_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let path = tmp.path().join(name);
        std::fs::write(&path, body).unwrap();
        path
    };
    let bad_key = write(
        "bad_key.toml",
        "name = \"s\"\n[sweep.grid]\n\"model.routing.iteration\" = [1, 2]\n",
    );
    let err = plan(&bad_key, &[], tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("model.routing.iteration") && err.contains("bad_key.toml"),
        "{err}"
    );
    assert!(
        err.contains("did you mean `model.routing.iterations`"),
        "{err}"
    );

    let empty = write("empty.toml", "name = \"s\"\n[sweep.grid]\nseed = []\n");
    assert!(
        plan(&empty, &[], tmp.path())
            .unwrap_err()
            .to_string()
            .contains("empty")
    );

    let invalid = write(
        "invalid.toml",
        "name = \"s\"\n[sweep.grid]\n\"train.lr\" = [1e-3, -1.0]\n",
    );
    assert!(
        plan(&invalid, &[], tmp.path())
            .unwrap_err()
            .to_string()
            .contains("train.lr")
    );

    // Two spellings of the same experiment collide.
    let same = write(
        "same.toml",
        "name = \"s\"\n[sweep.grid]\n\"train.lr\" = [0.001, 1e-3]\n",
    );
    let err = plan(&same, &[], tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("same name") || err.contains("same experiment"),
        "{err}"
    );

    let ragged = write(
        "ragged.toml",
        "name = \"s\"\n[sweep.zip]\nseed = [1, 2]\n\"train.lr\" = [1e-3]\n",
    );
    assert!(
        plan(&ragged, &[], tmp.path())
            .unwrap_err()
            .to_string()
            .contains("sweep.zip.train.lr")
    );
}
