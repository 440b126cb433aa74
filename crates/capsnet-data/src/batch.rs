//! Turning an [`ImageSet`] into `f32` batches: [`fill_batch`] into reused buffers, and a
//! [`Loader`] that walks an epoch on a background thread.
//!
//! The order of an epoch and the augmentation of each batch depend only on
//! `(seed, epoch, batch index)`, so a run resumed at batch `k` sees exactly the batches a
//! full pass would have produced from `k` on.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use crate::augment::{Shift, shift_map};
use crate::rng::{STREAM_AUGMENT, epoch_permutation};
use crate::{DataError, Dims, ImageSet, Rng};

/// Fills `images_out` with the images at `indices` as `f32` in `[0, 1]` (pixel / 255),
/// shaped `[B, C, H, W]`, and `labels_out` with their labels.
///
/// With `shift = Some((max_px, rng))` each image is translated by a random
/// [`Shift::random`]`(max_px, rng)` with zero padding. Both buffers are cleared first and
/// reuse their capacity, so a steady state allocates nothing.
///
/// Fails with [`DataError::Invalid`] (leaving the buffers untouched) if an index is out of
/// range.
pub fn fill_batch(
    set: &ImageSet,
    indices: &[u32],
    shift: Option<(u32, &mut Rng)>,
    images_out: &mut Vec<f32>,
    labels_out: &mut Vec<i64>,
) -> Result<(), DataError> {
    check_indices(set.len(), indices)?;
    fill_valid(set, indices, shift, images_out, labels_out);
    Ok(())
}

/// [`fill_batch`] for indices known to be in range.
fn fill_valid(
    set: &ImageSet,
    indices: &[u32],
    mut shift: Option<(u32, &mut Rng)>,
    images_out: &mut Vec<f32>,
    labels_out: &mut Vec<i64>,
) {
    let dims = set.dims();
    images_out.clear();
    images_out.resize(indices.len() * dims.size(), 0.0);
    labels_out.clear();
    labels_out.extend(indices.iter().map(|&i| i64::from(set.label(i as usize))));
    for (&i, out) in indices.iter().zip(images_out.chunks_exact_mut(dims.size())) {
        let s = match &mut shift {
            Some((max_px, rng)) => Shift::random(*max_px, rng),
            None => Shift::NONE,
        };
        shift_map(set.image(i as usize), out, dims, s, 0.0, |p| {
            f32::from(p) / 255.0
        });
    }
}

/// Number of batches of `batch_size` in an epoch over `len` items; with `drop_last` a
/// final partial batch is not counted.
pub fn num_batches(len: usize, batch_size: usize, drop_last: bool) -> usize {
    match batch_size {
        0 => 0,
        b if drop_last => len / b,
        b => len.div_ceil(b),
    }
}

/// One batch: `len` images as `f32` `[len, C, H, W]` and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Pixels in `[0, 1]`, `len × C × H × W`.
    pub images: Vec<f32>,
    /// Class labels, `len × targets` of them (example-major).
    pub labels: Vec<i64>,
    /// Labels per example: 1, or 2 for MultiMNIST.
    pub targets: usize,
    /// Per-target images (`len × targets × C × H × W`, example-major) for sources whose
    /// examples are made of parts (MultiMNIST: each digit alone); empty otherwise.
    pub parts: Vec<f32>,
    /// Number of images (less than the batch size only for a final partial batch).
    pub len: usize,
    /// Position of the batch in the epoch (0-based).
    pub index: usize,
    /// Shape of each image.
    pub dims: Dims,
}

impl Batch {
    /// An empty batch of images shaped `dims` with `targets` labels each.
    pub fn empty(dims: Dims, targets: usize) -> Self {
        Self {
            images: Vec::new(),
            labels: Vec::new(),
            targets,
            parts: Vec::new(),
            len: 0,
            index: 0,
            dims,
        }
    }

    /// `[len, C, H, W]`.
    pub fn shape(&self) -> [usize; 4] {
        [
            self.len,
            self.dims.channels,
            self.dims.height,
            self.dims.width,
        ]
    }
}

/// Anything a [`Loader`] can draw batches from: a fixed set of examples, each of which can be
/// rendered (with optional random augmentation) into a [`Batch`].
pub trait BatchSource: Send + Sync {
    /// Number of examples.
    fn len(&self) -> usize;
    /// Whether there are no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Shape of each produced image.
    fn dims(&self) -> Dims;
    /// Labels per example (1, or 2 for MultiMNIST).
    fn targets(&self) -> usize {
        1
    }
    /// Fills `batch.images`, `batch.labels` (and `batch.parts` where the source has them) with
    /// the examples at `indices`, all in range. `augment` is the batch's random stream, `None`
    /// for deterministic rendering (evaluation).
    fn fill(
        &self,
        indices: &[u32],
        augment: Option<&mut Rng>,
        batch: &mut Batch,
    ) -> Result<(), DataError>;
}

