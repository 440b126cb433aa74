//! An experiment's data as batch sources: which files are read, which generator runs on
//! them, and which augmentation each split gets.
//!
//! | `data.dataset`   | training source                                   | test sources |
//! |------------------|---------------------------------------------------|--------------|
//! | `mnist`, `fashion-mnist` | the training split, ±`shift_pixels` shifts (or crops) | the test split |
//! | `cifar10`        | the training batches, random `crop`s (optional flips)  | central crops of the test batch |
//! | `multimnist`     | MultiMNIST pairs of the MNIST training split, seeded by the experiment seed | pairs of the test split, seeded by `data.multimnist.test_seed` |
//! | `smallnorb`      | both cameras as 2 channels, area-downscaled to 48×48, random `crop`s | central crops of the test split |
//! | `svhn`           | the training file (not `extra`), shifts or crops as configured | the test file |
//! | `image-folder`  | the user's `train/` images (or the seeded training part of one tree), decoded once in parallel, shifted or cropped as configured | `test/` (or the held-out part) |
//! | `idx`           | the user's training IDX files | the test IDX files |
//! | `expanded-mnist` | MNIST training digits centred on the canvas and shifted up to ±`shift_pixels` (±6 on 40×40 reaches every position) | `test`: test digits at random positions; `affine`: affNIST-like transformed test digits; `affnist`: the real `.mat` files when `data.affnist.files` is set |
//!
//! `train_limit` and `test_limit` cut the *source* splits (before pairs or transformations
//! are generated); `train_subset` draws a class-balanced subset of the training split instead,
//! `validation` holds images of it out as the evaluation set `validation` (not trained on),
//! and `eval_train` adds the (un-augmented) training images as the evaluation set `train`.

use std::path::PathBuf;
use std::sync::Arc;

use capsnet_data::affine::{AffineConfig, AffineMnist};
use capsnet_data::affnist::load_affnist_mats;
use capsnet_data::expanded::{ExpandedConfig, ExpandedMnist, centred};
use capsnet_data::multimnist::{MultiMnist, MultiMnistConfig};
use capsnet_data::{
    BatchSource, CroppedImages, DataSources, EfficientAugmented, ImageSet, Loaded, ShiftedImages,
    Split,
};

use crate::config::{Augmentation, DataConfig, Dataset, ExperimentConfig, ImageColor, ImageResize};
use crate::error::TrainError;
use crate::report::{DownloadBars, RunLog};

/// One evaluation set.
#[derive(Clone)]
pub struct EvalSet {
    /// Short name: `test` for the main test set, else e.g. `affine`, `affnist`.
    pub name: String,
    /// The examples, rendered without augmentation.
    pub source: Arc<dyn BatchSource>,
}

/// The training source and the evaluation sets of an experiment.
pub struct ExperimentData {
    /// Training examples (augmented when drawn for training).
    pub train: Arc<dyn BatchSource>,
    /// The main test set (the one `summary.json` and the tables report).
    pub test: EvalSet,
    /// Further evaluation sets, reported next to the main one.
    pub extra: Vec<EvalSet>,
    /// Directory the source files were read from.
    pub dir: PathBuf,
    /// Class names in label order (written to the run directory as `classes.json`).
    pub classes: Vec<String>,
}

impl ExperimentData {
    /// The main test set followed by the extra ones.
    pub fn eval_sets(&self) -> impl Iterator<Item = &EvalSet> {
        std::iter::once(&self.test).chain(&self.extra)
    }
}

fn sources(data: &DataConfig) -> DataSources {
    let mut sources = DataSources::from_env(data.root.clone());
    sources.download &= data.download;
    sources.verify = data.verify_checksums;
    sources
}

fn limited(mut set: ImageSet, limit: Option<usize>) -> Arc<ImageSet> {
    if let Some(limit) = limit {
        set.truncate(limit);
    }
    Arc::new(set)
}

/// The training split as configured: the first `train_limit` images, or a class-balanced
/// subset of `train_subset` (seeded by `train_subset_seed`, else the experiment seed).
fn training_images(
    set: ImageSet,
    data: &DataConfig,
    seed: u64,
) -> Result<Arc<ImageSet>, TrainError> {
    match data.train_subset {
        Some(n) => Ok(Arc::new(
            set.balanced_subset(n, data.train_subset_seed.unwrap_or(seed))?,
        )),
        None => Ok(limited(set, data.train_limit)),
    }
}

