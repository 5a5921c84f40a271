//! Log lines leave the process through a bounded queue drained by one
//! thread (`sluice-log`), so a worker never waits on stderr.
//!
//! A worker's line is copied whole into the queue's buffer under a mutex
//! (a memcpy, never a syscall), or dropped and counted when the buffer is
//! full: a slow or stuck stderr (a full pipe, a paused terminal) costs
//! lines, never throughput or latency. The thread swaps the buffer for an
//! empty one and writes the batch with one `write_all`, so lines keep their
//! order and never interleave or tear. It writes when a batch is big enough
//! to be worth a wake-up, or when the oldest line has waited
//! [`QueueLimits::linger`]; [`LogDrain::close`] flushes what is left.
//!
//! `write` from several threads is one lock each; the buffer is reused, so
//! a busy proxy allocates nothing per line.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The writer thread's name.
pub const THREAD_NAME: &str = "sluice-log";

/// How much the queue holds and how eagerly it is written.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    /// Most bytes waiting to be written; a line that does not fit is
    /// dropped (and counted).
    pub capacity: usize,
    /// Waiting bytes that wake the writer at once.
    pub batch: usize,
    /// Longest a line waits when the batch does not fill.
    pub linger: Duration,
    /// Shortest time between two "lines dropped" reports in the log.
    pub report_every: Duration,
    /// How long [`LogDrain::close`] waits for the last lines to be written:
    /// a stderr that never drains must not hold the process at exit.
    pub close_wait: Duration,
}

impl Default for QueueLimits {
    /// 1 MiB of lines (some 4,000 access lines: a second of a busy proxy
    /// behind a stalled stderr), written in 32 KiB batches or after 50 ms;
    /// close waits up to 2 s for them.
    fn default() -> Self {
        QueueLimits {
            capacity: 1 << 20,
            batch: 32 << 10,
            linger: Duration::from_millis(50),
            report_every: Duration::from_secs(10),
            close_wait: Duration::from_secs(2),
        }
    }
}

struct Pending {
    bytes: Vec<u8>,
    /// Set by [`LogDrain::close`]: write what is left and stop.
    closing: bool,
    /// The writer thread is waiting on `wake` (a wake-up costs a syscall,
    /// so it is sent only when someone waits for it).
    asleep: bool,
}

struct Queue {
    pending: Mutex<Pending>,
    wake: Condvar,
    limits: QueueLimits,
    dropped: AtomicU64,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves plain bytes behind: go on.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue one line whole, or count it as dropped.
    fn push(&self, line: &[u8]) {
        let mut p = self.lock();
        if p.bytes.len() + line.len() > self.limits.capacity {
            drop(p);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let first = p.bytes.is_empty();
        p.bytes.extend_from_slice(line);
        self.pushed(p, first);
    }

    /// Queue the line `write` appends, or count it as dropped.
    fn push_with(&self, write: impl FnOnce(&mut Vec<u8>)) {
        let mut p = self.lock();
        let start = p.bytes.len();
        write(&mut p.bytes);
        if p.bytes.len() > self.limits.capacity {
            // Did not fit: as if never written.
            p.bytes.truncate(start);
            drop(p);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if p.bytes.len() > start {
            self.pushed(p, start == 0);
        }
    }

    /// A line went into `p` (the `first` in an empty queue): wake the
    /// writer if it sleeps and this starts its linger or fills a batch.
    #[inline]
    fn pushed(&self, mut p: MutexGuard<'_, Pending>, first: bool) {
        // An empty queue's writer sleeps with no timeout: the first line
        // wakes it to start the linger; after that only a full batch does.
        let wake = p.asleep && (first || p.bytes.len() >= self.limits.batch);
        if wake {
            // One wake-up per sleep: on a busy machine the writer may run
            // only milliseconds later, and every line until then would
            // otherwise pay a futex syscall of its own.
            p.asleep = false;
        }
        drop(p);
        if wake {
            self.wake.notify_one();
        }
    }
}

/// The producers' end: cheap to clone, usable from any thread. As a
/// `tracing_subscriber` writer it hands each formatted event over as one
/// line.
#[derive(Clone)]
pub struct LogWriter(Arc<Queue>);

/// Lines dropped because the queue was full, since start.
#[derive(Clone)]
pub struct DroppedLines(Arc<Queue>);

impl DroppedLines {
    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

/// The writer thread. [`LogDrain::close`] writes what is queued and joins
/// it; dropping it does the same.
pub struct LogDrain {
    queue: Arc<Queue>,
    thread: Option<JoinHandle<()>>,
}

/// Start the writer thread draining into `sink`.
pub fn start<W: Write + Send + 'static>(
    sink: W,
    limits: QueueLimits,
) -> io::Result<(LogWriter, LogDrain)> {
    let queue = Arc::new(Queue {
        pending: Mutex::new(Pending {
            bytes: Vec::with_capacity(2 * limits.batch),
            closing: false,
            asleep: false,
        }),
        wake: Condvar::new(),
        limits,
        dropped: AtomicU64::new(0),
    });
    let thread = {
        let queue = queue.clone();
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || drain(&queue, sink))?
    };
    Ok((
        LogWriter(queue.clone()),
        LogDrain {
            queue,
            thread: Some(thread),
        },
    ))
}

impl LogWriter {
    /// The dropped-lines counter (for metrics).
    pub fn dropped(&self) -> DroppedLines {
        DroppedLines(self.0.clone())
    }

