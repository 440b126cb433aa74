//! TensorBoard output of a run: one event file per run directory (appended to on resume).
//!
//! - scalars: `train/{loss,margin_loss,recon_loss,accuracy,lr,images_per_sec}` every log window,
//!   `test/{loss,accuracy,error_pct,images_per_sec}` every evaluation;
//! - images: `reconstructions` (inputs above their reconstructions) every evaluation;
//! - histograms: `capsules/lengths`, `routing/couplings_iter<k>` (one per routing iteration),
//!   `weights/digitcaps_w_norms` (‖W_ij‖ per child/parent pair) every evaluation;
//! - text: `config` (the resolved experiment);
//! - HParams: the run's key settings and every overridden key (the swept axes), with the test
//!   metrics as columns, so a sweep compares in the HPARAMS tab.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use burn::tensor::{Device, Tensor};
use capsnet_data::{BatchSource, Loader, LoaderConfig};
use capsnet_tensorboard::{EventWriter, HParamValue, image_grid};

use crate::error::TrainError;
use crate::load::Resolved;
use crate::net::{Net, batch_tensors};
use crate::report::{EvalRecord, TrainRecord};

/// Keys always shown in the HPARAMS tab (besides every overridden key and every key of the
/// routing in force, `{net}.routing.*`); `{net}` is the section of the network `arch` selects
/// (`model`, `efficient`, `baseline`), and keys it does not have are left out.
const CORE_HPARAMS: &[&str] = &[
    "arch",
    "seed",
    "data.dataset",
    "{net}.decoder.enabled",
    "train.lr",
    "train.batch_size",
    "train.epochs",
    "runtime.backend",
];

/// Metric tags shown as HPARAMS columns.
const METRICS: &[&str] = &["test/error_pct", "test/accuracy", "test/loss", "train/loss"];

/// Number of test images in the reconstruction grid.
const GRID_IMAGES: usize = 8;

/// The TensorBoard writer of one run.
pub struct RunBoard {
    writer: EventWriter,
}

fn tb_err(e: capsnet_tensorboard::TbError) -> TrainError {
    TrainError::Tensorboard(e.to_string())
}