/// An [`ImageSet`] with optional random translation (MNIST's ±2 px shifts).
#[derive(Debug, Clone)]
pub struct ShiftedImages {
    /// The images.
    pub set: Arc<ImageSet>,
    /// Maximum shift in x and y when augmenting; 0 disables it.
    pub shift_px: u32,
}

impl BatchSource for ShiftedImages {
    fn len(&self) -> usize {
        self.set.len()
    }
    fn dims(&self) -> Dims {
        self.set.dims()
    }
    fn fill(
        &self,
        indices: &[u32],
        augment: Option<&mut Rng>,
        batch: &mut Batch,
    ) -> Result<(), DataError> {
        let shift = augment
            .filter(|_| self.shift_px > 0)
            .map(|rng| (self.shift_px, rng));
        fill_batch(
            &self.set,
            indices,
            shift,
            &mut batch.images,
            &mut batch.labels,
        )
    }
}

/// Square crops of an [`ImageSet`] (CIFAR-10's 24×24 patches, smallNORB's 32×32): a uniformly
/// random crop (and, with `flip`, a random left-right mirror) when augmenting, the central crop
/// otherwise.
#[derive(Debug, Clone)]
pub struct CroppedImages {
    /// The images.
    pub set: Arc<ImageSet>,
    /// Side of the square crop (at most the image's height and width).
    pub crop: usize,
    /// Mirror left-right with probability ½ when augmenting.
    pub flip: bool,
}

impl CroppedImages {
    /// Fails with [`DataError::Invalid`] if the crop is 0 or larger than the images.
    pub fn new(set: Arc<ImageSet>, crop: usize, flip: bool) -> Result<Self, DataError> {
        let dims = set.dims();
        if crop == 0 || crop > dims.height || crop > dims.width {
            return Err(DataError::Invalid(format!(
                "crop {crop} does not fit images of {}×{}",
                dims.height, dims.width
            )));
        }
        Ok(Self { set, crop, flip })
    }
}

impl BatchSource for CroppedImages {
    fn len(&self) -> usize {
        self.set.len()
    }
    fn dims(&self) -> Dims {
        Dims {
            channels: self.set.dims().channels,
            height: self.crop,
            width: self.crop,
        }
    }
    fn fill(
        &self,
        indices: &[u32],
        mut augment: Option<&mut Rng>,
        batch: &mut Batch,
    ) -> Result<(), DataError> {
        check_indices(self.set.len(), indices)?;
        let src = self.set.dims();
        let (c, k) = (src.channels, self.crop);
        batch.images.clear();
        batch.images.reserve(indices.len() * c * k * k);
        batch.labels.clear();
        for &i in indices {
            let image = self.set.image(i as usize);
            let (y0, x0, flip) = match augment.as_deref_mut() {
                Some(rng) => (
                    rng.below((src.height - k + 1) as u64) as usize,
                    rng.below((src.width - k + 1) as u64) as usize,
                    self.flip && rng.below(2) == 1,
                ),
                None => ((src.height - k) / 2, (src.width - k) / 2, false),
            };
            for ch in 0..c {
                for y in 0..k {
                    let row = (ch * src.height + y0 + y) * src.width + x0;
                    let row = &image[row..row + k];
                    if flip {
                        batch
                            .images
                            .extend(row.iter().rev().map(|&p| f32::from(p) / 255.0));
                    } else {
                        batch
                            .images
                            .extend(row.iter().map(|&p| f32::from(p) / 255.0));
                    }
                }
            }
            batch.labels.push(i64::from(self.set.label(i as usize)));
        }
        Ok(())
    }
}

/// [`DataError::Invalid`] if an index is not below `len`.
pub(crate) fn check_indices(len: usize, indices: &[u32]) -> Result<(), DataError> {
    match indices.iter().find(|&&i| i as usize >= len) {
        Some(bad) => Err(DataError::Invalid(format!(
            "batch index {bad} out of range for a set of {len} examples"
        ))),
        None => Ok(()),
    }
}

