//! Downloading dataset files from mirrors (feature `download`), and progress reporting.
//!
//! A download streams `<mirror><file>.gz` into a temporary file in the destination
//! directory, checks the HTTP status and the `Content-Length`, decompresses and verifies
//! the SHA-256, and only then renames it to `<file>.gz`. On any failure the temporary file
//! is deleted and the next mirror is tried. [`download_plain`] does the same for a file served
//! as it is (SVHN's `.mat` files), with the caller's check (an MD5) in place of the SHA-256.

/// Receives progress reports of a download (the binary plugs progress bars in here).
pub trait DownloadProgress {
    /// A transfer of `url` begins; `total` is its size in bytes if the server said.
    fn start(&self, url: &str, total: Option<u64>);
    /// `bytes` more bytes arrived.
    fn advance(&self, bytes: u64);
    /// The transfer ended (successfully or not).
    fn finish(&self);
}

/// Progress reporting that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl DownloadProgress for NoProgress {
    fn start(&self, _url: &str, _total: Option<u64>) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

#[cfg(feature = "download")]
pub use http::{download_file, download_files, download_plain};

#[cfg(feature = "download")]
mod http {
    use std::fs::File;
    use std::io::{self, BufReader, Read, Seek, Write};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use flate2::read::MultiGzDecoder;
    use sha2::{Digest, Sha256};

    use super::DownloadProgress;
    use crate::DataError;
    use crate::files::{ExpectedFile, hex};

    /// Downloads `<mirror>/<file.name>.gz` into `dir` (created if needed) from the first
    /// mirror that serves it intact, verifying `file.sha256` against the decompressed data.
    ///
    /// Returns the path of the `.gz` file. If every mirror fails the error is
    /// [`DataError::MirrorsExhausted`], listing each URL and why it failed; no partial file
    /// is left behind.
    pub fn download_file(
        dir: &Path,
        mirrors: &[impl AsRef<str>],
        file: &ExpectedFile<'_>,
        progress: &dyn DownloadProgress,
    ) -> Result<PathBuf, DataError> {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        let agent = agent();
        let mut failures = Vec::new();
        for mirror in mirrors {
            let url = format!("{}/{}.gz", mirror.as_ref().trim_end_matches('/'), file.name);
            match fetch(&agent, &url, dir, file, progress) {
                Ok(path) => return Ok(path),
                Err(e @ DataError::Io { .. }) => return Err(e), // local problem: no mirror helps
                Err(e) => failures.push(e),
            }
        }
        Err(DataError::MirrorsExhausted {
            file: file.name.to_owned(),
            failures,
        })
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build()
            .into()
    }

    /// Downloads `<mirror>/<name>` into `dir/<name>` (created if needed) from the first mirror
    /// that serves it whole and passes `check` (given the downloaded file; `Err` says why it is
    /// not the file, e.g. a checksum mismatch). Errors as [`download_file`]'s; no partial file
    /// is left behind.
    pub fn download_plain(
        dir: &Path,
        mirrors: &[impl AsRef<str>],
        name: &str,
        check: &dyn Fn(&Path) -> Result<(), String>,
        progress: &dyn DownloadProgress,
    ) -> Result<PathBuf, DataError> {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        let agent = agent();
        let mut failures = Vec::new();
        for mirror in mirrors {
            let url = format!("{}/{name}", mirror.as_ref().trim_end_matches('/'));
            let fail = |reason: String| DataError::Download {
                url: url.clone(),
                reason,
            };
            let attempt = stream(&agent, &url, dir, name, progress).and_then(|tmp| {
                check(tmp.path()).map_err(fail)?;
                let path = dir.join(name);
                tmp.persist(&path)
                    .map_err(|e| DataError::io(&path, e.error))?;
                Ok(path)
            });
            match attempt {
                Ok(path) => return Ok(path),
                Err(e @ DataError::Io { .. }) => return Err(e),
                Err(e) => failures.push(e),
            }
        }
        Err(DataError::MirrorsExhausted {
            file: name.to_owned(),
            failures,
        })
    }

