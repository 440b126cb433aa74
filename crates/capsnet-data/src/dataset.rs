//! Datasets, splits, in-memory image sets, where the files come from, and loading with
//! checksum verification.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::download::{DownloadProgress, NoProgress};
use crate::{DataError, idx};

/// Environment variable naming a data root (step 2 of the resolution order).
pub const DATA_ENV: &str = "CAPSNET_DATA";
/// Environment variable overriding the download mirrors: base URLs separated by commas or
/// whitespace, each followed by `<file>.gz`. Applies to every MNIST-family dataset.
pub const MIRROR_ENV: &str = "CAPSNET_MNIST_MIRROR";

/// A file of a dataset and, optionally, the SHA-256 its decompressed contents must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedFile<'a> {
    /// Canonical file name, without `.gz` (e.g. `train-images-idx3-ubyte`).
    pub name: &'a str,
    /// Lowercase hex SHA-256 of the decompressed file; `None` skips verification.
    pub sha256: Option<&'a str>,
}

const fn expected(name: &'static str, sha256: &'static str) -> ExpectedFile<'static> {
    ExpectedFile {
        name,
        sha256: Some(sha256),
    }
}

const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

const MNIST_FILES: [ExpectedFile<'static>; 4] = [
    expected(
        TRAIN_IMAGES,
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    expected(
        TRAIN_LABELS,
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    expected(
        TEST_IMAGES,
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    expected(
        TEST_LABELS,
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
];

const FASHION_MNIST_FILES: [ExpectedFile<'static>; 4] = [
    expected(
        TRAIN_IMAGES,
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    expected(
        TRAIN_LABELS,
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    expected(
        TEST_IMAGES,
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    expected(
        TEST_LABELS,
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
];

/// A dataset of the MNIST family: 28×28 grey-scale images in 10 classes, in IDX files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdxDataset {
    /// Handwritten digits (LeCun et al.).
    Mnist,
    /// Zalando's Fashion-MNIST (clothing), a drop-in replacement for MNIST.
    FashionMnist,
}

impl IdxDataset {
    /// Every dataset.
    pub const ALL: [Self; 2] = [Self::Mnist, Self::FashionMnist];

    /// Short name, also the sub-directory of a data root: `mnist` or `fashion-mnist`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::FashionMnist => "fashion-mnist",
        }
    }

    /// The four canonical files (train images, train labels, test images, test labels)
    /// with the SHA-256 of their decompressed contents.
    pub fn files(self) -> &'static [ExpectedFile<'static>; 4] {
        match self {
            Self::Mnist => &MNIST_FILES,
            Self::FashionMnist => &FASHION_MNIST_FILES,
        }
    }

    /// Canonical SHA-256 (lowercase hex, of the decompressed file) of the file `name`.
    pub fn sha256(self, name: &str) -> Option<&'static str> {
        self.files()
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.sha256)
    }

    /// Download mirrors, in order of preference; `<mirror><file>.gz` is fetched.
    pub fn mirrors(self) -> &'static [&'static str] {
        match self {
            Self::Mnist => &[
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
            ],
            Self::FashionMnist => &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        }
    }

    /// Number of classes (10 for both).
    pub fn num_classes(self) -> usize {
        10
    }

    /// Class names in label order: the digits for MNIST, the article kinds for Fashion-MNIST.
    pub fn class_names(self) -> [&'static str; 10] {
        match self {
            Self::Mnist => ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            Self::FashionMnist => [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        }
    }

    /// Image shape (1×28×28 for both).
    pub fn dims(self) -> Dims {
        Dims {
            channels: 1,
            height: 28,
            width: 28,
        }
    }
}

impl fmt::Display for IdxDataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for IdxDataset {
    type Err = DataError;

    /// Parses `mnist`, `fashion-mnist` or `fashion_mnist` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, DataError> {
        match s.to_ascii_lowercase().as_str() {
            "mnist" => Ok(Self::Mnist),
            "fashion-mnist" | "fashion_mnist" => Ok(Self::FashionMnist),
            _ => Err(DataError::Invalid(format!(
                "unknown dataset {s:?}; valid values: mnist, fashion-mnist (or fashion_mnist)"
            ))),
        }
    }
}

/// The training or the test part of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// 60,000 training images.
    Train,
    /// 10,000 test images.
    Test,
}

