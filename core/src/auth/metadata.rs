//! RFC 9728 Protected Resource Metadata: where the document of a resource
//! lives and what it says.

use serde_json::{Map, Value, json};

/// The well-known suffix of RFC 9728 §3.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The path of the metadata document for a resource whose path is `path`
/// (RFC 9728 §3.1: the suffix goes between the host and the path; a path
/// of `/` or nothing gives the suffix alone).
///
/// ```
/// use sluice_core::auth::well_known_path;
/// assert_eq!(well_known_path("/mcp"), "/.well-known/oauth-protected-resource/mcp");
/// assert_eq!(well_known_path("/"), "/.well-known/oauth-protected-resource");
/// ```
pub fn well_known_path(path: &str) -> String {
    match path {
        "" | "/" => WELL_KNOWN.to_string(),
        p if p.starts_with('/') => format!("{WELL_KNOWN}{p}"),
        p => format!("{WELL_KNOWN}/{p}"),
    }
}

/// Why a resource identifier is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceError {
    /// Not `http://` or `https://` followed by a host.
    NotHttp,
    /// RFC 8707 §2: a resource identifier has no fragment; and a query
    /// would have no place in the metadata URL sluice serves.
    QueryOrFragment,
}

impl std::fmt::Display for ResourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResourceError::NotHttp => "is not an absolute http or https URL",
            ResourceError::QueryOrFragment => "must not have a query or a fragment",
        })
    }
}

impl std::error::Error for ResourceError {}

/// A resource identifier (RFC 8707, RFC 9728 `resource`): the URL clients
/// use for the route, which tokens must name as their audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    uri: String,
    /// Where the path starts in `uri` (its length when there is none).
    path_at: usize,
}

impl Resource {
    /// Checks a resource identifier.
    pub fn parse(uri: &str) -> Result<Resource, ResourceError> {
        let rest = uri
            .strip_prefix("https://")
            .or_else(|| uri.strip_prefix("http://"))
            .ok_or(ResourceError::NotHttp)?;
        if uri.contains(['?', '#']) {
            return Err(ResourceError::QueryOrFragment);
        }
        let authority_len = rest.find('/').unwrap_or(rest.len());
        // No userinfo: a resource is named by its origin and path alone.
        if authority_len == 0
            || rest[..authority_len].contains('@')
            || uri.chars().any(|c| c.is_ascii_control() || c == ' ')
        {
            return Err(ResourceError::NotHttp);
        }
        Ok(Resource {
            uri: uri.to_string(),
            path_at: uri.len() - rest.len() + authority_len,
        })
    }

    /// The identifier as written.
    pub fn as_str(&self) -> &str {
        &self.uri
    }

    /// Its path (`""` when there is none).
    pub fn path(&self) -> &str {
        &self.uri[self.path_at..]
    }

    /// The URL of its metadata document (RFC 9728 §3.1), what the
    /// challenge's `resource_metadata` names.
    pub fn metadata_url(&self) -> String {
        format!(
            "{}{}",
            &self.uri[..self.path_at],
            well_known_path(self.path())
        )
    }
}

/// The metadata document (RFC 9728 §2): `resource`, the
/// `authorization_servers` (none for a route with API keys only),
/// `scopes_supported` when any are listed, and `bearer_methods_supported`:
/// the header alone, as the MCP spec requires.
pub fn document(
    resource: &Resource,
    authorization_servers: &[String],
    scopes_supported: &[String],
) -> Vec<u8> {
    let mut doc = Map::new();
    doc.insert("resource".into(), json!(resource.as_str()));
    if !authorization_servers.is_empty() {
        doc.insert("authorization_servers".into(), json!(authorization_servers));
    }
    if !scopes_supported.is_empty() {
        doc.insert("scopes_supported".into(), json!(scopes_supported));
    }
    doc.insert("bearer_methods_supported".into(), json!(["header"]));
    serde_json::to_vec(&Value::Object(doc)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(well_known_path("/mcp"), format!("{WELL_KNOWN}/mcp"));
        assert_eq!(well_known_path("/a/b/"), format!("{WELL_KNOWN}/a/b/"));
        assert_eq!(well_known_path("/"), WELL_KNOWN);
        assert_eq!(well_known_path(""), WELL_KNOWN);
    }

    #[test]
    fn resources() {
        let r = Resource::parse("https://mcp.example.com/mcp").unwrap();
        assert_eq!(r.path(), "/mcp");
        assert_eq!(
            r.metadata_url(),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        let root = Resource::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(root.path(), "");
        assert_eq!(
            root.metadata_url(),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource"
        );
        let slash = Resource::parse("http://h:1/").unwrap();
        assert_eq!(
            slash.metadata_url(),
            "http://h:1/.well-known/oauth-protected-resource"
        );
        for bad in [
            "ftp://x/mcp",
            "https:///mcp",
            "mcp",
            "https://x/ mcp",
            "https://u@x/mcp",
        ] {
            assert_eq!(Resource::parse(bad), Err(ResourceError::NotHttp), "{bad}");
        }
        for bad in ["https://x/mcp?a", "https://x/mcp#f"] {
            assert_eq!(Resource::parse(bad), Err(ResourceError::QueryOrFragment));
        }
    }

    #[test]
    fn documents() {
        let r = Resource::parse("https://mcp.example.com/mcp").unwrap();
        let doc = document(&r, &["https://as.example.com".into()], &["read".into()]);
        let doc: Value = serde_json::from_slice(&doc).unwrap();
        assert_eq!(
            doc,
            json!({
                "resource": "https://mcp.example.com/mcp",
                "authorization_servers": ["https://as.example.com"],
                "scopes_supported": ["read"],
                "bearer_methods_supported": ["header"],
            })
        );
        let keys_only: Value = serde_json::from_slice(&document(&r, &[], &[])).unwrap();
        assert_eq!(
            keys_only,
            json!({"resource": "https://mcp.example.com/mcp", "bearer_methods_supported": ["header"]})
        );
    }
}
