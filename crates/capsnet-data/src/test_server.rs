//! A tiny HTTP/1.1 server on 127.0.0.1 for tests of the download code (the real mirrors are out
//! of reach in tests and CI): fixed replies per path, 404 for the rest, one connection at a time,
//! until dropped. The one server the workspace's tests use: this crate's unit tests, and other
//! crates' tests through the `test-server` feature. Not for production use.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What the server answers for a path.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this body.
    Body(Vec<u8>),
    /// 200 announcing `declared` bytes but sending only `body`, then closing.
    Truncated {
        /// The `Content-Length` sent.
        declared: usize,
        /// The bytes actually sent.
        body: Vec<u8>,
    },
}

/// The running server; stops (and joins its thread) when dropped.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts serving `routes` (absolute paths such as `/mnist/train-images-idx3-ubyte.gz`) on a
    /// free port. Panics if no port can be bound (a test setup failure).
    pub fn start<P: Into<String>>(routes: Vec<(P, Reply)>) -> Self {
        let routes: HashMap<String, Reply> =
            routes.into_iter().map(|(p, r)| (p.into(), r)).collect();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port on 127.0.0.1");
        let addr = listener.local_addr().expect("the bound address");
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

    /// `http://127.0.0.1:<port>/<prefix>/`: the mirror URL for routes under `/<prefix>/`.
    pub fn url(&self, prefix: &str) -> String {
        format!("http://{}/{prefix}/", self.addr)
    }

    /// Paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("request log").clone()
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
    if let Ok(mut log) = requests.lock() {
        log.push(path.clone());
    }
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
