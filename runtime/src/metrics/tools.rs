//! `sluice_tool_calls_total`: `tools/call` requests by route, tool and
//! outcome, with the tool names bounded per route.
//!
//! Tool names come from clients, so each route admits at most
//! [`TOOLS_PER_ROUTE`] names, first seen first served, and only names a
//! label can carry as is (1 to [`MAX_TOOL_NAME`] bytes of `A-Z a-z 0-9 _ -
//! . /`, the characters MCP recommends for tool names); every other call
//! counts under `tool="other"`. A call costs a read lock, a hash of its
//! name against at most 64 others, and an atomic add; the write lock is
//! taken only the first time a name is admitted.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

use super::Name;
use super::requests::FastHasher;

/// Tool names with a label of their own, per route.
pub const TOOLS_PER_ROUTE: usize = 64;

/// The longest tool name with a label of its own (MCP's recommended bound).
pub const MAX_TOOL_NAME: usize = 128;

/// The label of every call whose tool has no label of its own.
const OTHER: &str = "other";

/// The outcomes, in the order of a slot's counters (the access log's words).
pub(super) const OUTCOMES: [&str; 5] =
    ["complete", "answered", "aborted", "client-gone", "pending"];

/// One tool's counters, by outcome (the index in [`OUTCOMES`]).
type Slot = [AtomicU64; OUTCOMES.len()];

/// One route's admitted names and their counters. Slot 0 is `other`.
#[derive(Debug)]
pub(super) struct RouteTools {
    names: RwLock<HashMap<Box<str>, usize, BuildHasherDefault<FastHasher>>>,
    /// `1 + TOOLS_PER_ROUTE` slots, made at start: admitting a name
    /// allocates nothing but its key.
    slots: Box<[Slot]>,
}

impl RouteTools {
    pub(super) fn new() -> RouteTools {
        RouteTools {
            names: RwLock::default(),
            slots: (0..=TOOLS_PER_ROUTE).map(|_| Slot::default()).collect(),
        }
    }

    /// The slot counting `tool`: its own, a new one while there is room,
    /// else `other`'s.
    fn slot(&self, tool: &str) -> usize {
        if !labelable(tool) {
            return 0;
        }
        let names = self.names.read().unwrap_or_else(|e| e.into_inner());
        if let Some(&slot) = names.get(tool) {
            return slot;
        }
        if names.len() >= TOOLS_PER_ROUTE {
            return 0;
        }
        drop(names);
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        let next = names.len() + 1;
        match names.get(tool) {
            Some(&slot) => slot,
            None if next <= TOOLS_PER_ROUTE => {
                names.insert(tool.into(), next);
                next
            }
            None => 0,
        }
    }
}

/// A name a label can carry unescaped and that MCP would call a tool name.
fn labelable(tool: &str) -> bool {
    (1..=MAX_TOOL_NAME).contains(&tool.len())
        && tool
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
        && tool != OTHER
}

#[derive(EncodeLabelSet, Debug, Clone, PartialEq, Eq, Hash)]
struct Labels {
    route: Name,
    tool: Name,
    outcome: &'static str,
}

/// The counter family, registered as a collector.
#[derive(Debug, Default)]
pub(super) struct ToolCalls {
    /// Every route name configured since start, with its table (a reload
    /// adds routes, never removes them: a table lives as long as its
    /// counters).
    routes: RwLock<Vec<(Name, Arc<RouteTools>)>>,
}

impl ToolCalls {
    /// Route `name`'s table, added if it is new.
    pub(super) fn route(&self, name: &Name) -> Arc<RouteTools> {
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        if let Some((_, tools)) = routes.iter().find(|(n, _)| n == name) {
            return tools.clone();
        }
        let tools = Arc::new(RouteTools::new());
        routes.push((name.clone(), tools.clone()));
        tools
    }
}

impl RouteTools {
    /// Count one `tools/call` of `tool` that ended with `outcome` (an
    /// index in [`OUTCOMES`]).
    pub(super) fn add(&self, tool: &str, outcome: usize) {
        let tools = self;
        let slot = tools.slot(tool);
        if let Some(count) = tools.slots[slot].get(outcome) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Collector for ToolCalls {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(
            "tool_calls",
            "tools/call requests by route, tool (the first 64 names per route; the rest: other) and outcome",
            None,
            MetricType::Counter,
        )?;
        let routes = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (route, tools) in &routes {
            let mut named: Vec<(Name, usize)> = {
                let names = tools.names.read().unwrap_or_else(|e| e.into_inner());
                names
                    .iter()
                    .map(|(name, &slot)| (Name(name.as_ref().into()), slot))
                    .collect()
            };
            // A stable order, scrape after scrape.
            named.sort_unstable_by(|a, b| a.0.0.cmp(&b.0.0));
            named.push((Name(OTHER.into()), 0));
            for (tool, slot) in named {
                for (outcome, count) in OUTCOMES.iter().zip(&tools.slots[slot]) {
                    let value = count.load(Ordering::Relaxed);
                    if value == 0 {
                        continue;
                    }
                    let labels = Labels {
                        route: route.clone(),
                        tool: tool.clone(),
                        outcome,
                    };
                    ConstCounter::new(value).encode(metric.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_names_get_their_own_slot_and_the_rest_share_other() {
        let tools = RouteTools::new();
        for i in 0..TOOLS_PER_ROUTE {
            assert_eq!(tools.slot(&format!("tool_{i}")), i + 1);
        }
        // Known names keep their slot once the table is full.
        assert_eq!(tools.slot("tool_0"), 1);
        assert_eq!(
            tools.slot(&format!("tool_{}", TOOLS_PER_ROUTE - 1)),
            TOOLS_PER_ROUTE
        );
        assert_eq!(tools.slot("one_too_many"), 0);
        assert_eq!(tools.names.read().unwrap().len(), TOOLS_PER_ROUTE);
    }

    #[test]
    fn names_a_label_cannot_carry_count_as_other() {
        let tools = RouteTools::new();
        let long = "x".repeat(MAX_TOOL_NAME + 1);
        for bad in ["", "say \"hi\"", "line\nbreak", "é", long.as_str(), "other"] {
            assert_eq!(tools.slot(bad), 0, "{bad:?}");
        }
        assert!(tools.names.read().unwrap().is_empty());
        assert_eq!(tools.slot(&"x".repeat(MAX_TOOL_NAME)), 1);
        assert_eq!(tools.slot("github/search_issues-v2.1"), 2);
    }
}
