//! Query strings and posted forms, and their parsing into the Kafka
//! layer's inputs (pure). Numbers arrive as text because an empty field
//! means "the default".

use serde::Deserialize;

use crate::kafka::admin::TopicEdit;
use crate::kafka::filter::Filter;
use crate::kafka::messages::{PageQuery, DEFAULT_PAGE, MAX_PAGE};
use crate::kafka::quota_admin::{QuotaChange, ENTITY_TYPES};
use crate::kafka::scram_admin::DEFAULT_ITERATIONS;
use crate::kafka::security::AclRow;
use crate::kafka::writes::{NewRecord, NewTopic, ResetTarget};
use crate::pages::topic_edit::EditForm;
use crate::render::View;
use crate::ConsoleError;

#[derive(Debug, Default, Deserialize)]
pub struct TopicsQuery {
    #[serde(default)]
    pub q: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct MessagesQuery {
    #[serde(default)]
    pub partition: String,
    #[serde(default)]
    pub offset: String,
    #[serde(default)]
    pub order: String,
    #[serde(default)]
    pub limit: String,
    #[serde(default)]
    pub view: String,
    #[serde(default)]
    pub produced: String,
    /// `YYYY-MM-DDTHH:MM[:SS]` (UTC) or milliseconds since the epoch.
    #[serde(default)]
    pub time: String,
    /// Text the key, value or a header must hold.
    #[serde(default)]
    pub filter: String,
}

impl MessagesQuery {
    pub fn page(&self) -> Result<PageQuery, ConsoleError> {
        Ok(PageQuery {
            partition: opt_num("partition", &self.partition)?.unwrap_or(0),
            offset: opt_num("offset", &self.offset)?,
            limit: opt_num::<usize>("limit", &self.limit)?
                .unwrap_or(DEFAULT_PAGE)
                .clamp(1, MAX_PAGE),
            newest_first: self.order != "oldest",
            timestamp: match self.time.trim() {
                "" => None,
                t => Some(crate::render::parse_time(t).ok_or_else(|| {
                    ConsoleError::BadRequest(format!(
                        "time: {t:?} is neither YYYY-MM-DDTHH:MM[:SS] (UTC) nor milliseconds"
                    ))
                })?),
            },
            filter: Filter::new(&self.filter)?,
        })
    }

