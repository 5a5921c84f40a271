//! A member over Streamable HTTP: each member request is one HTTP request
//! on a pooled connection to the member's URL, its answer read back as
//! parts (`core::federation::http`). The member keeps its sessions itself;
//! sluice keeps nothing per session, so any replica can serve them.

use std::sync::Arc;

use futures_lite::{AsyncWriteExt, FutureExt, future};
use sluice_core::federation::http::{AnswerLimits, AnswerReader, MemberUrl, member_request};
use sluice_core::http1::Header;
use sluice_core::legacy::StreamId;
use sluice_core::upstream::Request;

use crate::dial::{Conn, Dialer};
use crate::link::{ClientSink, MessageLink, MessageRoute, OnGone, notify};
use crate::rt::mailbox::Receiver;

/// The client stream went away (its leg was dropped).
struct Gone;

/// One HTTP member of a federated route.
pub(crate) struct RouteHttpMember {
    /// `route/member`, for the log.
    name: String,
    dialer: Arc<Dialer>,
    /// The member's index in the dialer's targets.
    target: usize,
    url: MemberUrl,
    /// The operator's fields for this member (its credentials).
    headers: Vec<Header>,
    limits: AnswerLimits,
}

impl RouteHttpMember {
    pub(crate) fn new(
        name: String,
        dialer: Arc<Dialer>,
        target: usize,
        url: MemberUrl,
        headers: Vec<Header>,
        limits: AnswerLimits,
    ) -> Arc<Self> {
        Arc::new(RouteHttpMember {
            name,
            dialer,
            target,
            url,
            headers,
            limits,
        })
    }

    /// A link for one member request.
    pub(crate) fn open(self: &Arc<Self>) -> MessageLink {
        MessageLink::open(self.clone())
    }
}

impl MessageRoute for RouteHttpMember {
    fn dispatch(
        self: Arc<Self>,
        _stream: StreamId,
        req: Request,
        sink: ClientSink,
    ) -> Option<OnGone> {
        if awaits_nothing(&req) {
            // Notifications, answers to the member's requests, DELETE: the
            // fan-out answered the client already and drops the leg at
            // once, but the member must still get them (stdio members have
            // them queued by then). Delivered on their own, bounded.
            let deliver = async move {
                if let Err(why) = exchange(&self, &req, &sink).await {
                    tracing::debug!(member = %self.name, method = %req.method, "delivery failed: {why}");
                }
            };
            let bounded = deliver.or(async {
                crate::rt::Timer::after(DELIVERY_TIMEOUT).await;
            });
            crate::rt::spawn_here(bounded).detach();
            return None;
        }
        let (tx, rx) = crate::rt::mailbox::mailbox();
        crate::rt::spawn_here(serve(self, req, sink, rx)).detach();
        Some(notify(tx, Gone))
    }
}

/// How long a message nobody waits for has to reach its member.
const DELIVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether the request's answer is nobody's concern: a DELETE, or a POST
/// of notifications and answers only.
fn awaits_nothing(req: &Request) -> bool {
    use sluice_core::jsonrpc::{self, Classified, Kind};
    let not_request = |m: &jsonrpc::Message<'_>| m.kind != Kind::Request;
    match req.method.as_str() {
        "DELETE" => true,
        "POST" => match jsonrpc::classify(&req.body, &jsonrpc::Limits::default()) {
            Ok(Classified::Single(m)) => not_request(&m),
            Ok(Classified::Batch(ms)) => ms.iter().all(not_request),
            Err(_) => false,
        },
        _ => false,
    }
}

/// Serves one member request until its answer is over, the member fails
/// (the sink drops: the fan-out sees the leg fail) or the leg is dropped.
async fn serve(member: Arc<RouteHttpMember>, req: Request, sink: ClientSink, gone: Receiver<Gone>) {
    let work = async {
        if let Err(why) = exchange(&member, &req, &sink).await {
            tracing::debug!(member = %member.name, method = %req.method, "member request failed: {why}");
        }
    };
    let gone = async {
        // A message, or its sender dropped: either way the leg is over.
        let _ = gone.recv().await;
    };
    work.or(gone).await;
}

/// Why a member request failed, for the log (the fan-out words what the
/// client sees).
enum Failure {
    Connect(std::io::Error),
    Io(std::io::Error),
    Answer(String),
    ClientGone,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "connect: {e}"),
            Failure::Io(e) => write!(f, "i/o: {e}"),
            Failure::Answer(e) => f.write_str(e),
            Failure::ClientGone => f.write_str("the client left"),
        }
    }
}

async fn exchange(m: &RouteHttpMember, req: &Request, sink: &ClientSink) -> Result<(), Failure> {
    let bytes =
        member_request(req, &m.url, &m.headers).map_err(|e| Failure::Answer(e.to_string()))?;
    // A pooled connection the member closed as it was taken gives nothing
    // back: the request goes once more on a fresh one, as a client would.
    let mut fresh = false;
    loop {
        let (mut conn, reused) = m
            .dialer
            .checkout(m.target, fresh)
            .await
            .map_err(Failure::Connect)?;
        match attempt(m, req, sink, &mut conn, &bytes).await {
            Attempt::Done { reusable } => {
                if reusable {
                    m.dialer.checkin(m.target, conn);
                }
                return Ok(());
            }
            Attempt::Nothing(e) if reused && !fresh => {
                tracing::debug!(member = %m.name, "pooled connection closed, again on a fresh one: {e}");
                fresh = true;
            }
            Attempt::Nothing(e) => return Err(Failure::Io(e)),
            Attempt::Failed(f) => return Err(f),
        }
    }
}

enum Attempt {
    Done {
        reusable: bool,
    },
    /// Not a byte of an answer came back.
    Nothing(std::io::Error),
    Failed(Failure),
}

async fn attempt(
    m: &RouteHttpMember,
    req: &Request,
    sink: &ClientSink,
    conn: &mut Conn,
    bytes: &[u8],
) -> Attempt {
    let sent = async {
        conn.write_all(bytes).await?;
        conn.flush().await
    }
    .await;
    if let Err(e) = sent {
        return Attempt::Nothing(e);
    }
    let mut reader = AnswerReader::new(&req.method, m.limits.clone());
    let mut parts = Vec::new();
    let mut got_any = false;
    loop {
        let read = future::poll_fn(|cx| conn.poll_read_bytes(cx)).await;
        let fed = match read {
            Ok(b) if b.is_empty() => {
                if !got_any {
                    return Attempt::Nothing(std::io::ErrorKind::UnexpectedEof.into());
                }
                reader.eof(&mut parts)
            }
            Ok(b) => {
                got_any = true;
                reader.feed(&b, &mut parts)
            }
            Err(e) if !got_any => return Attempt::Nothing(e),
            Err(e) => return Attempt::Failed(Failure::Io(e)),
        };
        for part in parts.drain(..) {
            if !sink.send(part) {
                return Attempt::Failed(Failure::ClientGone);
            }
        }
        if let Err(e) = fed {
            return Attempt::Failed(Failure::Answer(e.to_string()));
        }
        if reader.is_done() {
            return Attempt::Done {
                reusable: reader.reusable(),
            };
        }
    }
}
