//! A minimal, fast MCP server on stdio, so that a proxy's own cost
//! dominates what `bench/stdio` measures through it.
//!
//! ```text
//! bench-stdio-server        # newline-delimited JSON-RPC on stdin/stdout
//! ```
//!
//! Plain std and serde_json, one thread, no sleeps. It answers:
//!
//! | request | answer |
//! |---|---|
//! | `initialize` | the client's `protocolVersion` when it knows it (2024-11-05 … 2025-11-25), else 2025-06-18; capabilities `tools` |
//! | `ping` | `{}` |
//! | `tools/list` | `echo` and `progress` |
//! | `tools/call` `echo` `{message}` | `{"content":[{"type":"text","text":"Echo: <message>"}]}`, as `@modelcontextprotocol/server-everything`'s `echo` |
//! | `tools/call` `progress` `{steps}` | with `_meta.progressToken`: `steps` `notifications/progress` (progress 1..=steps, total steps) written back to back, then the result |
//! | any other request | JSON-RPC error -32601 |
//!
//! Notifications and responses from the client are read and dropped.
//! Output is flushed when no whole line is left in the input buffer, so a
//! burst of requests is answered in one write and a lone request at once.
//! Exits at end of input.

use std::io::{self, BufRead, BufReader, BufWriter, Write};

use serde_json::{Value, json};

const VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

fn main() -> io::Result<()> {
    let mut input = BufReader::with_capacity(64 * 1024, io::stdin().lock());
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            out.flush()?;
            return Ok(());
        }
        if let Ok(msg) = serde_json::from_slice::<Value>(&line) {
            handle(&msg, &mut out)?;
        }
        // More whole lines already read: answer them before flushing.
        if !input.buffer().contains(&b'\n') {
            out.flush()?;
        }
    }
}

fn write(out: &mut impl Write, v: &Value) -> io::Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    out.write_all(b"\n")
}

fn handle(msg: &Value, out: &mut impl Write) -> io::Result<()> {
    let (Some(id), Some(method)) = (msg.get("id"), msg.get("method").and_then(Value::as_str))
    else {
        return Ok(()); // a notification, or a response to nothing we asked
    };
    let params = msg.get("params").unwrap_or(&Value::Null);
    let result = match method {
        "initialize" => {
            let asked = params.get("protocolVersion").and_then(Value::as_str);
            let version = asked
                .filter(|v| VERSIONS.contains(v))
                .unwrap_or("2025-06-18");
            json!({
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "bench-stdio-server", "version": "0"}
            })
        }
        "ping" => json!({}),
        "tools/list" => json!({"tools": [
            {"name": "echo", "description": "Echoes back the input string",
             "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}},
            {"name": "progress", "description": "Sends `steps` progress notifications, then answers",
             "inputSchema": {"type": "object", "properties": {"steps": {"type": "integer", "minimum": 0}}}}
        ]}),
        "tools/call" => {
            let args = params.get("arguments").unwrap_or(&Value::Null);
            match params.get("name").and_then(Value::as_str) {
                Some("echo") => {
                    let text = args.get("message").and_then(Value::as_str).unwrap_or("");
                    json!({"content": [{"type": "text", "text": format!("Echo: {text}")}]})
                }
                Some("progress") => {
                    let steps = args.get("steps").and_then(Value::as_u64).unwrap_or(5);
                    if let Some(token) = params.get("_meta").and_then(|m| m.get("progressToken")) {
                        for i in 1..=steps {
                            write(
                                out,
                                &json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                        "params": {"progressToken": token, "progress": i, "total": steps}}),
                            )?;
                            // Each notification its own write: the proxy sees them as they come.
                            out.flush()?;
                        }
                    }
                    json!({"content": [{"type": "text", "text": format!("done: {steps} steps")}]})
                }
                _ => {
                    return write(
                        out,
                        &json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": "unknown tool"}}),
                    );
                }
            }
        }
        _ => {
            return write(
                out,
                &json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}}),
            );
        }
    };
    write(out, &json!({"jsonrpc": "2.0", "id": id, "result": result}))
}
