//! A JSON-RPC message as a hook gets it: the exact text, parsed once on
//! first use, with typed views of the MCP shapes hooks look at most.

use std::cell::OnceCell;

use serde_json::Value;

use crate::Verdict;

/// A JSON-RPC error, as a hook gives or reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// The code.
    pub code: i64,
    /// The message.
    pub message: String,
    /// `data`, as JSON text.
    pub data: Option<String>,
}

/// A `tools/call` request's tool and arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// `params.name`.
    pub name: String,
    /// `params.arguments` (an empty object when absent).
    pub arguments: Value,
}

/// One JSON-RPC message: its method (a response's is its request's) and
/// its JSON text, exactly as it travels.
#[derive(Debug, Clone)]
pub struct Message {
    method: String,
    json: String,
    parsed: OnceCell<Option<Value>>,
}

impl PartialEq for Message {
    fn eq(&self, other: &Message) -> bool {
        self.method == other.method && self.json == other.json
    }
}

impl Message {
    /// A message of `method` with the JSON text `json`.
    pub fn new(method: impl Into<String>, json: impl Into<String>) -> Message {
        Message {
            method: method.into(),
            json: json.into(),
            parsed: OnceCell::new(),
        }
    }

    /// The JSON-RPC method (for a response: of the request it answers).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The whole message as JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The message parsed (once); `None` if it is not JSON, which the
    /// proxy never hands over.
    pub fn value(&self) -> Option<&Value> {
        self.parsed
            .get_or_init(|| serde_json::from_str(&self.json).ok())
            .as_ref()
    }

    /// `id`, for a request or an answer.
    pub fn id(&self) -> Option<&Value> {
        self.value()?.get("id")
    }

    /// `params`, for a request or a notification.
    pub fn params(&self) -> Option<&Value> {
        self.value()?.get("params")
    }

    /// `result`, for a successful answer.
    pub fn result(&self) -> Option<&Value> {
        self.value()?.get("result")
    }

    /// `error`, for a failed answer.
    pub fn error(&self) -> Option<RpcError> {
        let e = self.value()?.get("error")?;
        Some(RpcError {
            code: e.get("code")?.as_i64()?,
            message: e.get("message")?.as_str()?.to_owned(),
            data: e.get("data").map(Value::to_string),
        })
    }

    /// The tool and arguments of a `tools/call` request.
    pub fn tool_call(&self) -> Option<ToolCall> {
        if self.method != "tools/call" {
            return None;
        }
        let params = self.params()?;
        Some(ToolCall {
            name: params.get("name")?.as_str()?.to_owned(),
            arguments: params
                .get("arguments")
                .cloned()
                .unwrap_or_else(|| Value::Object(Default::default())),
        })
    }

    /// The tools of a `tools/list` result.
    pub fn tools(&self) -> Option<&Vec<Value>> {
        self.result()?.get("tools")?.as_array()
    }

    /// The text of a result's `content` blocks, joined with newlines (a
    /// `tools/call` result, a `sampling/createMessage` answer's one block).
    pub fn text(&self) -> Option<String> {
        let content = self.result()?.get("content")?;
        let blocks: Vec<&Value> = match content {
            Value::Array(blocks) => blocks.iter().collect(),
            block => vec![block],
        };
        Some(
            blocks
                .iter()
                .filter_map(|b| b.get("text")?.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    }

    /// A `tools/list` answer keeping only the tools `keep` accepts:
    /// [`Verdict::Continue`] when it keeps them all, else the replacement.
    pub fn keep_tools(&self, mut keep: impl FnMut(&Value) -> bool) -> Verdict {
        let Some(tools) = self.tools() else {
            return Verdict::Continue;
        };
        let kept: Vec<Value> = tools.iter().filter(|t| keep(t)).cloned().collect();
        if kept.len() == tools.len() {
            return Verdict::Continue;
        }
        self.edited(|m| m["result"]["tools"] = Value::Array(kept))
    }

    /// This message with `edit` applied, as a replacement (the id and
    /// method stay as they were unless `edit` changes them, which the
    /// proxy refuses).
    pub fn edited(&self, edit: impl FnOnce(&mut Value)) -> Verdict {
        let Some(mut value) = self.value().cloned() else {
            return Verdict::Continue;
        };
        edit(&mut value);
        Verdict::replace(&value)
    }
}
