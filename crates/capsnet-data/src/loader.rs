//! One loader for every built-in dataset: [`BuiltinDataset::load`] takes a split, the
//! [`DataSources`] and a [`DownloadProgress`], and gives the images with their
//! [`Provenance`].
//!
//! Every dataset follows the same route ([`BuiltinDataset::locate_or_fetch`]): look for the
//! split's files in the roots of the sources, in order; failing that, when downloads are on
//! (feature `download`) and there is a cache, fetch them into `<cache>/<name>/` from the
//! dataset's mirrors ([`DataSources::mirrors_for`]) and look there; failing that,
//! [`DataError::DataNotFound`] with every path looked at. Each dataset brings only its own
//! way of locating, fetching and reading its files (in [`crate::mnist`], [`crate::cifar`],
//! [`crate::svhn`], [`crate::norb`]).

use std::path::{Path, PathBuf};

use crate::norb::NorbOptions;
use crate::{
    BuiltinDataset, DataError, DataSources, DownloadProgress, ImageSet, NoProgress, Split, cifar,
    mnist, norb, svhn,
};

/// A split as loaded: its images and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The images and labels.
    pub images: ImageSet,
    /// Where the files came from.
    pub provenance: Provenance,
}

/// Where a loaded split's files came from, and how they were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The dataset.
    pub dataset: BuiltinDataset,
    /// The split.
    pub split: Split,
    /// The directory the (first) file was read from.
    pub dir: PathBuf,
    /// The files read, in order (raw or `.gz`, as found).
    pub files: Vec<PathBuf>,
    /// Whether the files were downloaded into the cache by this load.
    pub downloaded: bool,
    /// Whether the files were verified (digest or canonical shape, see
    /// [`crate::DatasetFacts::verification`]).
    pub verified: bool,
}

impl Provenance {
    /// What was checked, as `capsnet download` reports it: the dataset's
    /// [`verification`](crate::DatasetFacts::verification), or `"not verified"`.
    pub fn check(&self) -> &'static str {
        if self.verified {
            self.dataset.facts().verification
        } else {
            "not verified"
        }
    }
}

/// Loads a split of `dataset` from `sources` without progress reporting:
/// [`BuiltinDataset::load`] with [`NoProgress`].
pub fn load(
    dataset: impl Into<BuiltinDataset>,
    split: Split,
    sources: &DataSources,
) -> Result<Loaded, DataError> {
    dataset.into().load(split, sources, &NoProgress)
}

/// Loads a smallNORB split shaped by `options` (cameras, size), by the same route as every
/// built-in dataset; [`BuiltinDataset::SmallNorb`] loads it shaped as the paper does
/// ([`NorbOptions::PAPER`]).
pub fn load_smallnorb(
    split: Split,
    sources: &DataSources,
    options: NorbOptions,
    progress: &dyn DownloadProgress,
) -> Result<Loaded, DataError> {
    let provenance = BuiltinDataset::SmallNorb.locate_or_fetch(split, sources, progress)?;
    let [dat, cat] = &provenance.files[..] else {
        unreachable!("smallNORB is located as two files")
    };
    let images = norb::load_norb_files(dat, cat, options, sources.verify)?;
    Ok(Loaded { images, provenance })
}

impl BuiltinDataset {
    /// Loads a split: finds its files in `sources` (downloading them into the cache when
    /// allowed, reporting to `progress`), reads them and, unless `sources.verify` is off,
    /// verifies them (see the [module docs](crate::loader)).
    pub fn load(
        self,
        split: Split,
        sources: &DataSources,
        progress: &dyn DownloadProgress,
    ) -> Result<Loaded, DataError> {
        let provenance = self.locate_or_fetch(split, sources, progress)?;
        let images = self.read(split, &provenance.files, sources.verify)?;
        Ok(Loaded { images, provenance })
    }