    pub fn view(&self) -> View {
        View::parse(&self.view)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct CreateTopicForm {
    pub name: String,
    #[serde(default)]
    pub partitions: String,
    #[serde(default)]
    pub replication_factor: String,
    #[serde(default)]
    pub configs: String,
}

impl CreateTopicForm {
    pub fn topic(&self) -> Result<NewTopic, ConsoleError> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(ConsoleError::BadRequest("a topic needs a name".into()));
        }
        Ok(NewTopic {
            name: name.to_string(),
            partitions: opt_num("partitions", &self.partitions)?.unwrap_or(-1),
            replication_factor: opt_num("replication factor", &self.replication_factor)?
                .unwrap_or(-1),
            configs: key_values("configs", &self.configs)?,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ProduceForm {
    #[serde(default)]
    pub partition: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub headers: String,
    #[serde(default)]
    pub value: String,
}

impl ProduceForm {
    pub fn record(&self) -> Result<NewRecord, ConsoleError> {
        Ok(NewRecord {
            partition: opt_num("partition", &self.partition)?.unwrap_or(0),
            key: (!self.key.is_empty()).then(|| self.key.clone().into_bytes()),
            value: Some(self.value.replace("\r\n", "\n").into_bytes()),
            headers: key_values("headers", &self.headers)?
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect(),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ResetFormData {
    #[serde(default)]
    pub step: String,
    #[serde(default)]
    pub topic: String,
    #[serde(default)]
    pub partition: String,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub offset: String,
}

impl ResetFormData {
    pub fn target(&self) -> Result<ResetTarget, ConsoleError> {
        match self.target.as_str() {
            "earliest" => Ok(ResetTarget::Earliest),
            "latest" => Ok(ResetTarget::Latest),
            "offset" => match opt_num::<i64>("offset", &self.offset)? {
                Some(o) if o >= 0 => Ok(ResetTarget::Offset(o)),
                _ => Err(ConsoleError::BadRequest(
                    "give an offset of 0 or more".into(),
                )),
            },
            other => Err(ConsoleError::BadRequest(format!(
                "unknown reset target {other:?}"
            ))),
        }
    }

    pub fn partition(&self) -> Result<Option<i32>, ConsoleError> {
        opt_num("partition", &self.partition)
    }

    pub fn execute(&self) -> bool {
        self.step == "execute"
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct TopicEditFormData {
    #[serde(default)]
    pub step: String,
    #[serde(default)]
    pub set: String,
    #[serde(default)]
    pub remove: String,
    #[serde(default)]
    pub partitions: String,
}

impl TopicEditFormData {
    pub fn edit(&self) -> Result<TopicEdit, ConsoleError> {
        let edit = TopicEdit {
            set: key_values("set configs", &self.set)?,
            remove: self
                .remove
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
            partitions: opt_num("partitions", &self.partitions)?,
        };
        if let Some((name, _)) = edit.set.iter().find(|(k, _)| edit.remove.contains(k)) {
            return Err(ConsoleError::BadRequest(format!(
                "config {name:?} is both set and removed"
            )));
        }
        Ok(edit)
    }

    pub fn execute(&self) -> bool {
        self.step == "execute"
    }

    pub fn echo(&self) -> EditForm {
        EditForm {
            set: self.set.clone(),
            remove: self.remove.clone(),
            partitions: self.partitions.clone(),
        }
    }
}

/// One ACL binding, by Kafka's names.
#[derive(Debug, Default, Deserialize)]
pub struct AclForm {
    #[serde(default)]
    pub step: String,
    #[serde(default)]
    pub resource_type: String,
    #[serde(default)]
    pub resource_name: String,
    #[serde(default)]
    pub pattern_type: String,
    #[serde(default)]
    pub principal: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub operation: String,
    #[serde(default)]
    pub permission: String,
}

impl AclForm {
    pub fn binding(&self) -> Result<AclRow, ConsoleError> {
        crate::kafka::acl_admin::binding(
            &self.resource_type,
            &self.resource_name,
            &self.pattern_type,
            &self.principal,
            &self.host,
            &self.operation,
            &self.permission,
        )
    }

    pub fn execute(&self) -> bool {
        self.step == "execute"
    }
}

/// One quota value to set (or remove, when the value is empty).
#[derive(Debug, Default, Deserialize)]
pub struct QuotaForm {
    #[serde(default)]
    pub step: String,
    #[serde(default)]
    pub entity_type: String,
    #[serde(default)]
    pub entity_name: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: String,
}

impl QuotaForm {
    pub fn change(&self) -> Result<QuotaChange, ConsoleError> {
        if !ENTITY_TYPES.contains(&self.entity_type.as_str()) {
            return Err(ConsoleError::BadRequest(format!(
                "entity type: {:?} is not one of {ENTITY_TYPES:?}",
                self.entity_type
            )));
        }
        let key = self.key.trim();
        if key.is_empty() {
            return Err(ConsoleError::BadRequest("which quota?".into()));
        }
        let value: Option<f64> = opt_num("value", &self.value)?;
        if value.is_some_and(|v| !v.is_finite() || v < 0.0) {
            return Err(ConsoleError::BadRequest("value: 0 or more".into()));
        }
        let name = self.entity_name.trim();
        Ok(QuotaChange {
            entity_type: self.entity_type.clone(),
            entity_name: (!name.is_empty()).then(|| name.to_string()),
            key: key.to_string(),
            value,
        })
    }

    pub fn execute(&self) -> bool {
        self.step == "execute"
    }
}

/// A SCRAM credential to set or delete (the password only to set).
#[derive(Debug, Default, Deserialize)]
pub struct UserForm {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub mechanism: String,
    #[serde(default)]
    pub iterations: String,
    #[serde(default)]
    pub password: String,
}

impl UserForm {
    pub fn user(&self) -> Result<String, ConsoleError> {
        let u = self.user.trim();
        if u.is_empty() {
            return Err(ConsoleError::BadRequest("which user?".into()));
        }
        Ok(u.to_string())
    }

    pub fn iterations(&self) -> Result<u32, ConsoleError> {
        Ok(opt_num("iterations", &self.iterations)?.unwrap_or(DEFAULT_ITERATIONS))
    }
}

/// A typed confirmation (the name of what is deleted).
#[derive(Debug, Default, Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    pub confirm: String,
}

/// A topic, in a query string or a form.
#[derive(Debug, Default, Deserialize)]
pub struct TopicParam {
    #[serde(default)]
    pub topic: String,
}

/// An optional number: empty means `None`.
fn opt_num<T: std::str::FromStr>(what: &str, s: &str) -> Result<Option<T>, ConsoleError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| ConsoleError::BadRequest(format!("{what}: {s:?} is not a valid number")))
}

/// `key=value` lines; blank lines are skipped.
fn key_values(what: &str, s: &str) -> Result<Vec<(String, String)>, ConsoleError> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(ConsoleError::BadRequest(format!(
                "{what}: expected key=value, got {l:?}"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fields_mean_defaults() {
        let q = MessagesQuery::default().page().unwrap();
        assert_eq!(q.partition, 0);
        assert_eq!(q.offset, None);
        assert_eq!(q.limit, DEFAULT_PAGE);
        assert!(q.newest_first);
        let q = MessagesQuery {
            limit: "100000".into(),
            order: "oldest".into(),
            offset: " 7 ".into(),
            ..Default::default()
        }
        .page()
        .unwrap();
        assert_eq!(
            (q.limit, q.offset, q.newest_first),
            (MAX_PAGE, Some(7), false)
        );
        let t = MessagesQuery {
            time: "1970-01-01T00:01".into(),
            ..Default::default()
        };
        assert_eq!(t.page().unwrap().timestamp, Some(60_000));
        assert!(MessagesQuery {
            time: "yesterday".into(),
            ..Default::default()
        }
        .page()
        .is_err());
        let f = MessagesQuery {
            filter: "Widget ".into(),
            ..Default::default()
        };
        assert_eq!(f.page().unwrap().filter.unwrap().text(), "Widget ");
        assert!(MessagesQuery {
            filter: "x".repeat(1000),
            ..Default::default()
        }
        .page()
        .is_err());
        assert!(MessagesQuery {
            partition: "x".into(),
            ..Default::default()
        }
        .page()
        .is_err());
    }

    #[test]
    fn topic_form_parses_configs() {
        let f = CreateTopicForm {
            name: " t1 ".into(),
            partitions: "3".into(),
            replication_factor: "".into(),
            configs: "retention.ms=1000\n\n cleanup.policy=compact \n".into(),
        };
        let t = f.topic().unwrap();
        assert_eq!(t.name, "t1");
        assert_eq!((t.partitions, t.replication_factor), (3, -1));
        assert_eq!(
            t.configs,
            vec![
                ("retention.ms".to_string(), "1000".to_string()),
                ("cleanup.policy".to_string(), "compact".to_string())
            ]
        );
        assert!(CreateTopicForm {
            name: "t".into(),
            configs: "novalue".into(),
            ..Default::default()
        }
        .topic()
        .is_err());
    }

    #[test]
    fn topic_edits_parse() {
        let f = TopicEditFormData {
            set: "retention.ms=1000\n".into(),
            remove: " cleanup.policy \n\n".into(),
            partitions: "6".into(),
            ..Default::default()
        };
        let e = f.edit().unwrap();
        assert_eq!(e.set, vec![("retention.ms".into(), "1000".into())]);
        assert_eq!(e.remove, vec!["cleanup.policy".to_string()]);
        assert_eq!(e.partitions, Some(6));
        let both = TopicEditFormData {
            set: "a=1".into(),
            remove: "a".into(),
            ..Default::default()
        };
        assert!(both.edit().is_err());
    }

    #[test]
    fn reset_targets() {
        let f = |target: &str, offset: &str| ResetFormData {
            target: target.into(),
            offset: offset.into(),
            ..Default::default()
        };
        assert_eq!(f("earliest", "").target().unwrap(), ResetTarget::Earliest);
        assert_eq!(f("offset", "5").target().unwrap(), ResetTarget::Offset(5));
        assert!(f("offset", "").target().is_err());
        assert!(f("offset", "-1").target().is_err());
        assert!(f("bogus", "").target().is_err());
    }
}
