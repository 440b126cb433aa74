//! `[data]`: the dataset, its pipeline and the settings of generated and user datasets.

use std::path::PathBuf;

use capsnet_data::BuiltinDataset;
use serde::{Deserialize, Serialize};

use super::{invalid, positive};
use crate::error::ConfigError;

/// Training augmentation of stored images (see [`DataConfig::augmentation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Augmentation {
    /// Random shifts of up to `data.shift_pixels` (or random crops with `data.crop`).
    #[default]
    Shift,
    /// Efficient-CapsNet's: rotation, margin shift, squish, erase.
    EfficientCapsnet,
}

/// Dataset and input pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `mnist`, `fashion-mnist`, `cifar10`, `multimnist` (pairs of MNIST digits, 36×36),
    /// `expanded-mnist` (MNIST on a 40×40 canvas, evaluated also on affine-transformed digits),
    /// `smallnorb` (stereo pairs, 2×48×48, 5 classes), `svhn` (3×32×32), or a user's data:
    /// `image-folder` (class folders of PNG/JPEG images at `root`, `[data.image_folder]`) or
    /// `idx` (IDX files, `[data.idx]`).
    pub dataset: Dataset,
    /// Directory holding the dataset (checked first; then `CAPSNET_DATA`, the cache, download).
    /// For `image-folder`, the folder itself (required); for `idx`, the directory relative
    /// file names in `[data.idx]` are read from.
    pub root: Option<PathBuf>,
    /// Download into the cache when the files are found nowhere.
    pub download: bool,
    /// Verify the SHA-256 of the decompressed files against the canonical values.
    pub verify_checksums: bool,
    /// Use only the first N training images (quick runs, tests).
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    pub test_limit: Option<usize>,
    /// Train on a class-balanced random subset of N training images (N/10 per MNIST class),
    /// drawn with `train_subset_seed`. Subsets drawn with one seed are nested (the 100 images
    /// are among the 300). N at least the training-set size: the whole set. Only for datasets
    /// of stored images (not `multimnist`, `expanded-mnist`); not together with `train_limit`.
    pub train_subset: Option<usize>,
    /// Seed of `train_subset` (unset: the experiment seed, so each seed draws its own subset and
    /// two networks run with the same seed see the same images).
    pub train_subset_seed: Option<u64>,
    /// Also evaluate on the training images (without augmentation), reported as the extra
    /// evaluation set `train` (train error beside test error). Only for datasets of stored
    /// images.
    pub eval_train: bool,
    /// Hold out N images of the training images (after `train_limit` / `train_subset`),
    /// class-balanced and seeded like `train_subset`, as the evaluation set `validation`: they
    /// are not trained on. For choosing settings (a learning rate) without the test set. Only
    /// for datasets of stored images.
    pub validation: Option<usize>,
    /// Random shift augmentation of up to this many pixels, zero padded (paper: 2).
    pub shift_pixels: usize,
    /// Training augmentation: `"shift"` (the random shift of `shift_pixels`, default) or
    /// `"efficient-capsnet"` (Efficient-CapsNet's MNIST pipeline: rotation, a shift within the
    /// digit's empty margin, a horizontal squish and a 4×4 erase; `capsnet_data::efficient_augment`;
    /// needs `shift_pixels = 0`, whole images).
    pub augmentation: Augmentation,
    /// Shuffle the training set every epoch.
    pub shuffle: bool,
    /// Square crop side: a uniformly random crop when training, the central crop when testing
    /// (paper, CIFAR-10: 24). Unset: whole images.
    pub crop: Option<usize>,
    /// Mirror training crops left-right with probability ½ (not in the paper; off).
    pub flip: bool,
    /// MultiMNIST generation (`dataset = "multimnist"`).
    pub multimnist: MultiMnistDataConfig,
    /// Expanded MNIST and the affine test sets (`dataset = "expanded-mnist"`).
    pub affnist: AffnistDataConfig,
    /// A user's folder of images (`dataset = "image-folder"`).
    pub image_folder: ImageFolderConfig,
    /// A user's IDX files (`dataset = "idx"`).
    pub idx: IdxConfig,
}

