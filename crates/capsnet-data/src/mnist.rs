//! The MNIST family (MNIST, Fashion-MNIST): 28×28 grey-scale images in 10 classes, in IDX
//! files. The canonical file names and SHA-256 sums, the datasets' [`DatasetFacts`], finding
//! a split's files ([`locate`]), reading and verifying them ([`load_files`]) and downloading
//! the missing ones.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::dataset::{DatasetFacts, locate_files};
use crate::files::{ExpectedFile, check_digest, sha256_hex};
use crate::{DataError, Dims, ImageSet, Split, idx};

/// Environment variable overriding the download mirrors: base URLs separated by commas or
/// whitespace, each followed by `<file>.gz`. Applies to every MNIST-family dataset.
pub const MIRROR_ENV: &str = "CAPSNET_MNIST_MIRROR";

/// MNIST's class names, by label: the digits.
pub const MNIST_CLASS_NAMES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
/// Fashion-MNIST's class names, by label: the article kinds.
pub const FASHION_MNIST_CLASS_NAMES: [&str; 10] = [
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
];
/// Shape of an MNIST-family image: 1×28×28.
pub const IDX_DIMS: Dims = Dims {
    channels: 1,
    height: 28,
    width: 28,
};

/// MNIST's facts.
pub const MNIST_FACTS: DatasetFacts = DatasetFacts {
    name: "mnist",
    class_names: &MNIST_CLASS_NAMES,
    dims: IDX_DIMS,
    mirror_env: MIRROR_ENV,
    mirrors: &[
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    fetchable: true,
    verification: "checksums verified",
};

/// Fashion-MNIST's facts (its mirrors are overridden by the same variable as MNIST's).
pub const FASHION_MNIST_FACTS: DatasetFacts = DatasetFacts {
    name: "fashion-mnist",
    class_names: &FASHION_MNIST_CLASS_NAMES,
    dims: IDX_DIMS,
    mirror_env: MIRROR_ENV,
    mirrors: &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    fetchable: true,
    verification: "checksums verified",
};

/// Canonical file names of `split` (the same for both datasets): `[images, labels]`.
pub fn split_files(split: Split) -> [&'static str; 2] {
    match split {
        Split::Train => [TRAIN_IMAGES, TRAIN_LABELS],
        Split::Test => [TEST_IMAGES, TEST_LABELS],
    }
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

    /// The dataset's facts: [`MNIST_FACTS`] or [`FASHION_MNIST_FACTS`].
    pub fn facts(self) -> &'static DatasetFacts {
        match self {
            Self::Mnist => &MNIST_FACTS,
            Self::FashionMnist => &FASHION_MNIST_FACTS,
        }
    }

    /// Short name, also the sub-directory of a data root: `mnist` or `fashion-mnist`.
    pub fn name(self) -> &'static str {
        self.facts().name
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
        self.facts().mirrors
    }

    /// Number of classes (10 for both).
    pub fn num_classes(self) -> usize {
        self.facts().num_classes()
    }

    /// Class names in label order: the digits for MNIST, the article kinds for Fashion-MNIST.
    pub fn class_names(self) -> [&'static str; 10] {
        match self {
            Self::Mnist => MNIST_CLASS_NAMES,
            Self::FashionMnist => FASHION_MNIST_CLASS_NAMES,
        }
    }

    /// Image shape (1×28×28 for both).
    pub fn dims(self) -> Dims {
        self.facts().dims
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

/// How to get the MNIST family's files when no root holds them.
pub const IDX_NOT_FOUND_HINT: &str = "Put the files there, set CAPSNET_DATA or data.root/--data-dir \
     to a directory holding them, or enable downloading";

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
    let paths = locate_files(roots, kind.name(), &split_files(split), true)?;
    let [images, labels]: [PathBuf; 2] = paths.try_into().expect("two files asked, two found");
    let dir = images.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(Located {
        images,
        labels,
        dir,
    })
}

/// The error when no root holds the split's files: every path looked at, and how to fix it.
pub(crate) fn not_found(kind: IdxDataset, split: Split, tried: Vec<PathBuf>) -> DataError {
    DataError::DataNotFound {
        dataset: format!("{kind} {split}"),
        files: split_files(split).map(|f| format!("{f} (or .gz)")).to_vec(),
        tried,
        hint: IDX_NOT_FOUND_HINT.into(),
    }
}

/// Downloads the split's files that `cache` lacks into `<cache>/<kind>/` from the first of
/// `mirrors` that serves each intact (its canonical SHA-256 checked when `verify`).
#[cfg(feature = "download")]
pub(crate) fn fetch(
    kind: IdxDataset,
    split: Split,
    cache: &Path,
    mirrors: &[String],
    verify: bool,
    progress: &dyn crate::DownloadProgress,
) -> Result<(), DataError> {
    let dir = cache.join(kind.name());
    for name in split_files(split) {
        if !crate::dataset::candidate_files(cache, kind.name(), name, true)
            .iter()
            .any(|p| p.is_file())
        {
            let sha256 = kind.sha256(name).filter(|_| verify);
            let file = ExpectedFile { name, sha256 };
            crate::download::download_file(&dir, mirrors, &file, progress)?;
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
        check_digest(
            path,
            "SHA-256 of the decompressed data",
            expected,
            sha256_hex(bytes),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{gz, write_split};
    use crate::{DataSources, load};

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
                for name in split_files(split) {
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
        let loaded = load(IdxDataset::Mnist, Split::Test, &sources).unwrap();
        let (set, used) = (loaded.images, loaded.provenance.dir);
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
}
