//! `capsnet predict`: a trained network on the user's own image files.
//!
//! Every image goes through the run's own preprocessing: decoded and brought to the stored
//! shape as `[data.image_folder]` says (for a built-in dataset: its shape, grey-scale or RGB as
//! the network takes, stretched), then through the *test-time* batch source of the run's data
//! (the central `data.crop`, no augmentation) and the loader's scaling, exactly as `capsnet
//! eval` feeds its test images. A class is the highest score: the longest class capsule (its
//! length is the score), or the CNN's largest logit (scores are its softmax probabilities).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;
use burn::tensor::activation::softmax;
use capsnet_data::image_folder::{Color, LabelledFiles, decode_all};
use capsnet_data::{Loader, LoaderConfig};
use serde::Serialize;

use crate::config::{Arch, ExperimentConfig};
use crate::error::TrainError;
use crate::net::{Net, batch_tensors, f32_values};
use crate::report::RunLog;

/// One class and its score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    /// Label.
    pub class: usize,
    /// Class name.
    pub name: String,
    /// Capsule length (capsule networks) or softmax probability (CNN).
    pub score: f32,
}

/// The prediction for one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The image file.
    pub file: PathBuf,
    /// The predicted class.
    pub class: usize,
    /// Its name.
    pub name: String,
    /// Its score.
    pub score: f32,
    /// Every class's score, in label order.
    pub scores: Vec<f32>,
    /// The `top_k` classes, best first.
    pub top: Vec<Ranked>,
    /// The PNG written with the input beside its reconstruction (`--reconstruct`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconstruction: Option<PathBuf>,
}

/// What `predict` does besides classifying.
#[derive(Debug, Clone, Default)]
pub struct PredictOptions {
    /// Classes listed per image, best first.
    pub top_k: usize,
    /// Images per forward pass.
    pub batch_size: usize,
    /// Folder for `<index>-<file stem>.png`: each input beside the decoder's reconstruction
    /// from the predicted class's capsule.
    pub reconstruct: Option<PathBuf>,
}

/// The image files named by `inputs`: files as given, folders walked (recursively, sorted) for
/// PNG and JPEG files. A path that does not exist, or a folder without images, is an error.
pub fn collect_images(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, TrainError> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let found = capsnet_data::image_folder::image_files_under(input)?;
            if found.is_empty() {
                return Err(capsnet_data::DataError::ImageFolder {
                    path: input.clone(),
                    reason: "holds no PNG or JPEG files".into(),
                }
                .into());
            }
            files.extend(found);
        } else if input.is_file() {
            files.push(input.clone());
        } else {
            return Err(TrainError::io(
                input,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            ));
        }
    }
    Ok(files)
}

/// Classifies `files` with `net` (an inference copy) as the run of `config` would see them;
/// `classes` names the labels.
pub fn predict(
    net: &Net,
    config: &ExperimentConfig,
    classes: &[String],
    files: &[PathBuf],
    options: &PredictOptions,
    device: &Device,
    log: &mut RunLog,
) -> Result<Vec<Prediction>, TrainError> {
    let (channels, _, _, num_classes) = config.network_input();
    let mut pre = crate::data::image_preprocess(config);
    // The network takes one channel count; convert every file to it.
    pre.color = if channels == 1 {
        Color::Gray
    } else {
        Color::Rgb
    };
    if options.reconstruct.is_some() && !has_decoder(config) {
        return Err(TrainError::Invalid(format!(
            "--reconstruct needs a capsule network with a decoder; this run is arch = \"{}\"{}",
            config.arch.name(),
            if config.arch == Arch::BaselineCnn {
                ""
            } else {
                " without one"
            }
        )));
    }
    let listed = LabelledFiles {
        files: files.to_vec(),
        labels: vec![0; files.len()],
    };
    let set = decode_all(&listed, num_classes, &pre, &|_| {})?;
    let source = crate::data::test_source(Arc::new(set), &config.data)?;
    let loader = Loader::from_source(source.clone(), LoaderConfig::new(options.batch_size.max(1)))?;
    let batches = capsnet_data::num_batches(files.len(), options.batch_size.max(1), false);
    log.start_bar(batches as u64, 0, "predict".into());
    if let Some(dir) = &options.reconstruct {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    }
    let mut out = Vec::with_capacity(files.len());
    for (b, batch) in loader.enumerate() {
        let batch = batch?;
        let dims = batch.dims;
        let inputs = batch.images.clone();
        let (images, targets) = batch_tensors(batch, device);
        let step = net.step(images, &targets, &config.loss, false);
        let scores = match config.arch {
            Arch::BaselineCnn => softmax(step.scores, 1),
            _ => step.scores,
        };
        let scores = f32_values(scores);
        let recon = step.reconstructions.map(f32_values);
        for (k, row) in scores.chunks_exact(num_classes).enumerate() {
            let index = out.len();
            let mut ranked: Vec<usize> = (0..num_classes).collect();
            ranked.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            let name = |c: usize| classes.get(c).cloned().unwrap_or_else(|| c.to_string());
            let top = ranked
                .iter()
                .take(options.top_k.max(1))
                .map(|&c| Ranked {
                    class: c,
                    name: name(c),
                    score: row[c],
                })
                .collect();
            let class = ranked[0];
            let file = files[index].clone();
            let reconstruction = match (&options.reconstruct, &recon) {
                (Some(dir), Some(recon)) => {
                    let size = dims.size();
                    Some(write_pair(
                        dir,
                        index,
                        &file,
                        &inputs[k * size..][..size],
                        &recon[k * size..][..size],
                        dims,
                    )?)
                }
                _ => None,
            };
            out.push(Prediction {
                file,
                class,
                name: name(class),
                score: row[class],
                scores: row.to_vec(),
                top,
                reconstruction,
            });
        }
        log.update_bar(b as u64 + 1, String::new());
    }
    log.finish_bar();
    Ok(out)
}

fn has_decoder(config: &ExperimentConfig) -> bool {
    match config.arch {
        Arch::Capsnet => config.model.decoder.enabled,
        Arch::EfficientCapsnet => config.efficient.decoder.enabled,
        Arch::BaselineCnn => false,
    }
}

/// Writes the input (left) and its reconstruction (right), channel-first `[0, 1]` values, as
/// one PNG.
fn write_pair(
    dir: &Path,
    index: usize,
    file: &Path,
    input: &[f32],
    recon: &[f32],
    dims: capsnet_data::Dims,
) -> Result<PathBuf, TrainError> {
    let (c, h, w) = (dims.channels, dims.height, dims.width);
    let width = 2 * w + 1;
    let mut pixels = vec![128u8; width * h * c];
    let plane = h * w;
    for (offset, values) in [(0, input), (w + 1, recon)] {
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    let v = values[ch * plane + y * w + x];
                    pixels[(y * width + offset + x) * c + ch] =
                        (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
        }
    }
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = dir.join(format!("{index:05}-{stem}.png"));
    let png = capsnet_tensorboard::encode_png(width as u32, h as u32, c as u8, &pixels)
        .map_err(|e| TrainError::Tensorboard(e.to_string()))?;
    crate::run_dir::write_atomic(&path, &png)?;
    Ok(path)
}
