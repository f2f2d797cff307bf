//! The delay proxy: latency, jitter and held traffic between nodes, since
//! this kernel has no `tc netem`. It owns one TCP listener per node
//! namespace (on `127.0.0.1:`[`PROXY_PORT`]) and a small tokio runtime that
//! forwards every node-to-node connection through it.
//!
//! How traffic gets here: inside each node's namespace (never the host's),
//! an nftables `nat` rule redirects the node's own outgoing connections to
//! another node's client or controller port to the local listener
//! ([`crate::netns::TestNet::redirect_to_proxy`]). The proxy reads the
//! original destination (`SO_ORIGINAL_DST`) and connects there from the
//! same namespace, with a socket mark the rule lets through, so the
//! forwarded connection still comes from the node's own address and the
//! nftables drop rules of the partition faults apply to it as before. The
//! workload's clients are not redirected: delay is between nodes only.
//!
//! What a fault sets ([`Link`], per ordered pair of nodes): each chunk read
//! from node `from` towards node `to` is written on after `delay` plus a
//! uniform draw in `[0, jitter)`, counted from when it was read; `hold`
//! keeps it (and everything behind it) until released. Bytes of one TCP
//! connection stay in order, as TCP guarantees, so jitter reorders messages
//! across connections (a fetch response against a vote on another one), not
//! within one. Buffers are bounded: [`QUEUE`] chunks of at most [`CHUNK`]
//! bytes per direction of a connection; when they are full the proxy stops
//! reading and TCP's flow control pushes back on the sender.
//!
//! One difference from a direct connection: the local leg always connects
//! at once, so a node that cannot reach a peer sees its connection closed
//! (or a request time out) rather than a connect timeout.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::netns::TestNet;
use crate::NemesisError;

/// The port of the proxy's listener in every node namespace.
pub const PROXY_PORT: u16 = 19_000;
/// The socket mark of the proxy's own connections ("NEM"): the redirect
/// rule skips them.
pub const MARK: u32 = 0x4e_45_4d;
/// The most bytes read at once from one side.
pub const CHUNK: usize = 64 << 10;
/// The most chunks waiting per direction of a connection.
pub const QUEUE: usize = 64;
/// How long the proxy tries to reach the original destination.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a fault does to the traffic from one node to another.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// Every chunk waits at least this long...
    pub delay: Duration,
    /// ...plus a uniform draw below this.
    pub jitter: Duration,
    /// Nothing goes through until this is cleared.
    pub hold: bool,
}

/// The faults in force, by `(from, to)` node ids; absent means none.
type Links = HashMap<(usize, usize), Link>;

/// What went through the proxy since it started.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub bytes: AtomicU64,
    /// Connections whose original destination could not be reached.
    pub failed_connects: AtomicU64,
}

/// The running proxy (stopped when dropped).
pub struct DelayProxy {
    runtime: Option<tokio::runtime::Runtime>,
    links: watch::Sender<Links>,
    stats: Arc<Stats>,
}

/// Node ids by address, and each node's namespace.
#[derive(Clone)]
struct Nodes {
    by_addr: HashMap<Ipv4Addr, usize>,
    ns: Vec<String>,
}

fn io_err(what: &str) -> impl FnOnce(io::Error) -> NemesisError + '_ {
    move |source| NemesisError::Io {
        what: what.to_string(),
        source,
    }
}

impl DelayProxy {
    /// Starts a listener in every node namespace of `net` and redirects
    /// each node's connections to the other nodes' `ports` through it.
    pub fn start(net: &TestNet, ports: &[u16]) -> Result<Self, NemesisError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("nemesis-proxy")
            .enable_all()
            .build()
            .map_err(io_err("starting the proxy's runtime"))?;
        let mut nodes = Nodes {
            by_addr: HashMap::new(),
            ns: Vec::new(),
        };
        for i in 1..=net.nodes() {
            let addr: Ipv4Addr = net.node_addr(i).parse().expect("a node address");
            nodes.by_addr.insert(addr, i);
            nodes.ns.push(net.node_ns(i));
        }
        let (links, _) = watch::channel(Links::new());
        let stats = Arc::new(Stats::default());
        for i in 1..=net.nodes() {
            let listener = in_namespace(&net.node_ns(i), || {
                let l = std::net::TcpListener::bind(("127.0.0.1", PROXY_PORT))?;
                l.set_nonblocking(true)?;
                Ok(l)
            })
            .map_err(io_err("binding the proxy's listener"))?;
            let listener = {
                let _guard = runtime.enter();
                TcpListener::from_std(listener).map_err(io_err("registering a listener"))?
            };
            runtime.spawn(accept_loop(
                i,
                listener,
                nodes.clone(),
                links.subscribe(),
                stats.clone(),
            ));
            net.redirect_to_proxy(i, ports, PROXY_PORT, MARK)?;
        }
        Ok(DelayProxy {
            runtime: Some(runtime),
            links,
            stats,
        })
    }

    /// Sets what happens to traffic from node `from` to node `to`.
    pub fn set(&self, from: usize, to: usize, link: Link) {
        self.links.send_modify(|l| {
            if link == Link::default() {
                l.remove(&(from, to));
            } else {
                l.insert((from, to), link);
            }
        });
    }

    /// Removes every fault: delayed chunks go out when due, held ones now.
    pub fn clear(&self) {
        self.links.send_modify(Links::clear);
    }

    /// The pairs with a fault in force.
    pub fn active(&self) -> Vec<((usize, usize), Link)> {
        let mut v: Vec<_> = self.links.borrow().iter().map(|(k, l)| (*k, *l)).collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs `f` on a new thread inside namespace `ns` (sockets belong to the
/// namespace of the thread that creates them).
fn in_namespace<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        crate::netns::enter(&ns).map_err(|e| io::Error::other(e.to_string()))?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("the namespace thread panicked"))?
}