/// How the colours of a user's images are stored (`data.image_folder.color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageColor {
    /// As the files are (grey-scale: 1 channel, colour: 3, alpha dropped); every image must
    /// agree.
    #[default]
    Auto,
    /// Converted to grey-scale (1 channel).
    Gray,
    /// Converted to RGB (3 channels).
    Rgb,
}

/// How a user's images reach the stored size (`data.image_folder.resize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageResize {
    /// Scaled to exactly the size (the aspect ratio may change).
    #[default]
    Stretch,
    /// Scaled until the shorter side fits, then the central crop (aspect ratio kept).
    FitCrop,
    /// The central crop, unscaled (smaller images are an error).
    CenterCrop,
    /// As they are (another size is an error).
    Exact,
}

/// A user's folder of class folders (`[data.image_folder]`; the folder is `data.root`):
/// `root/train/<class>/*` and `root/test/<class>/*`, or `root/<class>/*` split by seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageFolderConfig {
    /// Stored height; unset: the network's input height (set it when `data.crop` is set).
    pub height: Option<usize>,
    /// Stored width; unset: the network's input width.
    pub width: Option<usize>,
    /// `"auto"` (as the files are; all must agree), `"gray"` or `"rgb"`.
    pub color: ImageColor,
    /// `"stretch"` (default), `"fit-crop"`, `"center-crop"` or `"exact"`.
    pub resize: ImageResize,
    /// One-tree layout: the fraction of each class held out as the test set.
    pub test_fraction: f64,
    /// One-tree layout: the seed of that split (fixed, so every run tests on the same images).
    pub split_seed: u64,
}

impl Default for ImageFolderConfig {
    fn default() -> Self {
        Self {
            height: None,
            width: None,
            color: ImageColor::Auto,
            resize: ImageResize::Stretch,
            test_fraction: 0.2,
            split_seed: 0,
        }
    }
}

/// A user's IDX files (`[data.idx]`): unsigned-byte images (count × rows × columns) and labels,
/// raw or `.gz`; relative paths are read from `data.root` when it is set. EMNIST letters:
/// `label_offset = 1`, `transpose = true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct IdxConfig {
    /// Training images.
    pub train_images: Option<PathBuf>,
    /// Training labels.
    pub train_labels: Option<PathBuf>,
    /// Test images.
    pub test_images: Option<PathBuf>,
    /// Test labels.
    pub test_labels: Option<PathBuf>,
    /// Subtracted from every label (EMNIST letters are labelled 1–26).
    pub label_offset: u8,
    /// Swap rows and columns of every image (EMNIST stores them transposed).
    pub transpose: bool,
    /// Class names in label order (unset: the labels as numbers); as many as the network's
    /// classes.
    pub class_names: Vec<String>,
}

impl IdxConfig {
    /// The four files as `(key, path)`, relative paths joined to `root`; `None` where unset.
    pub fn files(&self, root: Option<&std::path::Path>) -> [(&'static str, Option<PathBuf>); 4] {
        let at = |p: &Option<PathBuf>| {
            p.as_ref().map(|p| match root {
                Some(root) if p.is_relative() => root.join(p),
                _ => p.clone(),
            })
        };
        [
            ("data.idx.train_images", at(&self.train_images)),
            ("data.idx.train_labels", at(&self.train_labels)),
            ("data.idx.test_images", at(&self.test_images)),
            ("data.idx.test_labels", at(&self.test_labels)),
        ]
    }
}

/// MultiMNIST generation: pairs of MNIST digits of different classes, each shifted up to
/// `max_shift` pixels on a canvas padded by `padding`, summed and clipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultiMnistDataConfig {
    /// Training examples per MNIST training digit (paper: 1,000, i.e. 60M per epoch).
    pub train_pairs_per_digit: usize,
    /// Test examples per MNIST test digit (paper: 1,000, i.e. 10M).
    pub test_pairs_per_digit: usize,
    /// Largest shift of each digit in each direction (paper: 4).
    pub max_shift: u32,
    /// Zero border added to each 28×28 digit (paper: 4, giving 36×36).
    pub padding: usize,
    /// Seed of the test pairs (fixed so that every run is scored on the same examples; the
    /// training pairs follow the experiment seed).
    pub test_seed: u64,
}