impl Split {
    /// `train` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "test",
        }
    }

    /// Canonical file names of this split: `[images, labels]`.
    pub fn file_names(self) -> [&'static str; 2] {
        match self {
            Self::Train => [TRAIN_IMAGES, TRAIN_LABELS],
            Self::Test => [TEST_IMAGES, TEST_LABELS],
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = DataError;

    /// Parses `train` or `test` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, DataError> {
        match s.to_ascii_lowercase().as_str() {
            "train" => Ok(Self::Train),
            "test" => Ok(Self::Test),
            _ => Err(DataError::Invalid(format!(
                "unknown split {s:?}; valid values: train, test"
            ))),
        }
    }
}

/// Shape of one image: channels × height × width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dims {
    /// Channels (1 for grey-scale).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl Dims {
    /// Values per image: `channels * height * width`.
    pub const fn size(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// Images and labels held in memory.
///
/// Images are stored back to back, each channel-first and row-major (`N×C×H×W` bytes).
/// The constructor checks that sizes agree and labels are below `num_classes`, so every
/// accessor is consistent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    images: Vec<u8>,
    labels: Vec<u8>,
    dims: Dims,
    num_classes: usize,
}

impl ImageSet {
    /// Builds a set from `labels.len()` images of shape `dims` stored in `images`.
    ///
    /// Fails with [`DataError::Invalid`] if the sizes disagree, a dimension is zero or a
    /// label is not below `num_classes`.
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u8>,
        dims: Dims,
        num_classes: usize,
    ) -> Result<Self, DataError> {
        let image_size = dims
            .channels
            .checked_mul(dims.height)
            .and_then(|n| n.checked_mul(dims.width))
            .filter(|&n| n > 0)
            .ok_or_else(|| DataError::Invalid(format!("invalid image shape {dims:?}")))?;
        if labels.len().checked_mul(image_size) != Some(images.len()) {
            return Err(DataError::Invalid(format!(
                "{} pixels do not make {} images of {dims:?}",
                images.len(),
                labels.len()
            )));
        }
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| usize::from(l) >= num_classes)
        {
            return Err(DataError::Invalid(format!(
                "label #{i} is {l}, but there are {num_classes} classes"
            )));
        }
        Ok(Self {
            images,
            labels,
            dims,
            num_classes,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Shape of each image.
    pub fn dims(&self) -> Dims {
        self.dims
    }

    /// Channels per image.
    pub fn channels(&self) -> usize {
        self.dims.channels
    }

    /// Image height.
    pub fn height(&self) -> usize {
        self.dims.height
    }

    /// Image width.
    pub fn width(&self) -> usize {
        self.dims.width
    }

    /// Number of classes; every label is below it.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// All pixels, `N×C×H×W`.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// All labels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The pixels of image `i` (`C×H×W`).
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.dims.size();
        &self.images[i * n..(i + 1) * n]
    }

    /// The label of image `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// Keeps only the first `limit` images (no-op if there are fewer).
    pub fn truncate(&mut self, limit: usize) {
        self.labels.truncate(limit);
        self.images.truncate(self.labels.len() * self.dims.size());
    }

    /// A new set of the images at `indices`, in that order (repeats allowed).
    ///
    /// Fails with [`DataError::Invalid`] if an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> Result<Self, DataError> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::Invalid(format!(
                "subset index {bad} out of range for a set of {} images",
                self.len()
            )));
        }
        let mut images = Vec::with_capacity(indices.len() * self.dims.size());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        Ok(Self {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            dims: self.dims,
            num_classes: self.num_classes,
        })
    }

    /// A class-balanced random subset of `n` images, the same for every caller with the same
    /// `seed`: each class contributes `n / classes` images (the first `n % classes` classes one
    /// more), drawn without replacement. Images keep their original order.
    ///
    /// Each class's draw order depends only on `seed` and the class, so with one seed the subset
    /// of `n` images is contained in the subset of any larger `m`. With `n ≥ len()` the whole set
    /// is returned (it need not be balanced: MNIST's classes hold 5,421 to 6,742 images).
    ///
    /// Fails with [`DataError::Invalid`] if `n` is zero or a class has fewer images than its
    /// share.
    pub fn balanced_subset(&self, n: usize, seed: u64) -> Result<Self, DataError> {
        if n == 0 {
            return Err(DataError::Invalid(
                "a balanced subset needs at least one image".into(),
            ));
        }
        if n >= self.len() {
            return Ok(self.clone());
        }
        let classes = self.num_classes;
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
        for (i, &label) in self.labels.iter().enumerate() {
            by_class[usize::from(label)].push(i);
        }
        let mut chosen = Vec::with_capacity(n);
        for (class, mut indices) in by_class.into_iter().enumerate() {
            let share = n / classes + usize::from(class < n % classes);
            if indices.len() < share {
                return Err(DataError::Invalid(format!(
                    "a balanced subset of {n} images needs {share} of class {class}, but the set \
                     has only {}",
                    indices.len()
                )));
            }
            crate::rng::shuffle(
                &mut indices,
                &mut crate::rng::Rng::derive(seed, &[crate::rng::STREAM_SUBSET, class as u64]),
            );
            chosen.extend_from_slice(&indices[..share]);
        }
        chosen.sort_unstable();
        self.subset(&chosen)
    }
}

