//! One handler per route: parse the request, run the Kafka layer, render.

use std::sync::Arc;

use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;

use super::forms::{
    AclForm, ConfirmForm, CreateTopicForm, MessagesQuery, ProduceForm, QuotaForm, ResetFormData,
    TopicEditFormData, TopicParam, TopicsQuery, UserForm,
};
use super::State;
use crate::html::U;
use crate::kafka::{
    acl_admin, admin, cluster, groups as kgroups, messages as kmessages, quota_admin, scram_admin,
    security, throughput as kthroughput, topics as ktopics, writes,
};
use crate::pages;
use crate::ConsoleError;

type S = AxState<Arc<State>>;

const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    r
}

pub async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

pub async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

pub async fn not_found(AxState(st): S) -> Response {
    st.page(Err(ConsoleError::NotFound("no such page".into())))
}

pub async fn overview(AxState(st): S) -> Response {
    let r = st.kafka(cluster::overview).await;
    st.page(r.map(|o| pages::overview::render(&st.shell, &o)))
}

pub async fn topics(AxState(st): S, Query(q): Query<TopicsQuery>) -> Response {
    let search = q.q.clone();
    let r = st.kafka(move |s| ktopics::list(s, &search)).await;
    st.page(r.map(|t| pages::topics::render(&st.shell, &q.q, &t)))
}

pub async fn topic(AxState(st): S, Path(name): Path<String>) -> Response {
    let r = st.kafka(move |s| ktopics::detail(s, &name)).await;
    st.page(r.map(|t| pages::topic::render(&st.shell, &t)))
}

pub async fn messages(
    AxState(st): S,
    Path(name): Path<String>,
    Query(q): Query<MessagesQuery>,
) -> Response {
    let page = match q.page() {
        Ok(p) => p,
        Err(e) => return st.page(Err(e)),
    };
    let settings = pages::messages::Settings {
        limit: page.limit,
        view: q.view(),
        produced: q.produced.trim().parse().ok(),
    };
    let r = st.kafka(move |s| kmessages::page(s, &name, &page)).await;
    st.page(r.map(|p| pages::messages::render(&st.shell, &p, &settings)))
}

/// The page `messages` would show, as a JSON-lines file.
pub async fn messages_download(
    AxState(st): S,
    Path(name): Path<String>,
    Query(q): Query<MessagesQuery>,
) -> Response {
    let page = match q.page() {
        Ok(p) => p,
        Err(e) => return st.page(Err(e)),
    };
    match st.kafka(move |s| kmessages::page(s, &name, &page)).await {
        Ok(p) => {
            let disposition = format!(
                "attachment; filename=\"{}\"",
                pages::messages_jsonl::file_name(&p)
            );
            let mut r = pages::messages_jsonl::render(&p).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson; charset=utf-8"),
            );
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => st.page(Err(e)),
    }
}

pub async fn broker(AxState(st): S, Path(id): Path<i32>) -> Response {
    let r = st.kafka(move |s| cluster::broker(s, id)).await;
    st.page(r.map(|d| pages::broker::render(&st.shell, &d)))
}

pub async fn groups(AxState(st): S) -> Response {
    let r = st.kafka(kgroups::list).await;
    st.page(r.map(|g| pages::groups::render(&st.shell, &g)))
}

pub async fn throughput(AxState(st): S) -> Response {
    st.page(Ok(pages::throughput::render(&st.shell)))
}

