//! Test support for the in-process network tests: start a broker on port 0,
//! talk to it over a raw socket with kafka-protocol's encoders, build
//! record batches, and an `Fs` wrapper that can block prefaults on a latch
//! and counts fsyncs.

#![allow(dead_code)]

use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseKind};
use kafka_protocol::protocol::{Encodable, StrBytes};
use sluice_broker::metadata::QuorumMode;
use sluice_broker::network::Listener;
use sluice_broker::{Broker, BrokerConfig};
use sluice_record::{BatchBuilder, CompressionType, Timestamp};
use sluice_storage::{Clock, FileHandle, Fs, MappedRegion, OpenOptions, RealFs, SystemClock};
use sluice_transport::net::{Acceptor, BoxFuture, BoxStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

pub struct TestBroker {
    pub broker: Broker,
    pub dir: tempfile::TempDir,
}

impl TestBroker {
    pub async fn start(fs: Arc<dyn Fs>, overrides: &[(&str, &str)]) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().to_str().unwrap().to_string();
        let mut all: Vec<(&str, &str)> = vec![
            ("listeners", "PLAINTEXT://127.0.0.1:0"),
            ("log.dirs", log_dir.as_str()),
        ];
        all.extend_from_slice(overrides);
        let config = BrokerConfig::with_overrides(&all).unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let broker = Broker::start(config, fs, clock).await.unwrap();
        TestBroker { broker, dir }
    }

    /// A broker whose only listener is an in-memory acceptor (the seam
    /// the simulation uses): connect with [`MemoryConnector::connect`].
    pub async fn start_in_memory(fs: Arc<dyn Fs>) -> (TestBroker, MemoryConnector) {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().to_str().unwrap().to_string();
        let config = BrokerConfig::with_overrides(&[
            ("listeners", "PLAINTEXT://127.0.0.1:9092"),
            ("log.dirs", log_dir.as_str()),
        ])
        .unwrap();
        let (tx, rx) = mpsc::channel(16);
        let acceptor = MemoryAcceptor {
            rx,
            next_port: 40000,
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let broker = Broker::start_on(
            config,
            fs,
            clock,
            QuorumMode::SingleNode,
            vec![Listener::Other(Box::new(acceptor))],
        )
        .await
        .unwrap();
        (TestBroker { broker, dir }, MemoryConnector(tx))
    }

    pub async fn start_default() -> TestBroker {
        Self::start(Arc::new(RealFs), &[]).await
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.broker.bound_addr()
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr()).await
    }
}

/// In-memory connections to a broker started with
/// [`TestBroker::start_in_memory`].
#[derive(Clone)]
pub struct MemoryConnector(mpsc::Sender<tokio::io::DuplexStream>);

impl MemoryConnector {
    pub async fn connect(&self) -> Client {
        let (ours, theirs) = tokio::io::duplex(256 * 1024);
        self.0
            .send(theirs)
            .await
            .expect("the broker stopped accepting");
        Client::over(Box::new(ours))
    }
}

struct MemoryAcceptor {
    rx: mpsc::Receiver<tokio::io::DuplexStream>,
    next_port: u16,
}

impl Acceptor for MemoryAcceptor {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, std::net::SocketAddr)>> {
        Box::pin(async move {
            let s = self.rx.recv().await.ok_or_else(|| {
                io::Error::new(io::ErrorKind::ConnectionAborted, "no more connections")
            })?;
            self.next_port += 1;
            let peer = std::net::SocketAddr::from(([127, 0, 0, 2], self.next_port));
            Ok((Box::new(s) as BoxStream, peer))
        })
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        Ok(std::net::SocketAddr::from(([127, 0, 0, 1], 9092)))
    }
}

/// A raw Kafka client: encodes requests with kafka-protocol, reads frames.
pub struct Client {
    pub stream: BoxStream,
    next_correlation: i32,
}

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self::over(Box::new(stream))
    }

    /// A client on an already open stream.
    pub fn over(stream: BoxStream) -> Client {
        Client {
            stream,
            next_correlation: 1,
        }
    }

    /// Writes one request; returns its correlation id.
    pub async fn send<T: Encodable>(&mut self, api_key: ApiKey, version: i16, body: &T) -> i32 {
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        let frame = request_frame(api_key, version, correlation, body);
        self.stream.write_all(&frame).await.unwrap();
        correlation
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads one whole response frame (without the size prefix); `None` when
    /// the broker closed the connection.
    pub async fn recv_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        if self.stream.read_exact(&mut size).await.is_err() {
            return None;
        }
        let size = i32::from_be_bytes(size);
        assert!(size >= 0, "negative response size");
        let mut buf = vec![0u8; size as usize];
        self.stream.read_exact(&mut buf).await.ok()?;
        Some(Bytes::from(buf))
    }

    /// Reads one response and decodes it; returns (correlation id, body).
    pub async fn recv(&mut self, api_key: ApiKey, version: i16) -> (i32, ResponseKind) {
        let frame = self.recv_frame().await.expect("connection closed");
        decode_response(api_key, version, frame)
    }

    pub async fn call<T: Encodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &T,
    ) -> ResponseKind {
        let correlation = self.send(api_key, version, body).await;
        let (got, resp) = self.recv(api_key, version).await;
        assert_eq!(got, correlation, "response out of order");
        resp
    }

    /// True when the broker has closed the connection (reads EOF or reset).
    pub async fn is_closed_by_broker(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue, // drain whatever answer came first
            }
        }
    }
}