/// Where dataset files are looked for, and whether they may be downloaded and must be
/// verified.
///
/// Roots are tried in order: `explicit` (experiment config / `--data-dir`), `env`
/// (`CAPSNET_DATA`), `cache`; if none holds the split and `download` is set, the files are
/// downloaded into `cache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSources {
    /// Root given by the experiment config or the command line.
    pub explicit: Option<PathBuf>,
    /// Root from the `CAPSNET_DATA` environment variable.
    pub env: Option<PathBuf>,
    /// Cache root, also the download destination.
    pub cache: Option<PathBuf>,
    /// Download missing files into `cache` (needs the `download` feature).
    pub download: bool,
    /// Verify the SHA-256 of every file against the canonical value (default `true`);
    /// turn off for custom data.
    pub verify: bool,
    /// Mirror base URLs to download from; empty means the dataset's own
    /// ([`IdxDataset::mirrors`]).
    pub mirrors: Vec<String>,
}

impl Default for DataSources {
    /// No roots, no download, verification on.
    fn default() -> Self {
        Self {
            explicit: None,
            env: None,
            cache: None,
            download: false,
            verify: true,
            mirrors: Vec::new(),
        }
    }
}

impl DataSources {
    /// Only `root`: no environment, no cache, no download; verification on.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self {
            explicit: Some(root.into()),
            ..Self::default()
        }
    }

    /// Sources from the process environment (`CAPSNET_DATA`, `XDG_CACHE_HOME`, `HOME`,
    /// `CAPSNET_MNIST_MIRROR`) plus an optional explicit root; downloading is on when the
    /// `download` feature is compiled in.
    pub fn from_env(explicit: Option<PathBuf>) -> Self {
        Self::from_vars(explicit, |key| std::env::var_os(key))
    }

    /// Like [`DataSources::from_env`], reading variables through `var` (for tests).
    /// Empty variables count as unset.
    pub fn from_vars(explicit: Option<PathBuf>, var: impl Fn(&str) -> Option<OsString>) -> Self {
        let var = |key: &str| var(key).filter(|v| !v.is_empty());
        let mirrors = var(MIRROR_ENV)
            .map(|v| split_mirror_list(&v))
            .unwrap_or_default();
        Self {
            explicit,
            env: var(DATA_ENV).map(PathBuf::from),
            cache: default_cache_dir(var("XDG_CACHE_HOME"), var("HOME")),
            download: cfg!(feature = "download"),
            verify: true,
            mirrors,
        }
    }

    /// The roots to search, in order, without duplicates.
    pub fn roots(&self) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> = Vec::new();
        for root in [&self.explicit, &self.env, &self.cache]
            .into_iter()
            .flatten()
        {
            if !roots.contains(root) {
                roots.push(root.clone());
            }
        }
        roots
    }

    /// The mirrors to download `kind` from: [`DataSources::mirrors`] if set, else the
    /// dataset's own.
    pub fn mirrors_for(&self, kind: IdxDataset) -> Vec<String> {
        if self.mirrors.is_empty() {
            kind.mirrors().iter().map(|m| (*m).to_owned()).collect()
        } else {
            self.mirrors.clone()
        }
    }
}

/// The cache root: `$XDG_CACHE_HOME/capsnet` if that is an absolute path, else
/// `$HOME/.cache/capsnet`, else none.
pub fn default_cache_dir(
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let xdg = xdg_cache_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    xdg.or_else(|| home.map(|h| PathBuf::from(h).join(".cache")))
        .map(|c| c.join("capsnet"))
}

