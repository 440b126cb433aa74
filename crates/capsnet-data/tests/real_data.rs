//! Loads the real MNIST and Fashion-MNIST files and checks them against the canonical
//! checksums. The data root is `$CAPSNET_DATA`, else `shared/datasets` beside the
//! workspace, else the download cache (`cargo capsnet download`); if none holds the data these
//! tests fail rather than pass vacuously.

use std::path::PathBuf;

use capsnet_data::{DataSources, IdxDataset, ImageSet, Split, load};

fn data_root() -> PathBuf {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
    let cache = capsnet_data::dataset::default_cache_dir(
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
    );
    let root = match std::env::var_os("CAPSNET_DATA").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => [Some(shared.clone()), cache]
            .into_iter()
            .flatten()
            .find(|dir| dir.join("mnist").is_dir())
            .unwrap_or(shared),
    };
    assert!(
        root.join("mnist").is_dir() && root.join("fashion-mnist").is_dir(),
        "real MNIST and Fashion-MNIST not found at {}: run `cargo capsnet download` or set \
         CAPSNET_DATA to a directory holding mnist/ and fashion-mnist/ with the IDX .gz files",
        root.display()
    );
    root
}

fn load_real(kind: IdxDataset, split: Split) -> ImageSet {
    let root = data_root();
    let loaded = load(kind, split, &DataSources::at(&root))
        .unwrap_or_else(|e| panic!("loading {kind} {split}: {e}"));
    let (set, dir) = (loaded.images, loaded.provenance.dir);
    assert_eq!(dir, root.join(kind.name()));
    set
}

fn check(set: &ImageSet, len: usize) {
    assert_eq!(set.len(), len);
    assert_eq!((set.channels(), set.height(), set.width()), (1, 28, 28));
    assert_eq!(set.num_classes(), 10);
    assert_eq!(set.images().len(), len * 784);
    let mut per_class = [0usize; 10];
    for &l in set.labels() {
        per_class[usize::from(l)] += 1; // panics if a label were >= 10
    }
    // Every class is well represented (each holds roughly a tenth of the set).
    assert!(per_class.iter().all(|&c| c > len / 20), "{per_class:?}");
    // Images are real pictures: mostly background with some ink.
    let ink = set.images().iter().filter(|&&p| p > 0).count() as f64 / set.images().len() as f64;
    assert!((0.1..0.6).contains(&ink), "{ink}");
}

#[test]
fn mnist_train() {
    let set = load_real(IdxDataset::Mnist, Split::Train);
    check(&set, 60_000);
    assert_eq!(&set.labels()[..5], [5, 0, 4, 1, 9]);
}

#[test]
fn mnist_test() {
    let set = load_real(IdxDataset::Mnist, Split::Test);
    check(&set, 10_000);
    assert_eq!(&set.labels()[..5], [7, 2, 1, 0, 4]);
}

#[test]
fn fashion_mnist_test() {
    let set = load_real(IdxDataset::FashionMnist, Split::Test);
    check(&set, 10_000);
    assert_eq!(set.label(0), 9); // ankle boot
}

#[test]
fn mnist_files_fail_fashion_mnist_checksums() {
    // A root whose fashion-mnist/ holds MNIST's files: verification must catch it.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fashion-mnist");
    std::fs::create_dir_all(&fake).unwrap();
    for name in capsnet_data::mnist::split_files(Split::Test) {
        let file = format!("{name}.gz");
        std::fs::copy(data_root().join("mnist").join(&file), fake.join(&file)).unwrap();
    }
    let err = load(
        IdxDataset::FashionMnist,
        Split::Test,
        &DataSources::at(dir.path()),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("t10k-images-idx3-ubyte.gz"),
        "{err}"
    );
    let mut unverified = DataSources::at(dir.path());
    unverified.verify = false;
    let set = load(IdxDataset::FashionMnist, Split::Test, &unverified)
        .unwrap()
        .images;
    assert_eq!(set.label(0), 7);
}