/// How a [`Loader`] walks an epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Images per batch (> 0).
    pub batch_size: usize,
    /// Run seed.
    pub seed: u64,
    /// Epoch number; with `seed` it fixes the order and the augmentation.
    pub epoch: u64,
    /// Visit the images in a random order ([`epoch_permutation`]) rather than in order.
    pub shuffle: bool,
    /// Draw random augmentation (training); off renders every example deterministically.
    pub augment: bool,
    /// Skip a final partial batch.
    pub drop_last: bool,
    /// First batch to produce (to resume mid-epoch).
    pub start_batch: usize,
    /// Batches prepared ahead of the consumer (at least 1).
    pub prefetch: usize,
}

impl LoaderConfig {
    /// In order, no augmentation, keep the last partial batch, start at 0, prefetch 2.
    pub fn new(batch_size: usize) -> Self {
        Self {
            batch_size,
            seed: 0,
            epoch: 0,
            shuffle: false,
            augment: false,
            drop_last: false,
            start_batch: 0,
            prefetch: 2,
        }
    }
}

/// Iterates over the batches of one epoch, prepared on a background thread.
///
/// Up to [`LoaderConfig::prefetch`] batches wait in a bounded channel. Hand finished
/// batches back with [`Loader::recycle`] and their buffers are reused, so the steady state
/// allocates nothing. Dropping the loader stops the thread.
#[derive(Debug)]
pub struct Loader {
    batches: Receiver<Result<Batch, DataError>>,
    recycled: Sender<Batch>,
    worker: Option<JoinHandle<()>>,
    num_batches: usize,
    remaining: usize,
}

impl Loader {
    /// Starts preparing batches `config.start_batch..` of an epoch over any [`BatchSource`]
    /// (images as stored with their shifts: [`ShiftedImages`]; crops: [`CroppedImages`]).
    ///
    /// Fails with [`DataError::Invalid`] if `batch_size` is 0 or the source has more than
    /// `u32::MAX` examples.
    pub fn from_source(set: Arc<dyn BatchSource>, config: LoaderConfig) -> Result<Self, DataError> {
        if config.batch_size == 0 {
            return Err(DataError::Invalid("batch size must be positive".into()));
        }
        let n = u32::try_from(set.len())
            .map_err(|_| DataError::Invalid(format!("{} images exceed u32 indices", set.len())))?;
        let num_batches = num_batches(set.len(), config.batch_size, config.drop_last);
        let (tx, batches) = mpsc::sync_channel(config.prefetch.max(1));
        let (recycled, recycled_rx) = mpsc::channel();
        let remaining = num_batches.saturating_sub(config.start_batch);
        let worker = std::thread::Builder::new()
            .name("capsnet-loader".into())
            .spawn(move || produce(&*set, n, &config, num_batches, &tx, &recycled_rx))
            .map_err(|e| DataError::Invalid(format!("cannot start the loader thread: {e}")))?;
        Ok(Self {
            batches,
            recycled,
            worker: Some(worker),
            num_batches,
            remaining,
        })
    }

    /// Batches in the whole epoch (including those skipped by `start_batch`).
    pub fn num_batches(&self) -> usize {
        self.num_batches
    }

    /// Returns a batch's buffers for reuse by a later batch.
    pub fn recycle(&self, batch: Batch) {
        // If the worker has finished there is nothing to reuse them for.
        let _ = self.recycled.send(batch);
    }
}

/// The loader thread's body.
fn produce(
    set: &dyn BatchSource,
    n: u32,
    config: &LoaderConfig,
    num_batches: usize,
    out: &SyncSender<Result<Batch, DataError>>,
    recycled: &Receiver<Batch>,
) {
    let order: Vec<u32> = if config.shuffle {
        epoch_permutation(n as usize, config.seed, config.epoch)
    } else {
        (0..n).collect()
    };
    let bs = config.batch_size;
    for index in config.start_batch..num_batches {
        let indices = &order[index * bs..order.len().min((index + 1) * bs)];
        let mut batch = recycled
            .try_recv()
            .unwrap_or_else(|_| Batch::empty(set.dims(), set.targets()));
        let mut rng = Rng::derive(config.seed, &[STREAM_AUGMENT, config.epoch, index as u64]);
        let augment = config.augment.then_some(&mut rng);
        batch.parts.clear();
        let filled = set.fill(indices, augment, &mut batch).map(|()| {
            batch.len = indices.len();
            batch.index = index;
            batch.dims = set.dims();
            batch.targets = set.targets();
            batch
        });
        let failed = filled.is_err();
        if out.send(filled).is_err() || failed {
            return; // the loader was dropped, or the error was passed on
        }
    }
}

