//! Reads files written by `EventWriter` with the stock `tensorboard` Python package
//! (`tests/readback.py`) and compares every tag, step and value.
//!
//! Needs Python with `tensorboard` installed (`pip install tensorboard`); the interpreter is
//! `$CAPSNET_PYTHON`, else `python3`. Without it these tests fail, they never skip.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use capsnet_tensorboard::{EventWriter, HParamValue, image_grid};
use serde_json::{Value, json};

fn readback(logdir: &Path) -> Value {
    let python = std::env::var("CAPSNET_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readback.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(logdir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "could not run `{python}` ({e}): these tests need Python 3 with the stock \
                 TensorBoard package: `python3 -m pip install tensorboard`, or set \
                 CAPSNET_PYTHON to such an interpreter"
            )
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(3) {
        panic!(
            "the `tensorboard` Python package is missing for `{python}`: run \
             `{python} -m pip install tensorboard` (or set CAPSNET_PYTHON)\n{stderr}"
        );
    }
    assert!(
        output.status.success(),
        "{} failed ({}):\n{stderr}",
        script.display(),
        output.status
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "readback.py printed no JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The scalar values TensorBoard stores (`simple_value` is an f32).
fn f32_of(v: f64) -> f64 {
    f64::from(v as f32)
}

/// JSON array of `(tag, step, value)` scalars, sorted like readback.py's output.
fn sorted_by_tag_step(mut items: Vec<Value>) -> Vec<Value> {
    items.sort_by(|a, b| {
        (a["tag"].as_str(), a["step"].as_i64()).cmp(&(b["tag"].as_str(), b["step"].as_i64()))
    });
    items
}

fn sorted_output(run: &Value, kind: &str) -> Vec<Value> {
    sorted_by_tag_step(run[kind].as_array().unwrap().clone())
}

struct RunSpec {
    name: &'static str,
    lr: f64,
    optimizer: &'static str,
    augment: bool,
    success: bool,
}

#[test]
fn stock_tensorboard_reads_every_summary_and_the_sweep_rows() {
    let logdir = tempfile::tempdir().unwrap();
    let runs = [
        RunSpec {
            name: "sweep/lr=0.1",
            lr: 0.1,
            optimizer: "sgd",
            augment: true,
            success: true,
        },
        RunSpec {
            name: "sweep/lr=0.01",
            lr: 0.01,
            optimizer: "adam",
            augment: false,
            success: false,
        },
    ];
    let mut expected_runs = serde_json::Map::new();
    let mut expected_groups = Vec::new();
    for (k, spec) in runs.iter().enumerate() {
        let mut w = EventWriter::open(&logdir.path().join(spec.name)).unwrap();
        let hparams = BTreeMap::from([
            ("lr".to_owned(), HParamValue::Number(spec.lr)),
            ("optimizer".to_owned(), HParamValue::from(spec.optimizer)),
            ("augment".to_owned(), HParamValue::Bool(spec.augment)),
        ]);
        w.hparams_start(&hparams, &["test/accuracy", "train/loss"], "")
            .unwrap();

        let mut scalars = Vec::new();
        for step in 0..5i64 {
            let loss = 1.0 / (step as f64 + 1.0) + spec.lr;
            let acc = 0.9 + 0.01 * step as f64 - spec.lr;
            w.scalar("train/loss", step * 10, loss).unwrap();
            w.scalar("test/accuracy", step * 10, acc).unwrap();
            scalars.push(json!({"tag": "train/loss", "step": step * 10, "value": f32_of(loss)}));
            scalars.push(json!({"tag": "test/accuracy", "step": step * 10, "value": f32_of(acc)}));
        }
        let last =
            |tag: &str| scalars.iter().rev().find(|s| s["tag"] == tag).unwrap()["value"].clone();
        let metrics =
            json!({"test/accuracy": last("test/accuracy"), "train/loss": last("train/loss")});

        // Non-square images: a 3x2 RGB one and a grid of three 4x2 tiles in 2 columns
        // (9 wide, 5 high).
        let rgb: Vec<u8> = (0..3 * 2 * 3).map(|i| i as u8).collect();
        w.image("samples/rgb", 7, 3, 2, 3, &rgb).unwrap();
        let tile = [0.5f32; 8];
        let (gw, gh, grid) = image_grid(&[&tile, &tile, &tile], 4, 2, 2);
        assert_eq!((gw, gh), (9, 5));
        w.image("samples/grid", 8, gw, gh, 1, &grid).unwrap();
        let images = vec![
            json!({"tag": "samples/grid", "step": 8, "width": 9, "height": 5,
                   "png_width": 9, "png_height": 5}),
            json!({"tag": "samples/rgb", "step": 7, "width": 3, "height": 2,
                   "png_width": 3, "png_height": 2}),
        ];

        let values: Vec<f64> = (0..100)
            .map(|i| (i as f64 * 0.1).sin() + k as f64)
            .collect();
        w.histogram("weights/caps", 3, &values).unwrap();
        w.histogram("weights/caps", 4, &values[..50]).unwrap();
        let stats = |v: &[f64]| {
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (min, max, v.iter().sum::<f64>())
        };
        let histograms: Vec<Value> = [(3, &values[..]), (4, &values[..50])]
            .into_iter()
            .map(|(step, v)| {
                let (min, max, sum) = stats(v);
                json!({"tag": "weights/caps", "step": step, "count": v.len() as f64,
                       "min": min, "max": max, "sum": sum,
                       "bucket_total": v.len() as f64, "buckets": 30})
            })
            .collect();

        let note = format!("run **{}** — lr `{}` ✓", spec.name, spec.lr);
        w.text("notes", 9, &note).unwrap();
        w.text("notes", 10, "").unwrap();
        let texts = vec![
            json!({"tag": "notes", "step": 9, "text": note}),
            json!({"tag": "notes", "step": 10, "text": ""}),
        ];

        w.hparams_end(spec.success).unwrap();
        w.flush().unwrap();

        let status = if spec.success {
            "STATUS_SUCCESS"
        } else {
            "STATUS_FAILURE"
        };
        let hp_values =
            json!({"augment": spec.augment, "lr": spec.lr, "optimizer": spec.optimizer});
        expected_runs.insert(
            spec.name.to_owned(),
            json!({
                "scalars": sorted_by_tag_step(scalars),
                "images": images,
                "histograms": histograms,
                "texts": texts,
                "hparams": {
                    "experiment": {
                        "hparams": [
                            {"name": "augment", "type": "DATA_TYPE_BOOL", "differs": true},
                            {"name": "lr", "type": "DATA_TYPE_FLOAT64", "differs": true},
                            {"name": "optimizer", "type": "DATA_TYPE_STRING", "differs": true},
                        ],
                        "metrics": [
                            {"group": "", "tag": "test/accuracy"},
                            {"group": "", "tag": "train/loss"},
                        ],
                    },
                    "session_start": {"hparams": hp_values, "group_name": ""},
                    "session_end": {"status": status},
                },
            }),
        );
        expected_groups.push(json!({
            "name": spec.name,
            "hparams": hp_values,
            "metrics": metrics,
            "statuses": [status],
        }));
    }

    let out = readback(logdir.path());
    let got_runs = out["runs"].as_object().expect("runs object");
    assert_eq!(
        got_runs.keys().collect::<Vec<_>>(),
        expected_runs.keys().collect::<Vec<_>>(),
        "run directories seen by TensorBoard"
    );
    for (name, expected) in &expected_runs {
        let got = &got_runs[name];
        for kind in ["scalars", "images", "histograms", "texts"] {
            let got_items = sorted_output(got, kind);
            let want = expected[kind].as_array().unwrap();
            assert_eq!(got_items.len(), want.len(), "{name} {kind}: {got_items:#?}");
            for (g, w) in got_items.iter().zip(want) {
                for (key, want_v) in w.as_object().unwrap() {
                    let got_v = &g[key];
                    let close = match (got_v.as_f64(), want_v.as_f64()) {
                        // Histogram sums are recomputed here in another order.
                        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                        _ => got_v == want_v,
                    };
                    assert!(
                        close,
                        "{name} {kind} {key}: got {got_v}, want {want_v} in {g}"
                    );
                }
            }
        }
        let hp = &got["hparams"];
        assert_eq!(
            hp["experiment"], expected["hparams"]["experiment"],
            "{name}"
        );
        assert_eq!(
            hp["session_start"]["hparams"], expected["hparams"]["session_start"]["hparams"],
            "{name}"
        );
        assert_eq!(hp["session_start"]["group_name"], "", "{name}");
        assert!(hp["session_start"]["start_time_secs"].as_f64().unwrap() > 1.6e9);
        assert_eq!(
            hp["session_end"]["status"], expected["hparams"]["session_end"]["status"],
            "{name}"
        );
    }

    // The HPARAMS tab: one row per run of the sweep, with its values and last metrics.
    expected_groups.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    assert_eq!(out["session_groups"], Value::Array(expected_groups));
}

#[test]
fn stock_tensorboard_reads_past_a_partial_record_and_after_a_resume() {
    let logdir = tempfile::tempdir().unwrap();
    let run = logdir.path().join("run");
    let path = {
        let mut w = EventWriter::open(&run).unwrap();
        w.scalar("loss", 1, 1.5).unwrap();
        w.scalar("loss", 2, 2.5).unwrap();
        w.path().to_path_buf()
    };
    // A crash in the middle of writing a third record.
    let mut bytes = fs::read(&path).unwrap();
    let record_start = bytes.len();
    let partial = bytes[40..60].to_vec();
    bytes.extend_from_slice(&partial);
    fs::write(&path, &bytes).unwrap();
    let out = readback(logdir.path());
    assert_eq!(
        out["runs"]["run"]["scalars"],
        json!([{"tag": "loss", "step": 1, "value": 1.5}, {"tag": "loss", "step": 2, "value": 2.5}])
    );

    // Resuming cuts the partial record and appends to the same file.
    let mut w = EventWriter::open(&run).unwrap();
    assert_eq!(w.path(), path);
    assert_eq!(w.discarded_bytes(), 20);
    w.scalar("loss", 3, 3.5).unwrap();
    drop(w);
    assert!(fs::metadata(&path).unwrap().len() > record_start as u64);
    let out = readback(logdir.path());
    assert_eq!(
        out["runs"]["run"]["scalars"],
        json!([
            {"tag": "loss", "step": 1, "value": 1.5},
            {"tag": "loss", "step": 2, "value": 2.5},
            {"tag": "loss", "step": 3, "value": 3.5},
        ])
    );
}
