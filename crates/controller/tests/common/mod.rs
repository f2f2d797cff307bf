//! Helpers shared by the turmoil simulations (`raft_sim.rs`,
//! `controller_sim.rs`): turmoil's TCP behind the controller's transport
//! seam, a simulated wall clock that can jump, the seed list from the
//! environment, and the metadata invariant checker ([`checker`]).
#![allow(dead_code)]

pub mod checker;
pub mod rpc;

use std::io;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use sluice_controller::raft::transport::{Acceptor, BoxConn, Transport};
use sluice_controller::BoxFuture;
use sluice_storage::Clock;

/// turmoil's TCP behind the transport seam.
pub struct SimTransport;

pub struct SimAcceptor(pub turmoil::net::TcpListener);

impl Acceptor for SimAcceptor {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxConn, String)>> {
        Box::pin(async move {
            let (s, peer) = self.0.accept().await?;
            Ok((Box::new(s) as BoxConn, peer.to_string()))
        })
    }
}

impl Transport for SimTransport {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxConn>> {
        Box::pin(async move {
            let (h, p) = addr.rsplit_once(':').expect("host:port");
            let port: u16 = p.parse().expect("port");
            let s = turmoil::net::TcpStream::connect((h, port)).await?;
            Ok(Box::new(s) as BoxConn)
        })
    }
    fn bind<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Acceptor>>> {
        Box::pin(async move {
            let (_, p) = addr.rsplit_once(':').expect("host:port");
            let l = turmoil::net::TcpListener::bind(("0.0.0.0", p.parse().expect("port"))).await?;
            Ok(Box::new(SimAcceptor(l)) as Box<dyn Acceptor>)
        })
    }
}

/// Simulated wall clock: the simulation's elapsed time plus a per-node
/// offset that [`SimClock::jump`] moves (NTP steps, VM pauses).
#[derive(Clone, Default)]
pub struct SimClock {
    offset_ms: Arc<AtomicI64>,
}

impl SimClock {
    /// Moves this clock by `ms` (either way).
    pub fn jump(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        let sim = turmoil::sim_elapsed().map_or(0, |d| d.as_millis() as i64);
        sim + self.offset_ms.load(Ordering::Relaxed)
    }
}

/// The seeds to run: `SLUICE_SIM_SEED=S` replays one; otherwise
/// `SLUICE_SIM_SEEDS=N` (default `default_n`) from `SLUICE_SIM_FIRST_SEED`
/// (default 0).
pub fn seeds(default_n: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("SLUICE_SIM_SEED") {
        return vec![s.parse().expect("SLUICE_SIM_SEED is a number")];
    }
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let first = var("SLUICE_SIM_FIRST_SEED").unwrap_or(0);
    let n = var("SLUICE_SIM_SEEDS").unwrap_or(default_n);
    (first..first + n).collect()
}
