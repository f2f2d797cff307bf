//! The HTTP layer: binds the listener, routes requests to the Kafka layer
//! (on tokio's blocking pool, at most [`MAX_CONCURRENT_SESSIONS`] at once)
//! and the page renderers, and guards every write: refused unless writes
//! are enabled, and refused when the form comes from another origin.

mod forms;
mod handlers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::Semaphore;

use crate::html::Shell;
use crate::kafka::Session;
use crate::pages;
use crate::ConsoleError;

/// Kafka sessions (page loads) running at once; more wait their turn.
pub const MAX_CONCURRENT_SESSIONS: usize = 8;

/// How the console runs.
#[derive(Clone, Debug)]
pub struct ConsoleConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// Where to listen (loopback by default).
    pub listen: SocketAddr,
    /// Whether the pages may change the cluster.
    pub allow_writes: bool,
    /// How long to wait for a broker.
    pub timeout: Duration,
    /// TLS and SASL to the cluster (Kafka's client security keys, as the
    /// CLI's `--command-config` reads them); PLAINTEXT by default.
    pub security: sluice_client::Security,
}

pub(crate) struct State {
    config: ConsoleConfig,
    shell: Shell,
    sessions: Semaphore,
}

/// A bound console, ready to serve.
pub struct Console {
    listener: tokio::net::TcpListener,
    state: Arc<State>,
}

impl Console {
    /// Binds the listener.
    pub async fn bind(config: ConsoleConfig) -> std::io::Result<Console> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let shell = Shell {
            brokers: config.brokers.clone(),
            allow_writes: config.allow_writes,
        };
        Ok(Console {
            listener,
            state: Arc::new(State {
                config,
                shell,
                sessions: Semaphore::new(MAX_CONCURRENT_SESSIONS),
            }),
        })
    }

    /// The address actually bound (the port when 0 was asked for).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
    }
}

fn router(state: Arc<State>) -> Router {
    use handlers::*;
    Router::new()
        .route("/", get(overview))
        .route("/health", get(|| async { "ok\n" }))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .route("/topics", get(topics))
        .route("/topics/new", get(topic_new_form).post(topic_create))
        .route("/topics/{name}", get(topic))
        .route("/topics/{name}/messages", get(messages))
        .route("/topics/{name}/messages/download", get(messages_download))
        .route("/topics/{name}/produce", axum::routing::post(produce))
        .route("/topics/{name}/edit", get(topic_edit_form).post(topic_edit))
        .route(
            "/topics/{name}/delete",
            get(topic_delete_form).post(topic_delete),
        )
        .route("/brokers/{id}", get(broker))
        .route("/groups", get(groups))
        .route("/throughput", get(throughput))
        .route("/throughput.json", get(throughput_sample))
        .route("/acls", get(acls))
        .route("/acls/create", axum::routing::post(acl_create))
        .route("/acls/delete", get(acl_delete_form).post(acl_delete))
        .route("/users", get(users))
        .route("/users/alter", axum::routing::post(user_alter))
        .route("/users/delete", get(user_delete_form).post(user_delete))
        .route("/quotas", get(quotas))
        .route("/quotas/alter", axum::routing::post(quota_alter))
        .route("/groups/{id}", get(group))
        .route("/groups/{id}/reset", get(reset_form).post(reset))
        .route(
            "/groups/{id}/delete",
            get(group_delete_form).post(group_delete),
        )
        .route(
            "/groups/{id}/offsets/delete",
            get(offsets_delete_form).post(offsets_delete),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            host_guard,
        ))
        .with_state(state)
}

/// On a loopback listener, answers only requests addressed to a loopback
/// name: a page of another site that rebinds its DNS name to 127.0.0.1
/// sends its own name as Host and is refused (it could otherwise read the
/// pages, and post forms whose Origin matches that Host).
async fn host_guard(AxState(st): AxState<Arc<State>>, req: Request, next: Next) -> Response {
    if st.config.listen.ip().is_loopback() {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !is_loopback_host(host) {
            return st.page(Err(ConsoleError::ForeignHost(host.to_string())));
        }
    }
    next.run(req).await
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port (pure).
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl State {
    /// Runs `f` with a fresh Kafka session on the blocking pool.
    pub(crate) async fn kafka<T, F>(&self, f: F) -> Result<T, ConsoleError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Session) -> Result<T, ConsoleError> + Send + 'static,
    {
        let _permit = self
            .sessions
            .acquire()
            .await
            .map_err(|e| ConsoleError::Internal(e.to_string()))?;
        let brokers = self.config.brokers.clone();
        let timeout = self.config.timeout;
        let security = self.config.security.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = Session::connect(&brokers, timeout, security)?;
            f(&mut s)
        })
        .await
        .map_err(|e| ConsoleError::Internal(e.to_string()))?
    }

    /// Refuses a write unless writes are enabled and the form was posted
    /// from this console's own pages (the Origin, when the browser sends
    /// one, names the Host it was sent to; a cross-site fetch is refused).
    pub(crate) fn check_write(&self, headers: &HeaderMap) -> Result<(), ConsoleError> {
        if !self.config.allow_writes {
            return Err(ConsoleError::WritesDisabled);
        }
        let get = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
        if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
            if site != "same-origin" && site != "none" {
                return Err(ConsoleError::CrossOrigin);
            }
        }
        if let Some(origin) = get(header::ORIGIN) {
            let host = get(header::HOST).unwrap_or("");
            let bare = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .unwrap_or("");
            if bare.is_empty() || bare != host {
                return Err(ConsoleError::CrossOrigin);
            }
        }
        Ok(())
    }

    /// A page, or the error page with the error's status.
    pub(crate) fn page(&self, result: Result<String, ConsoleError>) -> Response {
        match result {
            Ok(html) => html_response(StatusCode::OK, html),
            Err(e) => {
                tracing::info!(error = %e, "console page failed");
                let status =
                    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                html_response(status, pages::error::render(&self.shell, &e))
            }
        }
    }
}

/// Headers every page carries: no inline script or style may run (so an
/// escaping slip cannot become script), no framing, no referrer to other sites (same-origin, so that
/// Chromium still sends the Origin the write check compares).
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn html_response(status: StatusCode, html: String) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_names_pass() {
        for ok in [
            "127.0.0.1:9080",
            "localhost:9080",
            "LOCALHOST",
            "[::1]:9080",
            "127.1.2.3",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:9080",
            "10.0.0.1:9080",
            "",
            "[::2]:1",
            "localhost.evil.example",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
