//! The shapes every dataset shares: [`Split`], [`Dims`], the in-memory [`ImageSet`], the
//! [`DatasetFacts`] table each built-in dataset fills in, the cache directory, and how files
//! are looked for under a data root ([`candidate_files`], [`locate_files`]).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::DataError;

/// Environment variable naming a data root (step 2 of the resolution order).
pub const DATA_ENV: &str = "CAPSNET_DATA";

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
        if n >= self.len() && n > 0 {
            return Ok(self.clone());
        }
        self.subset(&self.balanced_indices(n, seed, crate::rng::STREAM_SUBSET, "subset")?)
    }

    /// Splits the set in two, class-balanced: `n` images drawn like
    /// [`ImageSet::balanced_subset`] (on its own random stream, so a validation split of a
    /// training subset is not correlated with the subset's draw) and the rest. Both keep the
    /// original order: `(held_out, rest)`.
    ///
    /// Fails with [`DataError::Invalid`] if `n` is zero, leaves nothing, or a class has fewer
    /// images than its share plus one (every class keeps at least one training image).
    pub fn split_balanced(&self, n: usize, seed: u64) -> Result<(Self, Self), DataError> {
        if n >= self.len() {
            return Err(DataError::Invalid(format!(
                "holding out {n} of {} images leaves nothing to train on",
                self.len()
            )));
        }
        let held =
            self.balanced_indices(n, seed, crate::rng::STREAM_VALIDATION, "held-out split")?;
        let mut is_held = vec![false; self.len()];
        for &i in &held {
            is_held[i] = true;
        }
        let rest: Vec<usize> = (0..self.len()).filter(|&i| !is_held[i]).collect();
        let mut counts = vec![0usize; self.num_classes];
        for &i in &rest {
            counts[usize::from(self.labels[i])] += 1;
        }
        let present: Vec<bool> = {
            let mut p = vec![false; self.num_classes];
            for &l in &self.labels {
                p[usize::from(l)] = true;
            }
            p
        };
        if let Some(class) = (0..self.num_classes).find(|&c| present[c] && counts[c] == 0) {
            return Err(DataError::Invalid(format!(
                "holding out {n} of {} images leaves no image of class {class} to train on",
                self.len()
            )));
        }
        Ok((self.subset(&held)?, self.subset(&rest)?))
    }

    /// The sorted indices of a class-balanced draw of `n` images on random stream `stream`
    /// (`what` names the draw in errors).
    fn balanced_indices(
        &self,
        n: usize,
        seed: u64,
        stream: u64,
        what: &str,
    ) -> Result<Vec<usize>, DataError> {
        if n == 0 {
            return Err(DataError::Invalid(format!(
                "a balanced {what} needs at least one image"
            )));
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
                    "a balanced {what} of {n} images needs {share} of class {class}, but the set \
                     has only {}",
                    indices.len()
                )));
            }
            crate::rng::shuffle(
                &mut indices,
                &mut crate::rng::Rng::derive(seed, &[stream, class as u64]),
            );
            chosen.extend_from_slice(&indices[..share]);
        }
        chosen.sort_unstable();
        Ok(chosen)
    }
}

/// What is known of a built-in dataset before any file is read: one table per dataset, in its
/// module ([`crate::mnist::MNIST_FACTS`], [`crate::cifar::CIFAR10_FACTS`], …), all reached
/// through [`crate::BuiltinDataset::facts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetFacts {
    /// Name in experiment files (`data.dataset`) and on the command line; also the
    /// sub-directory of a data root (and of the cache) holding the dataset's files.
    pub name: &'static str,
    /// Class names in label order; their number is the number of classes.
    pub class_names: &'static [&'static str],
    /// Shape of an image as [`crate::BuiltinDataset::load`] gives it.
    pub dims: Dims,
    /// Environment variable overriding [`DatasetFacts::mirrors`]: base URLs separated by
    /// commas or whitespace (read by [`crate::DataSources::from_env`]).
    pub mirror_env: &'static str,
    /// Download mirrors, in order of preference.
    pub mirrors: &'static [&'static str],
    /// Whether missing files can be downloaded (feature `download`).
    pub fetchable: bool,
    /// What loading checks with verification on, as `capsnet download` reports it
    /// (e.g. `"MD5 verified"`).
    pub verification: &'static str,
}

impl DatasetFacts {
    /// Number of classes: every label is below it.
    pub const fn num_classes(&self) -> usize {
        self.class_names.len()
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// 20 one-pixel images of 3 classes (10, 6 and 4 images); pixel = index, so images
    /// identify themselves.
    fn three_classes() -> ImageSet {
        let dims = Dims {
            channels: 1,
            height: 1,
            width: 1,
        };
        let labels: Vec<u8> = (0..20u8)
            .map(|i| [0, 0, 1, 0, 2, 1, 0, 0, 1, 2][i as usize % 10])
            .collect();
        ImageSet::new((0..20).collect(), labels, dims, 3).unwrap()
    }

    #[test]
    fn balanced_subsets_are_balanced_seeded_nested_and_checked() {
        let set = three_classes();
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

    #[test]
    fn balanced_splits_partition_the_set_and_keep_every_class() {
        let set = three_classes();
        let (held, rest) = set.split_balanced(6, 3).unwrap();
        assert_eq!((held.len(), rest.len()), (6, 14));
        let mut all: Vec<u8> = held.images().iter().chain(rest.images()).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..20).collect::<Vec<u8>>(), "a partition of the set");
        let mut counts = [0; 3];
        held.labels()
            .iter()
            .for_each(|&l| counts[usize::from(l)] += 1);
        assert_eq!(counts, [2, 2, 2], "balanced");
        // Seeded, and on another stream than the subset's draw.
        assert_eq!(set.split_balanced(6, 3).unwrap().0, held);
        let draws: Vec<ImageSet> = (0..8)
            .map(|s| set.split_balanced(6, s).unwrap().0)
            .collect();
        assert!(draws.iter().any(|d| d != &held));
        assert!(
            (0..8)
                .any(|s| set.split_balanced(6, s).unwrap().0 != set.balanced_subset(6, s).unwrap())
        );
        // Errors: nothing held out, nothing left, a class emptied.
        assert!(set.split_balanced(0, 1).is_err());
        let err = set.split_balanced(20, 1).unwrap_err().to_string();
        assert!(err.contains("leaves nothing"), "{err}");
        let err = set.split_balanced(12, 1).unwrap_err().to_string();
        assert!(err.contains("class 2"), "{err}");
    }
}