/// The images to train on and the evaluation sets drawn from the training split: the
/// `validation` images held out of it (not trained on) and the `train` set (the images trained
/// on, without augmentation), each when the configuration asks for it.
fn training_split(
    set: ImageSet,
    data: &DataConfig,
    seed: u64,
) -> Result<(Arc<ImageSet>, Vec<EvalSet>), TrainError> {
    let train = training_images(set, data, seed)?;
    let mut extra = Vec::new();
    let train = match data.validation {
        Some(n) => {
            let (held, rest) = train
                .split_balanced(n, data.train_subset_seed.unwrap_or(seed))
                .map_err(|e| crate::error::ConfigError::Invalid {
                    key: "data.validation".into(),
                    value: n.to_string(),
                    reason: e.to_string(),
                })?;
            extra.push(eval_set("validation", plain(Arc::new(held), data, false)?));
            Arc::new(rest)
        }
        None => train,
    };
    if data.eval_train {
        extra.push(eval_set("train", plain(train.clone(), data, false)?));
    }
    Ok((train, extra))
}

/// Images as they are, or cropped (random crops when training), or with Efficient-CapsNet's
/// augmentation when training.
fn plain(
    set: Arc<ImageSet>,
    data: &DataConfig,
    train: bool,
) -> Result<Arc<dyn BatchSource>, TrainError> {
    Ok(match (data.crop, data.augmentation) {
        (Some(crop), _) => Arc::new(CroppedImages::new(set, crop, data.flip && train)?),
        (None, Augmentation::EfficientCapsnet) if train => Arc::new(EfficientAugmented { set }),
        (None, _) => Arc::new(ShiftedImages {
            set,
            shift_px: if train { data.shift_pixels as u32 } else { 0 },
        }),
    })
}

/// The test-time source of `set` for `data`: the central `data.crop` or the images as they
/// are, never augmented (what `capsnet predict` feeds, like evaluation).
pub fn test_source(
    set: Arc<ImageSet>,
    data: &DataConfig,
) -> Result<Arc<dyn BatchSource>, TrainError> {
    plain(set, data, false)
}

fn eval_set(name: &str, source: Arc<dyn BatchSource>) -> EvalSet {
    EvalSet {
        name: name.into(),
        source,
    }
}

/// Loads (downloading into the cache when allowed and needed) and prepares the data of
/// `config`: one loader per dataset.
pub fn load_experiment_data(
    config: &ExperimentConfig,
    log: &mut RunLog,
) -> Result<ExperimentData, TrainError> {
    let data = &config.data;
    let from = Sources {
        files: sources(data),
        progress: DownloadBars::new(log.has_bars()),
    };
    let out = match data.dataset {
        Dataset::Mnist
        | Dataset::FashionMnist
        | Dataset::Cifar10
        | Dataset::SmallNorb
        | Dataset::Svhn => stored_images(both_splits(&from, data.dataset)?, config)?,
        Dataset::MultiMnist => multimnist(&from, config)?,
        Dataset::ExpandedMnist => expanded_mnist(&from, config)?,
        Dataset::ImageFolder => image_folder(config, log)?,
        Dataset::Idx => user_idx(config)?,
    };
    let extra: Vec<String> = out
        .extra
        .iter()
        .map(|e| format!(", {} {}", e.source.len(), e.name))
        .collect();
    log.info(&format!(
        "data: {} from {} ({} train, {} test{} examples)",
        data.dataset,
        out.dir.display(),
        out.train.len(),
        out.test.source.len(),
        extra.concat()
    ));
    Ok(out)
}

/// Where the files come from, and how downloads report progress.
struct Sources {
    files: DataSources,
    progress: DownloadBars,
}

/// MNIST's training split (after `train_limit` / `train_subset`), its test split (after
/// `test_limit`) and their directory: the source of the generated datasets.
fn mnist_splits(
    from: &Sources,
    config: &ExperimentConfig,
) -> Result<(Arc<ImageSet>, Arc<ImageSet>, PathBuf), TrainError> {
    let (train, test, dir) = both_splits(from, Dataset::Mnist)?;
    Ok((
        training_images(train, &config.data, config.seed)?,
        limited(test, config.data.test_limit),
        dir,
    ))
}

