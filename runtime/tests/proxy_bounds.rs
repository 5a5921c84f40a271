//! What one client can make the sluice process hold, measured on the real
//! binary: a client that keeps writing while its answer streams is pushed
//! back by its socket, not buffered.

#[path = "common/mod.rs"]
mod common;

use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use common::*;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn a_client_flooding_during_an_sse_answer_is_pushed_back_not_buffered() {
    // An upstream that opens an SSE answer and holds it until told.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    let up = upstream(move |conn, _| {
        write_sse_head(conn);
        write_chunk(conn, b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n");
        let _ = release_rx
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(60));
        write_chunk(
            conn,
            b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"result\":{}}\n\n",
        );
        end_chunks(conn);
        false
    });
    let mut cmd = sluice_command(&[
        "--upstream",
        &format!("http://{}/mcp", up.addr),
        "--listen",
        "127.0.0.1:0",
    ]);
    cmd.stderr(Stdio::null());
    let (child, addr) = start_sluice(cmd);
    let pid = child.0.id();

    let mut client = connect(addr);
    client.write_all(&post(CALL)).unwrap();
    // Wait for the progress event: the answer is streaming.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("notifications/progress") {
        let n = std::io::Read::read(&mut client, &mut buf).unwrap();
        assert!(n > 0, "sluice closed early");
        got.extend_from_slice(&buf[..n]);
    }
    let before = rss_kib(pid);

    // 200 MiB of pipelined bytes, written until the socket pushes back.
    let written = Arc::new(AtomicU64::new(0));
    let mut flood = client.try_clone().unwrap();
    flood
        .set_write_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let counter = written.clone();
    let writer = std::thread::spawn(move || {
        let block = vec![b'x'; 1 << 20];
        for _ in 0..200 {
            match flood.write(&block) {
                Ok(n) => {
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(_) => return,
            }
        }
    });
    writer.join().unwrap();
    let after = rss_kib(pid);
    let sent = written.load(Ordering::Relaxed);
    assert!(
        sent < 200 << 20,
        "the client could write all 200 MiB: nothing pushed back ({sent} bytes)"
    );
    assert!(
        after.saturating_sub(before) < 4 << 10,
        "sluice grew from {before} KiB to {after} KiB while the client wrote {sent} bytes"
    );
    let _ = release_tx.send(());
}
