//! The delay proxy (`sluice_nemesis::proxy`) between two node namespaces:
//! a connection from node 1 to node 2's client port goes through it (its
//! counters move), a delay set on a link really lengthens the round trip
//! (measured against an echo server in node 2's namespace, asserted only
//! from below: a slow machine cannot make a delay shorter), held traffic
//! does not arrive until released, bytes under jitter stay in order, and a
//! destination that refuses is refused through the proxy too.
//! Skips (with a message) where namespaces are impossible (not root).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use sluice_nemesis::netns::{self, TestNet};
use sluice_nemesis::proxy::{DelayProxy, Link};

const PORT: u16 = 9092;
/// A port nothing listens on at first (refused through the proxy too).
const CLOSED_PORT: u16 = 9093;

/// An echo server on node `i`'s client port, in its namespace.
fn echo_server(net: &TestNet, i: usize) {
    let (ns, addr) = (net.node_ns(i), net.node_addr(i));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        netns::enter(&ns).expect("entering the node namespace");
        let listener = TcpListener::bind((addr.as_str(), PORT)).expect("binding the echo port");
        ready_tx.send(()).unwrap();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    ready_rx.recv().expect("the echo server started");
}

/// Runs `f` with a connection from node `from`'s namespace to node `to`'s
/// client port (so through the proxy's redirect).
fn from_node<T: Send + 'static>(
    net: &TestNet,
    from: usize,
    to: usize,
    f: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> T {
    let (ns, addr) = (net.node_ns(from), net.node_addr(to));
    thread::spawn(move || {
        netns::enter(&ns).expect("entering the node namespace");
        let s = TcpStream::connect((addr.as_str(), PORT)).expect("connecting to the peer");
        s.set_nodelay(true).unwrap();
        f(s)
    })
    .join()
    .expect("the client thread")
}

/// The median of five 100-byte round trips on one connection.
fn round_trip(net: &TestNet) -> Duration {
    from_node(net, 1, 2, |mut s| {
        let mut times: Vec<Duration> = (0..5)
            .map(|_| {
                let start = Instant::now();
                s.write_all(&[7u8; 100]).unwrap();
                let mut back = [0u8; 100];
                s.read_exact(&mut back).unwrap();
                assert_eq!(back, [7u8; 100]);
                start.elapsed()
            })
            .collect();
        times.sort();
        times[2]
    })
}

#[test]
fn the_proxy_delays_holds_and_keeps_order_between_nodes() {
    if let Some(why) = netns::unavailable() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    assert!(
        netns::nft_available(),
        "the `nft` tool is missing: install Debian's nftables (scripts/setup)"
    );
    netns::cleanup_stale();
    let net = TestNet::create(2).expect("the test network");
    let proxy = DelayProxy::start(&net, &[PORT, CLOSED_PORT]).expect("the proxy");
    echo_server(&net, 2);

    let direct = round_trip(&net);
    // The proxy counts a chunk once its write returned, which may be after
    // the echo reached the client: wait a bounded while for the count.
    let through = || {
        proxy.stats().connections.load(Ordering::Relaxed) >= 1
            && proxy.stats().bytes.load(Ordering::Relaxed) >= 1000
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !through() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(through(), "the connection did not go through the proxy");
    eprintln!("round trip without a fault: {direct:?}");

    // One way: only what node 1 sends is delayed.
    proxy.set(1, 2, delay(300, 0));
    let one_way = round_trip(&net);
    eprintln!("round trip with 300 ms from node 1 to node 2: {one_way:?}");
    assert!(one_way >= Duration::from_millis(300), "{one_way:?}");

    // Both ways, with jitter on the way back: at least 300 + 200 ms.
    proxy.set(2, 1, delay(200, 100));
    let both = round_trip(&net);
    eprintln!("round trip with 300 ms one way and 200-300 ms back: {both:?}");
    assert!(both >= Duration::from_millis(500), "{both:?}");
    proxy.clear();

    // Held traffic does not arrive until released, then all of it does.
    let hold = Link {
        hold: true,
        ..Link::default()
    };
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let proxy = std::sync::Arc::new(proxy);
    let holder = proxy.clone();
    let client = {
        let (ns, addr) = (net.node_ns(1), net.node_addr(2));
        thread::spawn(move || {
            netns::enter(&ns).unwrap();
            let mut s = TcpStream::connect((addr.as_str(), PORT)).unwrap();
            holder.set(1, 2, hold);
            s.write_all(b"held bytes").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(1500)))
                .unwrap();
            let mut buf = [0u8; 10];
            let early = s.read(&mut buf);
            assert!(
                matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
                "held bytes came back while held: {early:?}"
            );
            tx.send(()).unwrap();
            s.set_read_timeout(None).unwrap();
            s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"held bytes");
        })
    };
    rx.recv().expect("the hold was checked");
    proxy.clear();
    client.join().expect("held bytes arrive after the release");

    // Under jitter, the bytes of one connection still arrive in order.
    proxy.set(1, 2, delay(20, 40));
    proxy.set(2, 1, delay(20, 40));
    let sent: Vec<u8> = (0..200u32).flat_map(|i| i.to_be_bytes()).collect();
    let expected = sent.clone();
    let got = from_node(&net, 1, 2, move |mut s| {
        for chunk in sent.chunks(4) {
            s.write_all(chunk).unwrap();
            thread::sleep(Duration::from_millis(2));
        }
        let mut back = vec![0u8; sent.len()];
        s.read_exact(&mut back).unwrap();
        back
    });
    assert_eq!(got, expected, "the bytes came back out of order");
}

fn delay(ms: u64, jitter_ms: u64) -> Link {
    Link {
        delay: Duration::from_millis(ms),
        jitter: Duration::from_millis(jitter_ms),
        hold: false,
    }
}

#[test]
fn a_refusing_destination_is_refused_through_the_proxy_until_it_listens() {
    if let Some(why) = netns::unavailable() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    assert!(netns::nft_available(), "the `nft` tool is missing");
    netns::cleanup_stale();
    let net = TestNet::create(2).expect("the test network");
    let _proxy = DelayProxy::start(&net, &[PORT]).expect("the proxy");
    let (ns, addr) = (net.node_ns(1), net.node_addr(2));
    let connect = move || {
        let (ns, addr) = (ns.clone(), addr.clone());
        thread::spawn(move || {
            netns::enter(&ns).unwrap();
            TcpStream::connect((addr.as_str(), PORT)).map(|mut s| {
                // Accepted: by the proxy (then closed) or by the server.
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let _ = s.write_all(b"ping");
                let mut b = [0u8; 4];
                s.read_exact(&mut b).is_ok()
            })
        })
        .join()
        .unwrap()
    };
    // Nothing listens on node 2: after at most the first connection (which
    // the proxy accepted before it knew), connects are refused.
    let refused = (0..20).any(|_| {
        let r = connect();
        thread::sleep(Duration::from_millis(20));
        matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionRefused)
    });
    assert!(refused, "connects to a closed port were not refused");
    // Once node 2 listens, the route opens again and echoes.
    echo_server(&net, 2);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(connect(), Ok(true)) {
        assert!(Instant::now() < deadline, "the route never opened again");
        thread::sleep(Duration::from_millis(100));
    }
}
