//! SSE parser throughput, side by side with the `sse-stream` crate.
//!
//! Run: `cargo bench -p sluice-core --bench sse -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::Stream;
use sluice_core::sse::{SseItem, SseLimits, SseParser};

/// An MCP `tools/call` answered over SSE, the way the TypeScript SDK sends it
/// (LF line ends, event ids): `progress` notifications, then one result
/// event whose JSON carries about `result_bytes` of structured content.
fn mcp_stream(progress: usize, result_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..progress {
        out.extend_from_slice(
            format!(
                "event: message\nid: 5f2c_{i}\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":\"call-17\",\"progress\":{i},\"total\":{progress},\"message\":\"Scanned {i} of {progress} files\"}}}}\n\n"
            )
            .as_bytes(),
        );
    }
    let mut rows = String::new();
    let mut n = 0;
    while rows.len() < result_bytes {
        if n > 0 {
            rows.push(',');
        }
        rows.push_str(&format!(
            "{{\"path\":\"src/module_{n}/lib.rs\",\"line\":{},\"kind\":\"function\",\"name\":\"handle_request_{n}\",\"snippet\":\"pub fn handle_request_{n}(ctx: &Context, req: Request) -> Result<Response, Error> {{\\n    ctx.dispatch(req)\\n}}\",\"score\":0.{n:04}}}",
            n * 7 % 1000
        ));
        n += 1;
    }
    out.extend_from_slice(
        format!(
            "event: message\nid: 5f2c_{progress}\ndata: {{\"jsonrpc\":\"2.0\",\"id\":17,\"result\":{{\"content\":[{{\"type\":\"text\",\"text\":\"Found {n} matches\"}}],\"structuredContent\":{{\"matches\":[{rows}]}}}}}}\n\n"
        )
        .as_bytes(),
    );
    out
}

fn ours(chunks: &[&[u8]]) -> usize {
    let mut parser = SseParser::new(SseLimits::default());
    let mut n = 0;
    for chunk in chunks {
        parser.feed(chunk);
        while let Some(item) = parser.poll() {
            if let Ok(SseItem::Event(ev)) = item {
                n += ev.data.len();
            }
        }
    }
    parser.finish();
    n
}

/// Drive `sse_stream::SseByteStream` to completion on the current thread:
/// its input stream is always ready, so a no-op waker suffices.
fn theirs(chunks: Vec<Bytes>) -> usize {
    let input = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    let mut stream = pin!(sse_stream::SseByteStream::new(input));
    let mut cx = Context::from_waker(Waker::noop());
    let mut n = 0;
    loop {
        match stream.as_mut().poll_next(&mut cx) {
            Poll::Ready(Some(Ok(sse))) => n += sse.data.map_or(0, |d| d.len()),
            Poll::Ready(Some(Err(e))) => panic!("sse-stream: {e}"),
            Poll::Ready(None) => return n,
            Poll::Pending => unreachable!("input is always ready"),
        }
    }
}

fn compare(c: &mut Criterion, name: &str, input: &[u8], chunk: usize) {
    let slices: Vec<&[u8]> = input.chunks(chunk).collect();
    let whole = Bytes::copy_from_slice(input);
    let ranges: Vec<_> = (0..input.len())
        .step_by(chunk)
        .map(|a| a..(a + chunk).min(input.len()))
        .collect();
    assert_eq!(
        ours(&slices),
        theirs(ranges.iter().map(|r| whole.slice(r.clone())).collect())
    );

    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("sluice", |b| b.iter(|| ours(black_box(&slices))));
    group.bench_function("sse-stream", |b| {
        b.iter(|| theirs(ranges.iter().map(|r| whole.slice(r.clone())).collect()))
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let mcp = mcp_stream(200, 1 << 20);
    compare(c, "mcp_1MiB_16KiB_reads", &mcp, 16 * 1024);
    compare(c, "mcp_1MiB_one_read", &mcp, mcp.len());

    let small = mcp_stream(50, 32 * 1024);
    compare(c, "mcp_48KiB_1_byte_reads", &small, 1);

    let big = format!("data: {}\n\n", "x".repeat(1 << 20)).into_bytes();
    compare(c, "one_1MiB_event_16KiB_reads", &big, 16 * 1024);
}

criterion_group!(sse, benches);
criterion_main!(sse);
