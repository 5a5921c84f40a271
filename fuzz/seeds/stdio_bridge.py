#!/usr/bin/env python3
"""Writes the seeds of the stdio_bridge fuzz target (fuzz/seeds/stdio_bridge/)
in the encoding arbitrary 1.5 reads (see the target's module docs). Each
seed drives the bridge to a deep state: the child initialized, calls in
flight, progress, server requests, cancels, exits and restarts, sessions
deleted and reaped, links failing mid-drain. Run it again after changing
the target's Op, Body, Sess or Line enums.

    python3 fuzz/seeds/stdio_bridge.py
"""
import os
import struct


def tag(k, n):
    """The smallest u32 whose (tag * n) >> 32 is k: variant k of n."""
    t = (k * (1 << 32) + n - 1) // n
    assert (t * n) >> 32 == k
    return struct.pack('<I', t)


def u8(x): return bytes([x])
def b(x): return bytes([1 if x else 0])
def u16(x): return struct.pack('<H', x)
def opt(x): return b(0) if x is None else b(1) + u8(x)


OPS = 14  # the variants of Op, in order
def op(k, body=b''): return b(1) + tag(k, OPS) + body


# Body
def initialize(id, version, token=None): return tag(0, 6) + u8(id) + u8(version) + opt(token)
def call(id, method, token): return tag(1, 6) + u8(id) + u8(method) + opt(token)
def notification(which): return tag(2, 6) + u8(which)
def cancel(which): return tag(3, 6) + u8(which)
def answer(which, error): return tag(4, 6) + u8(which) + b(error)
def garbage(which): return tag(5, 6) + u8(which)


# Sess
ABSENT = tag(0, 3)
def known(i): return tag(1, 3) + u8(i)
UNKNOWN = tag(2, 3)


# Line
def l_answer(which, how): return tag(0, 6) + u8(which) + u8(how)
def l_progress(which): return tag(1, 6) + u8(which)
def l_request(id, method): return tag(2, 6) + u8(id) + u8(method)
def l_broadcast(which): return tag(3, 6) + u8(which)
def l_noise(which): return tag(4, 6) + u8(which)
L_LONG = tag(5, 6)


# Op; accept: 0 both, 1 JSON, 2 SSE, 3 no Accept, 4 neither
def post(body, sess, accept=0): return op(0, body + sess + u8(accept))
def get(sess, accept=2): return op(1, sess + u8(accept))
def delete(sess): return op(2, sess)
SPAWNED = op(3)
SPAWN_FAILED = op(4)
def line(l, crlf=False, split=0): return op(5, l + b(crlf) + u8(split))
CHILD_EXITED = op(7)
def gone(which, live=True): return op(8, u8(which) + b(live))
def advance(ms): return op(9, u16(ms))
def timeout(late=0): return op(10, u8(late))
CLOSE = op(11)
def fails(which): return op(12, u8(which))
# A 2026-07-28 POST; flaw: 0 none, 1 no _meta, 2 no clientCapabilities,
# 3 body version differs from the header, 4 Mcp-Method differs, 5 Mcp-Name
# differs (tools/call; else a stray Mcp-Name, ignored), 6 the version
# header twice, 7 an unsupported version; accept: 0 both, 1 JSON, 2 SSE,
# 3 no Accept.
def stateless(body, flaw=0, accept=0): return op(13, body + u8(flaw) + u8(accept))


# Modern (the body of a 2026-07-28 POST); caps bit 0: declares sampling,
# bit 1: asks for log lines
def m_call(id, token=None, caps=0): return tag(0, 6) + u8(id) + opt(token) + u8(caps)
def m_list(id): return tag(1, 6) + u8(id)
def m_discover(id): return tag(2, 6) + u8(id)
# which: 0 tools, 1 tools and prompts, 2 nothing, 3 no params.notifications
def m_listen(id, which=0): return tag(3, 6) + u8(id) + u8(which)
# which: initialize, ping, logging/setLevel, resources/subscribe, resources/unsubscribe
def m_removed(id, which=0): return tag(4, 6) + u8(id) + u8(which)
def m_notification(which=0): return tag(5, 6) + u8(which)