/// An unconnected TCP socket in namespace `ns`, marked with [`MARK`].
fn marked_socket(ns: &str) -> io::Result<std::net::TcpStream> {
    in_namespace(ns, || {
        // SAFETY: a plain socket call; the fd is owned by the stream below.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new socket that nothing else owns.
        let stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        let mark = MARK;
        // SAFETY: setsockopt with a u32 of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_MARK,
                &mark as *const u32 as *const libc::c_void,
                std::mem::size_of::<u32>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stream)
    })
}

/// Where a redirected connection was going (netfilter's `SO_ORIGINAL_DST`).
fn original_destination(stream: &TcpStream) -> io::Result<SocketAddrV4> {
    const SO_ORIGINAL_DST: libc::c_int = 80;
    // SAFETY: getsockopt into a zeroed sockaddr_in of the size passed.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_IP,
            SO_ORIGINAL_DST,
            &mut addr as *mut libc::sockaddr_in as *mut libc::c_void,
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
        u16::from_be(addr.sin_port),
    ))
}

async fn accept_loop(
    from: usize,
    listener: TcpListener,
    nodes: Nodes,
    links: watch::Receiver<Links>,
    stats: Arc<Stats>,
) {
    loop {
        let Ok((local, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (nodes, links, stats) = (nodes.clone(), links.clone(), stats.clone());
        tokio::spawn(async move {
            let _ = forward(from, local, &nodes, links, &stats).await;
        });
    }
}

/// One redirected connection from node `from`: connect to where it was
/// going, then pump both ways until both ends closed or one failed.
async fn forward(
    from: usize,
    local: TcpStream,
    nodes: &Nodes,
    links: watch::Receiver<Links>,
    stats: &Stats,
) -> io::Result<()> {
    let dest = original_destination(&local)?;
    let Some(&to) = nodes.by_addr.get(dest.ip()) else {
        return Err(io::Error::other(format!("{dest} is no node")));
    };
    let ns = nodes.ns[from - 1].clone();
    let socket = tokio::task::spawn_blocking(move || marked_socket(&ns))
        .await
        .map_err(io::Error::other)??;
    let socket = TcpSocket::from_std_stream(socket);
    let remote =
        match tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(SocketAddr::V4(dest))).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                stats.failed_connects.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
            Err(_) => {
                stats.failed_connects.fetch_add(1, Ordering::Relaxed);
                return Err(io::ErrorKind::TimedOut.into());
            }
        };
    stats.connections.fetch_add(1, Ordering::Relaxed);
    let _ = local.set_nodelay(true);
    let _ = remote.set_nodelay(true);
    let (local_read, local_write) = local.into_split();
    let (remote_read, remote_write) = remote.into_split();
    tokio::try_join!(
        pump(local_read, remote_write, (from, to), links.clone(), stats),
        pump(remote_read, local_write, (to, from), links, stats),
    )?;
    Ok(())
}

/// One direction of a connection: a reader that queues timestamped chunks
/// (bounded) and a writer that sends each on when its link lets it.
async fn pump(
    mut src: OwnedReadHalf,
    mut dst: OwnedWriteHalf,
    link: (usize, usize),
    links: watch::Receiver<Links>,
    stats: &Stats,
) -> io::Result<()> {
    // `None` marks the end of the stream (to pass on as a half-close).
    let (tx, mut rx) = mpsc::channel::<(Instant, Option<Vec<u8>>)>(QUEUE);
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = src.read(&mut buf).await?;
            let chunk = (n > 0).then(|| buf[..n].to_vec());
            let end = chunk.is_none();
            if tx.send((Instant::now(), chunk)).await.is_err() || end {
                return Ok::<(), io::Error>(());
            }
        }
    };
    let writer = async move {
        let mut links = links;
        while let Some((read_at, chunk)) = rx.recv().await {
            wait_for_link(read_at, link, &mut links).await;
            match chunk {
                Some(bytes) => {
                    assert!(bytes.len() <= CHUNK, "a chunk is at most CHUNK bytes");
                    dst.write_all(&bytes).await?;
                    stats.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
                None => {
                    dst.shutdown().await?;
                    return Ok(());
                }
            }
        }
        Ok::<(), io::Error>(())
    };
    tokio::try_join!(reader, writer)?;
    Ok(())
}

/// Waits until a chunk read at `read_at` may go on: while its link holds,
/// and until its delay (drawn again whenever the faults change) has passed.
async fn wait_for_link(read_at: Instant, link: (usize, usize), links: &mut watch::Receiver<Links>) {
    loop {
        let current = links.borrow_and_update().get(&link).copied();
        let Some(l) = current else { return };
        if l.hold {
            if links.changed().await.is_err() {
                return;
            }
            continue;
        }
        let jitter = if l.jitter.is_zero() {
            Duration::ZERO
        } else {
            rand::thread_rng().gen_range(Duration::ZERO..l.jitter)
        };
        let due = read_at + l.delay + jitter;
        if due <= Instant::now() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(due) => return,
            changed = links.changed() => if changed.is_err() { return },
        }
    }
}