pub fn request_header(api_key: ApiKey, version: i16, correlation: i32) -> RequestHeader {
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("netkit")))
}

pub fn request_frame<T: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation: i32,
    body: &T,
) -> BytesMut {
    let header = request_header(api_key, version, correlation);
    let header_version = sluice_protocol::request_header_version(api_key, version);
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header.encode(&mut buf, header_version).unwrap();
    body.encode(&mut buf, version).unwrap();
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf
}

/// Splits a response frame into correlation id and decoded body.
pub fn decode_response(api_key: ApiKey, version: i16, frame: Bytes) -> (i32, ResponseKind) {
    let mut buf = frame;
    let correlation = buf.get_i32();
    if sluice_protocol::response_header_version(api_key, version) >= 1 {
        let tagged = buf.get_u8();
        assert_eq!(tagged, 0, "unexpected response header tagged fields");
    }
    let body = ResponseKind::decode(api_key, &mut buf, version).unwrap();
    assert!(buf.is_empty(), "{} trailing bytes in response", buf.len());
    (correlation, body)
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One RecordBatch v2 with `values` as record values (keys "k<i>"),
/// timestamped `ts_from_now` ms from now (so no time-based segment roll).
pub fn batch(values: &[&[u8]], ts_from_now: i64) -> Vec<u8> {
    batch_at(values, now_ms() + ts_from_now)
}

/// Like [`batch`] with an absolute first timestamp.
pub fn batch_at(values: &[&[u8]], base_ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(CompressionType::None);
    for (i, v) in values.iter().enumerate() {
        let key = format!("k{i}");
        b.append(
            Timestamp(base_ts + i as i64),
            Some(key.as_bytes()),
            Some(v),
            &[],
        )
        .unwrap();
    }
    b.build().unwrap()
}

/// Every record value in `records` (batches end to end), with its offset.
pub fn record_values(records: &[u8]) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let size = sluice_record::BatchHeader::peek_size(&records[pos..]).unwrap();
        let batch = &records[pos..pos + size];
        let reader = sluice_record::records(batch, 64 << 20).unwrap();
        for r in reader.records() {
            let r = r.unwrap();
            out.push((
                r.offset.value(),
                r.value.map(|v| v.to_vec()).unwrap_or_default(),
            ));
        }
        pos += size;
    }
    out
}

// ---------------------------------------------------------------- Fs wrapper

/// A latch: closed until opened; `wait` blocks while closed.
#[derive(Default)]
pub struct Latch {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Latch {
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
    pub fn wait(&self) {
        let mut g = self.open.lock().unwrap();
        while !*g {
            g = self.cv.wait(g).unwrap();
        }
    }
}

/// Shared controls of [`SeamFs`].
#[derive(Default)]
pub struct SeamControl {
    /// When set, every `.log` file says its ranges are not resident and
    /// `prefault` blocks until `release` opens.
    pub cold_reads: AtomicBool,
    pub release: Latch,
    /// Sent once per prefault that starts blocking.
    pub prefault_entered: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    pub prefaults: AtomicUsize,
    /// fsyncs of `.log` files.
    pub log_syncs: AtomicUsize,
}

/// The real file system seen through test controls.
pub struct SeamFs {
    inner: RealFs,
    pub control: Arc<SeamControl>,
}

impl SeamFs {
    pub fn new() -> (Arc<SeamFs>, Arc<SeamControl>) {
        let control = Arc::new(SeamControl::default());
        (
            Arc::new(SeamFs {
                inner: RealFs,
                control: control.clone(),
            }),
            control,
        )
    }
}

impl Fs for SeamFs {
    fn open(&self, path: &Path, opts: &OpenOptions) -> io::Result<Arc<dyn FileHandle>> {
        let inner = self.inner.open(path, opts)?;
        let is_log = path.extension().is_some_and(|e| e == "log");
        Ok(Arc::new(SeamFile {
            inner,
            is_log,
            control: self.control.clone(),
        }))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        self.inner.read_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.inner.is_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn boot_id(&self) -> Option<String> {
        self.inner.boot_id()
    }
}

struct SeamFile {
    inner: Arc<dyn FileHandle>,
    is_log: bool,
    control: Arc<SeamControl>,
}

impl FileHandle for SeamFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.inner.read_at(buf, pos)
    }
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize> {
        self.inner.write_at(buf, pos)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.allocate(offset, len)
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.is_log {
            self.control.log_syncs.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.sync_data()
    }
    fn raw_fd(&self) -> Option<RawFd> {
        self.inner.raw_fd()
    }
    fn is_resident(&self, pos: u64, len: u64) -> io::Result<bool> {
        if self.is_log && self.control.cold_reads.load(Ordering::SeqCst) {
            return Ok(false);
        }
        self.inner.is_resident(pos, len)
    }
    fn prefault(&self, pos: u64, len: u64) -> io::Result<()> {
        if self.is_log && self.control.cold_reads.load(Ordering::SeqCst) {
            self.control.prefaults.fetch_add(1, Ordering::SeqCst);
            if let Some(tx) = self.control.prefault_entered.lock().unwrap().as_ref() {
                let _ = tx.send(());
            }
            // Stands in for a disk read that takes as long as the test wants.
            self.control.release.wait();
        }
        self.inner.prefault(pos, len)
    }
    fn map_mut(&self, len: u64) -> io::Result<Box<dyn MappedRegion>> {
        self.inner.map_mut(len)
    }
}
