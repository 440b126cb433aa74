//! CIFAR-10: batch parsing, the on-disk layouts, errors, and (feature `download`)
//! downloading the archive from a local HTTP server.

use std::path::{Path, PathBuf};

use capsnet_data::cifar::{
    CIFAR_MIRROR_ENV, CIFAR10_BATCHES_DIR, CIFAR10_DIMS, CIFAR10_MIRRORS, CIFAR10_RECORD_BYTES,
    CIFAR10_SUBDIR, cifar10_files, locate_cifar10, parse_cifar10_batch,
};
use capsnet_data::{BuiltinDataset, DataError, DataSources, ImageSet, NoProgress, Split};

/// A CIFAR-10 split through the one loader: the images and the directory they came from.
fn load_cifar10(split: Split, sources: &DataSources) -> Result<(ImageSet, PathBuf), DataError> {
    let loaded = BuiltinDataset::Cifar10.load(split, sources, &NoProgress)?;
    Ok((loaded.images, loaded.provenance.dir))
}

/// [`load_cifar10`] from `mirrors`.
#[cfg(feature = "download")]
fn load_cifar10_with(
    split: Split,
    sources: &DataSources,
    mirrors: &[String],
) -> Result<(ImageSet, PathBuf), DataError> {
    let sources = sources
        .clone()
        .with_mirrors(BuiltinDataset::Cifar10, mirrors);
    load_cifar10(split, &sources)
}

/// The mirrors the sources read from `$CAPSNET_CIFAR_MIRROR` = `value` give CIFAR-10.
fn cifar10_mirrors(value: Option<&std::ffi::OsStr>) -> Vec<String> {
    let var = |key: &str| value.filter(|_| key == CIFAR_MIRROR_ENV).map(Into::into);
    DataSources::from_vars(None, var).mirrors_for(BuiltinDataset::Cifar10)
}

/// A pixel value that depends on the record, channel, row and column.
fn pixel(record: usize, c: usize, y: usize, x: usize) -> u8 {
    (record * 53 + c * 101 + y * 7 + x * 3) as u8
}

/// The expected CHW image of `record`.
fn image(record: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(3072);
    for c in 0..3 {
        for y in 0..32 {
            for x in 0..32 {
                v.push(pixel(record, c, y, x));
            }
        }
    }
    v
}

/// A batch file of records `first..first + labels.len()`: per record the label, then the
/// 1,024 red, 1,024 green and 1,024 blue values, each row-major.
fn batch(first: usize, labels: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (i, &label) in labels.iter().enumerate() {
        bytes.push(label);
        bytes.extend(image(first + i));
    }
    bytes
}

/// Writes every batch file into `dir`: data_batch_k holds records 2k-2, 2k-1 (labels
/// k-1, k), test_batch records 100..103 (labels 9, 8, 7).
fn write_batches(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (k, name) in cifar10_files(Split::Train).iter().enumerate() {
        let labels = [k as u8, k as u8 + 1];
        std::fs::write(dir.join(name), batch(2 * k, &labels)).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), batch(100, &[9, 8, 7])).unwrap();
}

fn unverified(root: &Path) -> DataSources {
    let mut sources = DataSources::at(root);
    sources.verify = false;
    sources
}

#[test]
fn parses_labels_and_channel_first_pixels() {
    let set = parse_cifar10_batch(&batch(5, &[3, 0, 9]), Path::new("b.bin")).unwrap();
    assert_eq!(set.len(), 3);
    assert_eq!(set.dims(), CIFAR10_DIMS);
    assert_eq!(set.num_classes(), 10);
    assert_eq!(set.labels(), [3, 0, 9]);
    for i in 0..3 {
        assert_eq!(set.image(i), image(5 + i));
    }
    // Record 1, green channel, row 2, column 5 sits at 1024 + 2 * 32 + 5 within the image.
    assert_eq!(set.image(1)[1024 + 2 * 32 + 5], pixel(6, 1, 2, 5));
}

