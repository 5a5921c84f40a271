//! The admin listener: what an operator's tools ask a running proxy, on a
//! port of its own (never the proxy's: a client of the proxy must not
//! reach it), served by the proxy's own workers.
//!
//! | path | answer |
//! |---|---|
//! | `GET /metrics` | every metric, Prometheus text format 0.0.4 |
//! | `GET /healthz` | 200: the process is alive and its workers run |
//! | `GET /readyz` | 200 while the proxy accepts connections (listeners up, hooks loaded) and every route can serve (`Upstreams::readiness`, cached [`READY_CACHE`]); 503 with the routes that cannot, or once it shuts down |
//! | `GET /config` | the effective configuration as JSON, secrets redacted |
//!
//! Anything else is 404; another method on these paths is 405. `HEAD` is
//! not served: scrapers and probes use `GET`.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_core::http1::Header;

use super::{Generation, Shared};
use crate::httpd::{Conn, ReadError, Response};
use crate::rt::net::{Listener, Stream};

/// How long a URL route's upstream has to take a TCP connection for
/// `/readyz`.
pub const READY_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one `/readyz` check answers for: probes and scrapes in a
/// storm do not each connect to every upstream.
pub const READY_CACHE: Duration = Duration::from_secs(2);

/// What the admin listener answers from.
pub(super) struct Admin {
    /// Gone once the proxy has stopped (then nothing is ready).
    shared: Weak<Shared>,
    ready: Mutex<ReadyCache>,
}

/// The last `/readyz` check, and whether one is running.
#[derive(Default)]
struct ReadyCache {
    /// When, for which generation (a reload's routes are checked afresh).
    last: Option<(Instant, u64, Arc<Readiness>)>,
    checking: bool,
}

/// One check's answer.
struct Readiness {
    ready: bool,
    /// The routes that cannot serve.
    failing: Vec<String>,
    body: String,
}

/// Clears `checking` however the check ends (its task may be dropped).
struct Checking<'a>(&'a Mutex<ReadyCache>);

impl Drop for Checking<'_> {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).checking = false;
    }
}

impl Admin {
    pub(super) fn new(shared: Weak<Shared>) -> Admin {
        Admin {
            shared,
            ready: Mutex::default(),
        }
    }

    /// `/readyz`: 503 while shutting down; else the cached check if it is
    /// fresh (or one is running: a storm waits for nobody and starts no
    /// second one), else a new check of every route.
    async fn readyz(&self, shared: &Shared) -> Response {
        if shared.is_shutting_down() {
            return json_response(503, &json!({"ready": false, "reason": "shutting down"}));
        }
        let cached = {
            let mut cache = self.ready.lock().unwrap_or_else(|e| e.into_inner());
            let generation = shared.generation_id();
            let fresh = cache
                .last
                .as_ref()
                .filter(|(at, id, _)| {
                    *id == generation && (at.elapsed() < READY_CACHE || cache.checking)
                })
                .map(|(_, _, r)| r.clone());
            if fresh.is_none() {
                cache.checking = true;
            }
            fresh
        };
        let readiness = match cached {
            Some(r) => r,
            None => {
                let _checking = Checking(&self.ready);
                let current = shared.current();
                let r = Arc::new(check(&current).await);
                let was = self
                    .ready
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .last
                    .replace((Instant::now(), current.id, r.clone()))
                    .map(|(_, _, last)| last.ready);
                // Said when it changes, not at every probe.
                match (was, r.ready) {
                    (Some(true) | None, false) => tracing::warn!(
                        routes = %r.failing.join(", "),
                        "not ready: routes cannot serve"
                    ),
                    (Some(false), true) => tracing::info!("ready: every route can serve"),
                    _ => {}
                }
                r
            }
        };
        Response {
            status: if readiness.ready { 200 } else { 503 },
            headers: vec![Header::new("Content-Type", "application/json")],
            body: readiness.body.clone().into_bytes(),
        }
    }

    /// The answer to one request.
    async fn answer(&self, method: &str, path: &str) -> Response {
        let known = ["/metrics", "/healthz", "/readyz", "/config"];
        if !known.contains(&path) {
            return Response::text(404, "not found");
        }
        if method != "GET" {
            return Response::text(405, "method not allowed").with("Allow", "GET");
        }
        let shared = self.shared.upgrade();
        match path {
            "/metrics" => match shared {
                Some(shared) => {
                    let current = shared.current();
                    let text = shared
                        .metrics
                        .encode(&current.routes, &current.upstreams.live());
                    Response {
                        status: 200,
                        headers: vec![Header::new("Content-Type", crate::metrics::CONTENT_TYPE)],
                        body: text.into_bytes(),
                    }
                }
                None => Response::text(503, "stopped"),
            },
            "/healthz" => Response::text(200, "ok"),
            "/readyz" => match shared {
                Some(shared) => self.readyz(&shared).await,
                None => json_response(503, &json!({"ready": false, "reason": "stopped"})),
            },
            // The running configuration's: a reload's once it swapped in.
            _ => match shared.and_then(|s| s.current().config_json.clone()) {
                Some(json) => Response {
                    status: 200,
                    headers: vec![Header::new("Content-Type", "application/json")],
                    body: json.into_bytes(),
                },
                None => Response::text(503, "stopped"),
            },
        }
    }
}

/// Accept admin connections until the runtime stops; each is a task on the
/// worker that accepted it. It keeps serving through the shutdown's grace
/// period, when `/readyz` says 503 and `/metrics` shows the drain.
pub(super) async fn serve(listener: Listener, admin: Arc<Admin>) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let Some(worker) = crate::rt::Handle::current().map(|h| h.local_or_least_loaded())
                else {
                    return;
                };
                let stream = match Stream::accepted(stream, worker.reactor()) {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot register an admin connection");
                        continue;
                    }
                };
                let admin = admin.clone();
                worker.spawn(connection(stream, admin)).detach();
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                crate::rt::Timer::after(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(stream: Stream, admin: Arc<Admin>) {
    let _ = stream.set_nodelay(true);
    let mut conn = Conn::new(stream);
    loop {
        let request = match conn.read_request().await {
            Ok(request) => request,
            Err(ReadError::Closed) => return,
            Err(ReadError::Bad(status)) => {
                let _ = conn.send(Response::text(status, "bad request"), true).await;
                return;
            }
        };
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let response = admin.answer(&request.head.method, request.path()).await;
        if conn.send(response, close).await.is_err() || close {
            return;
        }
    }
}

/// Every route's readiness, as `/readyz` answers it:
/// `{"ready": false, "routes": [{"route": "a", "ready": false, "error": "…"}, …]}`.
async fn check(shared: &Generation) -> Readiness {
    let results = shared.upstreams.readiness(READY_CONNECT_TIMEOUT).await;
    let ready = results.iter().all(Result::is_ok);
    let routes: Vec<serde_json::Value> = shared
        .route_names
        .iter()
        .zip(&results)
        .map(|(route, result)| match result {
            Ok(()) => json!({"route": route, "ready": true}),
            Err(error) => json!({"route": route, "ready": false, "error": error}),
        })
        .collect();
    let failing = shared
        .route_names
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_err())
        .map(|(n, _)| n.clone())
        .collect();
    Readiness {
        ready,
        failing,
        body: json!({"ready": ready, "routes": routes}).to_string(),
    }
}

fn json_response(status: u16, body: &serde_json::Value) -> Response {
    Response {
        status,
        headers: vec![Header::new("Content-Type", "application/json")],
        body: body.to_string().into_bytes(),
    }
}