/// One sample of end offsets as JSON, for the throughput page's script.
pub async fn throughput_sample(AxState(st): S) -> Response {
    let (status, body) = match st.kafka(kthroughput::sample).await {
        Ok(s) => (200, serde_json::to_string(&s).unwrap_or_default()),
        Err(e) => (
            e.status(),
            serde_json::json!({ "error": e.to_string() }).to_string(),
        ),
    };
    let status = axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

pub async fn acls(AxState(st): S) -> Response {
    let r = st.kafka(security::acls).await;
    st.page(r.map(|a| pages::acls::render(&st.shell, &a)))
}

pub async fn users(AxState(st): S) -> Response {
    let r = st.kafka(security::scram_users).await;
    st.page(r.map(|u| pages::users::render(&st.shell, &u)))
}

pub async fn quotas(AxState(st): S) -> Response {
    let r = st.kafka(security::quotas).await;
    st.page(r.map(|q| pages::quotas::render(&st.shell, &q)))
}

pub async fn group(AxState(st): S, Path(id): Path<String>) -> Response {
    let r = st.kafka(move |s| kgroups::describe(s, &id)).await;
    st.page(r.map(|g| pages::group::render(&st.shell, &g)))
}

pub async fn topic_new_form(AxState(st): S, headers: HeaderMap) -> Response {
    let r = st
        .check_write(&headers)
        .map(|()| pages::topic_new::render(&st.shell));
    st.page(r)
}

pub async fn topic_create(
    AxState(st): S,
    headers: HeaderMap,
    Form(f): Form<CreateTopicForm>,
) -> Response {
    let t = match st.check_write(&headers).and_then(|()| f.topic()) {
        Ok(t) => t,
        Err(e) => return st.page(Err(e)),
    };
    let name = t.name.clone();
    match st.kafka(move |s| writes::create_topic(s, &t)).await {
        Ok(()) => Redirect::to(&format!("/topics/{}", U(&name))).into_response(),
        Err(e) => st.page(Err(e)),
    }
}

pub async fn produce(
    AxState(st): S,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(f): Form<ProduceForm>,
) -> Response {
    let rec = match st.check_write(&headers).and_then(|()| f.record()) {
        Ok(r) => r,
        Err(e) => return st.page(Err(e)),
    };
    let partition = rec.partition;
    let topic = name.clone();
    match st.kafka(move |s| writes::produce(s, &topic, &rec)).await {
        Ok(offset) => Redirect::to(&format!(
            "/topics/{}/messages?partition={partition}&produced={offset}",
            U(&name)
        ))
        .into_response(),
        Err(e) => st.page(Err(e)),
    }
}

pub async fn reset_form(AxState(st): S, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(e) = st.check_write(&headers) {
        return st.page(Err(e));
    }
    let group = id.clone();
    // Offer the topics the group has offsets on (best effort).
    let topics = st
        .kafka(move |s| {
            let c = kgroups::coordinator(s, &group)?;
            s.metadata(Some(&[]))?;
            kgroups::committed(s, c, &group)
        })
        .await
        .map(|m| {
            let mut t: Vec<String> = m.into_keys().map(|(t, _)| t).collect();
            t.dedup();
            t
        })
        .unwrap_or_default();
    st.page(Ok(pages::reset::form(&st.shell, &id, &topics)))
}

pub async fn reset(
    AxState(st): S,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<ResetFormData>,
) -> Response {
    let parsed = st
        .check_write(&headers)
        .and_then(|()| Ok((f.target()?, f.partition()?)));
    let (target, partition) = match parsed {
        Ok(p) => p,
        Err(e) => return st.page(Err(e)),
    };
    let execute = f.execute();
    let (group, topic) = (id.clone(), f.topic.trim().to_string());
    let r = st
        .kafka(move |s| {
            let rows = writes::plan_reset(s, &group, &topic, partition, target)?;
            if execute {
                writes::commit_reset(s, &group, &topic, &rows)?;
            }
            Ok(rows)
        })
        .await;
    let form = pages::reset::ResetForm {
        topic: f.topic.trim().to_string(),
        partition: f.partition.clone(),
        target: f.target.clone(),
        offset: f.offset.clone(),
    };
    st.page(r.map(|rows| pages::reset::plan(&st.shell, &id, &form, &rows, execute)))
}

pub async fn topic_edit_form(
    AxState(st): S,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = st.check_write(&headers) {
        return st.page(Err(e));
    }
    let r = st.kafka(move |s| ktopics::detail(s, &name)).await;
    st.page(r.map(|t| pages::topic_edit::form(&st.shell, &t)))
}

pub async fn topic_edit(
    AxState(st): S,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(f): Form<TopicEditFormData>,
) -> Response {
    let edit = match st.check_write(&headers).and_then(|()| f.edit()) {
        Ok(e) => e,
        Err(e) => return st.page(Err(e)),
    };
    let execute = f.execute();
    let topic = name.clone();
    let r = st
        .kafka(move |s| {
            let plan = admin::plan_topic_edit(s, &topic, &edit)?;
            if execute {
                admin::apply_topic_edit(s, &topic, &plan)?;
            }
            Ok(plan)
        })
        .await;
    st.page(r.map(|p| pages::topic_edit::plan(&st.shell, &name, &f.echo(), &p, execute)))
}

pub async fn topic_delete_form(
    AxState(st): S,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = st.check_write(&headers) {
        return st.page(Err(e));
    }
    let r = st.kafka(move |s| ktopics::detail(s, &name)).await;
    st.page(r.map(|t| pages::topic_delete::confirm(&st.shell, &t)))
}

pub async fn topic_delete(
    AxState(st): S,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(f): Form<ConfirmForm>,
) -> Response {
    let checked = st.check_write(&headers).and_then(|()| {
        if f.confirm.trim() == name {
            Ok(())
        } else {
            Err(ConsoleError::BadRequest(format!(
                "type the topic's name, {name:?}, to confirm its deletion; nothing was deleted"
            )))
        }
    });
    if let Err(e) = checked {
        return st.page(Err(e));
    }
    match st.kafka(move |s| admin::delete_topic(s, &name)).await {
        Ok(()) => Redirect::to("/topics").into_response(),
        Err(e) => st.page(Err(e)),
    }
}

pub async fn group_delete_form(
    AxState(st): S,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = st.check_write(&headers) {
        return st.page(Err(e));
    }
    let r = st.kafka(move |s| kgroups::describe(s, &id)).await;
    st.page(r.map(|g| pages::group_delete::confirm_group(&st.shell, &g)))
}

pub async fn group_delete(AxState(st): S, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(e) = st.check_write(&headers) {
        return st.page(Err(e));
    }
    match st.kafka(move |s| admin::delete_group(s, &id)).await {
        Ok(()) => Redirect::to("/groups").into_response(),
        Err(e) => st.page(Err(e)),
    }
}

pub async fn offsets_delete_form(
    AxState(st): S,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<TopicParam>,
) -> Response {
    if let Err(e) = st.check_write(&headers) {
        return st.page(Err(e));
    }
    let (group, topic) = (id.clone(), q.topic.clone());
    let r = st
        .kafka(move |s| admin::offsets_on(s, &group, &topic))
        .await;
    st.page(r.map(|rows| pages::group_delete::confirm_offsets(&st.shell, &id, &q.topic, &rows)))
}

pub async fn offsets_delete(
    AxState(st): S,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<TopicParam>,
) -> Response {
    if let Err(e) = st.check_write(&headers) {
        return st.page(Err(e));
    }
    let group = id.clone();
    let r = st
        .kafka(move |s| {
            let rows = admin::offsets_on(s, &group, &f.topic)?;
            if rows.is_empty() {
                return Err(ConsoleError::NotFound(format!(
                    "group {group:?} has no committed offsets on topic {:?}",
                    f.topic
                )));
            }
            let ps: Vec<i32> = rows.iter().map(|&(p, _)| p).collect();
            admin::delete_offsets(s, &group, &f.topic, &ps)
        })
        .await;
    match r {
        Ok(()) => Redirect::to(&format!("/groups/{}", U(&id))).into_response(),
        Err(e) => st.page(Err(e)),
    }
}

/// Adding an ACL: the preview, then (step=execute) the creation.
pub async fn acl_create(AxState(st): S, headers: HeaderMap, Form(f): Form<AclForm>) -> Response {
    let b = match st.check_write(&headers).and_then(|()| f.binding()) {
        Ok(b) => b,
        Err(e) => return st.page(Err(e)),
    };
    if !f.execute() {
        return st.page(Ok(pages::acl_edit::confirm(&st.shell, &b, true)));
    }
    match st.kafka(move |s| acl_admin::create(s, &b)).await {
        Ok(()) => Redirect::to("/acls").into_response(),
        Err(e) => st.page(Err(e)),
    }
}

pub async fn acl_delete_form(
    AxState(st): S,
    headers: HeaderMap,
    Query(f): Query<AclForm>,
) -> Response {
    let r = st
        .check_write(&headers)
        .and_then(|()| f.binding())
        .map(|b| pages::acl_edit::confirm(&st.shell, &b, false));
    st.page(r)
}

pub async fn acl_delete(AxState(st): S, headers: HeaderMap, Form(f): Form<AclForm>) -> Response {
    let b = match st.check_write(&headers).and_then(|()| f.binding()) {
        Ok(b) => b,
        Err(e) => return st.page(Err(e)),
    };
    match st.kafka(move |s| acl_admin::delete(s, &b)).await {
        Ok(0) => st.page(Err(ConsoleError::NotFound(
            "no such ACL: nothing was deleted".into(),
        ))),
        Ok(_) => Redirect::to("/acls").into_response(),
        Err(e) => st.page(Err(e)),
    }
}

/// Setting or removing a quota: the validated plan, then (step=execute) the change.
pub async fn quota_alter(AxState(st): S, headers: HeaderMap, Form(f): Form<QuotaForm>) -> Response {
    let c = match st.check_write(&headers).and_then(|()| f.change()) {
        Ok(c) => c,
        Err(e) => return st.page(Err(e)),
    };
    if f.execute() {
        return match st.kafka(move |s| quota_admin::apply(s, &c)).await {
            Ok(()) => Redirect::to("/quotas").into_response(),
            Err(e) => st.page(Err(e)),
        };
    }
    let planned = c.clone();
    let r = st.kafka(move |s| quota_admin::plan(s, &planned)).await;
    st.page(r.map(|now| pages::quota_edit::plan(&st.shell, &c, now)))
}

/// Sets a SCRAM credential (the form says it replaces an existing one).
pub async fn user_alter(AxState(st): S, headers: HeaderMap, Form(f): Form<UserForm>) -> Response {
    let parsed = st.check_write(&headers).and_then(|()| {
        if f.password.is_empty() {
            return Err(ConsoleError::BadRequest("a password is needed".into()));
        }
        Ok((
            f.user()?,
            scram_admin::mechanism(&f.mechanism)?,
            f.iterations()?,
        ))
    });
    let (user, m, iterations) = match parsed {
        Ok(p) => p,
        Err(e) => return st.page(Err(e)),
    };
    let password = f.password;
    match st
        .kafka(move |s| scram_admin::upsert(s, &user, m, &password, iterations))
        .await
    {
        Ok(()) => Redirect::to("/users").into_response(),
        Err(e) => st.page(Err(e)),
    }
}

pub async fn user_delete_form(
    AxState(st): S,
    headers: HeaderMap,
    Query(f): Query<UserForm>,
) -> Response {
    let r = st.check_write(&headers).and_then(|()| {
        let m = scram_admin::mechanism(&f.mechanism)?;
        Ok(pages::user_edit::confirm_delete(
            &st.shell,
            &f.user()?,
            m.mechanism_name(),
        ))
    });
    st.page(r)
}

pub async fn user_delete(AxState(st): S, headers: HeaderMap, Form(f): Form<UserForm>) -> Response {
    let parsed = st
        .check_write(&headers)
        .and_then(|()| Ok((f.user()?, scram_admin::mechanism(&f.mechanism)?)));
    let (user, m) = match parsed {
        Ok(p) => p,
        Err(e) => return st.page(Err(e)),
    };
    match st.kafka(move |s| scram_admin::delete(s, &user, m)).await {
        Ok(()) => Redirect::to("/users").into_response(),
        Err(e) => st.page(Err(e)),
    }
}