#[test]
fn partial_record_is_an_error_naming_the_file() {
    let mut bytes = batch(0, &[1, 2]);
    bytes.truncate(bytes.len() - 1);
    let err = parse_cifar10_batch(&bytes, Path::new("dir/data_batch_2.bin")).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Malformed { .. }), "{err:?}");
    assert!(msg.contains("dir/data_batch_2.bin"), "{msg}");
    assert!(
        msg.contains("6145 bytes") && msg.contains("1 records") && msg.contains("3072 bytes"),
        "{msg}"
    );

    // Extra bytes after whole records are a partial record too.
    let mut bytes = batch(0, &[1]);
    bytes.push(0);
    assert!(parse_cifar10_batch(&bytes, Path::new("x")).is_err());
    let err = parse_cifar10_batch(&[], Path::new("empty.bin")).unwrap_err();
    assert!(err.to_string().contains("empty.bin"), "{err}");
}

#[test]
fn label_10_is_an_error_naming_the_file() {
    let err = parse_cifar10_batch(&batch(0, &[1, 9, 10]), Path::new("test_batch.bin")).unwrap_err();
    let DataError::BadLabel {
        path,
        index,
        value,
        num_classes,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (path.as_path(), *index, *value, *num_classes),
        (Path::new("test_batch.bin"), 2, 10, 10)
    );
    assert!(err.to_string().contains("test_batch.bin"), "{err}");
}

#[test]
fn loads_both_layouts_concatenating_train_batches_in_order() {
    for sub in [
        PathBuf::from(CIFAR10_BATCHES_DIR),
        Path::new(CIFAR10_SUBDIR).join(CIFAR10_BATCHES_DIR),
    ] {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(&sub);
        write_batches(&dir);
        let sources = unverified(root.path());

        let (train, used) = load_cifar10(Split::Train, &sources).unwrap();
        assert_eq!(used, dir);
        assert_eq!(train.len(), 10);
        assert_eq!(train.labels(), [0, 1, 1, 2, 2, 3, 3, 4, 4, 5]);
        for i in 0..10 {
            assert_eq!(train.image(i), image(i), "image {i}");
        }

        let (test, used) = load_cifar10(Split::Test, &sources).unwrap();
        assert_eq!(used, dir);
        assert_eq!(test.labels(), [9, 8, 7]);
        assert_eq!(test.image(2), image(102));
    }
}

#[test]
fn verification_requires_canonical_record_counts() {
    let root = tempfile::tempdir().unwrap();
    write_batches(&root.path().join(CIFAR10_BATCHES_DIR));
    let err = load_cifar10(Split::Test, &DataSources::at(root.path())).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("test_batch.bin") && msg.contains("3 records") && msg.contains("10000"),
        "{msg}"
    );
}

#[test]
fn a_truncated_batch_in_the_layout_names_its_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(CIFAR10_BATCHES_DIR);
    write_batches(&dir);
    let third = dir.join("data_batch_3.bin");
    let bytes = std::fs::read(&third).unwrap();
    std::fs::write(&third, &bytes[..bytes.len() - 100]).unwrap();
    let err = load_cifar10(Split::Train, &unverified(root.path())).unwrap_err();
    assert!(matches!(err, DataError::Malformed { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&third.display().to_string()),
        "{err}"
    );
    // The test split does not read it.
    load_cifar10(Split::Test, &unverified(root.path())).unwrap();

    // A bad label in the last training batch.
    let fifth = dir.join("data_batch_5.bin");
    std::fs::write(&third, &bytes).unwrap();
    std::fs::write(&fifth, batch(0, &[2, 11])).unwrap();
    let err = load_cifar10(Split::Train, &unverified(root.path())).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::BadLabel {
                index: 1,
                value: 11,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("data_batch_5.bin"), "{err}");
}

