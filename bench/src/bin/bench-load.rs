//! A small HTTP/1.1 load generator for 1 KiB JSON-RPC POSTs over keep-alive
//! connections, one thread per connection.
//!
//! ```text
//! bench-load --target 127.0.0.1:8080 --requests 20000 --conns 1        # closed loop, fixed count
//! bench-load --target 127.0.0.1:8080 --rate 2000 --duration 10 --conns 32   # open loop
//! ```
//!
//! Open loop: request `i` is due at `start + i/rate`, connections take turns;
//! latency is measured from when the request was due, not from when it was
//! sent, so a stall counts against every request it delayed (latency
//! correction, as `oha --latency-correction` and wrk2 do). Prints one JSON line (µs).

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_bench::{Args, ResponseReader, Summary, jsonrpc_request};

fn main() -> anyhow::Result<()> {
    let args = Args::from_env();
    let target: SocketAddr = args.text("--target", "127.0.0.1:8080").parse()?;
    let path = args.text("--path", "/mcp");
    let conns: usize = args.get("--conns", 1);
    let rate: f64 = args.get("--rate", 0.0);
    let duration = Duration::from_secs_f64(args.get("--duration", 10.0));
    let requests: u64 = args.get("--requests", 0);
    let body = jsonrpc_request(args.get("--body-bytes", 1024));
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {target}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let req = Arc::new(req);
    let start = Instant::now() + Duration::from_millis(50);
    let per_conn_requests = requests.div_ceil(conns as u64);
    let threads: Vec<_> = (0..conns)
        .map(|k| {
            let req = req.clone();
            std::thread::spawn(move || -> anyhow::Result<(Vec<f64>, u64)> {
                let mut s = TcpStream::connect(target)?;
                s.set_nodelay(true)?;
                let mut buf = Vec::new();
                let mut lat = Vec::new();
                let mut errors = 0;
                let mut i = k as u64;
                loop {
                    let due = if rate > 0.0 {
                        let due = start + Duration::from_secs_f64(i as f64 / rate);
                        if due > start + duration {
                            break;
                        }
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                        due
                    } else {
                        if (i - k as u64) / conns as u64 >= per_conn_requests {
                            break;
                        }
                        Instant::now()
                    };
                    // A server may close a keep-alive connection between
                    // requests (nginx does after 1,000): reconnect once.
                    let mut retried = false;
                    loop {
                        let attempt = s.write_all(&req).and_then(|()| {
                            let mut rr = ResponseReader::start(&mut s, std::mem::take(&mut buf))?;
                            rr.drain(&mut s)?;
                            Ok(rr)
                        });
                        match attempt {
                            Ok(rr) => {
                                if rr.status != 200 {
                                    errors += 1;
                                }
                                buf = rr.into_buf();
                                break;
                            }
                            Err(e) if retried => return Err(e.into()),
                            Err(_) => {
                                retried = true;
                                s = TcpStream::connect(target)?;
                                s.set_nodelay(true)?;
                            }
                        }
                    }
                    lat.push(due.elapsed().as_secs_f64() * 1e6);
                    i += conns as u64;
                }
                Ok((lat, errors))
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in threads {
        let (lat, e) = t
            .join()
            .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        all.extend(lat);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    let n = all.len();
    println!(
        r#"{{"requests":{n},"errors":{errors},"rps":{:.0},{}}}"#,
        n as f64 / secs,
        Summary::of(&mut all).json("lat_us")
    );
    Ok(())
}