impl RunBoard {
    /// Opens the run's event file; a fresh run also records its config and hyper-parameters.
    pub fn open(run_dir: &Path, resolved: &Resolved, fresh: bool) -> Result<Self, TrainError> {
        let mut writer = EventWriter::open(run_dir).map_err(tb_err)?;
        if fresh {
            let toml = crate::load::to_toml(&resolved.config);
            writer
                .text("config", 0, &format!("```toml\n{toml}\n```"))
                .map_err(tb_err)?;
            let flat = crate::load::flatten_toml(&toml);
            let section = resolved.config.network_section();
            let mut keys: Vec<String> = CORE_HPARAMS
                .iter()
                .map(|k| k.replace("{net}", section))
                .collect();
            // Every option of the routing in force (sweeps vary it as a whole table).
            let routing_prefix = format!("{section}.routing.");
            for key in flat.keys().filter(|k| k.starts_with(&routing_prefix)) {
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
            for o in &resolved.overrides {
                if let Some((key, _)) = o.split_once('=') {
                    let key = key.trim().to_string();
                    if !keys.contains(&key) && flat.contains_key(&key) {
                        keys.push(key);
                    }
                }
            }
            let hparams: BTreeMap<String, HParamValue> = keys
                .into_iter()
                .filter_map(|k| flat.get(&k).map(|v| (k, hparam(v))))
                .collect();
            writer
                .hparams_start(&hparams, METRICS, "")
                .map_err(tb_err)?;
        }
        Ok(Self { writer })
    }

    /// Scalars of one training log window.
    pub fn train(&mut self, r: &TrainRecord) -> Result<(), TrainError> {
        let step = r.step as i64;
        let mut scalars = vec![
            ("train/loss", r.loss),
            ("train/accuracy", r.accuracy),
            ("train/lr", r.lr),
            ("train/images_per_sec", r.images_per_sec),
        ];
        scalars.extend(r.margin_loss.map(|v| ("train/margin_loss", v)));
        scalars.extend(r.recon_loss.map(|v| ("train/recon_loss", v)));
        for (tag, value) in scalars {
            self.writer.scalar(tag, step, value).map_err(tb_err)?;
        }
        Ok(())
    }

    /// Scalars of an evaluation on an extra set, under `<name>/…`.
    pub fn eval_extra(&mut self, name: &str, r: &EvalRecord) -> Result<(), TrainError> {
        let step = r.step as i64;
        for (tag, value) in [
            ("loss", r.test_loss),
            ("accuracy", r.test_accuracy),
            ("error_pct", r.test_error_pct),
        ] {
            self.writer
                .scalar(&format!("{name}/{tag}"), step, value)
                .map_err(tb_err)?;
        }
        self.writer.flush().map_err(tb_err)
    }

    /// Scalars of one evaluation, plus images and histograms from the first test images.
    pub fn eval(
        &mut self,
        r: &EvalRecord,
        net: &Net,
        test: &Arc<dyn BatchSource>,
        device: &Device,
    ) -> Result<(), TrainError> {
        let step = r.step as i64;
        for (tag, value) in [
            ("test/loss", r.test_loss),
            ("test/accuracy", r.test_accuracy),
            ("test/error_pct", r.test_error_pct),
            ("test/images_per_sec", r.images_per_sec),
        ] {
            self.writer.scalar(tag, step, value).map_err(tb_err)?;
        }
        if net.routing().is_none() {
            return self.writer.flush().map_err(tb_err);
        }
        let n = GRID_IMAGES.min(test.len());
        let Some(batch) = Loader::from_source(test.clone(), LoaderConfig::new(n))?.next() else {
            return Ok(());
        };
        let batch = batch?;
        let dims = batch.dims;
        let (images, _) = batch_tensors(batch, device);
        let (out, w, classes) = net
            .capsule_forward(images.clone())
            .expect("a capsule network (checked above)");
        self.writer
            .histogram("capsules/lengths", step, &values(out.lengths.clone()))
            .map_err(tb_err)?;
        for (k, c) in out.coupling_history.iter().enumerate() {
            let tag = format!("routing/couplings_iter{}", k + 1);
            self.writer
                .histogram(&tag, step, &values(c.clone()))
                .map_err(tb_err)?;
        }
        let [children, child_dim, width] = w.dims();
        let norms = w
            .reshape([children, child_dim, classes, width / classes])
            .square()
            .sum_dims_squeeze::<2, usize>(&[1, 3])
            .sqrt();
        self.writer
            .histogram("weights/digitcaps_w_norms", step, &values(norms))
            .map_err(tb_err)?;
        if let Some(recon) = out.reconstruction
            && dims.channels == 1
        {
            let pixels = dims.height * dims.width;
            let inputs = values(images.reshape([n, pixels]));
            let recons = values(recon);
            let tiles: Vec<&[f64]> = inputs.chunks(pixels).chain(recons.chunks(pixels)).collect();
            let as_f32: Vec<Vec<f32>> = tiles
                .iter()
                .map(|t| t.iter().map(|&v| v as f32).collect())
                .collect();
            let refs: Vec<&[f32]> = as_f32.iter().map(Vec::as_slice).collect();
            let (gw, gh, grid) = image_grid(&refs, dims.width, dims.height, n);
            self.writer
                .image("reconstructions", step, gw, gh, 1, &grid)
                .map_err(tb_err)?;
        }
        self.writer.flush().map_err(tb_err)
    }

    /// Marks the HParams session finished.
    pub fn finish(&mut self, success: bool) -> Result<(), TrainError> {
        self.writer.hparams_end(success).map_err(tb_err)?;
        self.writer.flush().map_err(tb_err)
    }
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .try_into_vec_as::<f64>()
        .expect("float tensor converts to f64")
}

fn hparam(v: &toml::Value) -> HParamValue {
    match v {
        toml::Value::Integer(i) => HParamValue::Number(*i as f64),
        toml::Value::Float(f) => HParamValue::Number(*f),
        toml::Value::Boolean(b) => HParamValue::Bool(*b),
        toml::Value::String(s) => HParamValue::Text(s.clone()),
        other => HParamValue::Text(other.to_string()),
    }
}
