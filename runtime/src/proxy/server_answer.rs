//! A server-message hook stopped a server request (`sampling/createMessage`,
//! `elicitation/create`, …) that the client then never saw: the hook's
//! answer goes to the upstream as the client's own would have, a POST on
//! the client's session, on a connection of its own. The stream the
//! request came on goes on meanwhile; nothing waits for this.

use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncWriteExt, future};
use sluice_core::legacy::PostAnswerReader;
use sluice_core::upstream::{AnswerPart, Request};

use super::Generation;
use super::upstream::UpConn;

/// How long the upstream has to take the answer: it acknowledges it (a 202)
/// without acting on it first.
const TAKE_WITHIN: Duration = Duration::from_secs(30);

/// Send `request` to route `route`'s upstream in the background; a failure
/// is logged (the upstream then waits for an answer that does not come,
/// as when a client drops a server request).
pub(super) fn send(generation: Arc<Generation>, route: usize, request: Request) {
    crate::rt::spawn_here(async move {
        let name = generation
            .route_names
            .get(route)
            .cloned()
            .unwrap_or_default();
        let timed_out = async {
            crate::rt::Timer::after(TAKE_WITHIN).await;
            Err(format!("no answer within {}s", TAKE_WITHIN.as_secs()))
        };
        match future::or(deliver(&generation, route, request), timed_out).await {
            Ok(status) => {
                tracing::debug!(route = %name, status, "a hook's answer to a server request went upstream")
            }
            Err(error) => tracing::warn!(
                route = %name,
                %error,
                "a hook's answer to a server request did not reach the upstream"
            ),
        }
    })
    .detach();
}

/// The status the upstream answered with (a message upstream's is its
/// answer's head).
async fn deliver(generation: &Generation, route: usize, request: Request) -> Result<u16, String> {
    let checkout = generation
        .upstreams
        .checkout(route, false)
        .await
        .map_err(|e| e.to_string())?;
    match checkout.conn {
        UpConn::Net(mut conn) => {
            let bytes = request.render().map_err(|e| e.to_string())?;
            conn.write_all(&bytes).await.map_err(|e| e.to_string())?;
            conn.flush().await.map_err(|e| e.to_string())?;
            let limits = sluice_core::http1::Limits::default();
            let mut reader = PostAnswerReader::post(&limits);
            let answer = crate::legacy::read_answer(&mut conn, &mut reader)
                .await
                .map_err(|e| e.to_string())?;
            if answer.reusable {
                generation.upstreams.checkin(route, UpConn::Net(conn));
            }
            accepted(answer.status)
        }
        UpConn::Message(mut link) => {
            link.dispatch(request);
            let mut status = None;
            // Read to its end: the upstream's answer is a 202, or a whole error.
            while let Some(part) = future::poll_fn(|cx| link.poll_part(cx)).await {
                match part {
                    AnswerPart::Whole { head, .. } => {
                        status = Some(head.status);
                        break;
                    }
                    AnswerPart::Stream(head) => status = Some(head.status),
                    AnswerPart::End => break,
                    _ => {}
                }
            }
            accepted(status.ok_or("the upstream gave no answer")?)
        }
    }
}

fn accepted(status: u16) -> Result<u16, String> {
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(format!("the upstream answered {status}"))
    }
}