impl Default for MultiMnistDataConfig {
    fn default() -> Self {
        Self {
            train_pairs_per_digit: 1000,
            test_pairs_per_digit: 1000,
            max_shift: 4,
            padding: 4,
            test_seed: 0,
        }
    }
}

/// Expanded MNIST (training: each digit at a random position of a black canvas, redrawn every
/// time it is used) and the robustness test sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AffnistDataConfig {
    /// Canvas side (paper: 40).
    pub canvas: usize,
    /// Also evaluate on affine-transformed MNIST test digits generated with affNIST-like
    /// ranges (rotation ±20°, shear ±0.2, scale 0.8–1.2, translation within the canvas).
    pub affine_test: bool,
    /// Transformed versions of each MNIST test digit in that set (affNIST: 32).
    pub affine_per_digit: usize,
    /// Seed of the expanded-MNIST test placements and the affine transformations.
    pub test_seed: u64,
    /// The real affNIST `.mat` files (e.g. `test.mat` or `test_batches/*.mat`); when given,
    /// the model is also evaluated on them.
    pub files: Vec<PathBuf>,
}

impl Default for AffnistDataConfig {
    fn default() -> Self {
        Self {
            canvas: 40,
            affine_test: true,
            affine_per_digit: 1,
            test_seed: 0,
            files: Vec::new(),
        }
    }
}

/// The datasets an experiment can use (`data.dataset`). Read case-insensitively, with `_` for
/// `-` and `cifar-10` / `multi-mnist` accepted; written as [`Dataset::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Dataset {
    /// MNIST, 1×28×28.
    Mnist,
    /// Fashion-MNIST, 1×28×28.
    FashionMnist,
    /// CIFAR-10, 3×32×32.
    Cifar10,
    /// MultiMNIST generated from MNIST, two labels per image.
    MultiMnist,
    /// Expanded MNIST (training) with affine test sets.
    ExpandedMnist,
    /// smallNORB: the stereo pairs as 2 channels, area-downscaled to 48×48, 5 classes.
    SmallNorb,
    /// SVHN (format 2, the 73,257-image training set), 3×32×32.
    Svhn,
    /// A user's folder of class folders (PNG, JPEG) at `data.root` (`[data.image_folder]`).
    ImageFolder,
    /// A user's IDX files (`[data.idx]`): any image size and number of classes.
    Idx,
}

impl Dataset {
    /// Every dataset; the accepted names are theirs ([`Dataset::name`]).
    pub const ALL: [Self; 9] = [
        Self::Mnist,
        Self::FashionMnist,
        Self::Cifar10,
        Self::MultiMnist,
        Self::ExpandedMnist,
        Self::SmallNorb,
        Self::Svhn,
        Self::ImageFolder,
        Self::Idx,
    ];