    /// The one route by which every dataset finds a split's files: [`Self::locate`] in the
    /// roots of `sources`; failing that, when downloads are on and there is a cache, fetch
    /// into the cache and locate there; failing that, [`DataError::DataNotFound`].
    pub fn locate_or_fetch(
        self,
        split: Split,
        sources: &DataSources,
        progress: &dyn DownloadProgress,
    ) -> Result<Provenance, DataError> {
        let (files, downloaded) = match self.locate(split, &sources.roots()) {
            Ok(files) => (files, false),
            Err(tried) => match (&sources.cache, sources.download) {
                (Some(cache), true) if self.fetch(split, cache, sources, progress)? => {
                    let files = self
                        .locate(split, std::slice::from_ref(cache))
                        .map_err(|tried| self.not_found(split, tried, sources))?;
                    (files, true)
                }
                _ => return Err(self.not_found(split, tried, sources)),
            },
        };
        let dir = files[0].parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Provenance {
            dataset: self,
            split,
            dir,
            files,
            downloaded,
            verified: sources.verify,
        })
    }

    /// The split's files in the first of `roots` that holds them all, in reading order; on
    /// failure, every path looked at.
    pub fn locate(self, split: Split, roots: &[PathBuf]) -> Result<Vec<PathBuf>, Vec<PathBuf>> {
        match self {
            Self::Mnist | Self::FashionMnist => {
                let kind = self.idx().expect("an MNIST-family dataset");
                mnist::locate(kind, split, roots).map(|found| vec![found.images, found.labels])
            }
            Self::Cifar10 => cifar::locate_cifar10(split, roots).map(|dir| {
                cifar::cifar10_files(split)
                    .iter()
                    .map(|f| dir.join(f))
                    .collect()
            }),
            Self::Svhn => svhn::locate_svhn(split, roots).map(|path| vec![path]),
            Self::SmallNorb => norb::locate_norb(split, roots).map(Vec::from),
        }
    }

    /// Reads (and with `verify`, verifies) the files [`Self::locate`] found.
    fn read(self, split: Split, files: &[PathBuf], verify: bool) -> Result<ImageSet, DataError> {
        match (self, files) {
            (Self::Mnist | Self::FashionMnist, [images, labels]) => {
                let kind = self.idx().expect("an MNIST-family dataset");
                mnist::load_files(kind, images, labels, verify)
            }
            (Self::Cifar10, [first, ..]) => {
                let dir = first.parent().unwrap_or(Path::new(""));
                cifar::load_cifar10_dir(dir, split, verify)
            }
            (Self::Svhn, [path]) => svhn::load_svhn_file(path, verify),
            (Self::SmallNorb, [dat, cat]) => {
                norb::load_norb_files(dat, cat, NorbOptions::PAPER, verify)
            }
            _ => unreachable!("{self} is located as {} files", files.len()),
        }
    }

    /// Fetches the split's files into the cache from the dataset's mirrors; `Ok(false)` when
    /// nothing can be fetched (no `download` feature).
    #[cfg(feature = "download")]
    fn fetch(
        self,
        split: Split,
        cache: &Path,
        sources: &DataSources,
        progress: &dyn DownloadProgress,
    ) -> Result<bool, DataError> {
        let mirrors = sources.mirrors_for(self);
        let verify = sources.verify;
        match self {
            Self::Mnist | Self::FashionMnist => {
                let kind = self.idx().expect("an MNIST-family dataset");
                mnist::fetch(kind, split, cache, &mirrors, verify, progress)?;
            }
            Self::Cifar10 => cifar::fetch(cache, &mirrors, verify, progress)?,
            Self::Svhn => svhn::fetch(split, cache, &mirrors, verify, progress)?,
            Self::SmallNorb => norb::fetch(split, cache, &mirrors, progress)?,
        }
        Ok(true)
    }

    /// Without the `download` feature nothing is fetched.
    #[cfg(not(feature = "download"))]
    fn fetch(
        self,
        _split: Split,
        _cache: &Path,
        _sources: &DataSources,
        _progress: &dyn DownloadProgress,
    ) -> Result<bool, DataError> {
        Ok(false)
    }

    /// [`DataError::DataNotFound`] for the split: every path looked at, and the dataset's
    /// advice.
    fn not_found(self, split: Split, tried: Vec<PathBuf>, sources: &DataSources) -> DataError {
        match self {
            Self::Mnist | Self::FashionMnist => {
                mnist::not_found(self.idx().expect("an MNIST-family dataset"), split, tried)
            }
            Self::Cifar10 => cifar::not_found(split, tried, sources.download),
            Self::Svhn => svhn::not_found(split, tried),
            Self::SmallNorb => norb::not_found(split, tried),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IdxDataset;
    use crate::mnist::split_files;
    use crate::test_util::write_split;

    #[test]
    fn provenance_names_the_files_and_how_they_were_checked() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("mnist");
        write_split(&sub, Split::Test, &[0; 2 * 784], &[1, 2], true);
        let mut sources = DataSources::at(dir.path());
        sources.verify = false;
        let loaded = load(IdxDataset::Mnist, Split::Test, &sources).unwrap();
        assert_eq!(loaded.images.labels(), [1, 2]);
        let p = &loaded.provenance;
        assert_eq!((p.dataset, p.split), (BuiltinDataset::Mnist, Split::Test));
        assert_eq!(p.dir, sub);
        let expected: Vec<PathBuf> = split_files(Split::Test)
            .iter()
            .map(|f| sub.join(format!("{f}.gz")))
            .collect();
        assert_eq!(p.files, expected);
        assert!(!p.downloaded && !p.verified);
        assert_eq!(p.check(), "not verified");
        let verified = Provenance {
            verified: true,
            ..p.clone()
        };
        assert_eq!(verified.check(), "checksums verified");
        let svhn = Provenance {
            dataset: BuiltinDataset::Svhn,
            ..verified
        };
        assert_eq!(svhn.check(), "MD5 verified");
    }

    #[test]
    fn without_a_cache_nothing_is_fetched_and_every_path_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let sources = DataSources {
            explicit: Some(dir.path().to_path_buf()),
            download: true,
            ..DataSources::default()
        };
        for dataset in BuiltinDataset::ALL {
            let err = dataset
                .load(Split::Test, &sources, &NoProgress)
                .unwrap_err();
            let DataError::DataNotFound {
                dataset: name,
                tried,
                ..
            } = &err
            else {
                panic!("{err:?}")
            };
            assert!(name.starts_with(dataset.name()), "{name}");
            assert!(!tried.is_empty() && tried.iter().all(|p| p.starts_with(dir.path())));
        }
    }
}
