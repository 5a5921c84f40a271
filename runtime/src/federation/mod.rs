//! Federated routes: many MCP servers behind one endpoint
//! (`core::federation` holds the rules and the fan-out machine; this
//! module its I/O). Each member is itself a message upstream — a stdio
//! server sluice runs ([`crate::stdio`]), or a Streamable HTTP server at a
//! URL (`http`) — reached through a `MessageLink` of its own per member
//! request, so its sessions, restarts and limits are its own as on a route
//! of its own.

mod http;
#[doc(hidden)]
pub mod seal;
mod task;
mod trace;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_core::federation::{
    Breaker, Catalog, Curation, LegOutcome, Lists, MemberPolicy, OnUnavailable, Resources,
};
use sluice_core::legacy::StreamId;
use sluice_core::upstream::Request;

use sluice_core::federation::http::{AnswerLimits, MemberUrl};

use crate::dial::Dialer;
use crate::legacy::RouteBridge;
use crate::link::{ClientSink, MessageLink, MessageRoute, OnGone, notify};
use crate::stdio::{RouteStdio, StdioUpstream};
use http::RouteHttpMember;
pub(crate) use seal::Sealer;

/// How long a member has to begin its answer, by default: as long as a
/// command route gives its child to answer `initialize` (a first `npx -y`
/// or `uvx` run downloads the server), so a member starting cold is not
/// left out of the session that started it.
pub const DEFAULT_MEMBER_TIMEOUT: Duration = Duration::from_secs(60);

/// One member of a federated route, as configured.
#[derive(Debug, Clone)]
pub struct MemberUpstream {
    /// Its name (the default prefix of its tools and prompts).
    pub name: String,
    /// How its tools are shown.
    pub tools: Curation,
    /// How its prompts are shown.
    pub prompts: Curation,
    /// The server.
    pub server: MemberServer,
    /// Its timeout and what lists do without it.
    pub policy: MemberPolicy,
}

/// A member's policy by default: [`DEFAULT_MEMBER_TIMEOUT`], left out of
/// lists when it does not answer.
pub const DEFAULT_POLICY: MemberPolicy = MemberPolicy {
    timeout: DEFAULT_MEMBER_TIMEOUT,
    on_unavailable: OnUnavailable::Omit,
};

/// What serves a member.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // built once at startup
pub enum MemberServer {
    /// A command sluice runs.
    Stdio(StdioUpstream),
    /// A Streamable HTTP server at a URL.
    Http(HttpMember),
    /// A legacy HTTP+SSE (2024-11-05) server at a URL, bridged: its
    /// sessions live in this process, as on a route of its own.
    Legacy(LegacyMember),
}

/// A legacy HTTP+SSE member: where it is and its bridge's settings.
#[derive(Debug, Clone)]
pub struct LegacyMember {
    /// Where it listens (its URL's host, port and scheme).
    pub at: HttpMember,
    /// Its bridge (session mode).
    pub bridging: crate::legacy::Bridging,
}

/// A member at a URL.
#[derive(Debug, Clone)]
pub struct HttpMember {
    /// Host name or IP literal (no brackets), for DNS and SNI.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Speak TLS.
    pub tls: bool,
    /// Its `Host` and its endpoint's path and query.
    pub url: MemberUrl,
    /// The operator's fields for it (its credentials), values read at start.
    pub headers: Vec<sluice_core::http1::Header>,
}

/// A federated route's settings.
#[derive(Debug, Clone)]
pub struct FederationUpstream {
    /// Its members, in order (their order decides collisions).
    pub members: Vec<MemberUpstream>,
    /// What an HTTP member's answer may hold.
    pub answer_limits: AnswerLimits,
    /// The keys of its sessions, the sealing one first; empty: a key of
    /// this process's own (sessions then live on this replica only).
    pub session_keys: Vec<SessionKey>,
}

/// A key of a federated route's sessions. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct SessionKey(pub [u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(<redacted>)")
    }
}

impl SessionKey {
    /// A key as written in a file or a variable: 64 hex digits, or 32
    /// bytes in base64 (standard or URL alphabet); surrounding whitespace
    /// is ignored.
    pub fn parse(text: &str) -> Result<SessionKey, &'static str> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
                .collect::<Option<Vec<u8>>>()
        } else {
            let unpadded = text.trim_end_matches('=');
            sluice_core::base64::decode_url(&unpadded.replace('+', "-").replace('/', "_"))
        };
        match bytes.map(<[u8; 32]>::try_from) {
            Some(Ok(key)) => Ok(SessionKey(key)),
            _ => Err(
                "a session key is 32 bytes, written as 64 hex digits or in base64 \
                 (e.g. `openssl rand -hex 32`)",
            ),
        }
    }
}