    /// The name used in experiment files and summaries (a built-in dataset's is the data
    /// crate's, [`BuiltinDataset::name`]).
    pub fn name(self) -> &'static str {
        match self {
            Self::Mnist => BuiltinDataset::Mnist.name(),
            Self::FashionMnist => BuiltinDataset::FashionMnist.name(),
            Self::Cifar10 => BuiltinDataset::Cifar10.name(),
            Self::MultiMnist => "multimnist",
            Self::ExpandedMnist => "expanded-mnist",
            Self::SmallNorb => BuiltinDataset::SmallNorb.name(),
            Self::Svhn => BuiltinDataset::Svhn.name(),
            Self::ImageFolder => "image-folder",
            Self::Idx => "idx",
        }
    }

    /// The built-in dataset whose files this one is read from (MNIST for the datasets
    /// generated from it); `None` for a user's data. Its facts (classes, class names, image
    /// shape, mirrors) are the data crate's ([`BuiltinDataset::facts`]).
    pub fn builtin(self) -> Option<BuiltinDataset> {
        match self {
            Self::Mnist | Self::MultiMnist | Self::ExpandedMnist => Some(BuiltinDataset::Mnist),
            Self::FashionMnist => Some(BuiltinDataset::FashionMnist),
            Self::Cifar10 => Some(BuiltinDataset::Cifar10),
            Self::SmallNorb => Some(BuiltinDataset::SmallNorb),
            Self::Svhn => Some(BuiltinDataset::Svhn),
            Self::ImageFolder | Self::Idx => None,
        }
    }

    /// Parses `data.dataset` (case-insensitive; `_` for `-` accepted).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "mnist" => Self::Mnist,
            "fashion-mnist" => Self::FashionMnist,
            "cifar10" | "cifar-10" => Self::Cifar10,
            "multimnist" | "multi-mnist" => Self::MultiMnist,
            "expanded-mnist" => Self::ExpandedMnist,
            "smallnorb" | "small-norb" => Self::SmallNorb,
            "svhn" => Self::Svhn,
            "image-folder" | "imagefolder" => Self::ImageFolder,
            "idx" => Self::Idx,
            _ => return None,
        })
    }

    /// Whether the training examples are stored images (not generated from them), so that
    /// they can be subset and evaluated as they are.
    pub fn plain_images(self) -> bool {
        !matches!(self, Self::MultiMnist | Self::ExpandedMnist)
    }

    /// Number of classes of a built-in dataset (5 for smallNORB, 10 for the others); `None`
    /// for a user's data, whose classes are known once its files are listed.
    pub fn classes(self) -> Option<usize> {
        self.builtin().map(BuiltinDataset::num_classes)
    }

    /// Whether the data is the user's (`image-folder`, `idx`): no download, no checksums,
    /// shape and classes checked when the files are read.
    pub fn is_user_data(self) -> bool {
        matches!(self, Self::ImageFolder | Self::Idx)
    }

    /// Labels per example (2 for MultiMNIST).
    pub fn targets(self) -> usize {
        match self {
            Self::MultiMnist => 2,
            _ => 1,
        }
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<String> for Dataset {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| {
            format!(
                "unknown dataset `{s}`: expected one of {}",
                Self::ALL.map(Self::name).join(", ")
            )
        })
    }
}

impl From<Dataset> for String {
    fn from(d: Dataset) -> String {
        d.name().into()
    }
}

impl DataConfig {
    /// `(channels, height, width)` of the images the network will see, `network` being the
    /// network's input (which a user's image folder is brought to by default); `None` for
    /// `idx`, whose shape is read from its files.
    pub fn input_dims(&self, network: (usize, usize, usize)) -> Option<(usize, usize, usize)> {
        let (c, h, w) = self.stored_dims(network)?;
        Some(match self.crop {
            Some(k) => (c, k, k),
            None => (c, h, w),
        })
    }

    /// `(channels, height, width)` of the examples before any crop (see [`Self::input_dims`]).
    pub fn stored_dims(&self, network: (usize, usize, usize)) -> Option<(usize, usize, usize)> {
        Some(match self.dataset {
            Dataset::ImageFolder => {
                let f = &self.image_folder;
                let channels = match f.color {
                    ImageColor::Auto => network.0,
                    ImageColor::Gray => 1,
                    ImageColor::Rgb => 3,
                };
                (
                    channels,
                    f.height.unwrap_or(network.1),
                    f.width.unwrap_or(network.2),
                )
            }
            Dataset::Idx => return None,
            Dataset::MultiMnist => {
                // Saturating: an absurd padding must give a clear mismatch error, not a panic.
                let mnist = BuiltinDataset::Mnist.dims();
                let side = self
                    .multimnist
                    .padding
                    .saturating_mul(2)
                    .saturating_add(mnist.height);
                (mnist.channels, side, side)
            }
            Dataset::ExpandedMnist => (
                BuiltinDataset::Mnist.dims().channels,
                self.affnist.canvas,
                self.affnist.canvas,
            ),
            Dataset::Mnist
            | Dataset::FashionMnist
            | Dataset::Cifar10
            | Dataset::SmallNorb
            | Dataset::Svhn => {
                let dims = self.dataset.builtin().expect("a built-in dataset").dims();
                (dims.channels, dims.height, dims.width)
            }
        })
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: Dataset::Mnist,
            root: None,
            download: true,
            verify_checksums: true,
            train_limit: None,
            test_limit: None,
            train_subset: None,
            train_subset_seed: None,
            eval_train: false,
            validation: None,
            shift_pixels: 2,
            augmentation: Augmentation::Shift,
            shuffle: true,
            crop: None,
            flip: false,
            multimnist: MultiMnistDataConfig::default(),
            affnist: AffnistDataConfig::default(),
            image_folder: ImageFolderConfig::default(),
            idx: IdxConfig::default(),
        }
    }
}