#[test]
fn missing_files_list_every_path_tried() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    // `a` has the test batch but no training batch 2; `b` has nothing.
    let dir = a.join(CIFAR10_BATCHES_DIR);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("data_batch_1.bin"), batch(0, &[1])).unwrap();
    let sources = DataSources {
        explicit: Some(a.clone()),
        env: Some(b.clone()),
        cache: Some(root.path().join("cache")),
        download: false,
        ..DataSources::default()
    };
    let err = load_cifar10(Split::Train, &sources).unwrap_err();
    let DataError::DataNotFound {
        dataset,
        files,
        tried,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(dataset, "cifar10 train");
    assert_eq!(files.len(), 5);
    assert_eq!(files[0], "cifar-10-batches-bin/data_batch_1.bin");
    let sub = |root: &Path| root.join(CIFAR10_SUBDIR).join(CIFAR10_BATCHES_DIR);
    assert_eq!(
        tried,
        &[
            sub(&a).join("data_batch_1.bin"),
            dir.join("data_batch_1.bin"),
            dir.join("data_batch_2.bin"),
            sub(&b).join("data_batch_1.bin"),
            b.join(CIFAR10_BATCHES_DIR).join("data_batch_1.bin"),
            sub(&root.path().join("cache")).join("data_batch_1.bin"),
            root.path()
                .join("cache")
                .join(CIFAR10_BATCHES_DIR)
                .join("data_batch_1.bin"),
        ]
    );
    let msg = err.to_string();
    for p in tried {
        assert!(msg.contains(&p.display().to_string()), "{msg}");
    }
    assert!(
        msg.contains("CAPSNET_DATA") && msg.contains("enable downloading"),
        "{msg}"
    );
    assert!(!root.path().join("cache").exists(), "nothing created");
    assert_eq!(
        locate_cifar10(Split::Test, &[a.clone(), b]),
        Err(vec![
            sub(&a).join("test_batch.bin"),
            dir.join("test_batch.bin"),
            sub(&root.path().join("b")).join("test_batch.bin"),
            root.path()
                .join("b")
                .join(CIFAR10_BATCHES_DIR)
                .join("test_batch.bin"),
        ])
    );
}

#[test]
fn mirrors_come_from_the_environment_value_or_the_defaults() {
    assert_eq!(cifar10_mirrors(None), CIFAR10_MIRRORS);
    assert_eq!(cifar10_mirrors(Some(" ,".as_ref())), CIFAR10_MIRRORS);
    assert_eq!(
        cifar10_mirrors(Some("http://a/, http://b/ http://c".as_ref())),
        ["http://a/", "http://b/", "http://c"]
    );
}

#[test]
fn record_size_is_label_plus_3072() {
    assert_eq!(CIFAR10_RECORD_BYTES, 3073);
}

#[cfg(feature = "download")]
mod download {
    use std::path::Path;

    use capsnet_data::cifar::{
        CIFAR10_ARCHIVE, CIFAR10_ARCHIVE_SHA256, CIFAR10_BATCHES_DIR, CIFAR10_SUBDIR,
        download_cifar10, extract_cifar10_archive,
    };
    use capsnet_data::files::sha256_hex;
    use capsnet_data::test_server::{Reply, Server};
    use capsnet_data::{DataError, DataSources, NoProgress, Split};
    use flate2::{Compression, write::GzEncoder};

    use super::{batch, image, load_cifar10_with};

    /// The shared local HTTP server, serving `routes` as plain bodies.
    fn serve(routes: Vec<(String, Vec<u8>)>) -> Server {
        Server::start(
            routes
                .into_iter()
                .map(|(p, b)| (p, Reply::Body(b)))
                .collect(),
        )
    }