impl FederationUpstream {
    /// Its HTTP members' addresses, in member order: the proxy's dialer
    /// gets them as targets of their own.
    pub(crate) fn http_targets(&self) -> Vec<crate::dial::Target> {
        self.members
            .iter()
            .filter_map(|m| match &m.server {
                MemberServer::Http(h) | MemberServer::Legacy(LegacyMember { at: h, .. }) => {
                    Some(crate::dial::Target {
                        host: h.host.clone(),
                        port: h.port,
                        tls: h.tls,
                    })
                }
                MemberServer::Stdio(_) => None,
            })
            .collect()
    }
}

/// A member at work.
enum MemberRoute {
    Stdio(Arc<RouteStdio>),
    Http(Arc<RouteHttpMember>),
    Legacy(Arc<LegacyRoute>),
}

impl MemberRoute {
    fn open(&self) -> MessageLink {
        match self {
            MemberRoute::Stdio(s) => s.open(),
            MemberRoute::Http(h) => h.open(),
            MemberRoute::Legacy(l) => MessageLink::open(l.clone()),
        }
    }
}

/// A legacy member's bridge, which reads the backend's address from the
/// request (`Host` and target, as the exchange rewrites them for a route
/// of its own): each member request is addressed to the member first.
struct LegacyRoute {
    bridge: Arc<RouteBridge>,
    url: MemberUrl,
}

impl MessageRoute for LegacyRoute {
    fn dispatch(
        self: Arc<Self>,
        stream: StreamId,
        mut req: Request,
        sink: ClientSink,
    ) -> Option<OnGone> {
        req.headers.retain(|h| !h.is("host"));
        req.headers.insert(
            0,
            sluice_core::http1::Header::new("Host", self.url.authority.as_bytes()),
        );
        req.target = self.url.target.clone();
        self.bridge.clone().dispatch(stream, req, sink)
    }
}

/// A federated route at work: its members' routes, what their lists
/// taught it, and the key of its sessions.
pub(crate) struct RouteFederation {
    name: String,
    member_names: Vec<String>,
    members: Vec<MemberRoute>,
    lists: Mutex<Lists>,
    sealer: Sealer,
    policies: Vec<MemberPolicy>,
    /// Times each member was left out of a fanned-in answer.
    left_out: Vec<std::sync::atomic::AtomicU64>,
    /// Each member's requests, by how they ended ([`LegOutcome::index`]).
    requests: Vec<[std::sync::atomic::AtomicU64; LegOutcome::ALL.len()]>,
    /// Sessions sealed and tokens refused.
    sessions: crate::metrics::FederationCounters,
    /// The process's tracer, when tracing is on: members' spans.
    tracer: Option<Arc<crate::otel::Tracer>>,
    /// Each member's host and port (`None`: a command), for its spans.
    addresses: Vec<Option<(String, u16)>>,
}

impl RouteFederation {
    /// The route `name` with `settings`; its HTTP members are `dialer`'s
    /// targets from `first_target` on, in member order; its sessions
    /// counted in `sessions`. `None` without randomness for its session
    /// key.
    pub(crate) fn new(
        name: String,
        settings: FederationUpstream,
        dialer: &Arc<Dialer>,
        first_target: usize,
        sessions: crate::metrics::FederationCounters,
        tracer: Option<Arc<crate::otel::Tracer>>,
    ) -> Option<Arc<Self>> {
        let member_names: Vec<String> = settings.members.iter().map(|m| m.name.clone()).collect();
        let sealer = if settings.session_keys.is_empty() {
            Sealer::ephemeral(&name, &member_names)?
        } else {
            let keys: Vec<[u8; 32]> = settings.session_keys.iter().map(|k| k.0).collect();
            Sealer::new(&keys, &name, &member_names)?
        };
        let lists = Lists {
            tools: Catalog::new(settings.members.iter().map(|m| m.tools.clone()).collect()),
            prompts: Catalog::new(settings.members.iter().map(|m| m.prompts.clone()).collect()),
            resources: Resources::default(),
            health: vec![Breaker::default(); settings.members.len()],
        };
        let policies: Vec<MemberPolicy> = settings.members.iter().map(|m| m.policy).collect();
        let addresses = settings
            .members
            .iter()
            .map(|m| match &m.server {
                MemberServer::Http(h) | MemberServer::Legacy(LegacyMember { at: h, .. }) => {
                    Some((h.host.clone(), h.port))
                }
                MemberServer::Stdio(_) => None,
            })
            .collect();
        let mut target = first_target;
        let limits = settings.answer_limits;
        let members = settings
            .members
            .into_iter()
            .map(|m| {
                let member_name = format!("{name}/{}", m.name);
                match m.server {
                    MemberServer::Stdio(stdio) => {
                        MemberRoute::Stdio(RouteStdio::new(member_name, stdio))
                    }
                    MemberServer::Http(h) => {
                        target += 1;
                        MemberRoute::Http(RouteHttpMember::new(
                            member_name,
                            dialer.clone(),
                            target - 1,
                            h.url,
                            h.headers,
                            limits.clone(),
                        ))
                    }
                    MemberServer::Legacy(l) => {
                        target += 1;
                        MemberRoute::Legacy(Arc::new(LegacyRoute {
                            bridge: RouteBridge::new(target - 1, l.bridging, dialer.clone()),
                            url: l.at.url,
                        }))
                    }
                }
            })
            .collect();
        Some(Arc::new(RouteFederation {
            name,
            member_names,
            members,
            lists: Mutex::new(lists),
            sealer,
            left_out: policies.iter().map(|_| Default::default()).collect(),
            requests: policies.iter().map(|_| Default::default()).collect(),
            policies,
            sessions,
            tracer,
            addresses,
        }))
    }

