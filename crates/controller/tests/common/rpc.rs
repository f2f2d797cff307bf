//! The simulation's broker → controller RPC: a stand-in for the transport
//! crate's Kafka-protocol server (which sits above this crate), carrying
//! the same operations in domain terms, length-prefixed JSON over
//! turmoil's TCP. The server side calls the node's real
//! [`QuorumController`]; errors keep the meanings a broker acts on
//! (NOT_CONTROLLER with the leader it knows, STALE_BROKER_EPOCH,
//! DUPLICATE_BROKER_REGISTRATION, retriable log errors).

use std::io;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sluice_controller::{
    AlterConfigOp, AlterPartitionItem, AlterPartitionRequest, BrokerHeartbeat,
    BrokerRegistrationRequest, ConfigAlteration, ControllerError, CreatePartitions, CreateTopic,
    QuorumController, TopicRef,
};
use sluice_metadata::{
    BrokerEpoch, BrokerId, ConfigResource, ConfigResourceType, LeaderRecoveryState, PartitionEpoch,
};
use sluice_record::{LeaderEpoch, Offset};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// What a broker asks.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Req {
    Register {
        broker: i32,
        incarnation: u128,
    },
    Heartbeat {
        broker: i32,
        epoch: i64,
        offset: i64,
    },
    CreateTopic {
        name: String,
        partitions: i32,
        rf: i16,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        count: i32,
    },
    /// AlterPartition of one partition the broker leads (as its observer
    /// image shows it).
    AlterIsr {
        broker: i32,
        epoch: i64,
        topic: u128,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<(i32, i64)>,
    },
    SetConfig {
        topic: String,
        key: String,
        value: String,
    },
}

/// The answer's body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Body {
    Registered {
        epoch: i64,
    },
    Heartbeat {
        fenced: bool,
        caught_up: bool,
    },
    Created {
        id: u128,
    },
    Deleted {
        id: u128,
    },
    Done,
    /// AlterPartition's committed state.
    Isr {
        leader: i32,
        isr: Vec<i32>,
        partition_epoch: i32,
    },
    NotController {
        leader: Option<i32>,
    },
    /// STALE_BROKER_EPOCH or BROKER_ID_NOT_REGISTERED: register again.
    Stale,
    Duplicate,
    /// The log failed or lost leadership: try again.
    Retry(String),
    /// The operation was refused (exists, unknown topic, too few brokers...).
    Refused(String),
    /// UNKNOWN_SERVER_ERROR: a condition that should not arise (a
    /// controller bug; the simulation fails on it).
    Internal(String),
}

/// An answer, with the controller's committed offset (which the broker
/// reports in its heartbeats as the metadata it has caught up to).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Resp {
    pub hw: i64,
    pub body: Body,
}

pub async fn send<S, T>(s: &mut S, v: &T) -> io::Result<()>
where
    S: AsyncWriteExt + Unpin,
    T: Serialize,
{
    let b = serde_json::to_vec(v).map_err(io::Error::other)?;
    s.write_u32(b.len() as u32).await?;
    s.write_all(&b).await?;
    s.flush().await
}

pub async fn recv<S, T>(s: &mut S) -> io::Result<T>
where
    S: AsyncReadExt + Unpin,
    T: DeserializeOwned,
{
    let n = s.read_u32().await? as usize;
    if n > 1 << 20 {
        return Err(io::Error::other(format!("frame of {n} bytes")));
    }
    let mut b = vec![0; n];
    s.read_exact(&mut b).await?;
    serde_json::from_slice(&b).map_err(io::Error::other)
}

/// Serves one broker connection until it closes.
pub async fn serve_conn(mut s: turmoil::net::TcpStream, c: Arc<QuorumController>) {
    while let Ok(req) = recv::<_, Req>(&mut s).await {
        let body = handle(&c, req).await;
        let resp = Resp {
            hw: c.image().provenance().last_offset.0,
            body,
        };
        if send(&mut s, &resp).await.is_err() {
            return;
        }
    }
}

