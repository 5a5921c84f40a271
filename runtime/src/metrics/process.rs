//! What is read when scraped: the process's CPU time, memory and open
//! files from `/proc/self`, and the log queue's dropped lines.
//!
//! The `process_*` names are the ones every Prometheus client library
//! exports, so dashboards made for other services work unchanged.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::logq::DroppedLines;

/// `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_open_fds`, read on each scrape. A file that cannot be read
/// leaves its series out rather than reporting a false zero.
#[derive(Debug)]
pub(super) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(seconds) = cpu_seconds() {
            let counter = ConstCounter::new(seconds);
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds",
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        if let Some(bytes) = resident_bytes() {
            let gauge = ConstGauge::new(bytes);
            let metric = encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                None,
                gauge.metric_type(),
            )?;
            gauge.encode(metric)?;
        }
        if let Some(fds) = open_fds() {
            let gauge = ConstGauge::new(fds);
            let metric = encoder.encode_descriptor(
                "process_open_fds",
                "Open file descriptors",
                None,
                gauge.metric_type(),
            )?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// `sluice_log_lines_dropped_total`: lines the log queue had no room for.
#[derive(Clone)]
pub(super) struct DroppedCollector(pub DroppedLines);

impl std::fmt::Debug for DroppedCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DroppedCollector")
            .field(&self.0.get())
            .finish()
    }
}

impl Collector for DroppedCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counter = ConstCounter::new(self.0.get());
        let metric = encoder.encode_descriptor(
            "log_lines_dropped",
            "Log lines (access log included) dropped because the log queue was full",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)
    }
}

/// utime + stime (fields 14 and 15 of `/proc/self/stat`, in clock ticks).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let ticks = parse_cpu_ticks(&stat)?;
    Some(ticks as f64 / clock_ticks_per_second()? as f64)
}

/// `AT_CLKTCK` from the kernel's auxiliary vector (what `sysconf(_SC_CLK_TCK)`
/// returns), read from `/proc/self/auxv`: no libc call, no `unsafe`.
fn clock_ticks_per_second() -> Option<u64> {
    let auxv = std::fs::read("/proc/self/auxv").ok()?;
    parse_clock_ticks(&auxv)
}

/// The auxiliary vector is (type, value) pairs of native words, ending
/// with type 0.
fn parse_clock_ticks(auxv: &[u8]) -> Option<u64> {
    const AT_CLKTCK: u64 = 17;
    const WORD: usize = std::mem::size_of::<usize>();
    let word = |w: &[u8]| -> u64 {
        let mut bytes = [0u8; WORD];
        bytes.copy_from_slice(w);
        usize::from_ne_bytes(bytes) as u64
    };
    auxv.chunks_exact(2 * WORD)
        .map(|pair| (word(&pair[..WORD]), word(&pair[WORD..])))
        .take_while(|&(kind, _)| kind != 0)
        .find(|&(kind, _)| kind == AT_CLKTCK)
        .map(|(_, ticks)| ticks)
        .filter(|&ticks| ticks > 0)
}

/// The fields after the command name, which is in parentheses and may
/// hold spaces and parentheses itself: split after the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // rest starts at field 3 (state): utime is field 14, stime 15.
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<i64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line["VmRSS:".len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// Entries of `/proc/self/fd` (the directory's own descriptor, open while
/// it is listed, not counted).
fn open_fds() -> Option<i64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?.count();
    i64::try_from(entries.saturating_sub(1)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_past_a_command_name_with_parentheses() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 3 0 100 0";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn the_clock_tick_comes_from_the_auxiliary_vector() {
        let pair = |kind: usize, value: usize| [kind.to_ne_bytes(), value.to_ne_bytes()].concat();
        let auxv = [pair(6, 4096), pair(17, 250), pair(0, 0), pair(17, 1)].concat();
        assert_eq!(parse_clock_ticks(&auxv), Some(250));
        assert_eq!(
            parse_clock_ticks(&[pair(6, 4096), pair(0, 0)].concat()),
            None
        );
        // This process's own: Linux reports USER_HZ, 100 on every common
        // architecture.
        assert!(clock_ticks_per_second().is_some_and(|t| t >= 100));
    }

    #[test]
    fn resident_memory_is_vm_rss_in_bytes() {
        let status = "Name:\tsluice\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(1234 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_reads_as_alive() {
        assert!(resident_bytes().is_some_and(|b| b > 0));
        assert!(open_fds().is_some_and(|n| n >= 3));
        assert!(cpu_seconds().is_some_and(|s| s >= 0.0));
    }
}
