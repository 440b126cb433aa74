//! Writes a small demo sweep (three runs with scalars, images, histograms, text and
//! hparams) under a logdir, to look at with `tensorboard --logdir DIR`.
//!
//! `cargo run -p capsnet-tensorboard --example demo_sweep -- DIR`

use std::collections::BTreeMap;
use std::path::PathBuf;

use capsnet_tensorboard::{EventWriter, HParamValue, TbError, image_grid};

fn main() -> Result<(), TbError> {
    let logdir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "tb-demo".to_owned()),
    );
    for (run, lr) in [0.1, 0.01, 0.001].into_iter().enumerate() {
        let mut tb = EventWriter::open(&logdir.join(format!("lr={lr}")))?;
        let hparams = BTreeMap::from([
            ("lr".to_owned(), HParamValue::Number(lr)),
            ("routing".to_owned(), HParamValue::from("dynamic")),
            ("augment".to_owned(), HParamValue::Bool(run % 2 == 0)),
        ]);
        tb.hparams_start(&hparams, &["test/accuracy", "train/loss"], "")?;
        tb.text("config", 0, &format!("**lr** = `{lr}`"))?;
        for step in 0..20i64 {
            let t = step as f64;
            tb.scalar("train/loss", step, (-t * lr * 10.0).exp())?;
            tb.scalar("test/accuracy", step, 1.0 - 0.5 * (-t * lr * 10.0).exp())?;
            let values: Vec<f64> = (0..1000)
                .map(|i| ((i as f64) * 0.37 + t).sin() * (1.0 + t / 10.0))
                .collect();
            tb.histogram("weights", step, &values)?;
        }
        // A 2x3 grid of 28x20 gradient tiles (non-square, to check orientation).
        let tiles: Vec<Vec<f32>> = (0..5)
            .map(|k| {
                (0..28 * 20)
                    .map(|i| ((i % 28) as f32 / 27.0 + k as f32 * 0.1).min(1.0))
                    .collect()
            })
            .collect();
        let refs: Vec<&[f32]> = tiles.iter().map(Vec::as_slice).collect();
        let (w, h, pixels) = image_grid(&refs, 28, 20, 3);
        tb.image("reconstructions", 19, w, h, 1, &pixels)?;
        tb.hparams_end(true)?;
        println!("{}", tb.path().display());
    }
    Ok(())
}
