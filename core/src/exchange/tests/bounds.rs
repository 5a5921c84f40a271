//! What one client may make the exchange hold.

use super::*;

#[test]
fn pipelined_bytes_are_bounded_while_an_answer_streams() {
    let mut h = Harness::new(config());
    assert_eq!(h.ex.client_read_budget(), usize::MAX, "reading a request");
    h.client(&post(CALL)).connected(false);
    h.upstream(SSE_HEAD.as_bytes());
    let max = ExchangeLimits::default().max_pipelined;
    assert_eq!(h.ex.client_read_budget(), max);
    // A driver that respects the budget reads at most `max` more bytes.
    let flood = vec![b'x'; 4096];
    let mut fed = 0;
    while h.ex.client_read_budget() > 0 {
        let n = h.ex.client_read_budget().min(flood.len());
        h.client(&flood[..n]);
        fed += n;
    }
    assert_eq!(fed, max);
    assert_eq!(h.ex.take_leftover().len(), max);
    // Finished exchanges take nothing more.
    h.upstream(chunk(ANSWER).as_bytes()).upstream(b"0\r\n\r\n");
    assert!(h.log.finished.is_some());
    assert_eq!(h.ex.client_read_budget(), 0);
}