/// Where `file` may be under `root`, in the order looked at: `<root>/<subdir>/<file>`,
/// `<root>/<subdir>/<file>.gz`, `<root>/<file>`, `<root>/<file>.gz` (the `.gz` ones only when
/// `gz`). Every dataset's files are looked for this way.
pub fn candidate_files(root: &Path, subdir: &str, file: &str, gz: bool) -> Vec<PathBuf> {
    let sub = root.join(subdir);
    let zipped = format!("{file}.gz");
    let mut out = vec![sub.join(file)];
    if gz {
        out.push(sub.join(&zipped));
    }
    out.push(root.join(file));
    if gz {
        out.push(root.join(zipped));
    }
    out
}

/// Each of `files`, at its first [`candidate_files`] path, in the first of `roots` that holds
/// them all; on failure, every path looked at (for each file, its candidates up to the first
/// one found).
pub fn locate_files(
    roots: &[PathBuf],
    subdir: &str,
    files: &[&str],
    gz: bool,
) -> Result<Vec<PathBuf>, Vec<PathBuf>> {
    let mut tried = Vec::new();
    for root in roots {
        let found: Vec<Option<PathBuf>> = files
            .iter()
            .map(|file| {
                let candidates = candidate_files(root, subdir, file, gz);
                let hit = candidates.iter().position(|p| p.is_file());
                tried.extend_from_slice(&candidates[..hit.map_or(candidates.len(), |i| i + 1)]);
                hit.map(|i| candidates[i].clone())
            })
            .collect();
        if let Some(paths) = found.into_iter().collect::<Option<Vec<_>>>() {
            return Ok(paths);
        }
    }
    Err(tried)
}

/// How to get the MNIST family's files when no root holds them.
pub const IDX_NOT_FOUND_HINT: &str = "Put the files there, set CAPSNET_DATA or data.root/--data-dir \
     to a directory holding them, or enable downloading";

/// Fetches a split's missing files into the cache directory it is given.
pub type Fetch<'a> = &'a dyn Fn(&Path) -> Result<(), DataError>;

/// The one route by which every dataset finds its files: `locate` in the roots of `sources`;
/// failing that, when downloads are on, there is a cache and the dataset has a `fetch`, fetch
/// into the cache and `locate` there; failing that, `not_found` with every path looked at.
pub fn locate_or_fetch<T>(
    sources: &DataSources,
    locate: impl Fn(&[PathBuf]) -> Result<T, Vec<PathBuf>>,
    fetch: Option<Fetch<'_>>,
    not_found: impl Fn(Vec<PathBuf>) -> DataError,
) -> Result<T, DataError> {
    let tried = match locate(&sources.roots()) {
        Ok(found) => return Ok(found),
        Err(tried) => tried,
    };
    match (&sources.cache, sources.download, fetch) {
        (Some(cache), true, Some(fetch)) => {
            fetch(cache)?;
            locate(std::slice::from_ref(cache)).map_err(not_found)
        }
        _ => Err(not_found(tried)),
    }
}

/// The files of one split, as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The image file (raw or `.gz`).
    pub images: PathBuf,
    /// The label file (raw or `.gz`).
    pub labels: PathBuf,
    /// The directory the image file is in.
    pub dir: PathBuf,
}

/// Finds the split's files in the first of `roots` that holds both; on failure returns every
/// path looked at.
pub fn locate(kind: IdxDataset, split: Split, roots: &[PathBuf]) -> Result<Located, Vec<PathBuf>> {
    let paths = locate_files(roots, kind.name(), &split.file_names(), true)?;
    let [images, labels]: [PathBuf; 2] = paths.try_into().expect("two files asked, two found");
    let dir = images.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(Located {
        images,
        labels,
        dir,
    })
}

/// Loads a split, looking in `sources` (downloading if allowed), verifying checksums unless
/// `sources.verify` is off. Returns the set and the directory its files were read from.
pub fn load(
    kind: IdxDataset,
    split: Split,
    sources: &DataSources,
) -> Result<(ImageSet, PathBuf), DataError> {
    load_with_progress(kind, split, sources, &NoProgress)
}

