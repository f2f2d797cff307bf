//! The test network itself: nodes reach each other and the client, a fault
//! rule cuts exactly the traffic it names and is gone after healing, and
//! nothing changes in the host's nftables ruleset or namespace list.
//! Skips (with a message) where namespaces are impossible (not root).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use sluice_nemesis::netns::{self, TestNet};

fn connects_from(ns: String, to: SocketAddr) -> bool {
    thread::spawn(move || {
        netns::enter(&ns).unwrap();
        TcpStream::connect_timeout(&to, Duration::from_secs(2)).is_ok()
    })
    .join()
    .unwrap()
}

#[test]
fn drop_rules_cut_only_what_they_name_and_stay_in_their_namespace() {
    if let Some(why) = netns::unavailable() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    assert!(
        netns::nft_available(),
        "the `nft` tool is missing: install Debian's nftables (scripts/setup)"
    );
    let host_rules = netns::run("nft", &["list", "ruleset"]).unwrap();
    let host_links = netns::run("ip", &["-o", "link"]).unwrap();

    let net = TestNet::create(2).unwrap();
    let stem = net.stem().to_string();
    let addr: SocketAddr = format!("{}:9000", net.node_addr(1)).parse().unwrap();
    // A listener inside node 1's namespace that accepts forever.
    let node1 = net.node_ns(1);
    thread::spawn(move || {
        netns::enter(&node1).unwrap();
        let l = TcpListener::bind(addr).unwrap();
        for s in l.incoming() {
            drop(s);
        }
    });
    thread::sleep(Duration::from_millis(300));
    // The test network is private: the host has no address in it.
    assert!(!netns::run("ip", &["-o", "addr"])
        .unwrap()
        .contains(netns::SUBNET));
    assert!(connects_from(net.client_ns(), addr));
    assert!(connects_from(net.node_ns(2), addr));

    // Node 1 drops the client's packets: the client is cut, node 2 is not.
    net.drop_from(1, &[0]).unwrap();
    assert!(
        net.rules(1).contains(netns::CLIENT_ADDR),
        "{}",
        net.rules(1)
    );
    assert!(!connects_from(net.client_ns(), addr));
    assert!(connects_from(net.node_ns(2), addr));
    // Now node 2 instead.
    net.drop_from(1, &[2]).unwrap();
    assert!(connects_from(net.client_ns(), addr));
    assert!(!connects_from(net.node_ns(2), addr));
    // The host's ruleset never changed.
    assert_eq!(netns::run("nft", &["list", "ruleset"]).unwrap(), host_rules);
    // Healed.
    net.drop_from(1, &[]).unwrap();
    assert!(connects_from(net.node_ns(2), addr));
    assert!(!net.rules(1).contains("drop"));

    drop(net);
    let left = netns::run("ip", &["netns", "list"]).unwrap();
    assert!(!left.contains(&stem), "namespaces left: {left}");
    assert_eq!(netns::run("nft", &["list", "ruleset"]).unwrap(), host_rules);
    assert_eq!(netns::run("ip", &["-o", "link"]).unwrap(), host_links);
}