/// A dataset of stored images: the training images (after `train_limit` / `train_subset`)
/// shifted or randomly cropped in training, the test images as they are or centrally cropped,
/// and the training images as an evaluation set when `data.eval_train` asks.
fn stored_images(
    (train, test, dir): (ImageSet, ImageSet, PathBuf),
    config: &ExperimentConfig,
) -> Result<ExperimentData, TrainError> {
    let data = &config.data;
    let (train, extra) = training_split(train, data, config.seed)?;
    Ok(ExperimentData {
        extra,
        train: plain(train, data, true)?,
        test: eval_set("test", plain(limited(test, data.test_limit), data, false)?),
        dir,
        classes: builtin_class_names(data.dataset),
    })
}

/// The class names of a built-in dataset (digits for the MNIST family and SVHN), from the data
/// crate's facts; empty for a user's data, whose loader names them.
pub fn builtin_class_names(dataset: Dataset) -> Vec<String> {
    let names: &[&str] = match dataset.builtin() {
        Some(builtin) => builtin.class_names(),
        None => &[],
    };
    names.iter().map(|n| n.to_string()).collect()
}

/// The preprocessing of a user's images (and of `capsnet predict`'s) for `config`: the
/// stored shape of [`DataConfig::stored_dims`], colour and resize as `[data.image_folder]`
/// says. For a built-in dataset of stored images, its own shape in grey-scale or RGB.
pub fn image_preprocess(config: &ExperimentConfig) -> capsnet_data::image_folder::Preprocess {
    use capsnet_data::image_folder::{Color, Preprocess, Resize};
    let (c, h, w, _) = config.network_input();
    let (channels, height, width) = config.data.stored_dims((c, h, w)).unwrap_or((c, h, w));
    let f = &config.data.image_folder;
    let color = match (config.data.dataset, f.color) {
        (Dataset::ImageFolder, ImageColor::Auto) => Color::Auto,
        (Dataset::ImageFolder, ImageColor::Gray) => Color::Gray,
        (Dataset::ImageFolder, ImageColor::Rgb) => Color::Rgb,
        _ if channels == 1 => Color::Gray,
        _ => Color::Rgb,
    };
    Preprocess {
        height,
        width,
        color,
        resize: match f.resize {
            ImageResize::Stretch => Resize::Stretch,
            ImageResize::FitCrop => Resize::FitCrop,
            ImageResize::CenterCrop => Resize::CenterCrop,
            ImageResize::Exact => Resize::Exact,
        },
    }
}

/// A user's data against the network: as many classes, and images of the network's input
/// (after `data.crop`). Errors name the network's keys, like the checks before loading.
fn check_user_data(
    config: &ExperimentConfig,
    dims: capsnet_data::Dims,
    classes: &[String],
    what: &str,
) -> Result<(), TrainError> {
    let section = config.network_section();
    let (c, h, w, n) = config.network_input();
    if classes.len() != n {
        let shown = if classes.len() > 12 {
            format!("{}, …", classes[..12].join(", "))
        } else {
            classes.join(", ")
        };
        return Err(crate::ConfigError::Invalid {
            key: format!("{section}.classes"),
            value: n.to_string(),
            reason: format!(
                "{what} has {} classes ({shown}); set {section}.classes = {}",
                classes.len(),
                classes.len()
            ),
        }
        .into());
    }
    let (dc, dh, dw) = match config.data.crop {
        Some(k) => (dims.channels, k, k),
        None => (dims.channels, dims.height, dims.width),
    };
    if (dc, dh, dw) != (c, h, w) {
        let key = if dc != c {
            "input_channels"
        } else if dh != h {
            "input_height"
        } else {
            "input_width"
        };
        return Err(crate::ConfigError::Invalid {
            key: format!("{section}.{key}"),
            value: format!("{c}x{h}x{w}"),
            reason: format!(
                "{what} gives {dc}x{dh}x{dw} inputs (channels x height x width{}); set {section}.input_channels/input_height/input_width to match{}",
                if config.data.crop.is_some() { ", after data.crop" } else { "" },
                if dc != c && config.data.dataset == Dataset::ImageFolder {
                    ", or data.image_folder.color = \"gray\" / \"rgb\" to convert the images"
                } else {
                    ""
                }
            ),
        }
        .into());
    }
    Ok(())
}