impl DataConfig {
    /// Crops, flips, the subsets, the settings of the generated datasets and of a user's
    /// data; `network` is the network's input `(channels, height, width)`.
    pub(crate) fn validate(&self, network: (usize, usize, usize)) -> Result<(), ConfigError> {
        match self.dataset {
            Dataset::ImageFolder => self.validate_image_folder()?,
            Dataset::Idx => self.validate_idx()?,
            _ => {}
        }
        if let (Some(crop), Some((_, height, width))) = (self.crop, self.stored_dims(network))
            && (crop == 0 || crop > height || crop > width)
        {
            return invalid(
                "data.crop",
                crop,
                format!("must be between 1 and the image side ({height}x{width})"),
            );
        }
        if self.crop.is_some() && self.shift_pixels > 0 {
            return invalid(
                "data.shift_pixels",
                self.shift_pixels,
                "random crops already translate the image; set data.shift_pixels = 0 with data.crop",
            );
        }
        if self.flip && self.crop.is_none() {
            return invalid(
                "data.flip",
                true,
                "flips are applied to crops; set data.crop",
            );
        }
        if self.augmentation == Augmentation::EfficientCapsnet {
            if self.shift_pixels > 0 || self.crop.is_some() {
                return invalid(
                    "data.augmentation",
                    "efficient-capsnet",
                    "brings its own shift: set data.shift_pixels = 0 and no data.crop",
                );
            }
            if matches!(self.dataset, Dataset::MultiMnist | Dataset::ExpandedMnist) {
                return invalid(
                    "data.augmentation",
                    "efficient-capsnet",
                    format!(
                        "applies to datasets of stored images, not data.dataset = {:?}",
                        self.dataset.name()
                    ),
                );
            }
        }
        match self.dataset {
            Dataset::MultiMnist => self.validate_multimnist()?,
            Dataset::ExpandedMnist => self.validate_expanded_mnist()?,
            Dataset::Mnist
            | Dataset::FashionMnist
            | Dataset::Cifar10
            | Dataset::SmallNorb
            | Dataset::Svhn
            | Dataset::ImageFolder
            | Dataset::Idx => {}
        }
        self.validate_subsets()
    }

    fn validate_image_folder(&self) -> Result<(), ConfigError> {
        let f = &self.image_folder;
        if self.root.is_none() {
            return invalid(
                "data.root",
                "unset",
                "data.dataset = \"image-folder\" reads the folder data.root: set it to a folder of class folders (<class>/*.png) or of train/ and test/ with class folders",
            );
        }
        if !(0.0..1.0).contains(&f.test_fraction) {
            return invalid(
                "data.image_folder.test_fraction",
                f.test_fraction,
                "must be in [0, 1)",
            );
        }
        for (key, value) in [
            ("data.image_folder.height", f.height),
            ("data.image_folder.width", f.width),
        ] {
            if value == Some(0) {
                return invalid(key, 0, "must be positive");
            }
            if value.is_none() && self.crop.is_some() {
                return invalid(
                    key,
                    "unset",
                    "with data.crop the stored size is larger than the network's input: set data.image_folder.height and width",
                );
            }
        }
        Ok(())
    }

