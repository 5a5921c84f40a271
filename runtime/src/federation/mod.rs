//! Federated routes: many MCP servers behind one endpoint
//! (`core::federation` holds the rules and the fan-out machine; this
//! module its I/O). Each member is itself a message upstream — today a
//! stdio server sluice runs ([`crate::stdio`]); HTTP members come next —
//! reached through a [`MessageLink`] of its own per member request, so its
//! sessions, restarts and limits are its route's as on a route of its own.

mod seal;
mod task;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_core::federation::{Catalog, Curation, Lists, Resources};
use sluice_core::legacy::StreamId;
use sluice_core::upstream::Request;

use crate::link::{ClientSink, MessageLink, MessageRoute, OnGone, notify};
use crate::stdio::{RouteStdio, StdioUpstream};
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
    /// The server: a command sluice runs.
    pub stdio: StdioUpstream,
}

/// A federated route's settings.
#[derive(Debug, Clone)]
pub struct FederationUpstream {
    /// Its members, in order (their order decides collisions).
    pub members: Vec<MemberUpstream>,
    /// How long a member has to begin an answer.
    pub member_timeout: Duration,
}

/// A federated route at work: its members' routes, what their lists
/// taught it, and the key of its sessions.
pub(crate) struct RouteFederation {
    name: String,
    member_names: Vec<String>,
    members: Vec<Arc<RouteStdio>>,
    lists: Mutex<Lists>,
    sealer: Sealer,
    timeout: Duration,
}

impl RouteFederation {
    /// The route `name` with `settings`; `None` without randomness for its
    /// session key.
    pub(crate) fn new(name: String, settings: FederationUpstream) -> Option<Arc<Self>> {
        let sealer = Sealer::ephemeral()?;
        let member_names = settings.members.iter().map(|m| m.name.clone()).collect();
        let lists = Lists {
            tools: Catalog::new(settings.members.iter().map(|m| m.tools.clone()).collect()),
            prompts: Catalog::new(settings.members.iter().map(|m| m.prompts.clone()).collect()),
            resources: Resources::default(),
        };
        let members = settings
            .members
            .into_iter()
            .map(|m| RouteStdio::new(format!("{name}/{}", m.name), m.stdio))
            .collect();
        Some(Arc::new(RouteFederation {
            name,
            member_names,
            members,
            lists: Mutex::new(lists),
            sealer,
            timeout: settings.member_timeout,
        }))
    }

    /// A link for one exchange.
    pub(crate) fn open(self: &Arc<Self>) -> MessageLink {
        MessageLink::open(self.clone())
    }

    /// Members' bridges and children still running.
    pub(crate) fn live_count(&self) -> usize {
        self.members.iter().map(|m| m.live_count()).sum()
    }

    /// Its members' per-session bridges and children, summed.
    pub(crate) fn open_counts(&self) -> (usize, usize) {
        self.members
            .iter()
            .map(|m| m.open_counts())
            .fold((0, 0), |(s, p), (ms, mp)| (s + ms, p + mp))
    }

    /// Shutting down: every member's bridges close.
    pub(crate) fn close_all(&self) -> usize {
        self.members.iter().map(|m| m.close_all()).sum()
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