/// A user's folder of class folders: listed (classes checked against the network before any
/// image is decoded), then both splits decoded in parallel into memory.
fn image_folder(config: &ExperimentConfig, log: &mut RunLog) -> Result<ExperimentData, TrainError> {
    use capsnet_data::image_folder::{FolderIndex, SplitOptions, decode_all};
    let data = &config.data;
    let root = data
        .root
        .clone()
        .expect("validated: image-folder has data.root");
    let f = &data.image_folder;
    let index = FolderIndex::scan(
        &root,
        SplitOptions {
            test_fraction: f.test_fraction,
            seed: f.split_seed,
        },
    )?;
    let pre = image_preprocess(config);
    let what = format!("data.root = {:?}", root.display().to_string());
    // Classes (and, for a fixed colour, the shape) fail before anything is decoded.
    let (c, h, w, _) = config.network_input();
    let (channels, _, _) = data
        .stored_dims((c, h, w))
        .expect("an image folder's stored shape comes from the experiment");
    check_user_data(config, pre.dims(channels), &index.classes, &what)?;
    let total = index.train.files.len() + index.test.files.len();
    log.info(&format!(
        "decoding {total} images of {} classes from {} ({} layout) to {}x{}",
        index.classes.len(),
        root.display(),
        if index.split_layout {
            "train/ + test/"
        } else {
            "one-tree, seeded split"
        },
        pre.height,
        pre.width,
    ));
    let started = std::time::Instant::now();
    log.start_bar(total as u64, 0, "decoding".into());
    let train_len = index.train.files.len();
    let shared: &RunLog = log;
    let train = decode_all(&index.train, index.classes.len(), &pre, &|done| {
        shared.update_bar(done as u64, String::new())
    })?;
    let test = decode_all(&index.test, index.classes.len(), &pre, &|done| {
        shared.update_bar((train_len + done) as u64, String::new())
    })?;
    log.finish_bar();
    let seconds = started.elapsed().as_secs_f64();
    log.info(&format!(
        "decoded {total} images in {seconds:.1} s ({:.0} images/s)",
        total as f64 / seconds.max(1e-9)
    ));
    if test.channels() != train.channels() {
        return Err(capsnet_data::DataError::BadImage {
            path: index.test.files[0].clone(),
            reason: format!(
                "test images have {} channel(s) but training images {}: set data.image_folder.color = \"gray\" or \"rgb\"",
                test.channels(),
                train.channels()
            ),
        }
        .into());
    }
    check_user_data(config, train.dims(), &index.classes, &what)?;
    let mut out = stored_images((train, test, root), config)?;
    out.classes = index.classes;
    Ok(out)
}

/// A user's IDX files, read as they are (`label_offset`, `transpose` applied); every label
/// must be below the network's number of classes.
fn user_idx(config: &ExperimentConfig) -> Result<ExperimentData, TrainError> {
    use capsnet_data::idx::{IdxReadOptions, read_labelled};
    let data = &config.data;
    let [train_images, train_labels, test_images, test_labels] = data
        .idx
        .files(data.root.as_deref())
        .map(|(_, p)| p.expect("validated"));
    let options = IdxReadOptions {
        label_offset: data.idx.label_offset,
        transpose: data.idx.transpose,
    };
    let classes = config.network_input().3;
    let mut sets = Vec::new();
    for (images, labels) in [(&train_images, &train_labels), (&test_images, &test_labels)] {
        let read = read_labelled(images, labels, options)?;
        capsnet_data::idx::labels_below(labels, &read.labels, classes)?;
        let dims = capsnet_data::Dims {
            channels: 1,
            height: read.images.rows,
            width: read.images.cols,
        };
        sets.push(ImageSet::new(
            read.images.pixels,
            read.labels,
            dims,
            classes,
        )?);
    }
    let test = sets.pop().expect("two splits");
    let train = sets.pop().expect("two splits");
    if test.dims() != train.dims() {
        return Err(crate::ConfigError::Invalid {
            key: "data.idx.test_images".into(),
            value: test_images.display().to_string(),
            reason: format!(
                "holds {}x{} images but the training images are {}x{}",
                test.height(),
                test.width(),
                train.height(),
                train.width()
            ),
        }
        .into());
    }
    let names = match &data.idx.class_names {
        names if names.is_empty() => (0..classes).map(|c| c.to_string()).collect(),
        names => names.clone(),
    };
    let what = format!(
        "data.idx.train_images = {:?}",
        train_images.display().to_string()
    );
    check_user_data(config, train.dims(), &names, &what)?;
    let dir = train_images
        .parent()
        .map_or_else(PathBuf::new, std::path::Path::to_path_buf);
    let mut out = stored_images((train, test, dir), config)?;
    out.classes = names;
    Ok(out)
}