    /// A `.tar.gz` holding `members` (path, contents), as the official archive does.
    fn tar_gz(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_size(0);
        dir.set_mode(0o755);
        builder
            .append_data(&mut dir, "cifar-10-batches-bin/", std::io::empty())
            .unwrap();
        for (path, data) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, path, &data[..]).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    /// The fixture archive: data_batch_k holds record k-1 with label k-1, test_batch
    /// records 50, 51 with labels 4, 2.
    fn archive() -> Vec<u8> {
        let mut members: Vec<(String, Vec<u8>)> = (1..=5)
            .map(|k| {
                (
                    format!("cifar-10-batches-bin/data_batch_{k}.bin"),
                    batch(k - 1, &[k as u8 - 1]),
                )
            })
            .collect();
        members.push((
            "cifar-10-batches-bin/test_batch.bin".into(),
            batch(50, &[4, 2]),
        ));
        members.push((
            "cifar-10-batches-bin/batches.meta.txt".into(),
            b"airplane\n".to_vec(),
        ));
        members.push(("cifar-10-batches-bin/readme.html".into(), b"<p>".to_vec()));
        let members: Vec<(&str, Vec<u8>)> = members
            .iter()
            .map(|(p, d)| (p.as_str(), d.clone()))
            .collect();
        tar_gz(&members)
    }

    fn route(prefix: &str) -> String {
        format!("/{prefix}/{CIFAR10_ARCHIVE}")
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn downloads_extracts_loads_and_then_uses_the_cache() {
        let server = serve(vec![(route("good"), archive())]);
        let root = tempfile::tempdir().unwrap();
        let cache = root.path().join("cache");
        let sources = DataSources {
            explicit: Some(root.path().join("empty")),
            cache: Some(cache.clone()),
            download: true,
            verify: false, // the fixture is not the canonical archive
            ..DataSources::default()
        };
        let mirrors = [server.url("missing"), server.url("good")];
        let (set, used) = load_cifar10_with(Split::Test, &sources, &mirrors).unwrap();
        let batches = cache.join(CIFAR10_SUBDIR).join(CIFAR10_BATCHES_DIR);
        assert_eq!(used, batches);
        assert_eq!(set.labels(), [4, 2]);
        assert_eq!(set.image(1), image(51));
        assert_eq!(server.requests(), [route("missing"), route("good")]);
        // Only the known files were extracted; the archive and temporary files are gone.
        assert_eq!(names(&cache.join(CIFAR10_SUBDIR)), [CIFAR10_BATCHES_DIR]);
        assert_eq!(
            names(&batches),
            [
                "batches.meta.txt",
                "data_batch_1.bin",
                "data_batch_2.bin",
                "data_batch_3.bin",
                "data_batch_4.bin",
                "data_batch_5.bin",
                "test_batch.bin"
            ]
        );

        // The training split came with the archive: no new request.
        let (train, _) = load_cifar10_with(Split::Train, &sources, &mirrors).unwrap();
        assert_eq!(train.labels(), [0, 1, 2, 3, 4]);
        assert_eq!(train.image(3), image(3));
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn the_archive_checksum_is_checked() {
        let bytes = archive();
        let sha = sha256_hex(&bytes);
        let server = serve(vec![(route("m"), bytes)]);
        let dir = tempfile::tempdir().unwrap();

        let wrong = "0".repeat(64);
        let err = download_cifar10(dir.path(), &[server.url("m")], Some(&wrong), &NoProgress)
            .unwrap_err();
        let DataError::MirrorsExhausted { failures, .. } = &err else {
            panic!("{err:?}")
        };
        let [DataError::Download { url, reason }] = &failures[..] else {
            panic!("{failures:?}")
        };
        assert_eq!(url, &format!("{}{CIFAR10_ARCHIVE}", server.url("m")));
        assert!(
            reason.contains("checksum mismatch")
                && reason.contains(&sha)
                && reason.contains(&wrong),
            "{reason}"
        );
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));

        let batches =
            download_cifar10(dir.path(), &[server.url("m")], Some(&sha), &NoProgress).unwrap();
        assert_eq!(batches, dir.path().join(CIFAR10_BATCHES_DIR));
        assert_eq!(names(dir.path()), [CIFAR10_BATCHES_DIR]);
    }