    /// Queue the whole line (ending in `\n`) that `write` appends to the
    /// buffer it is given, formatted straight into the queue: no copy, no
    /// buffer of the caller's. The queue is locked meanwhile, so `write`
    /// must be short and must not log. A line that takes the queue past its
    /// capacity is taken back out and counted as dropped.
    pub(crate) fn push_with(&self, write: impl FnOnce(&mut Vec<u8>)) {
        self.0.push_with(write);
    }
}

impl LogDrain {
    /// Write every queued line, then stop the thread (waiting at most
    /// [`QueueLimits::close_wait`] for a stderr that does not drain).
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.queue.lock().closing = true;
        self.queue.wake.notify_one();
        // JoinHandle has no timed join: poll, bounded by close_wait.
        let until = Instant::now() + self.queue.limits.close_wait;
        while !thread.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
        // Else it stays blocked on stderr; the process exits without it.
    }
}

impl Drop for LogDrain {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread: wait for a batch (or the linger time, or close), swap the
/// buffer out, write it whole; until closed and empty.
fn drain(queue: &Queue, mut sink: impl Write) {
    let limits = queue.limits;
    // Room for a batch and the lines that come while the writer wakes up
    // (both buffers): a steady load never grows them while a worker holds
    // the lock.
    let mut batch = Vec::with_capacity(2 * limits.batch);
    let mut reported = 0;
    let mut last_report: Option<Instant> = None;
    loop {
        let closing = {
            let mut p = queue.lock();
            // An empty queue sleeps until its first line (or close) wakes
            // it; from then the batch has `linger` to fill. Spurious
            // wake-ups just go round again.
            let mut due: Option<Instant> = None;
            while p.bytes.len() < limits.batch && !p.closing {
                p.asleep = true;
                if p.bytes.is_empty() {
                    p = queue.wake.wait(p).unwrap_or_else(|e| e.into_inner());
                } else {
                    let due = *due.get_or_insert_with(|| Instant::now() + limits.linger);
                    let left = due.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    p = queue
                        .wake
                        .wait_timeout(p, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
            p.asleep = false;
            std::mem::swap(&mut p.bytes, &mut batch);
            p.closing
        };
        if !batch.is_empty() {
            // Nowhere to report a failing stderr; the lines are lost either way.
            let _ = sink.write_all(&batch).and_then(|()| sink.flush());
            batch.clear();
            // A burst once stays cheap; keep what a steady load needs.
            batch.shrink_to(limits.capacity.min(4 * limits.batch));
        }
        let dropped = queue.dropped.load(Ordering::Relaxed);
        let due = last_report.is_none_or(|t| t.elapsed() >= limits.report_every);
        if dropped > reported && (due || closing) {
            // Goes through the subscriber back into this queue, which was
            // just emptied: the next turn writes it.
            tracing::warn!(
                dropped = dropped - reported,
                total = dropped,
                "the log queue was full; lines dropped"
            );
            reported = dropped;
            last_report = Some(Instant::now());
            continue;
        }
        if closing && queue.lock().bytes.is_empty() {
            return;
        }
    }
}

/// One event's bytes on their way into the queue.
pub struct LineSink<'a> {
    queue: &'a Queue,
    /// Writes that did not end a line yet (a writer that splits an event in
    /// several writes); the usual event is one write and skips this.
    partial: Vec<u8>,
}

impl Write for LineSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.partial.is_empty() && buf.ends_with(b"\n") {
            self.queue.push(buf);
        } else {
            self.partial.extend_from_slice(buf);
            if buf.ends_with(b"\n") {
                self.queue.push(&self.partial);
                self.partial.clear();
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineSink<'_> {
    fn drop(&mut self) {
        // An event that did not end its last line still goes out whole.
        if !self.partial.is_empty() {
            self.queue.push(&self.partial);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LineSink<'a>;

    fn make_writer(&'a self) -> LineSink<'a> {
        LineSink {
            queue: &self.0,
            partial: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use tracing_subscriber::fmt::MakeWriter as _;

    /// What the writer thread wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Collected(Arc<Mutex<Vec<u8>>>);

    impl Write for Collected {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Collected {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    /// A sink whose first write announces itself and then blocks until the
    /// test lets it go: a stderr that stalls.
    struct Stalled {
        out: Collected,
        entered: Option<mpsc::Sender<()>>,
        release: mpsc::Receiver<()>,
    }

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Some(entered) = self.entered.take() {
                entered.send(()).unwrap();
                // A dropped sender releases it too (the test is over).
                let _ = self.release.recv();
            }
            self.out.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Nothing is written until close unless a batch fills: a linger no
    /// test waits for.
    fn limits(capacity: usize, batch: usize) -> QueueLimits {
        QueueLimits {
            capacity,
            batch,
            linger: Duration::from_secs(3600),
            report_every: Duration::from_secs(3600),
            close_wait: Duration::from_secs(3600),
        }
    }

    fn line(w: &LogWriter, text: &str) {
        w.make_writer()
            .write_all(format!("{text}\n").as_bytes())
            .unwrap();
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_and_in_each_threads_order() {
        let out = Collected::default();
        let (w, drain) = start(out.clone(), limits(1 << 20, 512)).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        line(&w, &format!("t{t} line {i:04} {}", "x".repeat(i % 97)));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drain.close();
        let lines = out.lines();
        assert_eq!(lines.len(), 2000);
        for t in 0..4 {
            let mine: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("t{t} line ")))
                .map(|rest| {
                    let (i, pad) = rest.split_once(' ').unwrap();
                    let i: usize = i.parse().unwrap();
                    assert_eq!(pad, "x".repeat(i % 97), "a torn line: {rest:?}");
                    i
                })
                .collect();
            assert_eq!(mine, (0..500).collect::<Vec<_>>());
        }
        assert_eq!(w.dropped().get(), 0);
    }

    /// A sink that stalls on its first write until released: what it got,
    /// the signal that it entered the write, the release, the sink.
    fn stalled() -> (Collected, mpsc::Receiver<()>, mpsc::Sender<()>, Stalled) {
        let out = Collected::default();
        let (entered_tx, entered) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let sink = Stalled {
            out: out.clone(),
            entered: Some(entered_tx),
            release: release_rx,
        };
        (out, entered, release, sink)
    }

    #[test]
    fn a_full_queue_drops_and_counts_lines_and_never_blocks() {
        let (out, entered, release, sink) = stalled();
        // Ten-byte lines: "first 000\n"; a batch of one line, room for three.
        let (w, drain) = start(sink, limits(30, 10)).unwrap();
        line(&w, "first 000");
        // The writer took that line and is stuck writing it.
        entered.recv().unwrap();
        for i in 1..=5 {
            line(&w, &format!("later {i:03}"));
        }
        assert_eq!(w.dropped().get(), 2, "three fit, two did not");
        release.send(()).unwrap();
        drain.close();
        assert_eq!(
            out.lines(),
            ["first 000", "later 001", "later 002", "later 003"]
        );
        assert_eq!(w.dropped().get(), 2);
    }

    /// Lines formatted in place (the access log's way) are dropped and
    /// counted the same way: one that would take the queue past its
    /// capacity is taken back out whole, and the lines around it stay.
    #[test]
    fn a_line_formatted_in_place_that_does_not_fit_is_taken_back_out() {
        let (out, entered, release, sink) = stalled();
        let (w, drain) = start(sink, limits(30, 10)).unwrap();
        let put = |text: &str| w.push_with(|buf| buf.extend_from_slice(text.as_bytes()));
        put("first 000\n");
        entered.recv().unwrap();
        put("later 001\n");
        put("a line too long for what is left\n");
        put("later 002\n");
        put("later 003\n");
        put("later 004\n");
        assert_eq!(w.dropped().get(), 2, "the long line and the fourth");
        release.send(()).unwrap();
        drain.close();
        assert_eq!(
            out.lines(),
            ["first 000", "later 001", "later 002", "later 003"]
        );
    }

    /// A sink that counts its writes.
    #[derive(Clone, Default)]
    struct Counted(Collected, Arc<std::sync::atomic::AtomicUsize>);

    impl Write for Counted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_wait_for_the_batch_to_fill_not_one_write_each() {
        let sink = Counted::default();
        // The linger never passes and the batch never fills: the first
        // line wakes the writer, which then waits for more instead of
        // writing it alone.
        let (w, drain) = start(sink.clone(), limits(1 << 20, 1 << 20)).unwrap();
        for i in 0..100 {
            line(&w, &format!("line {i}"));
            std::thread::yield_now();
        }
        drain.close();
        assert_eq!(sink.0.lines().len(), 100);
        assert_eq!(sink.1.load(Ordering::SeqCst), 1, "one write for the batch");
    }

    #[test]
    fn close_flushes_what_is_queued() {
        let out = Collected::default();
        // A batch never fills and the linger never passes: only close writes.
        let (w, drain) = start(out.clone(), limits(1 << 20, 1 << 20)).unwrap();
        for i in 0..100 {
            line(&w, &format!("queued {i}"));
        }
        drain.close();
        let expected: Vec<String> = (0..100).map(|i| format!("queued {i}")).collect();
        assert_eq!(out.lines(), expected);
    }

    #[test]
    fn close_gives_up_on_a_stderr_that_never_drains() {
        let (entered_tx, entered) = mpsc::channel();
        // Never released: the writer blocks for good.
        let (_release, release_rx) = mpsc::channel();
        let sink = Stalled {
            out: Collected::default(),
            entered: Some(entered_tx),
            release: release_rx,
        };
        let limits = QueueLimits {
            close_wait: Duration::from_millis(10),
            ..limits(1 << 20, 1)
        };
        let (w, drain) = start(sink, limits).unwrap();
        line(&w, "stuck");
        entered.recv().unwrap();
        // Returns instead of joining a thread that will never end.
        drain.close();
    }

    #[test]
    fn an_event_written_in_pieces_is_queued_as_one_line() {
        let out = Collected::default();
        let (w, drain) = start(out.clone(), limits(1 << 20, 1 << 20)).unwrap();
        {
            let mut sink = w.make_writer();
            sink.write_all(b"one ").unwrap();
            line(&w, "between");
            sink.write_all(b"event\n").unwrap();
            let mut unfinished = w.make_writer();
            unfinished.write_all(b"no newline").unwrap();
        }
        drain.close();
        assert_eq!(out.lines(), ["between", "one event", "no newline"]);
    }
}