fn err_body(e: ControllerError) -> Body {
    match e {
        ControllerError::NotController(le) => Body::NotController {
            leader: le.leader.map(|b| b.0),
        },
        ControllerError::StaleBrokerEpoch { .. } | ControllerError::BrokerIdNotRegistered(_) => {
            Body::Stale
        }
        ControllerError::DuplicateBrokerRegistration(_) => Body::Duplicate,
        ControllerError::Log(e) => Body::Retry(e.to_string()),
        ControllerError::Internal(e) => Body::Internal(e),
        other => Body::Refused(other.to_string()),
    }
}

fn item<T>(r: Result<Vec<Result<T, ControllerError>>, ControllerError>) -> Result<T, Body> {
    match r {
        Err(e) => Err(err_body(e)),
        Ok(mut items) => match items.pop() {
            Some(Ok(t)) => Ok(t),
            Some(Err(e)) => Err(err_body(e)),
            None => Err(Body::Refused("no result".into())),
        },
    }
}

async fn handle(c: &QuorumController, req: Req) -> Body {
    let result = match req {
        Req::Register {
            broker,
            incarnation,
        } => c
            .register_broker(BrokerRegistrationRequest {
                broker_id: BrokerId(broker),
                incarnation_id: Uuid::from_u128(incarnation),
                listeners: Vec::new(),
                features: Vec::new(),
                rack: None,
                log_dirs: Vec::new(),
                previous_broker_epoch: None,
            })
            .await
            .map(|r| Body::Registered {
                epoch: r.broker_epoch.0,
            })
            .map_err(err_body),
        Req::Heartbeat {
            broker,
            epoch,
            offset,
        } => c
            .heartbeat(BrokerHeartbeat {
                broker_id: BrokerId(broker),
                broker_epoch: BrokerEpoch(epoch),
                current_metadata_offset: Offset(offset),
                want_fence: false,
                want_shutdown: false,
            })
            .await
            .map(|r| Body::Heartbeat {
                fenced: r.is_fenced,
                caught_up: r.is_caught_up,
            })
            .map_err(err_body),
        Req::CreateTopic {
            name,
            partitions,
            rf,
        } => {
            let t = CreateTopic {
                num_partitions: partitions,
                replication_factor: rf,
                ..CreateTopic::named(name)
            };
            item(c.create_topics(vec![t], false).await).map(|t| Body::Created {
                id: t.topic_id.as_u128(),
            })
        }
        Req::DeleteTopic { name } => {
            item(c.delete_topics(vec![TopicRef::Name(name)]).await).map(|t| Body::Deleted {
                id: t.topic_id.as_u128(),
            })
        }
        Req::CreatePartitions { name, count } => {
            let p = CreatePartitions {
                topic: name,
                count,
                assignments: None,
            };
            item(c.create_partitions(vec![p], false).await).map(|()| Body::Done)
        }
        Req::AlterIsr {
            broker,
            epoch,
            topic,
            partition,
            leader_epoch,
            partition_epoch,
            isr,
        } => {
            let req = AlterPartitionRequest {
                broker_id: BrokerId(broker),
                broker_epoch: BrokerEpoch(epoch),
                partitions: vec![AlterPartitionItem {
                    topic_id: Uuid::from_u128(topic),
                    partition,
                    leader_epoch: LeaderEpoch(leader_epoch),
                    partition_epoch: PartitionEpoch(partition_epoch),
                    new_isr: isr.into_iter().map(|(b, e)| (BrokerId(b), e)).collect(),
                    leader_recovery_state: LeaderRecoveryState::Recovered,
                }],
            };
            let answer = c
                .alter_partition(req)
                .await
                .map(|r| r.partitions.into_iter().map(|p| p.result).collect());
            item(answer).map(|s| Body::Isr {
                leader: s.leader.0,
                isr: s.isr.iter().map(|b| b.0).collect(),
                partition_epoch: s.partition_epoch.0,
            })
        }
        Req::SetConfig { topic, key, value } => {
            let resource = ConfigResource {
                resource_type: ConfigResourceType::Topic,
                name: topic,
            };
            let op = ConfigAlteration {
                name: key,
                op: AlterConfigOp::Set,
                value: Some(value),
            };
            item(
                c.incremental_alter_configs(vec![(resource, vec![op])], false)
                    .await,
            )
            .map(|()| Body::Done)
        }
    };
    result.unwrap_or_else(|b| b)
}