seeds = {}
# Shared: one session, init answered, calls with/without token in flight,
# progress, a server request and the client's answer, a broadcast on GET,
# a cancel, the child dying mid-call, the restart after backoff, close.
seeds['shared-calls-progress-exit-restart'] = u8(0) + b''.join([
    post(initialize(0, 2), ABSENT),            # stream 1, s0; Spawn
    SPAWNED,                                   # own initialize to the child
    line(l_answer(0, 0), split=17),            # answered: Ready; stream 1 answered
    get(known(0)),                             # stream 2: GET of s0
    post(call(1, 1, None), known(0), 1),       # stream 3: ping "\"1\"", json only
    post(call(2, 0, 0), known(0), 0),          # stream 4: tools/call 1.0, token "p"
    line(l_progress(0), crlf=True),            # progress to stream 4
    line(l_request(2, 1)),                     # sampling to stream 4 (latest)
    post(answer(0, False), known(0)),          # the client's answer: to the child
    line(l_broadcast(0)),                      # list_changed on GET
    line(l_answer(0, 1)),                      # answers stream 3 (json)
    post(call(7, 0, 3), known(0), 2),          # stream 6: tools/call "\u0031", sse only
    post(cancel(2), known(0)),                 # names 1.0: stream 4 ends, no answer
    post(call(4, 0, 1), known(0), 0),          # stream 8: huge id, token 7
    line(l_noise(0)),
    CHILD_EXITED,                              # streams 6 and 8 fail with 502
    post(call(5, 2, None), known(0), 0),       # waits for the restart
    timeout(0),                                # Spawn again
    SPAWNED,
    line(l_answer(0, 0)),                      # own init answered: the call goes
    line(l_answer(0, 0)),                      # and is answered
    CLOSE,
])
# Shared: two sessions with the same ids, answers in the other order, a
# client leaving mid-call (cancelled on the child), DELETE mid-call, idle
# reaping.
seeds['shared-two-sessions-delete-gone-idle'] = u8(0) + b''.join([
    post(initialize(0, 0), ABSENT, 2),         # s0, sse only
    SPAWNED,
    line(l_answer(0, 6)),
    post(initialize(0, 1), ABSENT, 1),         # s1, answered from the first
    post(call(0, 0, 4), known(0), 0),          # "1" on s0, token 1
    post(call(0, 0, 4), known(1), 0),          # "1" on s1, token 1
    line(l_progress(1)),
    line(l_answer(1, 0), split=5),             # s1's first
    line(l_answer(0, 3)),                      # s0's: an error
    post(call(3, 0, None), known(0), 0),
    gone(2),                                   # the s0 call leaves: cancelled on the child
    post(call(6, 1, None), known(1), 1),
    get(known(1)),
    get(known(1)),                             # 409
    delete(known(1)),                          # call and GET of s1 end
    post(call(6, 1, None), known(1), 1),       # 404
    advance(30000),
    timeout(0),                                # s0, s1 reaped
    post(call(0, 2, None), known(0), 0),       # 404
    CLOSE,
    post(call(0, 2, None), known(0), 0),       # after Closed
])
# Shared: the child never answers initialize; requests wait (up to the
# limit), the deadline fails them; a restart fails to spawn, the next
# one's initialize is refused, the third works.
seeds['shared-init-timeout-backoff'] = u8(2) + b''.join([
    post(initialize(1, 2), ABSENT, 0),
    SPAWNED,
    line(l_noise(0)), line(l_noise(1)), line(L_LONG),
    post(call(0, 0, None), known(0), 0),
    post(call(1, 0, None), known(0), 0),
    post(call(2, 0, None), known(0), 0),       # over max_waiting
    timeout(0),                                # InitTimeout: 504s
    post(call(3, 0, 0), known(0), 0),
    timeout(0), SPAWN_FAILED,                  # 502
    post(call(3, 0, 0), known(0), 0),
    timeout(3), SPAWNED,
    line(l_answer(0, 4)),                      # refused: no protocolVersion
    post(call(3, 0, 0), known(0), 2),
    timeout(0), SPAWNED,
    line(l_answer(0, 0), crlf=True),
    line(l_answer(0, 0)),
    CLOSE,
])
# Per-session: the client's initialize opens the child under a minted id,
# SSE only; calls, progress, a server request over GET, a cancel, DELETE.
seeds['per-session-calls-get-delete'] = u8(3) + b''.join([
    post(initialize(3, 1), ABSENT, 2),         # s0: Spawn
    post(notification(0), known(0)),           # waits
    SPAWNED,                                   # client init to the child
    line(l_answer(0, 6)),                      # answered; initialized forwarded
    get(known(0)),
    post(call(1, 0, 0), known(0), 1),          # json only: server requests go to GET
    line(l_progress(0)),                       # dropped: json only
    line(l_request(0, 1)),                     # to GET
    post(answer(0, True), known(0)),
    line(l_request(1, 0)),                     # ping: answered by sluice
    post(call(2, 0, 2), known(0), 0),
    line(l_progress(1)),
    post(cancel(1), known(0)),
    line(l_answer(0, 0)),                      # "1" answered
    post(call(8, 0, None), known(0), 0),
    delete(known(0)),                          # ends it all
    line(l_request(0, 0)),                     # after Closed: ping answered
    post(call(0, 0, None), known(0), 0),
])
# Per-session: the child dies with two calls in flight (one with its SSE
# stream open, one JSON); the session ends with it.
seeds['per-session-exit-mid-call'] = u8(1) + b''.join([
    post(initialize(2, 2), ABSENT, 0),
    SPAWNED,
    line(l_answer(0, 0)),
    post(call(4, 0, 1), known(0), 0),
    post(call(5, 1, None), known(0), 1),
    line(l_progress(0)),
    line(L_LONG, split=100),
    CHILD_EXITED,
    post(call(5, 1, None), known(0), 1),
])
# Shared: a client whose link fails while its answer is being handed over
# (reported gone in the middle of the drain), and one failing on its
# first progress event (the call is cancelled on the child).
seeds['shared-link-fails-mid-drain'] = u8(0) + b''.join([
    post(initialize(0, 2), ABSENT, 0),
    SPAWNED,
    line(l_answer(0, 0)),
    post(call(0, 0, 0), known(0), 0),          # stream 2, token "p"
    post(call(2, 0, 1), known(0), 2),          # stream 3, token 7, sse only
    fails(0),                                  # stream 2 fails on its next part
    line(l_answer(0, 0)),                      # its answer: dropped, gone
    fails(0),                                  # stream 3 now
    line(l_progress(1)),                       # its head fails: cancelled
    post(call(3, 1, None), known(0), 1),
    line(l_answer(0, 0)),
    CLOSE,
])
# Per-session: the session idles out, which ends the bridge.
seeds['per-session-idle-timeout'] = u8(1) + b''.join([
    post(initialize(0, 0), ABSENT, 1),
    SPAWNED,
    line(l_answer(0, 12)),
    advance(20000),
    timeout(0),
    post(call(0, 0, None), known(0), 1),
])
# Shared: a client whose Accept takes neither JSON nor SSE gets its
# initialize answered as JSON (it was dropped, the stream left open).
seeds['shared-accept-neither'] = u8(0) + b''.join([
    post(initialize(0, 0), ABSENT, 2),
    SPAWNED,
    line(l_answer(0, 6)),
    post(initialize(0, 0), ABSENT, 4),
    post(call(1, 0, 0), known(1), 4),
    line(l_progress(0)),
    line(l_answer(0, 0)),
])
# Shared: the first client's initialize carries a progress token (1); the
# child must not get it with sluice's own initialize, or its progress on
# it goes to the request that gets child id 1.
seeds['shared-init-progress-token'] = u8(0) + b''.join([
    post(initialize(0, 2, 4), ABSENT, 0),      # _meta.progressToken 1
    SPAWNED,
    line(l_answer(0, 0)),
    post(initialize(1, 2), ABSENT, 0),         # s1
    post(call(0, 0, 0), known(1), 0),          # child id 1, token "p"
    line(l_progress(0)),                       # on initialize's token
    line(l_progress(1)),                       # on the call's
    line(l_answer(0, 0)),
])

