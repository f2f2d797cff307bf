//! IncrementalAlterConfigs and AlterConfigs: resource checks, the four
//! operations, the validator, full replacement.

use std::sync::Arc;

use sluice_metadata::{ConfigResource, ConfigResourceType};

use super::{fixture, topic, RejectRetention};
use crate::controller::*;
use crate::error::ControllerError;

fn set(name: &str, value: &str) -> ConfigAlteration {
    ConfigAlteration {
        name: name.into(),
        op: AlterConfigOp::Set,
        value: Some(value.into()),
    }
}

#[tokio::test]
async fn incremental_alter_configs_checks_each_resource() {
    let f = fixture(&[(1, None)], Arc::new(RejectRetention)).await;
    f.c.create_topics(vec![topic("t", 1, 1)], false)
        .await
        .unwrap();
    let res = |t, n: &str| ConfigResource {
        resource_type: t,
        name: n.into(),
    };
    let topic_res = res(ConfigResourceType::Topic, "t");
    let out =
        f.c.incremental_alter_configs(
            vec![
                (
                    topic_res.clone(),
                    vec![
                        set("retention.ms", "5"),
                        ConfigAlteration {
                            name: "cleanup.policy".into(),
                            op: AlterConfigOp::Append,
                            value: Some("compact".into()),
                        },
                    ],
                ),
                (
                    res(ConfigResourceType::Broker, ""),
                    vec![set("log.retention.ms", "9")],
                ),
                (res(ConfigResourceType::Broker, "1"), vec![set("x", "1")]),
                (res(ConfigResourceType::Broker, "7"), vec![set("x", "1")]),
                (res(ConfigResourceType::Broker, "x"), vec![set("x", "1")]),
                (
                    res(ConfigResourceType::Group, "g"),
                    vec![set("consumer.session.timeout.ms", "45000")],
                ),
                (res(ConfigResourceType::Topic, "nope"), vec![set("x", "1")]),
                (res(ConfigResourceType::Topic, "t"), vec![]),
            ],
            false,
        )
        .await
        .unwrap();
    // The duplicate resource fails both times.
    assert!(matches!(out[0], Err(ControllerError::InvalidRequest(_))));
    assert!(out[1].is_ok() && out[2].is_ok() && out[5].is_ok());
    assert!(matches!(
        out[3],
        Err(ControllerError::BrokerIdNotRegistered(_))
    ));
    assert!(matches!(out[4], Err(ControllerError::InvalidRequest(_))));
    assert!(matches!(
        out[6],
        Err(ControllerError::UnknownTopicOrPartition(_))
    ));
}

#[tokio::test]
async fn incremental_alter_configs_set_append_subtract_delete() {
    let f = fixture(&[(1, None)], Arc::new(RejectRetention)).await;
    f.c.create_topics(vec![topic("t", 1, 1)], false)
        .await
        .unwrap();
    let res = |t, n: &str| ConfigResource {
        resource_type: t,
        name: n.into(),
    };
    let topic_res = res(ConfigResourceType::Topic, "t");
    f.c.incremental_alter_configs(
        vec![(
            res(ConfigResourceType::Broker, ""),
            vec![set("log.retention.ms", "9")],
        )],
        false,
    )
    .await
    .unwrap()[0]
        .as_ref()
        .unwrap();
    let out =
        f.c.incremental_alter_configs(
            vec![(
                topic_res.clone(),
                vec![
                    set("retention.ms", "5"),
                    ConfigAlteration {
                        name: "cleanup.policy".into(),
                        op: AlterConfigOp::Append,
                        value: Some("compact".into()),
                    },
                ],
            )],
            false,
        )
        .await
        .unwrap();
    assert!(out[0].is_ok(), "{:?}", out[0]);
    let image = f.c.image();
    assert_eq!(image.config(&topic_res)["cleanup.policy"], "delete,compact");
    assert_eq!(
        image.config(&res(ConfigResourceType::Broker, ""))["log.retention.ms"],
        "9"
    );
    // SUBTRACT, DELETE; APPEND on a non-list key; a value the validator refuses.
    let out =
        f.c.incremental_alter_configs(
            vec![(
                topic_res.clone(),
                vec![
                    ConfigAlteration {
                        name: "cleanup.policy".into(),
                        op: AlterConfigOp::Subtract,
                        value: Some("delete".into()),
                    },
                    ConfigAlteration {
                        name: "retention.ms".into(),
                        op: AlterConfigOp::Delete,
                        value: None,
                    },
                ],
            )],
            false,
        )
        .await
        .unwrap();
    assert!(out[0].is_ok());
    let image = f.c.image();
    assert_eq!(
        image
            .config(&topic_res)
            .get("cleanup.policy")
            .map(String::as_str),
        Some("compact")
    );
    assert!(!image.config(&topic_res).contains_key("retention.ms"));
    let out =
        f.c.incremental_alter_configs(
            vec![
                (
                    topic_res.clone(),
                    vec![ConfigAlteration {
                        name: "retention.ms".into(),
                        op: AlterConfigOp::Append,
                        value: Some("1".into()),
                    }],
                ),
                (
                    res(ConfigResourceType::Broker, ""),
                    vec![set("retention.ms", "soon")],
                ),
            ],
            false,
        )
        .await
        .unwrap();
    assert!(matches!(out[0], Err(ControllerError::InvalidConfig(_))));
    assert!(matches!(out[1], Err(ControllerError::InvalidConfig(_))));
}

#[tokio::test]
async fn legacy_alter_configs_replaces_the_whole_set() {
    let f = fixture(&[(1, None)], Arc::new(PermissiveValidator)).await;
    f.c.create_topics(vec![topic("t", 1, 1)], false)
        .await
        .unwrap();
    let r = ConfigResource {
        resource_type: ConfigResourceType::Topic,
        name: "t".into(),
    };
    f.c.alter_configs(
        vec![(
            r.clone(),
            vec![
                ("a".into(), Some("1".into())),
                ("b".into(), Some("2".into())),
            ],
        )],
        false,
    )
    .await
    .unwrap()[0]
        .as_ref()
        .unwrap();
    f.c.alter_configs(
        vec![(r.clone(), vec![("b".into(), Some("3".into()))])],
        false,
    )
    .await
    .unwrap()[0]
        .as_ref()
        .unwrap();
    let image = f.c.image();
    let keys: Vec<_> = image
        .config(&r)
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(keys, [("b", "3")]);
    // validate_only leaves it.
    f.c.alter_configs(vec![(r.clone(), vec![])], true)
        .await
        .unwrap();
    assert_eq!(f.c.image().config(&r).len(), 1);
}