/// [`load`], reporting download progress to `progress`.
pub fn load_with_progress(
    kind: IdxDataset,
    split: Split,
    sources: &DataSources,
    progress: &dyn DownloadProgress,
) -> Result<(ImageSet, PathBuf), DataError> {
    #[cfg(feature = "download")]
    let fetch = |cache: &Path| download_missing(kind, split, cache, sources, progress);
    #[cfg(feature = "download")]
    let fetch: Option<Fetch<'_>> = Some(&fetch);
    #[cfg(not(feature = "download"))]
    let fetch: Option<Fetch<'_>> = {
        let _ = progress;
        None
    };
    let located = locate_or_fetch(
        sources,
        |roots| locate(kind, split, roots),
        fetch,
        |tried| DataError::DataNotFound {
            dataset: format!("{kind} {split}"),
            files: split.file_names().map(|f| format!("{f} (or .gz)")).to_vec(),
            tried,
            hint: IDX_NOT_FOUND_HINT.into(),
        },
    )?;
    let set = load_files(kind, &located.images, &located.labels, sources.verify)?;
    Ok((set, located.dir))
}

/// Downloads the split's files that `cache` lacks into `<cache>/<kind>/`.
#[cfg(feature = "download")]
fn download_missing(
    kind: IdxDataset,
    split: Split,
    cache: &Path,
    sources: &DataSources,
    progress: &dyn DownloadProgress,
) -> Result<(), DataError> {
    let dir = cache.join(kind.name());
    let mirrors = sources.mirrors_for(kind);
    for name in split.file_names() {
        if !candidate_files(cache, kind.name(), name, true)
            .iter()
            .any(|p| p.is_file())
        {
            let sha256 = kind.sha256(name).filter(|_| sources.verify);
            let file = ExpectedFile { name, sha256 };
            crate::download::download_file(&dir, &mirrors, &file, progress)?;
        }
    }
    Ok(())
}

/// Reads, verifies (if `verify`) and parses an image file and a label file of `kind`.
///
/// The canonical checksum is chosen by file name (`.gz` stripped); a file with a
/// non-canonical name cannot be verified and is rejected when `verify` is on.
pub fn load_files(
    kind: IdxDataset,
    images_path: &Path,
    labels_path: &Path,
    verify: bool,
) -> Result<ImageSet, DataError> {
    // Structure first (a truncated file says "truncated"), then the checksum.
    let images_bytes = idx::read_file(images_path)?;
    let images = idx::parse_images(&images_bytes, images_path)?;
    verify_checksum(kind, images_path, &images_bytes, verify)?;
    drop(images_bytes);
    let labels_bytes = idx::read_file(labels_path)?;
    let labels = idx::parse_labels(&labels_bytes, labels_path)?;
    verify_checksum(kind, labels_path, &labels_bytes, verify)?;
    idx::same_count(images_path, images.count, labels_path, labels.len())?;
    let num_classes = kind.num_classes();
    idx::labels_below(labels_path, &labels, num_classes)?;
    let dims = Dims {
        channels: 1,
        height: images.rows,
        width: images.cols,
    };
    ImageSet::new(images.pixels, labels, dims, num_classes)
}

fn verify_checksum(
    kind: IdxDataset,
    path: &Path,
    bytes: &[u8],
    verify: bool,
) -> Result<(), DataError> {
    if verify {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let name = name.strip_suffix(".gz").unwrap_or(name);
        let expected = kind.sha256(name).ok_or_else(|| {
            DataError::Invalid(format!(
                "{}: no canonical checksum for a file named {name:?} in {kind}; \
                 disable verification to load custom data",
                path.display()
            ))
        })?;
        let found = sha256_hex(bytes);
        if found != expected {
            return Err(DataError::DigestMismatch {
                path: path.to_path_buf(),
                algorithm: "SHA-256 of the decompressed data",
                expected: expected.to_owned(),
                found,
            });
        }
    }
    Ok(())
}

/// The base URLs a mirror variable's value (`env_value`, e.g. of `$CAPSNET_SVHN_MIRROR`) names,
/// or `defaults` when it is unset or names none.
pub fn mirrors_or(env_value: Option<&std::ffi::OsStr>, defaults: &[&str]) -> Vec<String> {
    env_value
        .map(split_mirror_list)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| defaults.iter().map(|m| (*m).to_owned()).collect())
}

