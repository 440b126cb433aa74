//! The paper's figures from a trained CapsNet (`capsnet figures`):
//!
//! - Fig. 3: test inputs (top row) above their reconstructions (bottom row), the decoder masked
//!   by the longest capsule;
//! - Fig. 4: dimension perturbation: for a test image, each of the winning capsule's dimensions
//!   (rows) is shifted by −0.25, −0.20, …, +0.25 (columns) and decoded.
//!
//! Written as PNG files and as TensorBoard images in the run's event file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::{Device, Int, Tensor, TensorData};
use capsnet_data::{BatchSource, Loader, LoaderConfig};
use capsnet_model::{CapsNet, predictions};
use capsnet_tensorboard::{EventWriter, encode_png, image_grid};

use crate::error::TrainError;
use crate::net::batch_tensors;
use crate::net::f32_values;

/// Perturbation offsets of Fig. 4: −0.25 … +0.25 in steps of 0.05.
pub const PERTURBATIONS: [f32; 11] = [
    -0.25, -0.2, -0.15, -0.1, -0.05, 0.0, 0.05, 0.1, 0.15, 0.2, 0.25,
];

/// What `figures` wrote.
#[derive(Debug, Clone)]
pub struct Figures {
    /// PNG files.
    pub files: Vec<PathBuf>,
}

/// How many images to draw, and the TensorBoard step to file them under.
#[derive(Debug, Clone, Copy)]
pub struct FigureOptions {
    /// Test images in the reconstruction grid.
    pub images: usize,
    /// Test images to draw dimension perturbations for.
    pub perturbed: usize,
    /// TensorBoard step (the checkpoint's training step).
    pub step: i64,
}

/// Writes the reconstruction grid of the first `options.images` test images and the
/// perturbation grids of the first `options.perturbed` ones into `out_dir` (and as images into
/// `board`, if given).
pub fn write(
    net: &CapsNet,
    test: &Arc<dyn BatchSource>,
    options: FigureOptions,
    out_dir: &Path,
    mut board: Option<&mut EventWriter>,
    device: &Device,
) -> Result<Figures, TrainError> {
    let FigureOptions {
        images: n,
        perturbed,
        step,
    } = options;
    let config = net.config();
    if !net.has_decoder() {
        return Err(TrainError::RunDir {
            path: out_dir.to_path_buf(),
            reason: "the model has no decoder (model.decoder.enabled = false): nothing to draw"
                .into(),
        });
    }
    let dims = test.dims();
    if dims.channels != 1 {
        return Err(TrainError::RunDir {
            path: out_dir.to_path_buf(),
            reason: "figures are drawn for single-channel images only".into(),
        });
    }
    std::fs::create_dir_all(out_dir).map_err(|e| TrainError::io(out_dir, e))?;
    let (w, h) = (dims.width, dims.height);
    let n = n.clamp(1, test.len());
    let batch = Loader::from_source(test.clone(), LoaderConfig::new(n))?
        .next()
        .expect("a non-empty test set yields a batch")?;
    let (images, _) = batch_tensors(batch, device);
    let out = net.forward(images.clone(), None);
    let recon = out.reconstruction.expect("decoder checked above");
    let inputs = f32_values(images.reshape([n, w * h]));
    let recons = f32_values(recon);
    let tiles: Vec<&[f32]> = inputs.chunks(w * h).chain(recons.chunks(w * h)).collect();
    let mut files = Vec::new();
    let (gw, gh, grid) = image_grid(&tiles, w, h, n);
    files.push(save_png(out_dir, "reconstructions.png", gw, gh, &grid)?);
    if let Some(b) = board.as_deref_mut() {
        b.image("figures/reconstructions", step, gw, gh, 1, &grid)
            .map_err(tb)?;
    }

    let winners = floats_i(predictions(out.lengths.clone()));
    let capsules = out.capsules;
    let dims = config.class_dim;
    for (k, &winner) in winners.iter().enumerate().take(perturbed.min(n)) {
        let winner = winner as usize;
        // [1, classes, dim] → the winning capsule of image k, repeated for every (dim, offset).
        let v = f32_values(
            capsules
                .clone()
                .narrow(0, k, 1)
                .narrow(1, winner, 1)
                .reshape([dims]),
        );
        let cells = dims * PERTURBATIONS.len();
        let mut caps = vec![0.0f32; cells * config.classes * dims];
        for d in 0..dims {
            for (t, offset) in PERTURBATIONS.iter().enumerate() {
                let cell = d * PERTURBATIONS.len() + t;
                let base = (cell * config.classes + winner) * dims;
                caps[base..base + dims].copy_from_slice(&v);
                caps[base + d] += offset;
            }
        }
        let caps =
            Tensor::<3>::from_data(TensorData::new(caps, [cells, config.classes, dims]), device);
        let labels = Tensor::<1, Int>::from_data(
            TensorData::new(vec![winner as i64; cells], [cells]),
            device,
        );
        let decoded = f32_values(
            net.reconstruct(caps, labels)
                .expect("decoder checked above"),
        );
        let tiles: Vec<&[f32]> = decoded.chunks(w * h).collect();
        let (gw, gh, grid) = image_grid(&tiles, w, h, PERTURBATIONS.len());
        let name = format!("perturbation-{k}-class{winner}.png");
        files.push(save_png(out_dir, &name, gw, gh, &grid)?);
        if let Some(b) = board.as_deref_mut() {
            b.image(&format!("figures/perturbation_{k}"), step, gw, gh, 1, &grid)
                .map_err(tb)?;
        }
    }
    if let Some(b) = board {
        b.flush().map_err(tb)?;
    }
    Ok(Figures { files })
}

fn tb(e: capsnet_tensorboard::TbError) -> TrainError {
    TrainError::Tensorboard(e.to_string())
}

fn save_png(dir: &Path, name: &str, w: u32, h: u32, gray: &[u8]) -> Result<PathBuf, TrainError> {
    let bytes = encode_png(w, h, 1, gray).map_err(|e| TrainError::Tensorboard(e.to_string()))?;
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(|e| TrainError::io(&path, e))?;
    Ok(path)
}

fn floats_i(t: Tensor<1, Int>) -> Vec<i64> {
    t.into_data()
        .try_into_vec_as::<i64>()
        .expect("int tensor converts to i64")
}
