//! Data for capsule-network experiments: the MNIST family (MNIST, Fashion-MNIST) as plain
//! `u8`/`f32` buffers, with no dependency on a tensor library.
//!
//! # Layout
//!
//! - [`idx`]: parse and write IDX files (raw or `.gz`), strictly: wrong magic numbers,
//!   truncated files and trailing bytes are errors naming the file.
//! - [`dataset`]: [`IdxDataset`], [`Split`], the in-memory [`ImageSet`], the canonical
//!   file names and SHA-256 sums, [`DataSources`] and [`load`].
//! - [`download`]: fetch missing files from mirrors into the cache (feature `download`),
//!   with [`DownloadProgress`] reporting.
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
//! - [`cifar`], [`norb`], [`svhn`]: CIFAR-10 (binary batches, archive download, crops),
//!   smallNORB (NORB matrix files, 48×48 downscale) and SVHN (MATLAB v5 `.mat` files).
//! - [`image_folder`]: a user's folder of class folders (PNG, JPEG), decoded in parallel.
//! - [`mat`]: the MATLAB level-5 MAT-file reader behind the SVHN and affNIST loaders.
//!
//! # Where data comes from
//!
//! [`load`] looks for the two files of a split (`<file>` or `<file>.gz`, in
//! `<root>/<dataset>/` or directly in `<root>/`) in these roots, and the first root that
//! holds both wins:
//!
//! 1. the explicit root (experiment `data.root` / `--data-dir`),
//! 2. `$CAPSNET_DATA`,
//! 3. the cache, `$XDG_CACHE_HOME/capsnet` or else `$HOME/.cache/capsnet`;
//! 4. failing all three, the files are downloaded into `<cache>/<dataset>/` (feature
//!    `download`, on by default; mirrors overridable with `$CAPSNET_MNIST_MIRROR`).
//!
//! The SHA-256 of each decompressed file is checked against the canonical value unless
//! [`DataSources::verify`] is off (for custom data).
//!
//! Every dataset's loader follows this route through one function,
//! [`dataset::locate_or_fetch`], with its own way of locating its files (most with
//! [`dataset::locate_files`]) and of fetching them (MNIST, Fashion-MNIST and CIFAR-10 download;
//! smallNORB and SVHN do not).
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
