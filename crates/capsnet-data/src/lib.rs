//! Data for capsule-network experiments: the built-in datasets (MNIST, Fashion-MNIST,
//! CIFAR-10, SVHN, smallNORB), the datasets generated from MNIST, affNIST and a user's own
//! images, as plain `u8`/`f32` buffers, with no dependency on a tensor library.
//!
//! # Layout
//!
//! - [`dataset`]: what every dataset shares: [`Split`], [`Dims`], the in-memory [`ImageSet`],
//!   the [`DatasetFacts`] table, the cache directory and how files are looked for under a root.
//! - [`builtin`]: [`BuiltinDataset`], the built-in datasets and their facts (name as in
//!   experiment files, classes and class names, image shape, mirror variable and default
//!   mirrors, whether it can be downloaded, what verification checks).
//! - [`sources`]: [`DataSources`], the roots looked in, the per-dataset mirrors, and whether to
//!   download and verify.
//! - [`loader`]: the one loader, [`BuiltinDataset::load`] (split, sources, progress →
//!   [`Loaded`]: the images and their [`Provenance`]), [`load`] and [`load_smallnorb`].
//! - [`files`]: [`ExpectedFile`], SHA-256 and MD5 digests and the digest check, shared by the
//!   loaders and [`download`].
//! - [`download`]: fetch missing files from mirrors into the cache (feature `download`),
//!   with [`DownloadProgress`] reporting.
//! - [`mnist`], [`cifar`], [`svhn`], [`norb`]: each built-in dataset's facts, file names and
//!   digests, format, locating, reading and fetching: the MNIST family (IDX files, through
//!   [`idx`]), CIFAR-10 (binary batches, archive download, crops), SVHN (MATLAB v5 `.mat`
//!   files) and smallNORB (NORB matrix files, 48×48 downscale).
//! - [`idx`]: parse and write IDX files (raw or `.gz`), strictly: wrong magic numbers,
//!   truncated files and trailing bytes are errors naming the file.
//! - [`rng`]: a small seedable RNG ([`Rng`], xoshiro256**) whose state can be saved, and
//!   per-epoch permutations.
//! - [`augment`]: random translation with zero padding.
//! - [`efficient_augment`]: Efficient-CapsNet's MNIST training augmentation (rotate, shift
//!   within the margins, squish, erase) and its batch source [`EfficientAugmented`].
//! - [`batch`]: [`fill_batch`] into reused `f32` buffers, and a prefetching [`Loader`].
//! - [`multimnist`]: MultiMNIST (overlapping digit pairs, on the fly) and two-target accuracy.
//! - [`expanded`]: expanded MNIST (digits centred or placed at random on a larger canvas).
//! - [`affine`]: affNIST-like affine warps of digits and their seeded test-set generator.
//! - [`affnist`]: the real affNIST `.mat` files.
//! - [`image_folder`]: a user's folder of class folders (PNG, JPEG), decoded in parallel.
//! - [`mat`]: the MATLAB level-5 MAT-file reader behind the SVHN and affNIST loaders.
//!
//! # Where data comes from
//!
//! Every built-in dataset is loaded by the same route ([`BuiltinDataset::locate_or_fetch`]):
//! it looks for the files of a split (its own names, raw or `.gz` where the dataset is
//! distributed gzipped, in `<root>/<name>/` or directly in `<root>/`; CIFAR-10's in
//! `cifar-10-batches-bin/` under either) in these roots, and the first root that holds them
//! all wins:
//!
//! 1. the explicit root (experiment `data.root` / `--data-dir`),
//! 2. `$CAPSNET_DATA`,
//! 3. the cache, `$XDG_CACHE_HOME/capsnet` or else `$HOME/.cache/capsnet`;
//! 4. failing all three, the files are downloaded into `<cache>/<name>/` (feature
//!    `download`, on by default) from the dataset's mirrors, overridable with its variable:
//!    `$CAPSNET_MNIST_MIRROR` (MNIST and Fashion-MNIST), `$CAPSNET_CIFAR_MIRROR`,
//!    `$CAPSNET_SVHN_MIRROR`, `$CAPSNET_NORB_MIRROR` ([`DataSources::from_env`] reads them).
//!
//! Failing that, the error is [`DataError::DataNotFound`], listing every path looked at.
//! Unless [`DataSources::verify`] is off (for custom data), the files are checked against
//! the published digests ([`DataError::DigestMismatch`] otherwise): the SHA-256 of each
//! decompressed IDX file, the MD5 of each SVHN file, the SHA-256 of the CIFAR-10 archive on
//! download; smallNORB, with no published checksum, must have the canonical shapes.
//! [`Provenance`] says where the files were found, whether they were downloaded and verified.
//!
//! # Reproducibility
//!
//! The order of epoch `e` is [`epoch_permutation`]`(n, seed, e)` and the augmentation of
//! batch `b` draws from `Rng::derive(seed, &[STREAM_AUGMENT, e, b])`, so any batch can be
//! recomputed from `(seed, epoch, step)` alone and a killed run resumes exactly.

#![warn(missing_docs)]

pub mod affine;
pub mod affnist;
pub mod augment;
pub mod batch;
pub mod builtin;
pub mod cifar;
pub mod dataset;
pub mod download;
pub mod efficient_augment;
mod error;
pub mod expanded;
pub mod files;
pub mod idx;
pub mod image_folder;
pub mod loader;
pub mod mat;
pub mod mnist;
pub mod multimnist;
pub mod norb;
pub mod rng;
pub mod sources;
pub mod svhn;
#[cfg(any(test, feature = "test-server"))]
pub mod test_server;
#[cfg(test)]
mod test_util;

pub use augment::{Shift, shift_image, shift_map};
pub use batch::{
    Batch, BatchSource, CroppedImages, Loader, LoaderConfig, ShiftedImages, fill_batch, num_batches,
};
pub use builtin::BuiltinDataset;
pub use dataset::{DatasetFacts, Dims, ImageSet, Split};
pub use download::{DownloadProgress, NoProgress};
#[cfg(feature = "download")]
pub use download::{download_file, download_files};
pub use efficient_augment::EfficientAugmented;
pub use error::DataError;
pub use files::ExpectedFile;
pub use loader::{Loaded, Provenance, load, load_smallnorb};
pub use mnist::{IdxDataset, Located, load_files};
pub use rng::{Rng, STREAM_AUGMENT, STREAM_SHUFFLE, epoch_permutation, shuffle};
pub use sources::DataSources;
