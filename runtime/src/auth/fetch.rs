//! One JSON document over HTTP(S), through sluice's own dialer: what key
//! discovery, JWKS refreshes and an authorization server's form endpoints
//! (introspection) need, and nothing more (no redirects, no pooling, a
//! size cap and one deadline).

use std::fmt;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt, future};
use sluice_core::http1::{self, BodyReader, Header, Parsed, RequestHead, Version};
use sluice_core::legacy::Origin;

use crate::config::{Scheme, Upstream};
use crate::dial::Dialer;

/// The largest document read (a JWKS with many keys is a few KiB).
pub(crate) const MAX_DOCUMENT: usize = 1 << 20;

/// Why a document could not be had.
#[derive(Debug)]
pub(crate) enum FetchError {
    Connect(std::io::Error),
    Io(std::io::Error),
    Malformed(String),
    Status(u16),
    TooLarge,
    Timeout,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Connect(e) => write!(f, "cannot connect: {e}"),
            FetchError::Io(e) => write!(f, "connection failed: {e}"),
            FetchError::Malformed(why) => write!(f, "malformed answer: {why}"),
            FetchError::Status(s) => write!(f, "answered {s}, not 200"),
            FetchError::TooLarge => write!(f, "larger than {MAX_DOCUMENT} bytes"),
            FetchError::Timeout => f.write_str("no whole answer in time"),
        }
    }
}

/// GETs `url` and returns the body of its 200 answer.
pub(crate) async fn get(
    dialer: &Dialer,
    url: &Upstream,
    timeout: Duration,
) -> Result<Vec<u8>, FetchError> {
    let (status, body) = with_deadline(timeout, send(dialer, url, None)).await?;
    match status {
        200 => Ok(body),
        s => Err(FetchError::Status(s)),
    }
}

/// A form POSTed to an authorization server's endpoint.
pub(crate) struct Form<'a> {
    /// The `Authorization` value (the client's authentication).
    pub(crate) authorization: &'a str,
    /// The `application/x-www-form-urlencoded` body.
    pub(crate) body: &'a str,
}

/// POSTs `form` to `url` and returns the answer's status and body,
/// whatever the status (an OAuth error answer has a JSON body too).
pub(crate) async fn post_form(
    dialer: &Dialer,
    url: &Upstream,
    form: Form<'_>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), FetchError> {
    with_deadline(timeout, send(dialer, url, Some(form))).await
}

async fn with_deadline<T>(
    timeout: Duration,
    work: impl std::future::Future<Output = Result<T, FetchError>>,
) -> Result<T, FetchError> {
    let deadline = async {
        crate::rt::sleep(timeout).await;
        Err(FetchError::Timeout)
    };
    future::or(Box::pin(work), deadline).await
}

/// One request (a GET, or a POST of `form`) on a connection of its own.
async fn send(
    dialer: &Dialer,
    url: &Upstream,
    form: Option<Form<'_>>,
) -> Result<(u16, Vec<u8>), FetchError> {
    let origin = Origin {
        https: url.scheme == Scheme::Https,
        host: match &url.host {
            crate::config::Host::Name(n) => n.clone(),
            crate::config::Host::Ip(ip) => ip.to_string(),
        },
        port: url.port,
        authority: url.authority.clone(),
    };
    let mut conn = dialer
        .connect_origin(&origin)
        .await
        .map_err(FetchError::Connect)?;
    let target = match &url.query {
        Some(q) => format!("{}?{q}", url.path),
        None => url.path.clone(),
    };
    let mut headers = vec![
        Header::new("Host", url.authority.as_bytes()),
        Header::new("Accept", "application/json"),
        Header::new("User-Agent", concat!("sluice/", env!("CARGO_PKG_VERSION"))),
        Header::new("Connection", "close"),
    ];
    if let Some(form) = &form {
        headers.push(Header::new("Authorization", form.authorization));
        headers.push(Header::new(
            "Content-Type",
            "application/x-www-form-urlencoded",
        ));
        headers.push(Header::new("Content-Length", form.body.len().to_string()));
    }
    let method = if form.is_some() { "POST" } else { "GET" };
    let head = RequestHead {
        method: method.into(),
        target,
        version: Version::Http11,
        headers,
    };
    let mut request = Vec::new();
    http1::write_request_head(&head, &mut request)
        .map_err(|e| FetchError::Malformed(format!("cannot write the request: {e:?}")))?;
    if let Some(form) = &form {
        request.extend_from_slice(form.body.as_bytes());
    }
    conn.write_all(&request).await.map_err(FetchError::Io)?;
    conn.flush().await.map_err(FetchError::Io)?;

    let limits = http1::Limits::default();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 << 10];
    let (head, len) = loop {
        match http1::parse_response_head(&buf, &limits) {
            Ok(Parsed::Complete { head, len }) => break (head, len),
            Ok(Parsed::Partial) => {}
            Err(e) => return Err(FetchError::Malformed(e.to_string())),
        }
        let n = conn.read(&mut chunk).await.map_err(FetchError::Io)?;
        if n == 0 {
            return Err(FetchError::Malformed("closed before a whole head".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let status = head.status;
    let framing =
        http1::response_framing(method, &head).map_err(|e| FetchError::Malformed(e.to_string()))?;
    let mut reader = BodyReader::new(framing, &limits);
    let mut body = Vec::new();
    let mut input = buf.split_off(len);
    loop {
        let mut too_large = false;
        let read = reader
            .read(&input, |r| {
                if body.len() + r.len() > MAX_DOCUMENT {
                    too_large = true;
                } else {
                    body.extend_from_slice(&input[r]);
                }
            })
            .map_err(|e| FetchError::Malformed(e.to_string()))?;
        if too_large {
            return Err(FetchError::TooLarge);
        }
        if read.done {
            return Ok((status, body));
        }
        let n = conn.read(&mut chunk).await.map_err(FetchError::Io)?;
        if n == 0 {
            return match reader.ends_at_eof() {
                true => Ok((status, body)),
                false => Err(FetchError::Malformed("closed before the whole body".into())),
            };
        }
        input.clear();
        input.extend_from_slice(&chunk[..n]);
    }
}
