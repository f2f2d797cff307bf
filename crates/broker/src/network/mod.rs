//! The tokio network layer: listeners, connections, request framing,
//! response writing (with `sendfile` for fetched records).
//!
//! Bounds: `max.connections` connections (the acceptor waits for a free slot
//! before accepting more, so extra clients queue in the listen backlog),
//! `socket.request.max.bytes` per request, and `queued.max.request.bytes`
//! over the requests all connections hold (readers stop reading their
//! sockets while it is used up).

pub mod codec;
pub mod connection;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod sendfile;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

pub use connection::ConnectionConfig;
pub use frame::MemoryPool;

use crate::context::BrokerContext;

/// How long shutdown waits for connections to write their last responses.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Accepts connections on `listener` until `shutdown` becomes true, then
/// waits for every connection to answer the requests it has already read.
pub async fn accept_loop(
    listener: TcpListener,
    ctx: BrokerContext,
    config: ConnectionConfig,
    connection_slots: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            slot = connection_slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tracing::debug!(%peer, "connection accepted");
        let ctx = ctx.clone();
        let config = config.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            connection::serve(stream, peer, ctx, config, shutdown).await;
            drop(slot);
        });
    }
    drop(listener);
    // Connections answer what they have read, then close. A client that
    // stops reading its socket cannot hold the shutdown forever.
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "closing connections that did not finish within the shutdown grace period"
        );
        connections.shutdown().await;
    }
}
