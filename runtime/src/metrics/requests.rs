//! `sluice_requests_total`, kept for the hot path: a request is counted
//! under a key of static strings and a route index, found with a cheap hash
//! under a read lock and bumped with one atomic add. The label sets (route
//! names included) are built only when scraped.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

use super::Name;

/// One series of `sluice_requests_total`: every label value but the
/// route's is one of a fixed set of static strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Key {
    pub route: usize,
    pub method: &'static str,
    pub status: &'static str,
    pub outcome: &'static str,
}

#[derive(EncodeLabelSet, Debug, Clone, PartialEq, Eq, Hash)]
struct Labels {
    route: Name,
    method: &'static str,
    status: &'static str,
    outcome: &'static str,
}

/// FxHash's multiply-rotate over the key's words: the keys are few,
/// fixed and not chosen by clients (no flooding to defend against), so
/// SipHash's cost buys nothing here.
#[derive(Default)]
pub(super) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Counts = HashMap<Key, AtomicU64, BuildHasherDefault<FastHasher>>;

/// The counter family, registered as a collector.
#[derive(Debug)]
pub(super) struct RequestCounts {
    /// Route names by slot: every name configured since start (a reload
    /// adds names, never removes them, so a slot keeps its meaning).
    routes: RwLock<Vec<Name>>,
    counts: RwLock<Counts>,
}

impl RequestCounts {
    pub(super) fn new() -> RequestCounts {
        RequestCounts {
            routes: RwLock::default(),
            counts: RwLock::default(),
        }
    }

    /// The slot of route `name`, added if it is new.
    pub(super) fn slot(&self, name: &Name) -> usize {
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        match routes.iter().position(|r| r == name) {
            Some(slot) => slot,
            None => {
                routes.push(name.clone());
                routes.len() - 1
            }
        }
    }

    /// Every route name since start, by slot.
    pub(super) fn names(&self) -> Vec<Name> {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn add(&self, key: Key) {
        let counts = self.counts.read().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get(&key) {
            count.fetch_add(1, Ordering::Relaxed);
            return;
        }
        drop(counts);
        let mut counts = self.counts.write().unwrap_or_else(|e| e.into_inner());
        counts
            .entry(key)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }
}

impl Collector for RequestCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut series: Vec<(Key, u64)> = {
            let counts = self.counts.read().unwrap_or_else(|e| e.into_inner());
            counts
                .iter()
                .map(|(k, v)| (*k, v.load(Ordering::Relaxed)))
                .collect()
        };
        // A stable order, scrape after scrape.
        series.sort_unstable();
        let routes = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut metric = encoder.encode_descriptor(
            "requests",
            "Requests answered, by route, JSON-RPC method, HTTP status and outcome",
            None,
            MetricType::Counter,
        )?;
        for (key, value) in series {
            let Some(route) = routes.get(key.route) else {
                continue;
            };
            let labels = Labels {
                route: route.clone(),
                method: key.method,
                status: key.status,
                outcome: key.outcome,
            };
            ConstCounter::new(value).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