    /// Streams `url` into a temporary file in `dir` (deleted when dropped), checking the status
    /// and the announced length; the file is flushed, synced and rewound.
    fn stream(
        agent: &ureq::Agent,
        url: &str,
        dir: &Path,
        name: &str,
        progress: &dyn DownloadProgress,
    ) -> Result<tempfile::NamedTempFile, DataError> {
        let fail = |reason: String| DataError::Download {
            url: url.to_owned(),
            reason,
        };
        let mut response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        if status != 200 {
            return Err(fail(format!("HTTP {status}")));
        }
        let total = response.body().content_length();
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".part")
            .tempfile_in(dir)
            .map_err(|e| DataError::io(dir, e))?;
        progress.start(url, total);
        let copied = copy_counting(
            &mut response.body_mut().as_reader(),
            tmp.as_file_mut(),
            progress,
        );
        progress.finish();
        let received = match copied {
            Ok(n) => n,
            Err(CopyError::Read(n, e)) => {
                let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
                return Err(fail(format!(
                    "truncated body: received {n}{of} bytes ({e})"
                )));
            }
            Err(CopyError::Write(e)) => return Err(DataError::io(tmp.path(), e)),
        };
        if let Some(total) = total.filter(|&t| t != received) {
            return Err(fail(format!(
                "truncated body: received {received} of {total} bytes"
            )));
        }
        let file = tmp.as_file_mut();
        file.flush()
            .and_then(|()| file.sync_all())
            .and_then(|()| file.rewind())
            .map_err(|e| DataError::io(tmp.path(), e))?;
        Ok(tmp)
    }

    /// [`download_file`] for each of `files`, in order; stops at the first failure.
    pub fn download_files(
        dir: &Path,
        mirrors: &[impl AsRef<str>],
        files: &[ExpectedFile<'_>],
        progress: &dyn DownloadProgress,
    ) -> Result<Vec<PathBuf>, DataError> {
        files
            .iter()
            .map(|f| download_file(dir, mirrors, f, progress))
            .collect()
    }

    /// One attempt at one URL.
    fn fetch(
        agent: &ureq::Agent,
        url: &str,
        dir: &Path,
        file: &ExpectedFile<'_>,
        progress: &dyn DownloadProgress,
    ) -> Result<PathBuf, DataError> {
        let fail = |reason: String| DataError::Download {
            url: url.to_owned(),
            reason,
        };
        // Dropping `tmp` (any early return) deletes the partial file.
        let tmp = stream(agent, url, dir, &format!("{}.gz", file.name), progress)?;
        let found =
            gunzip_sha256(tmp.as_file()).map_err(|e| fail(format!("corrupt gzip data: {e}")))?;
        if let Some(expected) = file.sha256.filter(|&e| e != found) {
            return Err(fail(format!(
                "checksum mismatch: SHA-256 of the decompressed {} is {found}, expected {expected}",
                file.name
            )));
        }
        let path = dir.join(format!("{}.gz", file.name));
        tmp.persist(&path)
            .map_err(|e| DataError::io(&path, e.error))?;
        Ok(path)
    }

    /// Why a copy stopped.
    enum CopyError {
        /// Reading failed after this many bytes.
        Read(u64, io::Error),
        /// Writing failed.
        Write(io::Error),
    }

    /// Copies `from` to `to`, reporting progress; returns the number of bytes copied.
    fn copy_counting(
        from: &mut impl Read,
        to: &mut impl Write,
        progress: &dyn DownloadProgress,
    ) -> Result<u64, CopyError> {
        let mut buf = vec![0; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CopyError::Read(total, e)),
            };
            to.write_all(&buf[..n]).map_err(CopyError::Write)?;
            total += n as u64;
            progress.advance(n as u64);
        }
    }

    /// Lowercase hex SHA-256 of the gunzipped contents of `file`.
    fn gunzip_sha256(file: &File) -> io::Result<String> {
        let mut decoder = MultiGzDecoder::new(BufReader::with_capacity(1 << 16, file));
        let mut hasher = Sha256::new();
        let mut buf = vec![0; 1 << 16];
        loop {
            match decoder.read(&mut buf) {
                Ok(0) => return Ok(hex(&hasher.finalize())),
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(all(test, feature = "download"))]
mod tests {
    use std::path::Path;
    use std::sync::Mutex;

    use super::*;
    use crate::files::sha256_hex;
    use crate::mnist::split_files;
    use crate::test_server::{Reply, Server};
    use crate::test_util::{gz, idx_images, idx_labels, real_data_root};
    use crate::{BuiltinDataset, DataError, DataSources, ExpectedFile, IdxDataset, Split, load};

    const NAME: &str = "t10k-images-idx3-ubyte";

    /// Records every progress call.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl DownloadProgress for Recorder {
        fn start(&self, url: &str, total: Option<u64>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("start {url} {total:?}"));
        }
        fn advance(&self, bytes: u64) {
            self.0.lock().unwrap().push(format!("+{bytes}"));
        }
        fn finish(&self) {
            self.0.lock().unwrap().push("finish".into());
        }
    }

    /// A small image file: (decompressed bytes, their SHA-256, gzip bytes).
    fn fixture(seed: u8) -> (Vec<u8>, String, Vec<u8>) {
        let pixels: Vec<u8> = (0..5 * 784).map(|i| (i as u8).wrapping_mul(seed)).collect();
        let raw = idx_images(&pixels);
        let sha = sha256_hex(&raw);
        let gz = gz(&raw);
        (raw, sha, gz)
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// A mirror URL nobody listens on.
    fn dead_mirror() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", listener.local_addr().unwrap())
    }

    fn route(prefix: &str) -> String {
        format!("/{prefix}/{NAME}.gz")
    }

    #[test]
    fn downloads_verifies_renames_and_reports_progress() {
        let (raw, sha, gz_bytes) = fixture(3);
        let server = Server::start(vec![(&route("m"), Reply::Body(gz_bytes.clone()))]);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("new/sub");
        let file = ExpectedFile {
            name: NAME,
            sha256: Some(&sha),
        };
        let progress = Recorder::default();
        let path = download_file(&dest, &[server.url("m")], &file, &progress).unwrap();
        assert_eq!(path, dest.join(format!("{NAME}.gz")));
        assert_eq!(std::fs::read(&path).unwrap(), gz_bytes);
        assert_eq!(crate::idx::read_file(&path).unwrap(), raw);
        assert_eq!(
            entries(&dest),
            [format!("{NAME}.gz")],
            "no temporary file left"
        );

        let events = progress.0.into_inner().unwrap();
        let url = format!("{}{NAME}.gz", server.url("m"));
        assert_eq!(events[0], format!("start {url} Some({})", gz_bytes.len()));
        assert_eq!(events.last().unwrap(), "finish");
        let advanced: u64 = events[1..events.len() - 1]
            .iter()
            .map(|e| e.trim_start_matches('+').parse::<u64>().unwrap())
            .sum();
        assert_eq!(advanced, gz_bytes.len() as u64);
    }

    #[test]
    fn checksum_mismatch_fails_and_leaves_nothing() {
        let (_, _, gz_bytes) = fixture(3);
        let (_, other_sha, _) = fixture(5);
        let server = Server::start(vec![(&route("m"), Reply::Body(gz_bytes))]);
        let dir = tempfile::tempdir().unwrap();
        let file = ExpectedFile {
            name: NAME,
            sha256: Some(&other_sha),
        };
        let err = download_file(dir.path(), &[server.url("m")], &file, &NoProgress).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::MirrorsExhausted { .. }), "{err:?}");
        assert!(
            msg.contains("checksum mismatch") && msg.contains(&other_sha),
            "{msg}"
        );
        assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    }

    #[test]
    fn corrupt_gzip_fails_and_leaves_nothing() {
        let (raw, sha, _) = fixture(3);
        let server = Server::start(vec![(&route("m"), Reply::Body(raw))]);
        let dir = tempfile::tempdir().unwrap();
        let file = ExpectedFile {
            name: NAME,
            sha256: Some(&sha),
        };
        let err = download_file(dir.path(), &[server.url("m")], &file, &NoProgress).unwrap_err();
        assert!(err.to_string().contains("corrupt gzip"), "{err}");
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn http_404_names_the_url_and_status() {
        let server = Server::start(Vec::<(String, Reply)>::new());
        let dir = tempfile::tempdir().unwrap();
        let file = ExpectedFile {
            name: NAME,
            sha256: None,
        };
        let err = download_file(dir.path(), &[server.url("gone")], &file, &NoProgress).unwrap_err();
        let DataError::MirrorsExhausted {
            file: name,
            failures,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(name, NAME);
        let [DataError::Download { url, reason }] = &failures[..] else {
            panic!("{failures:?}")
        };
        assert_eq!(url, &format!("{}{NAME}.gz", server.url("gone")));
        assert!(reason.contains("404"), "{reason}");
        let msg = err.to_string();
        assert!(msg.contains(url.as_str()) && msg.contains("404"), "{msg}");
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn truncated_body_is_an_error() {
        let (_, sha, gz_bytes) = fixture(3);
        let half = gz_bytes[..gz_bytes.len() / 2].to_vec();
        let reply = Reply::Truncated {
            declared: gz_bytes.len(),
            body: half,
        };
        let server = Server::start(vec![(&route("m"), reply)]);
        let dir = tempfile::tempdir().unwrap();
        let file = ExpectedFile {
            name: NAME,
            sha256: Some(&sha),
        };
        let err = download_file(dir.path(), &[server.url("m")], &file, &NoProgress).unwrap_err();
        let DataError::MirrorsExhausted { failures, .. } = &err else {
            panic!("{err:?}")
        };
        let [DataError::Download { reason, .. }] = &failures[..] else {
            panic!("{failures:?}")
        };
        let expected = format!(
            "truncated body: received {} of {}",
            gz_bytes.len() / 2,
            gz_bytes.len()
        );
        assert!(reason.contains(&expected), "{reason}");
        assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    }

    #[test]
    fn falls_back_through_failing_mirrors_in_order() {
        let (_, sha, gz_bytes) = fixture(3);
        let (_, _, wrong) = fixture(7);
        let truncated = Reply::Truncated {
            declared: 10_000,
            body: gz_bytes[..10].to_vec(),
        };
        let server = Server::start(vec![
            (&route("short"), truncated),
            (&route("wrong"), Reply::Body(wrong)),
            (&route("good"), Reply::Body(gz_bytes.clone())),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let mirrors = [
            dead_mirror(),
            server.url("missing"),
            server.url("short"),
            server.url("wrong"),
            server.url("good"),
            server.url("never"),
        ];
        let file = ExpectedFile {
            name: NAME,
            sha256: Some(&sha),
        };
        let path = download_file(dir.path(), &mirrors, &file, &NoProgress).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), gz_bytes);
        assert_eq!(
            server.requests(),
            [
                route("missing"),
                route("short"),
                route("wrong"),
                route("good")
            ]
        );
        assert_eq!(entries(dir.path()), [format!("{NAME}.gz")]);

        // Every mirror failing: one reason per mirror, in order.
        let err = download_file(dir.path(), &mirrors[..4], &file, &NoProgress).unwrap_err();
        let DataError::MirrorsExhausted { failures, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(failures.len(), 4);
        for (failure, mirror) in failures.iter().zip(&mirrors) {
            assert!(failure.to_string().contains(mirror.as_str()), "{failure}");
        }
    }

    #[test]
    fn download_files_fetches_each_file() {
        let (_, sha, gz_bytes) = fixture(3);
        let labels = idx_labels(&[1, 2, 3]);
        let labels_sha = sha256_hex(&labels);
        let server = Server::start(vec![
            (route("m"), Reply::Body(gz_bytes)),
            ("/m/labels.gz".into(), Reply::Body(gz(&labels))),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let files = [
            ExpectedFile {
                name: NAME,
                sha256: Some(&sha),
            },
            ExpectedFile {
                name: "labels",
                sha256: Some(&labels_sha),
            },
        ];
        let paths = download_files(dir.path(), &[server.url("m")], &files, &NoProgress).unwrap();
        assert_eq!(
            paths,
            [
                dir.path().join(format!("{NAME}.gz")),
                dir.path().join("labels.gz")
            ]
        );
    }

    #[test]
    fn load_downloads_missing_files_into_the_cache_once() {
        let pixels: Vec<u8> = (0..4 * 784).map(|i| (i % 256) as u8).collect();
        let [images, labels] = split_files(Split::Test);
        let server = Server::start(vec![
            (
                &format!("/m/{images}.gz"),
                Reply::Body(gz(&idx_images(&pixels))),
            ),
            (
                &format!("/m/{labels}.gz"),
                Reply::Body(gz(&idx_labels(&[3, 1, 4, 1]))),
            ),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let sources = DataSources {
            explicit: Some(dir.path().join("nothing-here")),
            cache: Some(cache.clone()),
            download: true,
            verify: false, // the fixtures do not have the canonical checksums
            mirrors: [(BuiltinDataset::Mnist, vec![server.url("m")])].into(),
            ..DataSources::default()
        };
        let loaded = load(IdxDataset::Mnist, Split::Test, &sources).unwrap();
        let (set, used) = (loaded.images, loaded.provenance.dir);
        assert_eq!(used, cache.join("mnist"));
        assert_eq!((set.len(), set.labels()), (4, &[3, 1, 4, 1][..]));
        assert_eq!(set.images(), pixels);
        assert_eq!(server.requests().len(), 2);
        load(IdxDataset::Mnist, Split::Test, &sources).unwrap();
        assert_eq!(server.requests().len(), 2, "second load uses the cache");

        // With verification on, the non-canonical fixture is rejected by name.
        let fresh = DataSources {
            cache: Some(dir.path().join("c2")),
            verify: true,
            ..sources
        };
        let err = load(IdxDataset::Mnist, Split::Test, &fresh).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert!(entries(&dir.path().join("c2/mnist")).is_empty());
    }

    #[test]
    fn load_downloads_real_mnist_test_set_with_canonical_checksums() {
        let real = real_data_root().join("mnist");
        let routes: Vec<(String, Reply)> = split_files(Split::Test)
            .iter()
            .map(|name| {
                let bytes = std::fs::read(real.join(format!("{name}.gz"))).unwrap();
                (format!("/mnist/{name}.gz"), Reply::Body(bytes))
            })
            .collect();
        let server = Server::start(routes);
        let dir = tempfile::tempdir().unwrap();
        let sources = DataSources {
            cache: Some(dir.path().to_path_buf()),
            download: true,
            mirrors: [(
                BuiltinDataset::Mnist,
                vec![dead_mirror(), server.url("mnist")],
            )]
            .into(),
            ..DataSources::default()
        };
        let loaded = load(IdxDataset::Mnist, Split::Test, &sources).unwrap();
        let (set, used) = (loaded.images, loaded.provenance.dir);
        assert_eq!(used, dir.path().join("mnist"));
        assert_eq!(set.len(), 10_000);
        assert_eq!(set.label(0), 7);
    }
}
