//! Name resolution off the workers: `getaddrinfo` (through
//! `std::net::ToSocketAddrs`) on at most [`MAX_THREADS`] blocking DNS
//! threads named `sluice-dns`, started when a lookup finds none idle and
//! ended after [`IDLE`] without work. These are blocking DNS threads, not a
//! reactor: each runs one lookup at a time and hands the addresses back
//! through a channel, whose send wakes the waiting task on its worker.
//! IP literals never come here (the dialer parses them itself).

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::lock;

/// Most lookups running at once.
const MAX_THREADS: usize = 4;
/// How long a DNS thread waits for more work before it ends.
const IDLE: Duration = Duration::from_secs(30);
/// The DNS threads' name.
pub(crate) const THREAD_NAME: &str = "sluice-dns";

type Reply = async_channel::Sender<io::Result<Vec<SocketAddr>>>;

struct Job {
    host: String,
    port: u16,
    reply: Reply,
}

struct Pool {
    state: Mutex<State>,
    work: Condvar,
}

struct State {
    jobs: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

static POOL: Pool = Pool {
    state: Mutex::new(State {
        jobs: VecDeque::new(),
        threads: 0,
        idle: 0,
    }),
    work: Condvar::new(),
};

/// The addresses of `host` (a name, not an IP literal) at `port`.
pub(crate) async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let (reply, answer) = async_channel::bounded(1);
    submit(Job {
        host: host.to_owned(),
        port,
        reply,
    })?;
    answer
        .recv()
        .await
        .map_err(|_| io::Error::other("the DNS thread ended without an answer"))?
}

fn submit(job: Job) -> io::Result<()> {
    let mut state = lock(&POOL.state);
    state.jobs.push_back(job);
    if state.idle > 0 {
        POOL.work.notify_one();
        return Ok(());
    }
    if state.threads >= MAX_THREADS {
        // Queued: the next thread to finish takes it.
        return Ok(());
    }
    state.threads += 1;
    drop(state);
    let started = std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(serve);
    if let Err(e) = started {
        let mut state = lock(&POOL.state);
        state.threads -= 1;
        if state.threads == 0 {
            // Nobody would ever take it (or the ones queued before it).
            for job in state.jobs.drain(..) {
                let _ = job
                    .reply
                    .try_send(Err(io::Error::new(e.kind(), e.to_string())));
            }
        }
    }
    Ok(())
}

/// One DNS thread: lookups until none comes for [`IDLE`].
fn serve() {
    let mut state = lock(&POOL.state);
    loop {
        if let Some(job) = state.jobs.pop_front() {
            drop(state);
            // A task that stopped waiting (its connection went away) needs no answer.
            if !job.reply.is_closed() {
                let addrs = (job.host.as_str(), job.port)
                    .to_socket_addrs()
                    .map(Iterator::collect);
                let _ = job.reply.try_send(addrs);
            }
            state = lock(&POOL.state);
            continue;
        }
        state.idle += 1;
        let (next, waited) = POOL
            .work
            .wait_timeout(state, IDLE)
            .unwrap_or_else(|e| e.into_inner());
        state = next;
        state.idle -= 1;
        if waited.timed_out() && state.jobs.is_empty() {
            state.threads -= 1;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_resolves_on_a_dns_thread() {
        let addrs = futures_lite::future::block_on(resolve("localhost", 80)).unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.port() == 80 && a.ip().is_loopback()));
    }

    #[test]
    fn an_unknown_name_is_an_error() {
        // `.invalid` never resolves (RFC 6761).
        assert!(futures_lite::future::block_on(resolve("no-such-host.invalid", 80)).is_err());
    }
}
