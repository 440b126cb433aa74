//! A user's own images: a folder of class folders (PNG or JPEG), decoded in parallel into an
//! in-memory [`ImageSet`] of the shape the network takes.
//!
//! Two layouts are read:
//!
//! - **split**: `root/train/<class>/*` and `root/test/<class>/*`. The classes are the training
//!   split's folders; a test class that has no training folder is an error.
//! - **one tree**: `root/<class>/*`, split per class (stratified) into training and test images
//!   by a seeded shuffle: `⌊n · test_fraction⌋` test images of each class's `n`, the same for the
//!   same seed and files.
//!
//! Class names are the folder names, sorted (byte order), so label `i` is the `i`-th name; at
//! most 256 classes (labels are bytes). Hidden entries (`.…`) are skipped; any other file in a
//! class folder must be a PNG or JPEG (by extension), so that a stray file is reported rather
//! than silently dropped.
//!
//! Every image goes through [`Preprocess`]: decoded (with limits, so a huge or hostile file is
//! an error, not an out-of-memory), converted to grey-scale or RGB, brought to `height × width`
//! ([`Resize`]) and stored channel-first as bytes. Every failure names the file.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, ImageReader, Limits};
use rayon::prelude::*;

use crate::rng::{Rng, shuffle};
use crate::{DataError, Dims, ImageSet};

/// Largest number of classes: labels are stored as bytes.
pub const MAX_CLASSES: usize = 256;

/// File extensions read as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Largest side of an image accepted for decoding, in pixels.
pub const MAX_SIDE: u32 = 16_384;

/// Largest decoded image accepted, in bytes (before resizing).
pub const MAX_DECODED_BYTES: u64 = 512 << 20;

/// Colour handling: how many channels the stored images get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    /// As the files are (grey-scale → 1 channel, colour → 3; alpha dropped); every image must
    /// agree, else an error names the first one that differs.
    Auto,
    /// Converted to one grey-scale channel.
    Gray,
    /// Converted to three RGB channels.
    Rgb,
}

/// How an image is brought to the configured `height × width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// Scaled to exactly `height × width` (the aspect ratio may change); a triangle filter
    /// (bilinear, widened when shrinking so that every source pixel counts).
    Stretch,
    /// Scaled so that the shorter side fits, then the central `height × width` crop (keeps the
    /// aspect ratio, loses the borders of the longer side).
    FitCrop,
    /// The central `height × width` crop, no scaling; a smaller image is an error.
    CenterCrop,
    /// Taken as it is; an image of another size is an error.
    Exact,
}

/// What every image goes through: decode, colour, size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preprocess {
    /// Rows of the stored images.
    pub height: usize,
    /// Columns of the stored images.
    pub width: usize,
    /// Channels.
    pub color: Color,
    /// How the size is reached.
    pub resize: Resize,
}

/// One preprocessed image: `channels × height × width` bytes, channel-first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pixels {
    /// Channels (1 or 3).
    pub channels: usize,
    /// The bytes.
    pub data: Vec<u8>,
}

