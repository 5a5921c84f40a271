//! The demo's five tools: their descriptions for `tools/list` and what a
//! call does. `countdown` only parses here; streaming it is the
//! connection's job (see `mcp.rs`).

use serde_json::{Map, Value, json};

/// Steps `countdown` runs when `n` is absent.
pub(super) const COUNTDOWN_DEFAULT: u64 = 5;
/// Most steps `countdown` accepts, so a call cannot hold a connection for
/// long.
pub(super) const COUNTDOWN_MAX: u64 = 50;

/// What a `tools/call` turned into.
pub(super) enum Call {
    /// The `result` member of the response.
    Done(Value),
    /// Run `countdown` for this many steps.
    Countdown(u64),
    /// A JSON-RPC error: code and message.
    Error(i64, String),
}

/// The `tools` array of a `tools/list` result.
pub(super) fn list() -> Value {
    json!([
        {
            "name": "echo",
            "title": "Echo",
            "description": "Returns the text it is given.",
            "inputSchema": {
                "type": "object",
                "properties": { "text": { "type": "string", "description": "Text to echo back" } },
                "required": ["text"]
            },
            "outputSchema": {
                "type": "object",
                "properties": { "text": { "type": "string" } },
                "required": ["text"]
            }
        },
        {
            "name": "add",
            "title": "Add",
            "description": "Adds two numbers.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "a": { "type": "number", "description": "First addend" },
                    "b": { "type": "number", "description": "Second addend" }
                },
                "required": ["a", "b"]
            },
            "outputSchema": {
                "type": "object",
                "properties": { "sum": { "type": "number" } },
                "required": ["sum"]
            }
        },
        {
            "name": "countdown",
            "title": "Countdown",
            "description": "Counts down n steps, 200 ms apart. With a progress token it streams a \
                            progress notification per step over SSE before the result.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "n": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": COUNTDOWN_MAX,
                        "default": COUNTDOWN_DEFAULT,
                        "description": "Number of steps"
                    }
                }
            },
            "outputSchema": {
                "type": "object",
                "properties": { "steps": { "type": "integer" } },
                "required": ["steps"]
            }
        },
        {
            "name": "fail",
            "title": "Fail",
            "description": "Always fails the way a tool fails: a result with isError true.",
            "inputSchema": { "type": "object", "properties": {} }
        },
        {
            "name": "crash",
            "title": "Crash",
            "description": "Always answers a JSON-RPC error (-32603), as a broken server would.",
            "inputSchema": { "type": "object", "properties": {} }
        }
    ])
}

/// Run the tool `name` (everything but the countdown's waiting).
pub(super) fn call(name: &str, args: &Map<String, Value>) -> Call {
    match name {
        "echo" => match args.get("text") {
            Some(Value::String(text)) => {
                Call::Done(structured(text.clone(), json!({ "text": text })))
            }
            _ => Call::Done(tool_error("echo needs a string argument `text`")),
        },
        "add" => match (args.get("a"), args.get("b")) {
            (Some(Value::Number(a)), Some(Value::Number(b))) => {
                // Integers stay integers (`2 + 3 = 5`, not `5.0`).
                let sum = match (a.as_i64(), b.as_i64()) {
                    (Some(a), Some(b)) if a.checked_add(b).is_some() => json!(a + b),
                    _ => json!(a.as_f64().unwrap_or(f64::NAN) + b.as_f64().unwrap_or(f64::NAN)),
                };
                if sum.is_null() {
                    return Call::Done(tool_error("the sum is not a finite number"));
                }
                Call::Done(structured(
                    format!("{a} + {b} = {sum}"),
                    json!({ "sum": sum }),
                ))
            }
            _ => Call::Done(tool_error("add needs two number arguments `a` and `b`")),
        },
        "countdown" => match args.get("n") {
            None => Call::Countdown(COUNTDOWN_DEFAULT),
            Some(n) => match n.as_u64() {
                Some(n) if n <= COUNTDOWN_MAX => Call::Countdown(n),
                _ => Call::Done(tool_error(&format!(
                    "countdown needs `n`, an integer from 0 to {COUNTDOWN_MAX}"
                ))),
            },
        },
        "fail" => Call::Done(tool_error(
            "The fail tool failed on purpose. This is a tool error (isError: true): \
             the call itself went through, and the model gets to read this text.",
        )),
        "crash" => Call::Error(-32603, "the demo tool crashed on purpose".to_owned()),
        _ => Call::Error(-32602, format!("Unknown tool: {name}")),
    }
}

/// The result of a finished countdown.
pub(super) fn countdown_result(n: u64) -> Value {
    structured(
        format!("Countdown of {n} steps finished."),
        json!({ "steps": n }),
    )
}

fn structured(text: String, content: Value) -> Value {
    json!({
        "content": [{ "type": "text", "text": text }],
        "structuredContent": content,
    })
}

fn tool_error(text: &str) -> Value {
    json!({
        "content": [{ "type": "text", "text": text }],
        "isError": true,
    })
}