    /// A link for one exchange.
    pub(crate) fn open(self: &Arc<Self>) -> MessageLink {
        MessageLink::open(self.clone())
    }

    /// Its stdio members, at work.
    fn stdio_members(&self) -> impl Iterator<Item = &Arc<RouteStdio>> {
        self.members.iter().filter_map(|m| match m {
            MemberRoute::Stdio(s) => Some(s),
            MemberRoute::Http(_) | MemberRoute::Legacy(_) => None,
        })
    }

    /// Its legacy members' bridges, at work.
    fn bridges(&self) -> impl Iterator<Item = &Arc<RouteBridge>> {
        self.members.iter().filter_map(|m| match m {
            MemberRoute::Legacy(l) => Some(&l.bridge),
            MemberRoute::Stdio(_) | MemberRoute::Http(_) => None,
        })
    }

    /// Members' bridges and children still running (an HTTP member's
    /// requests are their clients' exchanges').
    pub(crate) fn live_count(&self) -> usize {
        self.stdio_members().map(|m| m.live_count()).sum::<usize>()
            + self.bridges().map(|b| b.live_count()).sum::<usize>()
    }

    /// Its stdio members' client sessions and children, summed.
    pub(crate) fn open_counts(&self) -> crate::stdio::StdioOpen {
        self.stdio_members()
            .map(|m| m.open_counts())
            .fold(Default::default(), |sum, m| sum + m)
    }

    /// Shutting down: every stdio member's bridges and legacy member's
    /// backend sessions close.
    pub(crate) fn close_all(&self) -> usize {
        self.stdio_members().map(|m| m.close_all()).sum::<usize>()
            + self.bridges().map(|b| b.close_all()).sum::<usize>()
    }

    /// Counts `member` left out of a fanned-in answer.
    fn left_out(&self, member: usize) {
        if let Some(n) = self.left_out.get(member) {
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Counts each member request of a fan-out that is over, by how it
    /// ended.
    fn requests_ended(&self, legs: impl Iterator<Item = (usize, LegOutcome)>) {
        for (member, outcome) in legs {
            if let Some(n) = self.requests.get(member) {
                n[outcome.index()].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Its members' counts and circuits, for the metrics.
    pub(crate) fn members_live(&self) -> Vec<crate::metrics::MemberLive> {
        let now = std::time::Instant::now();
        let lists = self.lists();
        self.member_names
            .iter()
            .enumerate()
            .map(|(i, name)| crate::metrics::MemberLive {
                name: name.clone(),
                left_out: self.left_out[i].load(std::sync::atomic::Ordering::Relaxed),
                requests: self
                    .requests
                    .get(i)
                    .map_or([0; LegOutcome::ALL.len()], |r| {
                        r.each_ref()
                            .map(|n| n.load(std::sync::atomic::Ordering::Relaxed))
                    }),
                circuit_open: lists.health.get(i).is_some_and(|b| b.is_open(now)),
            })
            .collect()
    }

    fn lists(&self) -> std::sync::MutexGuard<'_, Lists> {
        self.lists.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MessageRoute for RouteFederation {
    fn dispatch(
        self: Arc<Self>,
        _stream: StreamId,
        req: Request,
        sink: ClientSink,
    ) -> Option<OnGone> {
        let (tx, rx) = crate::rt::mailbox::mailbox();
        crate::rt::spawn_here(task::run(self, req, sink, rx)).detach();
        Some(notify(tx, task::Gone))
    }
}

#[cfg(test)]
mod tests {
    use super::SessionKey;

    #[test]
    fn a_session_key_reads_as_hex_or_base64_and_nothing_else() {
        let hex = "00".repeat(31) + "ff";
        let key = SessionKey::parse(&format!("  {hex}\n")).unwrap();
        assert_eq!(key.0[31], 0xff);
        assert_eq!(key.0[..31], [0; 31]);
        // The same 32 bytes in base64, padded or not, either alphabet.
        let b64 = sluice_core::base64::encode(&key.0);
        for text in [b64.clone(), b64.trim_end_matches('=').to_owned()] {
            assert_eq!(SessionKey::parse(&text).unwrap().0, key.0, "{text}");
        }
        let url = sluice_core::base64::encode_url(&[0xfb; 32]);
        assert_eq!(SessionKey::parse(&url).unwrap().0, [0xfb; 32]);
        for bad in ["", "secret", &"0".repeat(63), &"g".repeat(64), "AAAA"] {
            assert!(SessionKey::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format!("{key:?}"), "SessionKey(<redacted>)");
    }
}
