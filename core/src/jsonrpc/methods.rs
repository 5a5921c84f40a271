//! The method names the MCP specification defines (through 2025-11-25),
//! so a count or a log can name a method without letting a client invent
//! an unbounded set of names.

/// Every method the specification defines, requests and notifications,
/// in both directions.
pub const MCP_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
    "tasks/get",
    "tasks/result",
    "tasks/list",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/message",
    "notifications/roots/list_changed",
    "notifications/resources/list_changed",
    "notifications/resources/updated",
    "notifications/prompts/list_changed",
    "notifications/tools/list_changed",
    "notifications/elicitation/complete",
    "notifications/tasks/status",
];

/// `method` as the specification spells it, if it defines it: a static
/// name to keep (a label, a counter key) where a client's own text must
/// not go.
pub fn mcp_method(method: &str) -> Option<&'static str> {
    MCP_METHODS.iter().copied().find(|m| *m == method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_only() {
        assert_eq!(mcp_method("tools/call"), Some("tools/call"));
        assert_eq!(
            mcp_method("notifications/progress"),
            Some("notifications/progress")
        );
        for unknown in [
            "",
            "tools/Call",
            "tools/call ",
            "x/tools/call",
            "rpc.discover",
        ] {
            assert_eq!(mcp_method(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn no_name_twice() {
        for (i, m) in MCP_METHODS.iter().enumerate() {
            assert!(!MCP_METHODS[i + 1..].contains(m), "{m}");
        }
    }
}
