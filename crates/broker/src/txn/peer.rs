//! Requests from this broker's transaction side to other brokers
//! (WriteTxnMarkers to partition leaders, AddPartitionsToTxn verification
//! to coordinators): one cached connection per broker on its
//! inter-broker listener, replaced after any error, each call bounded by
//! the request timeout.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};
use sluice_metadata::BrokerId;
use sluice_transport::net::Connector;

use crate::metadata::ImageCache;
use crate::replica_fetcher::conn::LeaderConnection;
use std::sync::Arc;

/// Largest answer read.
const MAX_ANSWER: usize = 1 << 20;

/// Why a call to another broker failed (the caller retries later).
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("broker {0} has no endpoint on the inter-broker listener")]
    NoEndpoint(i32),
    #[error("broker {broker}: {error}")]
    Call { broker: i32, error: String },
}

/// Connections to other brokers.
pub struct Peers {
    node: BrokerId,
    image: Arc<ImageCache>,
    connector: Arc<dyn Connector>,
    listener: String,
    timeout: Duration,
    conns: tokio::sync::Mutex<HashMap<BrokerId, LeaderConnection>>,
}

impl Peers {
    pub fn new(
        node: BrokerId,
        image: Arc<ImageCache>,
        connector: Arc<dyn Connector>,
        listener: String,
        timeout: Duration,
    ) -> Self {
        Peers {
            node,
            image,
            connector,
            listener,
            timeout,
            conns: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn node(&self) -> BrokerId {
        self.node
    }

    pub fn image(&self) -> &Arc<ImageCache> {
        &self.image
    }

    /// Sends `req` to `broker` and reads its answer.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        broker: BrokerId,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp, PeerError> {
        let (host, port) =
            crate::handlers::leadership::endpoint(&self.image.image(), broker.0, &self.listener)
                .ok_or(PeerError::NoEndpoint(broker.0))?;
        let failed = |error: String| PeerError::Call {
            broker: broker.0,
            error,
        };
        let mut conns = self.conns.lock().await;
        let mut conn = match conns.remove(&broker) {
            Some(c) if c.address() == format!("{host}:{port}") => c,
            _ => LeaderConnection::open(
                self.connector.as_ref(),
                &format!("{host}:{port}"),
                format!("txn-{}", self.node.0),
                self.timeout,
            )
            .await
            .map_err(|e| failed(e.to_string()))?,
        };
        let answer = conn
            .call(key, version, req, MAX_ANSWER, self.timeout)
            .await
            .map_err(|e| failed(e.to_string()))?;
        conns.insert(broker, conn);
        Ok(answer)
    }
}
