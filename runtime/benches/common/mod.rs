//! What both hook benches share: a case (a loaded host and one message) and
//! the p50/p99 table from a plain loop (criterion reports means; the
//! targets are p50s).

use std::hint::black_box;
use std::time::{Duration, Instant};

use sluice::hooks::*;
use sluice_core::exchange::HookPhase;

pub struct Case {
    pub name: String,
    pub host: HookHost,
    pub phase: HookPhase,
    pub method: &'static str,
    pub request: String,
    pub response: String,
}

impl Case {
    pub fn run(&self) -> ChainReport {
        let ctx = HookContext {
            upstream: "bench".into(),
            ..HookContext::default()
        };
        match self.phase {
            HookPhase::Request => self.host.run_request(&ctx, self.method, &self.request),
            HookPhase::Response => {
                self.host
                    .run_response(&ctx, self.method, &self.request, &self.response)
            }
            HookPhase::ClientAnswer => {
                self.host
                    .run_client_answer(&ctx, self.method, &self.request, &self.response)
            }
            HookPhase::ServerMessage => {
                self.host
                    .run_server_message(&ctx, self.method, &self.request)
            }
        }
    }
}

/// Warm each case up, time `n` messages one by one, print p50 and p99.
pub fn print_percentiles(cases: &[Case], title: &str, warm_up: usize, n: usize) {
    println!("\n{title:<38} {:>10} {:>10}", "p50", "p99");
    for c in cases {
        for _ in 0..warm_up {
            black_box(c.run());
        }
        let mut t: Vec<Duration> = (0..n)
            .map(|_| {
                let s = Instant::now();
                black_box(c.run());
                s.elapsed()
            })
            .collect();
        t.sort();
        println!(
            "{:<38} {:>10.2?} {:>10.2?}",
            c.name,
            t[n / 2],
            t[(n - 1) * 99 / 100]
        );
    }
}