    fn validate_idx(&self) -> Result<(), ConfigError> {
        for (key, path) in self.idx.files(self.root.as_deref()) {
            if path.is_none() {
                return invalid(
                    key,
                    "unset",
                    "data.dataset = \"idx\" needs train_images, train_labels, test_images and test_labels in [data.idx]",
                );
            }
        }
        Ok(())
    }

    fn validate_multimnist(&self) -> Result<(), ConfigError> {
        let m = &self.multimnist;
        positive(&[
            (
                "data.multimnist.train_pairs_per_digit",
                m.train_pairs_per_digit,
            ),
            (
                "data.multimnist.test_pairs_per_digit",
                m.test_pairs_per_digit,
            ),
        ])?;
        if m.max_shift as usize > m.padding {
            return invalid(
                "data.multimnist.max_shift",
                m.max_shift,
                "may not exceed data.multimnist.padding (a shifted digit would be cut)",
            );
        }
        if let Some(crop) = self.crop {
            return invalid(
                "data.crop",
                crop,
                "MultiMNIST examples are not cropped; remove data.crop",
            );
        }
        if self.shift_pixels > 0 {
            return invalid(
                "data.shift_pixels",
                self.shift_pixels,
                "MultiMNIST shifts each digit itself (data.multimnist.max_shift); set data.shift_pixels = 0",
            );
        }
        Ok(())
    }

    fn validate_expanded_mnist(&self) -> Result<(), ConfigError> {
        let a = &self.affnist;
        if a.canvas < 28 {
            return invalid(
                "data.affnist.canvas",
                a.canvas,
                "must be at least 28 (the MNIST digit side)",
            );
        }
        positive(&[("data.affnist.affine_per_digit", a.affine_per_digit)])?;
        if !(a.canvas - 28).is_multiple_of(2) {
            return invalid(
                "data.affnist.canvas",
                a.canvas,
                "canvas − 28 must be even (the digit is centred, then shifted up to (canvas − 28)/2 each way)",
            );
        }
        if let Some(crop) = self.crop {
            return invalid(
                "data.crop",
                crop,
                "expanded-MNIST examples are not cropped; remove data.crop",
            );
        }
        let reach = (a.canvas - 28) / 2;
        if self.shift_pixels != reach {
            return invalid(
                "data.shift_pixels",
                self.shift_pixels,
                format!(
                    "expanded MNIST places each training digit anywhere on the canvas: set data.shift_pixels = {reach} ((canvas − 28)/2)"
                ),
            );
        }
        Ok(())
    }

    /// `train_limit`, `train_subset` (not both; the latter and `eval_train` only on stored
    /// images) and `test_limit`.
    fn validate_subsets(&self) -> Result<(), ConfigError> {
        for (key, value, what) in [
            ("data.train_limit", self.train_limit, "training"),
            ("data.train_subset", self.train_subset, "training"),
            ("data.validation", self.validation, "validation"),
            ("data.test_limit", self.test_limit, "test"),
        ] {
            if value == Some(0) {
                return invalid(
                    key,
                    0,
                    format!(
                        "an empty {what} subset {}",
                        if what != "training" {
                            "evaluates nothing"
                        } else {
                            "trains nothing"
                        }
                    ),
                );
            }
        }
        if let (Some(limit), Some(subset)) = (self.train_limit, self.train_subset) {
            return invalid(
                "data.train_subset",
                subset,
                format!(
                    "set either data.train_limit (= {limit}: the first N images) or data.train_subset (a class-balanced random subset), not both"
                ),
            );
        }
        if !self.dataset.plain_images() {
            for (key, set) in [
                ("data.train_subset", self.train_subset.is_some()),
                ("data.eval_train", self.eval_train),
                ("data.validation", self.validation.is_some()),
            ] {
                if set {
                    return invalid(
                        key,
                        self.dataset,
                        format!(
                            "{key} is supported for datasets of stored images, not {} (whose training examples are generated)",
                            self.dataset
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}
