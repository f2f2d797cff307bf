//! The delay proxy: latency, jitter and held traffic between nodes, since
//! this kernel has no `tc netem`. It owns a small tokio runtime and, in
//! every node's namespace, one TCP listener per route (another node's
//! client or controller port) on `127.0.0.1`, from [`PROXY_PORT`] on.
//!
//! How traffic gets here: inside each node's namespace (never the host's),
//! nftables `nat` rules redirect the node's own outgoing connections to a
//! route's destination to the route's listener
//! ([`crate::netns::TestNet::redirect_to_proxy`]). The proxy connects to
//! the destination from the same namespace, with a socket mark the rules
//! let through, so the forwarded connection still comes from the node's
//! own address and the nftables drop rules of the partition faults apply
//! to it as before. The workload's clients are not redirected: delay is
//! between nodes only.
//!
//! A proxy accepts before it knows whether the destination will, so a
//! node whose peer is down would see connections accepted and closed at
//! once, which some clients retry without backoff (openraft backs off only
//! from an unreachable peer). So when the destination refuses, the route's
//! listener closes (new connections are refused, as the peer's would be)
//! and opens again once a probe connects; a destination that does not
//! answer (dropped packets) keeps the route's next connection waiting, as
//! a connect would.
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
use std::os::fd::FromRawFd;
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

/// The first port of the proxy's listeners in every node namespace (route
/// `(to, k)`, the `k`-th proxied port of node `to`, listens on
/// `PROXY_PORT + 10 * to + k`).
pub const PROXY_PORT: u16 = 19_000;
/// How often a route whose destination refused probes it.
const PROBE_EVERY: Duration = Duration::from_millis(100);
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

/// One proxied destination as seen from one node.
#[derive(Clone, Debug)]
struct Route {
    from: usize,
    to: usize,
    /// The source node's namespace (both legs' sockets live there).
    ns: String,
    /// Where the node's connection was going.
    dest: SocketAddrV4,
    /// The route's listener port (on 127.0.0.1 in `ns`).
    port: u16,
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
        assert!(ports.len() <= 10, "at most 10 proxied ports");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("nemesis-proxy")
            .enable_all()
            .build()
            .map_err(io_err("starting the proxy's runtime"))?;
        let (links, _) = watch::channel(Links::new());
        let stats = Arc::new(Stats::default());
        for from in 1..=net.nodes() {
            let mut routes = Vec::new();
            for to in (1..=net.nodes()).filter(|&to| to != from) {
                let ip: Ipv4Addr = net.node_addr(to).parse().expect("a node address");
                for (k, &p) in ports.iter().enumerate() {
                    let route = Route {
                        from,
                        to,
                        ns: net.node_ns(from),
                        dest: SocketAddrV4::new(ip, p),
                        port: PROXY_PORT + 10 * to as u16 + k as u16,
                    };
                    let listener = {
                        let std = bind(&route).map_err(io_err("binding a proxy listener"))?;
                        let _guard = runtime.enter();
                        TcpListener::from_std(std).map_err(io_err("registering a listener"))?
                    };
                    routes.push((route.dest, route.port));
                    runtime.spawn(serve_route(
                        route,
                        listener,
                        links.subscribe(),
                        stats.clone(),
                    ));
                }
            }
            net.redirect_to_proxy(from, &routes, MARK)?;
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

/// The route's listener, in its node's namespace.
fn bind(route: &Route) -> io::Result<std::net::TcpListener> {
    let port = route.port;
    in_namespace(&route.ns, move || {
        let l = std::net::TcpListener::bind(("127.0.0.1", port))?;
        l.set_nonblocking(true)?;
        Ok(l)
    })
}

/// A connection to the route's destination from its node's namespace.
async fn connect(route: &Route) -> io::Result<TcpStream> {
    let ns = route.ns.clone();
    let socket = tokio::task::spawn_blocking(move || marked_socket(&ns))
        .await
        .map_err(io::Error::other)??;
    let socket = TcpSocket::from_std_stream(socket);
    tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(SocketAddr::V4(route.dest)))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

/// Accepts the route's connections and forwards each. One connection is
/// set up at a time (a destination that does not answer keeps the next
/// waiting, as its connect would); while the destination refuses, the
/// listener is closed (see the module doc).
async fn serve_route(
    route: Route,
    listener: TcpListener,
    links: watch::Receiver<Links>,
    stats: Arc<Stats>,
) {
    let mut listener = Some(listener);
    loop {
        let Some(l) = listener.as_ref() else {
            // Refused: probe until the destination answers, then listen again.
            tokio::time::sleep(PROBE_EVERY).await;
            if connect(&route).await.is_ok() {
                let rebound = tokio::task::spawn_blocking({
                    let route = route.clone();
                    move || bind(&route)
                })
                .await;
                if let Ok(Ok(std)) = rebound {
                    listener = TcpListener::from_std(std).ok();
                }
            }
            continue;
        };
        let Ok((local, _)) = l.accept().await else {
            tokio::time::sleep(PROBE_EVERY).await;
            continue;
        };
        match connect(&route).await {
            Ok(remote) => {
                stats.connections.fetch_add(1, Ordering::Relaxed);
                let (links, stats) = (links.clone(), stats.clone());
                let (from, to) = (route.from, route.to);
                tokio::spawn(async move {
                    let _ = forward(local, remote, (from, to), links, &stats).await;
                });
            }
            Err(e) => {
                stats.failed_connects.fetch_add(1, Ordering::Relaxed);
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    listener = None;
                }
            }
        }
    }
}

/// Pumps both ways between a node's connection and the destination until
/// both ends closed or one failed.
async fn forward(
    local: TcpStream,
    remote: TcpStream,
    (from, to): (usize, usize),
    links: watch::Receiver<Links>,
    stats: &Stats,
) -> io::Result<()> {
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