fn bad(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::BadImage {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn folder_error(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::ImageFolder {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl Preprocess {
    /// The stored shape for `channels` channels.
    pub fn dims(&self, channels: usize) -> Dims {
        Dims {
            channels,
            height: self.height,
            width: self.width,
        }
    }

    /// Reads, decodes and preprocesses one image file.
    pub fn load(&self, path: &Path) -> Result<Pixels, DataError> {
        let mut reader = ImageReader::open(path)
            .map_err(|e| bad(path, format!("cannot open: {e}")))?
            .with_guessed_format()
            .map_err(|e| bad(path, format!("cannot read: {e}")))?;
        let mut limits = Limits::default();
        limits.max_image_width = Some(MAX_SIDE);
        limits.max_image_height = Some(MAX_SIDE);
        limits.max_alloc = Some(MAX_DECODED_BYTES);
        reader.limits(limits);
        if reader.format().is_none() {
            return Err(bad(path, "not a PNG or JPEG image (unknown format)"));
        }
        let image = reader
            .decode()
            .map_err(|e| bad(path, format!("cannot decode: {e}")))?;
        self.apply(image, path)
    }

    /// Preprocesses a decoded image; `path` names it in errors.
    pub fn apply(&self, image: DynamicImage, path: &Path) -> Result<Pixels, DataError> {
        let channels = match self.color {
            Color::Gray => 1,
            Color::Rgb => 3,
            Color::Auto if image.color().has_color() => 3,
            Color::Auto => 1,
        };
        let image = self.sized(image, path)?;
        let data = if channels == 1 {
            image.to_luma8().into_raw()
        } else {
            let rgb = image.to_rgb8();
            let plane = self.height * self.width;
            let mut out = vec![0u8; 3 * plane];
            for (i, px) in rgb.pixels().enumerate() {
                for c in 0..3 {
                    out[c * plane + i] = px[c];
                }
            }
            out
        };
        Ok(Pixels { channels, data })
    }

    fn sized(&self, image: DynamicImage, path: &Path) -> Result<DynamicImage, DataError> {
        let (h, w) = (self.height as u32, self.width as u32);
        let (ih, iw) = (image.height(), image.width());
        let central = |image: &DynamicImage| image.crop_imm((iw - w) / 2, (ih - h) / 2, w, h);
        Ok(match self.resize {
            _ if (ih, iw) == (h, w) => image,
            Resize::Exact => {
                return Err(bad(
                    path,
                    format!(
                        "is {iw}x{ih} (width x height) but the images must be {w}x{h}; set data.image_folder.resize = \"stretch\", \"fit-crop\" or \"center-crop\" to convert"
                    ),
                ));
            }
            Resize::CenterCrop if ih < h || iw < w => {
                return Err(bad(
                    path,
                    format!(
                        "is {iw}x{ih} (width x height), smaller than the {w}x{h} centre crop; use data.image_folder.resize = \"stretch\" or \"fit-crop\""
                    ),
                ));
            }
            Resize::CenterCrop => central(&image),
            Resize::Stretch => image.resize_exact(w, h, FilterType::Triangle),
            Resize::FitCrop => {
                // The scale that makes the shorter side (relative to the target) fit exactly.
                let scale = f64::max(f64::from(h) / f64::from(ih), f64::from(w) / f64::from(iw));
                let sh = ((f64::from(ih) * scale).round() as u32).max(h);
                let sw = ((f64::from(iw) * scale).round() as u32).max(w);
                let scaled = image.resize_exact(sw, sh, FilterType::Triangle);
                scaled.crop_imm((sw - w) / 2, (sh - h) / 2, w, h)
            }
        })
    }
}

/// Where the images of a split are, and their labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledFiles {
    /// Image files, in a deterministic order (class by class, file names sorted).
    pub files: Vec<PathBuf>,
    /// The label of each file.
    pub labels: Vec<u8>,
}

/// The classes and files of an image folder, before any image is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderIndex {
    /// The folder.
    pub root: PathBuf,
    /// Class names, label order.
    pub classes: Vec<String>,
    /// Whether the folder has `train/` and `test/` (else one tree, split by seed).
    pub split_layout: bool,
    /// Training images.
    pub train: LabelledFiles,
    /// Test images.
    pub test: LabelledFiles,
}

/// How a one-tree folder is split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitOptions {
    /// Fraction of each class held out for testing, in `[0, 1)`.
    pub test_fraction: f64,
    /// Seed of the split.
    pub seed: u64,
}

/// Sorted non-hidden entries of a directory.
fn entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let read = std::fs::read_dir(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|source| DataError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

/// Every PNG or JPEG file (by extension) below `dir`, recursively, in sorted order; hidden
/// entries are skipped and other files ignored (`capsnet predict` on a folder).
pub fn image_files_under(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for path in entries(dir)? {
        if path.is_dir() {
            out.extend(image_files_under(&path)?);
        } else if is_image_file(&path) {
            out.push(path);
        }
    }
    Ok(out)
}

/// Whether `path` has one of [`IMAGE_EXTENSIONS`] (any case).
pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The class folders of `dir` (sorted) and each one's image files (sorted); a class folder
/// without images, or a file that is not an image, is an error.
fn class_folders(dir: &Path) -> Result<Vec<(String, Vec<PathBuf>)>, DataError> {
    let mut classes = Vec::new();
    for path in entries(dir)? {
        if !path.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        for file in entries(&path)? {
            if file.is_dir() {
                return Err(folder_error(
                    &file,
                    "class folders hold image files only, not folders",
                ));
            }
            if !is_image_file(&file) {
                return Err(folder_error(
                    &file,
                    format!(
                        "is not an image file (expected the extensions {}); move it out of the class folder",
                        IMAGE_EXTENSIONS.join(", ")
                    ),
                ));
            }
            files.push(file);
        }
        if files.is_empty() {
            return Err(folder_error(
                &path,
                "class folder holds no images (PNG or JPEG); remove it or add images",
            ));
        }
        classes.push((name_of(&path), files));
    }
    Ok(classes)
}

impl FolderIndex {
    /// Lists `root` (either layout; see the module documentation) without decoding anything.
    pub fn scan(root: &Path, split: SplitOptions) -> Result<Self, DataError> {
        if !root.is_dir() {
            return Err(folder_error(
                root,
                "not found (or not a directory); data.root must name a folder of class folders",
            ));
        }
        if !(0.0..1.0).contains(&split.test_fraction) {
            return Err(folder_error(
                root,
                format!("test fraction {} is not in [0, 1)", split.test_fraction),
            ));
        }
        let (train_dir, test_dir) = (root.join("train"), root.join("test"));
        if test_dir.is_dir() && !train_dir.is_dir() {
            return Err(folder_error(
                root,
                "has test/ but no train/: add train/<class>/ folders (or remove test/ to split one tree by seed)",
            ));
        }
        let index = if train_dir.is_dir() {
            if !test_dir.is_dir() {
                return Err(folder_error(
                    root,
                    "has train/ but no test/: add test/<class>/ folders, or put the class folders directly in the root to split them by seed",
                ));
            }
            let train = class_folders(&train_dir)?;
            let test = class_folders(&test_dir)?;
            let classes: Vec<String> = train.iter().map(|(name, _)| name.clone()).collect();
            let mut test_files = Vec::new();
            for (name, files) in test {
                let Some(label) = classes.iter().position(|c| *c == name) else {
                    return Err(folder_error(
                        &test_dir.join(&name),
                        format!(
                            "class `{name}` is in test/ but not in train/ (training classes: {})",
                            classes.join(", ")
                        ),
                    ));
                };
                test_files.push((label, files));
            }
            Self {
                root: root.to_path_buf(),
                split_layout: true,
                train: labelled(train.into_iter().map(|(_, f)| f).enumerate()),
                test: labelled(test_files.into_iter()),
                classes,
            }
        } else {
            let tree = class_folders(root)?;
            let classes: Vec<String> = tree.iter().map(|(name, _)| name.clone()).collect();
            let mut train = Vec::new();
            let mut test = Vec::new();
            for (label, (_, mut files)) in tree.into_iter().enumerate() {
                let mut rng = Rng::derive(split.seed, &[label as u64]);
                shuffle(&mut files, &mut rng);
                let held = (files.len() as f64 * split.test_fraction).floor() as usize;
                let mut held_out = files.split_off(files.len() - held);
                files.sort();
                held_out.sort();
                train.push((label, files));
                test.push((label, held_out));
            }
            Self {
                root: root.to_path_buf(),
                split_layout: false,
                train: labelled(train.into_iter()),
                test: labelled(test.into_iter()),
                classes,
            }
        };
        if index.classes.is_empty() {
            return Err(folder_error(
                if index.split_layout { &train_dir } else { root },
                "holds no class folders: expected <class>/ folders of PNG or JPEG images",
            ));
        }
        if index.classes.len() > MAX_CLASSES {
            return Err(folder_error(
                root,
                format!(
                    "{} class folders; at most {MAX_CLASSES} classes are supported",
                    index.classes.len()
                ),
            ));
        }
        if index.test.files.is_empty() {
            return Err(folder_error(
                root,
                "the test split is empty (raise data.image_folder.test_fraction, or add test/ images)",
            ));
        }
        Ok(index)
    }
}

fn labelled(classes: impl Iterator<Item = (usize, Vec<PathBuf>)>) -> LabelledFiles {
    let mut out = LabelledFiles {
        files: Vec::new(),
        labels: Vec::new(),
    };
    for (label, files) in classes {
        out.labels
            .extend(std::iter::repeat_n(label as u8, files.len()));
        out.files.extend(files);
    }
    out
}

/// Decodes `files` in parallel (rayon's pool) into one [`ImageSet`] of `num_classes`
/// classes. With [`Color::Auto`] every image must have the channel count of the first.
/// `progress` is called with the number of images decoded so far, from the decoding threads.
pub fn decode_all(
    files: &LabelledFiles,
    num_classes: usize,
    pre: &Preprocess,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<ImageSet, DataError> {
    let done = std::sync::atomic::AtomicUsize::new(0);
    let decoded: Vec<Pixels> = files
        .files
        .par_iter()
        .map(|path| {
            let pixels = pre.load(path);
            progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
            pixels
        })
        .collect::<Result<_, _>>()?;
    let channels = decoded.first().map_or(1, |p| p.channels);
    if let Some(i) = decoded.iter().position(|p| p.channels != channels) {
        let kind = |c: usize| if c == 1 { "grey-scale" } else { "colour" };
        return Err(bad(
            &files.files[i],
            format!(
                "is {} but {} is {}: mixed channel counts; set data.image_folder.color = \"gray\" or \"rgb\" to convert every image",
                kind(decoded[i].channels),
                files.files[0].display(),
                kind(channels)
            ),
        ));
    }
    let mut pixels = Vec::with_capacity(decoded.len() * pre.dims(channels).size());
    for p in decoded {
        pixels.extend_from_slice(&p.data);
    }
    ImageSet::new(
        pixels,
        files.labels.clone(),
        pre.dims(channels),
        num_classes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgb, RgbImage};

    fn gray(path: &Path, w: u32, h: u32, value: u8) {
        GrayImage::from_pixel(w, h, Luma([value]))
            .save(path)
            .unwrap();
    }

    fn pre(h: usize, w: usize, resize: Resize) -> Preprocess {
        Preprocess {
            height: h,
            width: w,
            color: Color::Auto,
            resize,
        }
    }

    #[test]
    fn rgb_is_stored_channel_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        let mut img = RgbImage::new(2, 1);
        img.put_pixel(0, 0, Rgb([1, 2, 3]));
        img.put_pixel(1, 0, Rgb([4, 5, 6]));
        img.save(&path).unwrap();
        let p = pre(1, 2, Resize::Exact).load(&path).unwrap();
        assert_eq!(p.channels, 3);
        assert_eq!(p.data, vec![1, 4, 2, 5, 3, 6]);
        let g = Preprocess {
            color: Color::Gray,
            ..pre(1, 2, Resize::Exact)
        }
        .load(&path)
        .unwrap();
        assert_eq!(g.channels, 1);
        assert_eq!(g.data.len(), 2);
    }

    #[test]
    fn jpeg_files_decode_like_png() {
        let dir = tempfile::tempdir().unwrap();
        let img = RgbImage::from_fn(16, 12, |x, y| Rgb([(x * 16) as u8, (y * 20) as u8, 200]));
        let (jpg, png) = (dir.path().join("a.JPG"), dir.path().join("a.png"));
        img.save_with_format(&jpg, image::ImageFormat::Jpeg)
            .unwrap();
        img.save(&png).unwrap();
        assert!(is_image_file(&jpg));
        let from_jpeg = pre(12, 16, Resize::Exact).load(&jpg).unwrap();
        let from_png = pre(12, 16, Resize::Exact).load(&png).unwrap();
        assert_eq!(from_jpeg.channels, 3);
        // Lossy, but close: every value within 24 of the original.
        for (a, b) in from_jpeg.data.iter().zip(&from_png.data) {
            assert!(a.abs_diff(*b) <= 24, "{a} vs {b}");
        }
        // A PNG named .jpg is read by its content.
        let misnamed = dir.path().join("b.jpg");
        std::fs::copy(&png, &misnamed).unwrap();
        assert_eq!(
            pre(12, 16, Resize::Exact).load(&misnamed).unwrap(),
            from_png
        );
    }

    #[test]
    fn sizes_are_reached_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        // A 6x4 image (width x height) whose left and right thirds are black, middle white.
        let img = GrayImage::from_fn(6, 4, |x, _| {
            Luma([if (2..4).contains(&x) { 255 } else { 0 }])
        });
        img.save(&path).unwrap();
        let crop = pre(4, 2, Resize::CenterCrop).load(&path).unwrap();
        assert_eq!(crop.data, vec![255; 8]);
        let fit = pre(2, 1, Resize::FitCrop).load(&path).unwrap();
        assert_eq!(fit.data.len(), 2);
        assert!(fit.data.iter().all(|&v| v > 128), "{:?}", fit.data);
        let stretched = pre(3, 3, Resize::Stretch).load(&path).unwrap();
        assert_eq!(stretched.data.len(), 9);
        let err = pre(5, 5, Resize::CenterCrop)
            .load(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a.png") && err.contains("smaller"), "{err}");
        let err = pre(4, 4, Resize::Exact)
            .load(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("6x4") && err.contains("4x4"), "{err}");
    }

    #[test]
    fn broken_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.png");
        gray(&good, 8, 8, 7);
        let bytes = std::fs::read(&good).unwrap();
        let truncated = dir.path().join("cut.png");
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let text = dir.path().join("text.png");
        std::fs::write(&text, b"hello, not an image").unwrap();
        for path in [&truncated, &text] {
            let err = pre(8, 8, Resize::Exact).load(path).unwrap_err().to_string();
            assert!(err.contains(&name_of(path)), "{err}");
        }
    }

    #[test]
    fn one_tree_split_is_stratified_and_seeded() {
        let dir = tempfile::tempdir().unwrap();
        for (class, n) in [("cat", 10), ("dog", 5)] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            for i in 0..n {
                gray(&dir.path().join(class).join(format!("{i}.png")), 2, 2, i);
            }
        }
        std::fs::write(dir.path().join(".DS_Store"), b"x").unwrap();
        let split = SplitOptions {
            test_fraction: 0.4,
            seed: 3,
        };
        let a = FolderIndex::scan(dir.path(), split).unwrap();
        assert_eq!(a.classes, vec!["cat", "dog"]);
        assert!(!a.split_layout);
        assert_eq!(a.test.labels, vec![0, 0, 0, 0, 1, 1]);
        assert_eq!(a.train.labels.len(), 9);
        assert_eq!(a, FolderIndex::scan(dir.path(), split).unwrap());
        let b = FolderIndex::scan(dir.path(), SplitOptions { seed: 4, ..split }).unwrap();
        assert_ne!(a.test.files, b.test.files);
        for f in &a.test.files {
            assert!(!a.train.files.contains(f));
        }
    }

    #[test]
    fn folder_errors_name_the_culprit() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for p in ["train/a", "train/b", "test/a", "test/c"] {
            std::fs::create_dir_all(root.join(p)).unwrap();
            gray(&root.join(p).join("0.png"), 2, 2, 0);
        }
        let split = SplitOptions {
            test_fraction: 0.2,
            seed: 0,
        };
        let err = FolderIndex::scan(root, split).unwrap_err().to_string();
        assert!(err.contains("`c`") && err.contains("test"), "{err}");
        std::fs::remove_dir_all(root.join("test/c")).unwrap();
        std::fs::create_dir(root.join("train/empty")).unwrap();
        let err = FolderIndex::scan(root, split).unwrap_err().to_string();
        assert!(err.contains("empty") && err.contains("no images"), "{err}");
        std::fs::remove_dir(root.join("train/empty")).unwrap();
        std::fs::write(root.join("train/a/notes.txt"), b"x").unwrap();
        let err = FolderIndex::scan(root, split).unwrap_err().to_string();
        assert!(err.contains("notes.txt"), "{err}");
        std::fs::remove_file(root.join("train/a/notes.txt")).unwrap();
        let index = FolderIndex::scan(root, split).unwrap();
        assert_eq!(index.classes, vec!["a", "b"]);
        RgbImage::new(2, 2)
            .save(root.join("train/b/1.png"))
            .unwrap();
        let index = FolderIndex::scan(root, split).unwrap();
        let err = decode_all(&index.train, 2, &pre(2, 2, Resize::Exact), &|_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("1.png") && err.contains("mixed"), "{err}");
        let err = FolderIndex::scan(&root.join("missing"), split)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing"), "{err}");
    }
}