/// Both splits of a built-in dataset; the directory is the training split's.
fn both_splits(
    from: &Sources,
    dataset: Dataset,
) -> Result<(ImageSet, ImageSet, PathBuf), TrainError> {
    let train = load_builtin_split(dataset, Split::Train, &from.files, &from.progress)?;
    let test = load_builtin_split(dataset, Split::Test, &from.files, &from.progress)?;
    Ok((train.images, test.images, train.provenance.dir))
}

/// One split of a built-in dataset's stored images (MNIST for the datasets generated from
/// it): [`capsnet_data::BuiltinDataset::load`], the one route of the experiment loaders and
/// `capsnet download`, which finds the files in the roots of `files` or fetches them into its
/// cache from the dataset's mirrors (overridable by its `CAPSNET_…_MIRROR` variable) and
/// checks them. smallNORB comes as the paper prepares it (both cameras as 2 channels, 48×48).
/// A user's data (`image-folder`, `idx`) is an error.
pub fn load_builtin_split(
    dataset: Dataset,
    split: Split,
    files: &DataSources,
    progress: &dyn capsnet_data::DownloadProgress,
) -> Result<Loaded, TrainError> {
    let Some(builtin) = dataset.builtin() else {
        return Err(TrainError::Invalid(format!(
            "data.dataset = {:?} is your own data: it is read from data.root, never fetched",
            dataset.name()
        )));
    };
    Ok(builtin.load(split, files, progress)?)
}

/// MultiMNIST: pairs generated from MNIST, the training pairs seeded by the experiment seed,
/// the test pairs by `data.multimnist.test_seed`.
fn multimnist(from: &Sources, config: &ExperimentConfig) -> Result<ExperimentData, TrainError> {
    let (train, test, dir) = mnist_splits(from, config)?;
    let m = &config.data.multimnist;
    let generator = |pairs, seed| MultiMnistConfig {
        pairs_per_digit: pairs,
        max_shift: m.max_shift,
        padding: m.padding,
        seed,
    };
    Ok(ExperimentData {
        train: Arc::new(MultiMnist::new(
            train,
            generator(m.train_pairs_per_digit, config.seed),
        )?),
        test: eval_set(
            "test",
            Arc::new(MultiMnist::new(
                test,
                generator(m.test_pairs_per_digit, m.test_seed),
            )?),
        ),
        extra: Vec::new(),
        dir,
        classes: builtin_class_names(Dataset::MultiMnist),
    })
}

/// Expanded MNIST: training digits anywhere on the canvas; test digits at seeded positions,
/// plus the affine and real affNIST sets when asked.
fn expanded_mnist(from: &Sources, config: &ExperimentConfig) -> Result<ExperimentData, TrainError> {
    let data = &config.data;
    let (train, test, dir) = mnist_splits(from, config)?;
    let a = &data.affnist;
    let placed = ExpandedMnist::new(
        test.clone(),
        ExpandedConfig {
            canvas: a.canvas,
            seed: a.test_seed,
        },
    )?;
    let test_set = placed.materialize(placed.len())?;
    let mut extra = Vec::new();
    if a.affine_test {
        let affine = AffineMnist::new(
            test.clone(),
            AffineConfig {
                canvas: a.canvas,
                per_digit: a.affine_per_digit,
                seed: a.test_seed,
                ..AffineConfig::default()
            },
        )?;
        let set = Arc::new(affine.materialize(affine.len())?);
        extra.push(eval_set(
            "affine",
            Arc::new(ShiftedImages { set, shift_px: 0 }),
        ));
    }
    if !a.files.is_empty() {
        let set = limited(load_affnist_mats(&a.files)?, data.test_limit);
        if set.dims().height != a.canvas || set.dims().width != a.canvas {
            return Err(crate::ConfigError::Invalid {
                key: "data.affnist.files".into(),
                value: format!("{:?}", a.files),
                reason: format!(
                    "the files hold {}x{} images but data.affnist.canvas is {}",
                    set.dims().height,
                    set.dims().width,
                    a.canvas
                ),
            }
            .into());
        }
        extra.push(eval_set(
            "affnist",
            Arc::new(ShiftedImages { set, shift_px: 0 }),
        ));
    }
    Ok(ExperimentData {
        train: Arc::new(ShiftedImages {
            set: Arc::new(centred(&train, a.canvas)?),
            shift_px: data.shift_pixels as u32,
        }),
        test: eval_set(
            "test",
            Arc::new(ShiftedImages {
                set: Arc::new(test_set),
                shift_px: 0,
            }),
        ),
        extra,
        dir,
        classes: builtin_class_names(Dataset::ExpandedMnist),
    })
}
