//! The quorum's internal RPC at its network boundary: hostile or foreign
//! frames are refused with a reason and never take the node down, and a
//! client never reads an answer meant for an earlier request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bincode::Options;
use openraft::error::RPCError;
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{VoteRequest, VoteResponse};
use openraft::{BasicNode, Vote};
use rand::{Rng, SeedableRng};
use sluice_controller::raft::network::{
    read_frame, write_frame, NetworkFactory, RpcBody, RpcReply, RpcRequest, RpcResponse,
    RPC_VERSION,
};
use sluice_controller::raft::transport::{Acceptor, BoxConn, TcpAcceptor, TcpTransport, Transport};
use sluice_controller::raft::{RaftConfig, RaftMetadataLog};
use sluice_controller::MetadataLog;
use sluice_metadata::BrokerId;
use sluice_storage::{RealFs, SystemClock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn codec() -> impl Options {
    bincode::DefaultOptions::new().with_limit(1 << 20)
}

fn vote_request(term: u64) -> VoteRequest<u64> {
    VoteRequest::new(Vote::new(term, 7), None)
}

async fn single_voter() -> (tempfile::TempDir, Arc<RaftMetadataLog>, String) {
    let dir = tempfile::tempdir().unwrap();
    let acceptor = TcpAcceptor::bind("127.0.0.1:0").await.unwrap();
    let addr = acceptor.local_addr().unwrap().to_string();
    let voters = BTreeMap::from([(BrokerId(1), addr.clone())]);
    let config = RaftConfig::new(BrokerId(1), "cluster-a", voters, dir.path().into());
    let log = RaftMetadataLog::start(
        config,
        Arc::new(RealFs),
        Arc::new(TcpTransport),
        Box::new(acceptor),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    (dir, Arc::new(log), addr)
}

async fn ask(conn: &mut BoxConn, req: &RpcRequest) -> std::io::Result<RpcReply> {
    write_frame(conn, &codec().serialize(req).unwrap()).await?;
    let body = read_frame(conn).await?;
    Ok(codec().deserialize(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_and_malformed_requests_are_refused_and_the_node_serves_on() {
    let (_dir, log, addr) = single_voter().await;
    let good = |cluster: &str, to: u64, id: u64| RpcRequest {
        cluster_id: cluster.into(),
        from: 9,
        to,
        voters: vec![1],
        id,
        body: RpcBody::Vote(vote_request(1)),
    };
    // Another cluster: refused, with the reason.
    let mut c = TcpTransport.connect(&addr).await.unwrap();
    let r = ask(&mut c, &good("cluster-b", 1, 5)).await.unwrap();
    assert_eq!(r.id, 5);
    match r.body {
        RpcResponse::Refused(why) => assert!(why.contains("cluster"), "{why}"),
        other => panic!("a foreign cluster was served: {other:?}"),
    }
    // Another node id: refused.
    let mut c = TcpTransport.connect(&addr).await.unwrap();
    let r = ask(&mut c, &good("cluster-a", 2, 6)).await.unwrap();
    assert!(matches!(r.body, RpcResponse::Refused(ref w) if w.contains("node 2")));
    // A voter set that disagrees: refused.
    let mut c = TcpTransport.connect(&addr).await.unwrap();
    let mut other = good("cluster-a", 1, 7);
    other.voters = vec![1, 2, 3];
    let r = ask(&mut c, &other).await.unwrap();
    assert!(
        matches!(r.body, RpcResponse::Refused(ref w) if w.contains("voters")),
        "{:?}",
        r.body
    );
    // Undecodable body: refused; bad length or version: the connection closes.
    let mut c = TcpTransport.connect(&addr).await.unwrap();
    write_frame(&mut c, &[0xff; 40]).await.unwrap();
    let body = read_frame(&mut c).await.unwrap();
    let r: RpcReply = codec().deserialize(&body).unwrap();
    assert!(matches!(r.body, RpcResponse::Refused(ref w) if w.contains("undecodable")));
    for head in [
        [0u8, 0, 0, 0, RPC_VERSION],
        [0xff, 0xff, 0xff, 0xff, RPC_VERSION],
        [0, 0, 0, 9, 42],
    ] {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(&head).await.unwrap();
        c.write_all(&[0; 9]).await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(30), c.read(&mut buf)).await;
        assert!(
            matches!(n, Ok(Ok(0)) | Ok(Err(_))),
            "{head:?} was not refused: {n:?}"
        );
    }
    // Random frames: each refused, none fatal.
    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    for _ in 0..200 {
        let mut c = TcpTransport.connect(&addr).await.unwrap();
        let len = rng.gen_range(1..300);
        let body: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        write_frame(&mut c, &body).await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(30), read_frame(&mut c)).await;
    }
    // The node still serves a well-formed request and still leads.
    let mut c = TcpTransport.connect(&addr).await.unwrap();
    let r = ask(&mut c, &good("cluster-a", 1, 8)).await.unwrap();
    assert_eq!(r.id, 8);
    assert!(matches!(r.body, RpcResponse::Vote(_)), "{:?}", r.body);
    let epoch = log.leader_and_epoch().epoch;
    let rec = sluice_controller::testing::conformance::config_record(1);
    log.append(epoch, vec![rec]).await.unwrap();
    log.shutdown().await;
}

/// A server that answers vote requests echoing their term, the one of
/// term 1 late.
async fn slow_echo_server() -> String {
    let mut acceptor = TcpAcceptor::bind("127.0.0.1:0").await.unwrap();
    let addr = acceptor.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = acceptor.accept().await.unwrap();
            tokio::spawn(async move {
                while let Ok(body) = read_frame(&mut conn).await {
                    let req: RpcRequest = codec().deserialize(&body).unwrap();
                    let RpcBody::Vote(v) = req.body else { panic!() };
                    if v.vote.leader_id.term == 1 {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    let resp = VoteResponse::new(v.vote, None, true);
                    let reply = RpcReply {
                        id: req.id,
                        body: RpcResponse::Vote(Ok(resp)),
                    };
                    let _ = write_frame(&mut conn, &codec().serialize(&reply).unwrap()).await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_call_never_reads_a_late_answer() {
    let addr = slow_echo_server().await;
    let mut factory = NetworkFactory::new(
        1,
        "cluster-a",
        vec![1, 2],
        Arc::new(TcpTransport),
        Arc::new(SystemClock),
    );
    let mut client = factory.new_client(2, &BasicNode::new(&addr)).await;
    let option = RPCOption::new(Duration::from_secs(30));
    // openraft gives up on a call after its own timeout, dropping it.
    let first = tokio::time::timeout(
        Duration::from_millis(50),
        client.vote(vote_request(1), option.clone()),
    )
    .await;
    assert!(first.is_err(), "the slow answer came early");
    let second = client.vote(vote_request(2), option).await.unwrap();
    assert_eq!(
        second.vote.leader_id.term, 2,
        "read the answer to the abandoned call"
    );
}

/// A peer that refuses a call (here: it belongs to another cluster) will
/// refuse the next one too until it changes: the client reports it
/// Unreachable, which openraft backs off from, not as a network error,
/// which it retries at once (about 400 retries a second were seen).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_call_is_unreachable_so_openraft_backs_off() {
    let (_dir, log, addr) = single_voter().await;
    let mut factory = NetworkFactory::new(
        9,
        "cluster-b",
        vec![1, 9],
        Arc::new(TcpTransport),
        Arc::new(SystemClock),
    );
    let mut client = factory.new_client(1, &BasicNode::new(&addr)).await;
    let option = RPCOption::new(Duration::from_secs(5));
    let refused = client.vote(vote_request(1), option).await;
    assert!(
        matches!(refused, Err(RPCError::Unreachable(_))),
        "{refused:?}"
    );
    log.shutdown().await;
}

/// A storage error on the metadata log halts the node loudly: the append
/// fails Fatal, listeners end Fatal, and nothing is served afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_error_halts_the_node() {
    use sluice_storage::{Fault, FaultKind, SimFs};
    let sim = Arc::new(SimFs::new());
    let acceptor = TcpAcceptor::bind("127.0.0.1:0").await.unwrap();
    let addr = acceptor.local_addr().unwrap().to_string();
    let voters = BTreeMap::from([(BrokerId(1), addr)]);
    let config = RaftConfig::new(BrokerId(1), "cluster-a", voters, "/meta".into());
    let log = RaftMetadataLog::start(
        config,
        sim.clone(),
        Arc::new(TcpTransport),
        Box::new(acceptor),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let rec = || vec![sluice_controller::testing::conformance::config_record(1)];
    let mut epoch = log.leader_and_epoch().epoch;
    for _ in 0..600 {
        if log.is_ready_leader() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        epoch = log.leader_and_epoch().epoch;
    }
    log.append(epoch, rec()).await.unwrap();
    let mut listener = log.listen();
    const EIO: i32 = 5;
    sim.inject(Fault::once("raft-log", FaultKind::SyncError(EIO)));
    let r = tokio::time::timeout(Duration::from_secs(60), log.append(epoch, rec())).await;
    assert!(
        matches!(r, Ok(Err(sluice_controller::LogError::Fatal(_)))),
        "{r:?}"
    );
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Err(e) = listener.next().await {
                break e;
            }
        }
    })
    .await
    .unwrap();
    assert!(
        matches!(ended, sluice_controller::LogError::Fatal(_)),
        "{ended:?}"
    );
    let again = log.append(epoch, rec()).await;
    assert!(
        matches!(again, Err(sluice_controller::LogError::Fatal(_))),
        "{again:?}"
    );
}

/// AddObserver at the RPC boundary: a voter's id or another cluster is
/// refused; an observer is admitted once (a repeat at the same address
/// writes nothing) and the leader lists it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observers_are_admitted_once_and_voters_cannot_pose_as_observers() {
    let (_dir, log, addr) = single_voter().await;
    for _ in 0..2000 {
        if log.is_ready_leader() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let req = |cluster: &str, from: u64, id: u64| RpcRequest {
        cluster_id: cluster.into(),
        from,
        to: 1,
        voters: vec![1],
        id,
        body: RpcBody::AddObserver {
            addr: "127.0.0.1:9".into(),
        },
    };
    let mut c = TcpTransport.connect(&addr).await.unwrap();
    let r = ask(&mut c, &req("cluster-a", 1, 1)).await.unwrap();
    assert!(
        matches!(r.body, RpcResponse::Refused(ref w) if w.contains("is a voter")),
        "{:?}",
        r.body
    );
    let mut c = TcpTransport.connect(&addr).await.unwrap();
    let r = ask(&mut c, &req("cluster-b", 9, 2)).await.unwrap();
    assert!(matches!(r.body, RpcResponse::Refused(ref w) if w.contains("cluster")));
    assert!(log.quorum_info().observers.is_empty());

    let mut c = TcpTransport.connect(&addr).await.unwrap();
    let r = ask(&mut c, &req("cluster-a", 9, 3)).await.unwrap();
    assert!(
        matches!(r.body, RpcResponse::AddObserver(Ok(()))),
        "{:?}",
        r.body
    );
    let entries = log.raft().metrics().borrow().last_log_index;
    let r = ask(&mut c, &req("cluster-a", 9, 4)).await.unwrap();
    assert!(
        matches!(r.body, RpcResponse::AddObserver(Ok(()))),
        "{:?}",
        r.body
    );
    assert_eq!(
        log.raft().metrics().borrow().last_log_index,
        entries,
        "a repeated admission wrote to the log"
    );
    let observers = log.quorum_info().observers;
    assert_eq!(observers.len(), 1);
    assert_eq!(observers[0].node, BrokerId(9));
    assert_eq!(observers[0].last_fetch_timestamp_ms, -1, "never reached");
    log.shutdown().await;
}
