//! The admin listener: what an operator's tools ask a running proxy, on a
//! port of its own (never the proxy's: a client of the proxy must not
//! reach it), served by the proxy's own workers.
//!
//! | path | answer |
//! |---|---|
//! | `GET /metrics` | every metric, Prometheus text format 0.0.4 |
//! | `GET /healthz` | 200: the process is alive and its workers run |
//! | `GET /readyz` | 200 while the proxy accepts connections (listeners up, hooks loaded); 503 once it shuts down |
//! | `GET /config` | the effective configuration as JSON, secrets redacted |
//!
//! Anything else is 404; another method on these paths is 405. `HEAD` is
//! not served: scrapers and probes use `GET`.

use std::sync::{Arc, Weak};

use sluice_core::http1::Header;

use super::Shared;
use crate::httpd::{Conn, ReadError, Response};
use crate::rt::net::{Listener, Stream};

/// What the admin listener answers from.
pub(super) struct Admin {
    /// Gone once the proxy has stopped (then nothing is ready).
    shared: Weak<Shared>,
    /// The `/config` body.
    config_json: String,
}

impl Admin {
    pub(super) fn new(shared: Weak<Shared>, config_json: String) -> Admin {
        Admin {
            shared,
            config_json,
        }
    }

    /// The answer to one request.
    fn answer(&self, method: &str, path: &str) -> Response {
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
                    let text = shared.metrics.encode(&shared.upstreams.live());
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
                Some(shared) if !shared.is_shutting_down() => Response::text(200, "ready"),
                _ => Response::text(503, "shutting down"),
            },
            _ => Response {
                status: 200,
                headers: vec![Header::new("Content-Type", "application/json")],
                body: self.config_json.clone().into_bytes(),
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
        let response = admin.answer(&request.head.method, request.path());
        if conn.send(response, close).await.is_err() || close {
            return;
        }
    }
}