    #[test]
    fn load_with_verification_checks_the_canonical_archive_sum() {
        let server = serve(vec![(route("m"), archive())]);
        let root = tempfile::tempdir().unwrap();
        let sources = DataSources {
            cache: Some(root.path().to_path_buf()),
            download: true,
            ..DataSources::default()
        };
        let err = load_cifar10_with(Split::Test, &sources, &[server.url("m")]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("checksum mismatch") && msg.contains(CIFAR10_ARCHIVE_SHA256),
            "{msg}"
        );
        assert!(names(&root.path().join(CIFAR10_SUBDIR)).is_empty());
    }

    #[test]
    fn corrupt_missing_and_incomplete_archives_fail_per_mirror_in_order() {
        let mut corrupt = archive();
        corrupt.truncate(corrupt.len() / 2);
        let without_test = tar_gz(&[("cifar-10-batches-bin/data_batch_1.bin", batch(0, &[1]))]);
        let server = serve(vec![
            (route("corrupt"), corrupt),
            (route("garbage"), b"not gzip at all".to_vec()),
            (route("incomplete"), without_test),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let mirrors = [
            server.url("gone"),
            server.url("corrupt"),
            server.url("garbage"),
            server.url("incomplete"),
        ];
        let err = download_cifar10(dir.path(), &mirrors, None, &NoProgress).unwrap_err();
        let DataError::MirrorsExhausted { file, failures } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(file, "cifar-10-binary.tar");
        let reasons: Vec<String> = failures.iter().map(ToString::to_string).collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        for (reason, mirror) in reasons.iter().zip(&mirrors) {
            assert!(
                reason.contains(&format!("{mirror}{CIFAR10_ARCHIVE}")),
                "{reason}"
            );
        }
        assert!(reasons[0].contains("404"), "{}", reasons[0]);
        assert!(reasons[1].contains("corrupt gzip"), "{}", reasons[1]);
        assert!(reasons[2].contains("corrupt gzip"), "{}", reasons[2]);
        assert!(
            reasons[3].contains("lacks cifar-10-batches-bin/data_batch_2.bin")
                && reasons[3].contains("test_batch.bin"),
            "{}",
            reasons[3]
        );
        assert_eq!(
            server.requests(),
            ["gone", "corrupt", "garbage", "incomplete"].map(route)
        );
        // No archive or partial file is left behind (the incomplete archive's one member
        // may have been extracted, nothing else).
        assert!(!dir.path().join(CIFAR10_ARCHIVE).exists());
    }

    #[test]
    fn extraction_ignores_other_members_and_accepts_dot_slash_paths() {
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<(String, Vec<u8>)> = (1..=5)
            .map(|k| {
                (
                    format!("./cifar-10-batches-bin/data_batch_{k}.bin"),
                    vec![k],
                )
            })
            .chain([
                ("./cifar-10-batches-bin/test_batch.bin".to_owned(), vec![9]),
                ("elsewhere/data_batch_1.bin".to_owned(), vec![0]),
                ("cifar-10-batches-bin/other.bin".to_owned(), vec![0]),
            ])
            .collect();
        let members: Vec<(&str, Vec<u8>)> = members
            .iter()
            .map(|(p, d)| (p.as_str(), d.clone()))
            .collect();
        let archive = dir.path().join("a.tar.gz");
        std::fs::write(&archive, tar_gz(&members)).unwrap();
        let out = extract_cifar10_archive(&archive, &dir.path().join("x")).unwrap();
        assert_eq!(out, dir.path().join("x").join(CIFAR10_BATCHES_DIR));
        assert_eq!(names(&out).len(), 6, "{:?}", names(&out));
        assert_eq!(std::fs::read(out.join("data_batch_4.bin")).unwrap(), [4]);
        assert_eq!(std::fs::read(out.join("test_batch.bin")).unwrap(), [9]);
        assert!(!dir.path().join("x/elsewhere").exists());

        // A corrupt archive names itself.
        std::fs::write(&archive, b"\x1f\x8b garbage").unwrap();
        let err = extract_cifar10_archive(&archive, dir.path()).unwrap_err();
        assert!(matches!(err, DataError::Malformed { .. }), "{err:?}");
        assert!(err.to_string().contains("a.tar.gz"), "{err}");
    }
}