/// Base URLs from a mirror variable's value, separated by commas or whitespace.
pub(crate) fn split_mirror_list(value: &std::ffi::OsStr) -> Vec<String> {
    value
        .to_string_lossy()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{gz, write_split};

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.into())
    }

    #[test]
    fn names_and_parsing() {
        for kind in IdxDataset::ALL {
            assert_eq!(kind.name().parse::<IdxDataset>().unwrap(), kind);
            assert_eq!(kind.to_string(), kind.name());
        }
        assert_eq!(
            "Fashion_MNIST".parse::<IdxDataset>().unwrap(),
            IdxDataset::FashionMnist
        );
        let msg = "cifar".parse::<IdxDataset>().unwrap_err().to_string();
        assert!(
            msg.contains("cifar") && msg.contains("mnist, fashion-mnist"),
            "{msg}"
        );
        assert_eq!("test".parse::<Split>().unwrap(), Split::Test);
        assert!(
            "valid"
                .parse::<Split>()
                .unwrap_err()
                .to_string()
                .contains("train, test")
        );
    }

    #[test]
    fn canonical_tables_are_complete() {
        for kind in IdxDataset::ALL {
            for split in [Split::Train, Split::Test] {
                for name in split.file_names() {
                    let sha = kind.sha256(name).unwrap();
                    assert_eq!(sha.len(), 64);
                    assert!(
                        sha.bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    );
                }
            }
            assert!(!kind.mirrors().is_empty());
            assert!(kind.mirrors().iter().all(|m| m.ends_with('/')));
        }
        assert_ne!(
            IdxDataset::Mnist.sha256(TRAIN_IMAGES),
            IdxDataset::FashionMnist.sha256(TRAIN_IMAGES)
        );
        assert_eq!(
            IdxDataset::Mnist.mirrors()[0],
            "https://ossci-datasets.s3.amazonaws.com/mnist/"
        );
    }

    #[test]
    fn sha256_hex_matches_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn from_vars_reads_every_variable() {
        let s = DataSources::from_vars(
            Some("/exp".into()),
            vars(&[
                ("CAPSNET_DATA", "/env"),
                ("XDG_CACHE_HOME", "/xdg"),
                ("HOME", "/home/u"),
                ("CAPSNET_MNIST_MIRROR", "http://a/, http://b/"),
            ]),
        );
        assert_eq!(s.explicit, Some("/exp".into()));
        assert_eq!(s.env, Some("/env".into()));
        assert_eq!(s.cache, Some("/xdg/capsnet".into()));
        assert_eq!(s.mirrors, ["http://a/", "http://b/"]);
        assert_eq!(s.mirrors_for(IdxDataset::Mnist), ["http://a/", "http://b/"]);
        assert!(s.verify);
        assert_eq!(s.download, cfg!(feature = "download"));
        assert_eq!(
            s.roots(),
            [PathBuf::from("/exp"), "/env".into(), "/xdg/capsnet".into()]
        );
    }

    #[test]
    fn cache_falls_back_to_home_and_empty_vars_are_unset() {
        let s = DataSources::from_vars(
            None,
            vars(&[
                ("CAPSNET_DATA", ""),
                ("XDG_CACHE_HOME", "relative"),
                ("HOME", "/h"),
            ]),
        );
        assert_eq!(s.env, None);
        assert_eq!(s.cache, Some("/h/.cache/capsnet".into()));
        assert_eq!(s.roots(), [PathBuf::from("/h/.cache/capsnet")]);
        assert_eq!(
            s.mirrors_for(IdxDataset::FashionMnist),
            IdxDataset::FashionMnist.mirrors()
        );
        let none = DataSources::from_vars(None, vars(&[]));
        assert!(none.roots().is_empty());
    }

    #[test]
    fn roots_are_deduplicated_in_order() {
        let s = DataSources {
            explicit: Some("/a".into()),
            env: Some("/a".into()),
            cache: Some("/c".into()),
            ..DataSources::default()
        };
        assert_eq!(s.roots(), [PathBuf::from("/a"), "/c".into()]);
    }

    #[test]
    fn locate_prefers_earlier_roots_and_needs_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let (r1, r2, r3) = (
            dir.path().join("r1"),
            dir.path().join("r2"),
            dir.path().join("r3"),
        );
        // r1 has only the test images; r2 has both, flat and gzipped; r3 has both too.
        std::fs::create_dir_all(r1.join("mnist")).unwrap();
        std::fs::write(r1.join("mnist").join(TEST_IMAGES), b"x").unwrap();
        std::fs::create_dir_all(&r2).unwrap();
        std::fs::write(r2.join(format!("{TEST_IMAGES}.gz")), b"x").unwrap();
        std::fs::write(r2.join(TEST_LABELS), b"x").unwrap();
        std::fs::create_dir_all(r3.join("mnist")).unwrap();
        std::fs::write(r3.join("mnist").join(TEST_IMAGES), b"x").unwrap();
        std::fs::write(r3.join("mnist").join(TEST_LABELS), b"x").unwrap();

        let roots = [r1.clone(), r2.clone(), r3];
        let found = locate(IdxDataset::Mnist, Split::Test, &roots).unwrap();
        assert_eq!(found.images, r2.join(format!("{TEST_IMAGES}.gz")));
        assert_eq!(found.labels, r2.join(TEST_LABELS));
        assert_eq!(found.dir, r2);

        let tried = locate(IdxDataset::Mnist, Split::Train, &roots[..1]).unwrap_err();
        assert_eq!(tried.len(), 8);
        assert_eq!(tried[0], r1.join("mnist").join(TRAIN_IMAGES));
        assert_eq!(tried[7], r1.join(format!("{TRAIN_LABELS}.gz")));
        // Fashion-MNIST looks in its own sub-directory.
        let tried = locate(IdxDataset::FashionMnist, Split::Test, &roots[..1]).unwrap_err();
        assert_eq!(tried[0], r1.join("fashion-mnist").join(TEST_IMAGES));
    }

    #[test]
    fn not_found_lists_every_path_and_how_to_fix_it() {
        let dir = tempfile::tempdir().unwrap();
        let sources = DataSources {
            explicit: Some(dir.path().join("a")),
            cache: Some(dir.path().join("c")),
            download: false,
            ..DataSources::default()
        };
        let err = load(IdxDataset::Mnist, Split::Train, &sources).unwrap_err();
        let DataError::DataNotFound { tried, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(tried.len(), 16);
        let msg = err.to_string();
        for p in tried {
            assert!(msg.contains(&p.display().to_string()), "{msg}");
        }
        assert!(
            msg.contains("CAPSNET_DATA") && msg.contains("data.root"),
            "{msg}"
        );
        assert!(
            !dir.path().join("c").exists(),
            "nothing created when download is off"
        );
    }

    #[test]
    fn loads_fixture_without_verification_and_rejects_it_with_verification() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("mnist");
        let pixels: Vec<u8> = (0..3 * 28 * 28).map(|i| (i % 251) as u8).collect();
        write_split(&sub, Split::Test, &pixels, &[7, 2, 1], true);
        let mut sources = DataSources::at(dir.path());
        sources.verify = false;
        let (set, used) = load(IdxDataset::Mnist, Split::Test, &sources).unwrap();
        assert_eq!(used, sub);
        assert_eq!(set.len(), 3);
        assert_eq!(set.dims(), IdxDataset::Mnist.dims());
        assert_eq!(set.labels(), [7, 2, 1]);
        assert_eq!(set.image(1), &pixels[784..1568]);

        sources.verify = true;
        let err = load(IdxDataset::Mnist, Split::Test, &sources).unwrap_err();
        let DataError::DigestMismatch {
            path,
            expected,
            found,
            ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(path, &sub.join(format!("{TEST_IMAGES}.gz")));
        assert_eq!(expected, IdxDataset::Mnist.sha256(TEST_IMAGES).unwrap());
        assert_ne!(found, expected);
        assert!(err.to_string().contains("t10k-images-idx3-ubyte.gz"));
    }

    #[test]
    fn count_mismatch_and_bad_labels_name_the_files() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), Split::Train, &[0; 2 * 784], &[1, 2, 3], false);
        let images = dir.path().join(TRAIN_IMAGES);
        let labels = dir.path().join(TRAIN_LABELS);
        let err = load_files(IdxDataset::Mnist, &images, &labels, false).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::CountMismatch {
                    image_count: 2,
                    label_count: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(TRAIN_IMAGES) && msg.contains(TRAIN_LABELS),
            "{msg}"
        );

        let mut bytes = Vec::new();
        idx::write_idx_labels(&mut bytes, &[1, 10]).unwrap();
        std::fs::write(&labels, bytes).unwrap();
        let err = load_files(IdxDataset::Mnist, &images, &labels, false).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::BadLabel {
                    index: 1,
                    value: 10,
                    num_classes: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains(TRAIN_LABELS));
    }

    #[test]
    fn verification_needs_a_canonical_name() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("my-images.gz");
        let mut bytes = Vec::new();
        idx::write_idx_images(&mut bytes, 2, 2, &[0; 4]).unwrap();
        std::fs::write(&images, gz(&bytes)).unwrap();
        let err = load_files(IdxDataset::Mnist, &images, &images, true).unwrap_err();
        assert!(err.to_string().contains("my-images.gz"), "{err}");
    }

    #[test]
    fn image_set_checks_its_invariants() {
        let dims = Dims {
            channels: 1,
            height: 2,
            width: 2,
        };
        assert!(ImageSet::new(vec![0; 8], vec![0, 1], dims, 2).is_ok());
        assert!(ImageSet::new(vec![0; 7], vec![0, 1], dims, 2).is_err());
        assert!(ImageSet::new(vec![0; 8], vec![0, 2], dims, 2).is_err());
        let zero = Dims { width: 0, ..dims };
        assert!(ImageSet::new(vec![], vec![], zero, 2).is_err());
    }

    #[test]
    fn truncate_and_subset() {
        let dims = Dims {
            channels: 1,
            height: 1,
            width: 2,
        };
        let mut set = ImageSet::new(vec![0, 1, 2, 3, 4, 5], vec![0, 1, 2], dims, 3).unwrap();
        let sub = set.subset(&[2, 0, 2]).unwrap();
        assert_eq!(sub.images(), [4, 5, 0, 1, 4, 5]);
        assert_eq!(sub.labels(), [2, 0, 2]);
        assert_eq!(sub.dims(), dims);
        assert!(matches!(set.subset(&[3]), Err(DataError::Invalid(_))));
        set.truncate(5);
        assert_eq!(set.len(), 3);
        set.truncate(2);
        assert_eq!((set.len(), set.images()), (2, &[0, 1, 2, 3][..]));
        assert_eq!((set.image(1), set.label(1)), (&[2, 3][..], 1));
        set.truncate(0);
        assert!(set.is_empty() && set.images().is_empty());
    }

    #[test]
    fn balanced_subsets_are_balanced_seeded_nested_and_checked() {
        let dims = Dims {
            channels: 1,
            height: 1,
            width: 1,
        };
        // 3 classes with 10, 6 and 4 images; pixel = index, so images identify themselves.
        let labels: Vec<u8> = (0..20u8)
            .map(|i| [0, 0, 1, 0, 2, 1, 0, 0, 1, 2][i as usize % 10])
            .collect();
        let set = ImageSet::new((0..20).collect(), labels, dims, 3).unwrap();
        let counts = |s: &ImageSet| {
            let mut c = [0; 3];
            s.labels().iter().for_each(|&l| c[usize::from(l)] += 1);
            c
        };
        assert_eq!(counts(&set), [10, 6, 4]);
        let six = set.balanced_subset(6, 7).unwrap();
        assert_eq!(counts(&six), [2, 2, 2]);
        // Remainder to the lowest classes; original order kept; labels stay with their images.
        let eight = set.balanced_subset(8, 7).unwrap();
        assert_eq!(counts(&eight), [3, 3, 2]);
        assert!(eight.images().windows(2).all(|w| w[0] < w[1]));
        for (&px, &label) in eight.images().iter().zip(eight.labels()) {
            assert_eq!(label, set.label(usize::from(px)));
        }
        // Same seed: same images, and smaller subsets inside larger ones. Another seed differs.
        assert_eq!(set.balanced_subset(6, 7).unwrap(), six);
        assert!(six.images().iter().all(|px| eight.images().contains(px)));
        let other: Vec<ImageSet> = (0..8).map(|s| set.balanced_subset(6, s).unwrap()).collect();
        assert!(other.iter().any(|o| o != &six));
        // The whole set when asking for as many or more; errors name the class at fault.
        assert_eq!(set.balanced_subset(20, 1).unwrap(), set);
        assert_eq!(set.balanced_subset(99, 1).unwrap(), set);
        let err = set.balanced_subset(15, 1).unwrap_err().to_string();
        assert!(err.contains("class 2") && err.contains("only 4"), "{err}");
        assert!(set.balanced_subset(0, 1).is_err());
    }
}