impl Iterator for Loader {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        match self.batches.recv() {
            Ok(Ok(batch)) => {
                self.remaining -= 1;
                Some(Ok(batch))
            }
            Ok(Err(e)) => {
                self.remaining = 0;
                Some(Err(e))
            }
            Err(_) => {
                // The worker stopped early: it can only have panicked; pass the panic on.
                self.remaining = 0;
                if let Some(Err(panic)) = self.worker.take().map(JoinHandle::join) {
                    std::panic::resume_unwind(panic);
                }
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Loader {}

impl Drop for Loader {
    fn drop(&mut self) {
        // Disconnect the channel first so a worker blocked on `send` returns, then join it.
        let (_, closed) = mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.batches, closed));
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` 1×2×3 images; image `i` holds `i` in its first two pixels (big-endian) and
    /// 255 elsewhere, so batches can be decoded back to indices.
    fn indexed_set(n: usize) -> Arc<ImageSet> {
        let dims = Dims {
            channels: 1,
            height: 2,
            width: 3,
        };
        let mut images = Vec::new();
        for i in 0..n as u16 {
            let [hi, lo] = i.to_be_bytes();
            images.extend([hi, lo, 255, 255, 255, 255]);
        }
        let labels = (0..n).map(|i| (i % 10) as u8).collect();
        Arc::new(ImageSet::new(images, labels, dims, 10).unwrap())
    }

    fn decode(batch: &Batch) -> Vec<usize> {
        batch
            .images
            .chunks_exact(6)
            .map(|img| {
                let byte = |x: f32| (x * 255.0).round() as usize;
                byte(img[0]) * 256 + byte(img[1])
            })
            .collect()
    }

    /// The test images as a source: shifted by up to one pixel when `config` augments.
    fn source(set: &Arc<ImageSet>, config: &LoaderConfig) -> Arc<dyn BatchSource> {
        Arc::new(ShiftedImages {
            set: set.clone(),
            shift_px: u32::from(config.augment),
        })
    }

    fn collect(set: &Arc<ImageSet>, config: LoaderConfig) -> Vec<Batch> {
        Loader::from_source(source(set, &config), config)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn shuffled(batch_size: usize, epoch: u64) -> LoaderConfig {
        LoaderConfig {
            seed: 17,
            epoch,
            shuffle: true,
            augment: true,
            ..LoaderConfig::new(batch_size)
        }
    }

    #[test]
    fn fill_batch_scales_and_keeps_order() {
        let set = indexed_set(300);
        let (mut images, mut labels) = (vec![9.0; 3], vec![5]);
        fill_batch(&set, &[257, 3], None, &mut images, &mut labels).unwrap();
        assert_eq!(images.len(), 12);
        assert_eq!(
            &images[..6],
            &[1.0 / 255.0, 1.0 / 255.0, 1.0, 1.0, 1.0, 1.0]
        );
        assert_eq!(&images[6..8], &[0.0, 3.0 / 255.0]);
        assert_eq!(labels, [7, 3]);
        assert!(images.iter().all(|&x| (0.0..=1.0).contains(&x)));
    }

    #[test]
    fn fill_batch_reuses_buffers_and_rejects_bad_indices() {
        let set = indexed_set(10);
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        fill_batch(&set, &[0, 1, 2], None, &mut images, &mut labels).unwrap();
        let ptr = images.as_ptr();
        fill_batch(&set, &[4, 5], None, &mut images, &mut labels).unwrap();
        assert_eq!((images.as_ptr(), images.len(), labels.len()), (ptr, 12, 2));
        let err = fill_batch(&set, &[1, 10], None, &mut images, &mut labels).unwrap_err();
        assert!(err.to_string().contains("10"), "{err}");
        assert_eq!(labels, [4, 5], "buffers untouched on error");
    }

    #[test]
    fn fill_batch_shift_is_reproducible_and_moves_pixels() {
        let set = indexed_set(4);
        let run = |seed| {
            let (mut images, mut labels) = (Vec::new(), Vec::new());
            let mut rng = Rng::new(seed);
            fill_batch(
                &set,
                &[0, 1, 2, 3],
                Some((1, &mut rng)),
                &mut images,
                &mut labels,
            )
            .unwrap();
            images
        };
        assert_eq!(run(1), run(1));
        let (mut plain, mut labels) = (Vec::new(), Vec::new());
        fill_batch(&set, &[0, 1, 2, 3], None, &mut plain, &mut labels).unwrap();
        let shifted = run(1);
        assert_ne!(shifted, plain);
        // A shift by at most one pixel keeps a 2x3 image's mass or moves some of it out;
        // it never adds mass.
        for (s, p) in shifted.chunks(6).zip(plain.chunks(6)) {
            assert!(s.iter().sum::<f32>() <= p.iter().sum::<f32>() + 1e-6);
        }
    }

    #[test]
    fn num_batches_counts_partial_batches() {
        assert_eq!(num_batches(10, 3, false), 4);
        assert_eq!(num_batches(10, 3, true), 3);
        assert_eq!(num_batches(9, 3, false), 3);
        assert_eq!(num_batches(0, 3, false), 0);
    }

    #[test]
    fn in_order_epoch_covers_everything_with_a_partial_last_batch() {
        let set = indexed_set(10);
        let batches = collect(&set, LoaderConfig::new(4));
        assert_eq!(batches.iter().map(|b| b.len).collect::<Vec<_>>(), [4, 4, 2]);
        assert_eq!(
            batches.iter().map(|b| b.index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(batches[2].shape(), [2, 1, 2, 3]);
        assert_eq!(batches[2].images.len(), 12);
        let seen: Vec<usize> = batches.iter().flat_map(decode).collect();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(batches[1].labels, [4, 5, 6, 7]);

        let dropped = collect(
            &set,
            LoaderConfig {
                drop_last: true,
                ..LoaderConfig::new(4)
            },
        );
        assert_eq!(dropped.len(), 2);
    }

    #[test]
    fn shuffled_epoch_covers_every_index_once() {
        let set = indexed_set(103);
        let batches = collect(
            &set,
            LoaderConfig {
                augment: false,
                ..shuffled(10, 0)
            },
        );
        assert_eq!(batches.len(), 11);
        let mut seen: Vec<usize> = batches.iter().flat_map(decode).collect();
        assert_ne!(seen, (0..103).collect::<Vec<_>>(), "shuffled");
        for b in &batches {
            let labels: Vec<i64> = decode(b).iter().map(|&i| (i % 10) as i64).collect();
            assert_eq!(b.labels, labels);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..103).collect::<Vec<_>>());
    }

    #[test]
    fn same_seed_and_epoch_repeat_and_epochs_differ() {
        let set = indexed_set(50);
        let a = collect(&set, shuffled(8, 3));
        assert_eq!(a, collect(&set, shuffled(8, 3)));
        assert_ne!(a, collect(&set, shuffled(8, 4)));
        assert_ne!(
            a,
            collect(
                &set,
                LoaderConfig {
                    seed: 18,
                    ..shuffled(8, 3)
                }
            )
        );
    }

    #[test]
    fn resuming_at_batch_k_matches_the_full_pass() {
        let set = indexed_set(50);
        let full = collect(&set, shuffled(8, 2));
        for k in [0, 1, 4, 6, 7, 9] {
            let resumed = collect(
                &set,
                LoaderConfig {
                    start_batch: k,
                    ..shuffled(8, 2)
                },
            );
            assert_eq!(resumed, full[k.min(full.len())..], "k = {k}");
        }
    }

    #[test]
    fn recycling_keeps_the_buffer_pool_bounded() {
        let set = indexed_set(1000);
        let config = LoaderConfig {
            prefetch: 2,
            ..shuffled(16, 0)
        };
        let mut loader = Loader::from_source(source(&set, &config), config).unwrap();
        assert_eq!(loader.len(), 63);
        let mut buffers = std::collections::HashSet::new();
        let mut count = 0;
        while let Some(Ok(batch)) = loader.next() {
            buffers.insert(batch.images.as_ptr() as usize);
            count += 1;
            loader.recycle(batch);
        }
        assert_eq!(count, 63);
        assert!(buffers.len() <= 4, "{} distinct buffers", buffers.len());
    }

    #[test]
    fn dropping_mid_epoch_stops_the_worker_and_bad_configs_fail() {
        let set = indexed_set(100);
        let plain = LoaderConfig::new(1);
        let mut loader = Loader::from_source(source(&set, &plain), plain.clone()).unwrap();
        assert_eq!(loader.next().map(|b| b.unwrap().index), Some(0));
        drop(loader); // must not hang
        let empty = LoaderConfig::new(0);
        assert!(Loader::from_source(source(&set, &empty), empty).is_err());
        let past_end = LoaderConfig {
            start_batch: 500,
            ..LoaderConfig::new(1)
        };
        assert_eq!(
            Loader::from_source(source(&set, &past_end), past_end)
                .unwrap()
                .count(),
            0
        );
    }
}
