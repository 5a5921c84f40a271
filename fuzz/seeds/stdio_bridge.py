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


OPS = 13  # the variants of Op, in order
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

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'stdio_bridge')
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), 'wb') as f:
        f.write(data)
    print(name, len(data))