# Shared, a 2025-11-25 session (the child says 2025-11-25 too): its
# initialize answered on a primed SSE stream, a primed GET, a call with a
# progress token opened at once (head and prime) as it goes to the child,
# progress and answer with ids after the prime's, a call without a token
# answered as JSON, a primed call left mid-call (kept for a resumption,
# then cancelled after the grace period), a second session at 2025-06-18
# (no primes), DELETE.
seeds['shared-primed-session'] = u8(0) + b''.join([
    post(initialize(0, 2), ABSENT, 2),         # stream 1, s0 asks 2025-11-25, SSE only
    SPAWNED,
    line(l_answer(0, 12)),                     # the child at 2025-11-25: stream 1 primed
    get(known(0)),                             # stream 2: head, prime
    post(call(2, 0, 0), known(0), 0),          # stream 3: token "p": head, prime at once
    line(l_progress(0)),                       # an event with an id after the prime
    line(l_broadcast(0)),                      # list_changed on the GET
    line(l_answer(0, 0)),                      # stream 3 answered, End
    post(call(1, 1, None), known(0), 0),       # stream 4: no token, JSON
    line(l_answer(0, 1)),
    post(initialize(3, 1), ABSENT, 0),         # stream 5, s1 at 2025-06-18: no primes
    get(known(1)),                             # stream 6: head only
    post(call(0, 0, 1), known(1), 0),          # stream 7: token 7, not opened at once
    line(l_progress(0)),
    line(l_answer(0, 0)),
    post(call(3, 0, 3), known(0), 2),          # stream 8: s0, SSE only, token
    gone(2),                                   # stream 8 leaves: orphaned
    advance(60000),
    timeout(0),                                # grace over: cancelled on the child
    delete(known(0)),
    CLOSE,
])
# Shared, stateless requests at a child a handshake session initialized:
# a call with a progress token (SSE), its progress and answer (resultType,
# the client's id), tools/list (ttlMs, cacheScope), discover, every removed
# method, notifications; a call that declared sampling (the child's
# sampling request refused to the child) and one that did not (-32021,
# cancelled on the child); one that leaves mid-call (cancelled at once);
# a log line asked for; sessions never grow.
seeds['shared-stateless-calls'] = u8(0) + b''.join([
    post(initialize(0, 2), ABSENT, 0),         # stream 1, s0
    SPAWNED,
    line(l_answer(0, 12)),
    stateless(m_call(2, 0, 2), 0, 0),          # stream 2: 1.0, token "p", logs
    line(l_progress(0)),                       # restored to "p"
    line(l_broadcast(1)),                      # a log line: its (it asked)
    line(l_answer(0, 0)),                      # answered, resultType
    stateless(m_list(4), 0, 1),                # stream 3: tools/list, JSON
    line(l_answer(0, 4)),                      # {} completed for its era
    stateless(m_discover(7), 0, 0),            # stream 4: from the child's initialize
    stateless(m_removed(0, 0)),                # initialize: 404
    stateless(m_removed(1, 1)),                # ping
    stateless(m_removed(2, 2)),
    stateless(m_removed(3, 3)),
    stateless(m_removed(5, 4)),
    stateless(m_notification(0)),              # 202
    stateless(m_notification(1), 0, 3),
    stateless(m_call(6, None, 1), 0, 0),       # declares sampling
    line(l_request(2, 1)),                     # sampling: refused to the child
    line(l_answer(0, 3)),                      # an error: the era's status
    stateless(m_call(9, 4, 0), 0, 2),          # "sluice-initialize", token 1, no sampling
    line(l_request(1, 1)),                     # -32021, cancelled on the child
    stateless(m_call(0, None, 0), 0, 0),
    gone(0),                                   # leaves mid-call: cancelled at once
    stateless(m_call(8, 1, 0), 0, 2),          # stream 15: token 7, SSE only
    fails(0),                                  # its link fails on its next part
    line(l_progress(2)),                       # its progress: cancelled at once
    post(call(1, 0, None), known(0), 0),       # the handshake session goes on
    line(l_answer(0, 0)),
    CLOSE,
])
# Shared: every way an envelope is refused, before anything starts a child
# or waits for it, for a call, a list, a listen and a notification
# (taken: 202); then valid ones that start the child.
seeds['shared-stateless-envelopes'] = u8(0) + b''.join([
    stateless(m_call(0, None, 0), 1),          # no _meta: -32602
    stateless(m_call(1, 0, 1), 2),             # no clientCapabilities: -32602
    stateless(m_list(2), 3),                   # versions differ: -32020
    stateless(m_call(3, None, 0), 4),          # Mcp-Method: -32020
    stateless(m_call(4, None, 0), 5),          # Mcp-Name: -32020
    stateless(m_list(5), 5),                   # a stray Mcp-Name: fine, waits
    stateless(m_discover(6), 6),               # the version header twice: -32020
    stateless(m_listen(7, 0), 7, 2),           # unsupported: -32022
    stateless(m_notification(0), 1),           # a notification: 202 anyway
    stateless(m_removed(8, 1), 3),
    SPAWNED,                                   # default own initialize
    line(l_answer(0, 24)),                     # the child at 2099-01-01
    line(l_answer(0, 0)),                      # the list answered
    stateless(m_list(0), 0, 3),                # no Accept
    line(l_answer(0, 5)),                      # the id spelled otherwise: not its
    line(l_answer(0, 2)),
    CLOSE,
    stateless(m_list(1), 0, 0),                # after Closed: refused whole
    stateless(m_call(1, None, 0), 2, 0),
])
# Shared: listen streams (tools; tools and prompts; nothing; no
# notifications: 400; no SSE: 406) and the child's list changes, stamped
# with each one's subscription id; one leaves; the child dies and comes
# back under them; close ends them with their results.
seeds['shared-stateless-listen'] = u8(0) + b''.join([
    post(initialize(0, 2), ABSENT, 0),
    SPAWNED,
    line(l_answer(0, 12)),
    stateless(m_listen(2, 0), 0, 2),           # stream 2: 1.0
    stateless(m_listen(4, 1), 0, 0),           # stream 3: huge id
    stateless(m_listen(3, 2), 0, 0),           # stream 4: nothing granted
    stateless(m_listen(0, 3), 0, 0),           # 400
    stateless(m_listen(0, 0), 0, 1),           # 406
    get(known(0)),
    line(l_broadcast(0)),                      # tools list_changed: to 2, 3, GET
    line(l_broadcast(1)),                      # a log line: GET only
    gone(2),                                   # stream 4 (granted nothing) leaves
    CHILD_EXITED,
    line(l_broadcast(0)),
    stateless(m_call(1, None, 0), 0, 0),       # waits for the restart
    timeout(0), SPAWNED,
    line(l_answer(0, 12)),
    line(l_broadcast(0), split=9),
    line(l_answer(0, 0)),
    CLOSE,                                     # listens end with their results
])
# Per-session: a 2026-07-28 request is answered 400 by the route itself;
# the session's own primed streams (the child says 2099-01-01).
seeds['per-session-primed-stateless'] = u8(1) + b''.join([
    post(initialize(0, 2, 1), ABSENT, 0),
    stateless(m_call(0, None, 0)),
    SPAWNED,
    line(l_request(2, 1)),                     # before its answer: no prime yet
    line(l_answer(0, 24)),                     # 2099-01-01: primed from now on
    get(known(0)),
    post(call(1, 0, 0), known(0), 0),          # opened at once
    line(l_progress(0)),
    post(initialize(2, 2, 0), known(0), 2),    # to the child: version unchanged
    line(l_answer(0, 0)),
    line(l_answer(0, 0)),
    CLOSE,
])
# Per-session: a GET opened while the session's version is unknown (the
# child's request before its initialize answer opened the client's
# stream) is not primed, though the version then says 2099-01-01.
seeds['per-session-get-before-version'] = u8(3) + b''.join([
    post(initialize(3, 1), ABSENT, 2),
    post(notification(0), known(0)),
    SPAWNED,
    line(l_request(1, 2)),                     # roots/list: opens stream 1
    get(known(0)),                             # no prime: no version yet
    line(l_answer(0, 25)),                     # 2099-01-01
    get(known(0)),                             # 409
    CLOSE,
])

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'stdio_bridge')
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), 'wb') as f:
        f.write(data)
    print(name, len(data))
