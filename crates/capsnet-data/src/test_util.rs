//! Fixtures shared by the unit tests: IDX/gzip files and a tiny local HTTP server.

use std::io::Write;
use std::path::Path;

use flate2::{Compression, write::GzEncoder};

use crate::{Split, idx};

/// Gzip-compresses `bytes`.
pub(crate) fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// IDX bytes of 28×28 images.
pub(crate) fn idx_images(pixels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    idx::write_idx_images(&mut v, 28, 28, pixels).unwrap();
    v
}

/// IDX bytes of labels.
pub(crate) fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    idx::write_idx_labels(&mut v, labels).unwrap();
    v
}

/// Writes a split's two files (28×28 images) into `dir`, as `.gz` if `gzip`.
pub(crate) fn write_split(dir: &Path, split: Split, pixels: &[u8], labels: &[u8], gzip: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let [images_name, labels_name] = split.file_names();
    for (name, bytes) in [
        (images_name, idx_images(pixels)),
        (labels_name, idx_labels(labels)),
    ] {
        if gzip {
            std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

#[cfg(feature = "download")]
pub(crate) use server::{Reply, Server};

#[cfg(feature = "download")]
mod server {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;

    /// What the server answers for a path.
    #[derive(Clone)]
    pub(crate) enum Reply {
        /// 200 with this body.
        Body(Vec<u8>),
        /// 200 announcing `declared` bytes but sending only `body`, then closing.
        Truncated { declared: usize, body: Vec<u8> },
    }

    /// An HTTP/1.1 server on 127.0.0.1 serving fixed replies (404 for unknown paths), one
    /// connection at a time, until dropped.
    pub(crate) struct Server {
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
        requests: Arc<Mutex<Vec<String>>>,
        thread: Option<JoinHandle<()>>,
    }

    impl Server {
        pub(crate) fn start(routes: Vec<(&str, Reply)>) -> Self {
            let routes: HashMap<String, Reply> =
                routes.into_iter().map(|(p, r)| (p.to_owned(), r)).collect();
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let requests = Arc::new(Mutex::new(Vec::new()));
            let thread = std::thread::spawn({
                let (stop, requests) = (stop.clone(), requests.clone());
                move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        if let Ok(stream) = stream {
                            let _ = handle(stream, &routes, &requests);
                        }
                    }
                }
            });
            Self {
                addr,
                stop,
                requests,
                thread: Some(thread),
            }
        }

        /// `http://127.0.0.1:<port>/<prefix>/`.
        pub(crate) fn url(&self, prefix: &str) -> String {
            format!("http://{}/{prefix}/", self.addr)
        }

        /// Paths requested so far, in order.
        pub(crate) fn requests(&self) -> Vec<String> {
            self.requests.lock().unwrap().clone()
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(self.addr); // wake the accept loop
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn handle(
        stream: TcpStream,
        routes: &HashMap<String, Reply>,
        requests: &Mutex<Vec<String>>,
    ) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header == "\r\n" {
                break;
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_owned();
        requests.lock().unwrap().push(path.clone());
        let mut out = stream;
        let head = |status: &str, len: usize| {
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {len}\r\nConnection: close\r\n\r\n"
            )
        };
        match routes.get(&path) {
            Some(Reply::Body(body)) => {
                out.write_all(head("200 OK", body.len()).as_bytes())?;
                out.write_all(body)?;
            }
            Some(Reply::Truncated { declared, body }) => {
                out.write_all(head("200 OK", *declared).as_bytes())?;
                out.write_all(body)?;
            }
            None => {
                let body = b"not found";
                out.write_all(head("404 Not Found", body.len()).as_bytes())?;
                out.write_all(body)?;
            }
        }
        out.flush()
    }
}

/// The directory holding the real datasets (`mnist/`, `fashion-mnist/`): `$CAPSNET_DATA` if
/// set, else `shared/datasets` beside the workspace. Panics (failing the test) if missing.
#[cfg(feature = "download")]
pub(crate) fn real_data_root() -> std::path::PathBuf {
    let root = std::env::var_os(crate::dataset::DATA_ENV)
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets"));
    assert!(
        root.join("mnist").is_dir(),
        "real MNIST data not found at {}: set CAPSNET_DATA to a directory holding mnist/",
        root.display()
    );
    root
}
