"""Reload under load, against the real things (issue 16, item 7).

Two upstream MCP servers (this file, `upstream NAME`: Python stdlib HTTP
answering JSON-RPC), the sluice binary with its admin listener, and
Debian's `prometheus` scraping it every second. A fixed-rate tools/call
load over keep-alive connections and N SSE streams (a tool that sends a
progress event every 0.25 s until the run releases it) stay open while
twenty SIGHUP reloads alternate bad configs (syntax error, unknown key,
unknown route key, a bad URL) and good ones (the route switching between
the two upstreams, a header naming the config's generation).

Checks: every request answered with a JSON-RPC result for its id; every
stream got all its events, in order, and its final result, from the
config it opened on; a request started after a good reload was applied
reached the new upstream with the new header; the admin listener's
gauge and counters after each reload; through Prometheus's query API the
reload counters, the last-reload gauge (0 seen while a bad config stood)
and `sluice_requests_total` equal to the requests sent, all `complete`.

Stdlib only. Every process it starts is killed by its pid when it ends.
Prints one line, `reload: N passed, M failed (...)`; exits 1 on a failure.

    python3 reload.py --sluice BIN [--prometheus BIN] --work DIR
"""

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RATE = 150  # tools/call per second, all load threads together
THREADS = 4
STREAMS = 8
RELOADS = 20  # alternating, bad first: RELOADS/2 invalid, RELOADS/2 ok
EVENT_INTERVAL = 0.25  # seconds between a stream's progress events
PATIENCE = 20.0  # bound on waiting for anything (never a measurement)


# --- the upstream ---------------------------------------------------------


def serve_upstream(name, release):
    """An MCP server over plain HTTP: `where` answers at once with its name
    and the X-Generation header it got; `slow` answers with an SSE stream
    of progress events until the file `release` exists, then its result."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The head and the body are two writes: with Nagle on, the body
        # waits for the ACK sluice delays (40 ms), and so does the load.
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def chunk(self, text):
            data = text.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            msg = json.loads(self.rfile.read(length))
            mid = msg.get("id")
            generation = self.headers.get("X-Generation", "")
            params = msg.get("params") or {}
            if msg.get("method") == "tools/call" and params.get("name") == "slow":
                token = (params.get("_meta") or {}).get("progressToken", mid)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                sent = 0
                # Bounded: a run that never releases still ends.
                while not os.path.exists(release) and sent < 1200:
                    sent += 1
                    note = {
                        "jsonrpc": "2.0",
                        "method": "notifications/progress",
                        "params": {"progressToken": token, "progress": sent},
                    }
                    self.chunk("event: message\ndata: %s\n\n" % json.dumps(note))
                    time.sleep(EVENT_INTERVAL)
                result = {
                    "content": [{"type": "text", "text": "%d events" % sent}],
                    "events": sent,
                    "from": name,
                    "generation": generation,
                }
                answer = {"jsonrpc": "2.0", "id": mid, "result": result}
                self.chunk("event: message\ndata: %s\n\n" % json.dumps(answer))
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                return
            if mid is None:
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            result = {
                "content": [{"type": "text", "text": name}],
                "from": name,
                "generation": generation,
            }
            body = json.dumps({"jsonrpc": "2.0", "id": mid, "result": result}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128

    server = Server(("127.0.0.1", 0), Handler)
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


# --- the run --------------------------------------------------------------


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = []
        self.lock = threading.Lock()

    def check(self, ok, what):
        with self.lock:
            if ok:
                self.passed += 1
            else:
                self.failed.append(what)
                print("FAILED: %s" % what, file=sys.stderr, flush=True)
        return ok


class Log:
    """sluice's stderr, line by line, with the reload outcomes counted."""

    def __init__(self, pipe, path):
        self.cond = threading.Condition()
        self.reloaded = 0
        self.refused = 0
        self.file = open(path, "w")
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe):
        for raw in pipe:
            line = raw.decode(errors="replace")
            self.file.write(line)
            with self.cond:
                if "configuration reloaded" in line:
                    self.reloaded += 1
                elif "reload refused" in line:
                    self.refused += 1
                self.cond.notify_all()
        self.file.flush()

    def wait(self, reloaded, refused):
        """Wait until the counts reach these; false on a timeout."""
        with self.cond:
            return self.cond.wait_for(
                lambda: self.reloaded >= reloaded and self.refused >= refused, PATIENCE
            )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(addr, target):
    with urllib.request.urlopen("http://%s%s" % (addr, target), timeout=10) as r:
        return r.read().decode()


def scrape(admin, series):
    for line in get(admin, "/metrics").splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def promql(prom, query):
    """The first sample's value of an instant query, or None."""
    try:
        text = get(prom, "/api/v1/query?" + urllib.parse.urlencode({"query": query}))
    except OSError:
        return None
    result = json.loads(text)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def promql_until(prom, query, want):
    """Ask until the value is `want` (scrapes come every second); the last
    value seen."""
    deadline = time.monotonic() + PATIENCE
    value = None
    while time.monotonic() < deadline:
        value = promql(prom, query)
        if value == want:
            break
        time.sleep(0.25)
    return value


def config_text(port, generation):
    return (
        'listen = "127.0.0.1:0"\n\n'
        "[[route]]\n"
        'name = "main"\n'
        'path = "/mcp"\n'
        'upstream = "http://127.0.0.1:%d/mcp"\n'
        'transport = "streamable"\n'
        'upstream_headers = { X-Generation = "%d" }\n' % (port, generation)
    )


def bad_text(kind, good):
    return [
        good + "\n[[route]\n",  # a TOML syntax error
        "nonsense = 1\n" + good,  # an unknown top-level key
        good + "retries_please = 3\n",  # an unknown key of the route
        good.replace("http://127.0.0.1", "ftp://127.0.0.1"),  # not an http URL
    ][kind % 4]


def write_config(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def call_body(rid, name="where", meta=None):
    params = {"name": name, "arguments": {}}
    if meta:
        params["_meta"] = meta
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params})


HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def answer_of(rid, status, body):
    """(from, generation) of a good answer to request `rid`, else an error."""
    if status != 200:
        raise ValueError("status %d: %r" % (status, body[:200]))
    msg = json.loads(body)
    if msg.get("id") != rid or "result" not in msg:
        raise ValueError("not a result for id %r: %r" % (rid, body[:200]))
    return msg["result"]["from"], msg["result"]["generation"]


class Timeline:
    """What the route is at a moment: good reloads, when signalled and
    when applied (the log line, written after the swap)."""

    def __init__(self, initial):
        self.initial = initial
        self.good = []  # [signalled, applied or None, (from, generation)]
        self.lock = threading.Lock()

    def expected(self, started, ended):
        """What a request sent from `started` to `ended` must reach; None
        when a good reload was under way meanwhile (either answer is right:
        sluice may have read the request before the swap or after it)."""
        with self.lock:
            want = self.initial
            for signalled, applied, target in self.good:
                if signalled >= ended:
                    break
                if applied is None or applied > started:
                    return None
                want = target
            return want


def load(proxy, index, stop, timeline, checks, stats):
    """Tools/calls at this thread's share of RATE; counts into `stats`,
    this thread's own."""
    host, port = proxy.rsplit(":", 1)
    interval = THREADS / RATE
    conn = None
    k = 0
    next_at = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if now < next_at:
            time.sleep(next_at - now)
        next_at += interval
        k += 1
        rid = index * 1_000_000 + k
        if conn is None or k % 50 == 0:  # mostly kept alive, a few fresh
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=PATIENCE)
        started = time.monotonic()
        try:
            conn.request("POST", "/mcp", call_body(rid), HEADERS)
            r = conn.getresponse()
            got = answer_of(rid, r.status, r.read())
        except (OSError, ValueError, http.client.HTTPException) as e:
            stats["failed"] += 1
            checks.check(False, "request %d: %s" % (rid, e))
            conn.close()
            conn = None
            continue
        finally:
            stats["sent"] += 1
        want = timeline.expected(started, time.monotonic())
        if want is not None:
            stats["checked"] += 1
            if got != want:
                stats["stale"] += 1
                checks.check(False, "request %d reached %s, not %s" % (rid, got, want))
    if conn is not None:
        conn.close()


def stream(proxy, index, out):
    """One SSE stream: events in order, then the result; what it saw."""
    host, port = proxy.rsplit(":", 1)
    rid = "stream-%d" % index
    seen = {"events": 0, "in_order": True, "result": None, "first": None, "end": None}
    out[index] = seen
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=PATIENCE)
        conn.request("POST", "/mcp", call_body(rid, "slow", {"progressToken": rid}), HEADERS)
        r = conn.getresponse()
        if r.status != 200:
            seen["error"] = "status %d" % r.status
            return
        data = []
        while True:
            line = r.readline()
            if not line:
                break
            line = line.decode().rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
                continue
            if line or not data:
                continue
            msg = json.loads("\n".join(data))
            data = []
            if msg.get("method") == "notifications/progress":
                seen["events"] += 1
                if seen["first"] is None:
                    seen["first"] = time.monotonic()
                if msg["params"]["progress"] != seen["events"]:
                    seen["in_order"] = False
            elif msg.get("id") == rid:
                seen["result"] = msg.get("result")
                seen["end"] = time.monotonic()
        conn.close()
    except (OSError, ValueError, http.client.HTTPException) as e:
        seen["error"] = repr(e)


def start(cmd, **kw):
    return subprocess.Popen(cmd, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--prometheus", default="prometheus")
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    began = time.monotonic()
    work = args.work
    release = os.path.join(work, "release")
    children = []
    # A SIGTERM (the run script's trap) unwinds through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    checks = Checks()
    # One per load thread (no counter is shared), and their sum at the end.
    per_thread = [{"sent": 0, "failed": 0, "checked": 0, "stale": 0} for _ in range(THREADS + 1)]
    stats = per_thread[THREADS]
    probes = 0
    load_seconds = 0.0
    reloads = (0, 0)
    stop = threading.Event()
    streams_whole = 0
    try:
        ports = {}
        for name in ("a", "b"):
            p = start(
                [sys.executable, __file__, "upstream", name, release],
                stdout=subprocess.PIPE,
                stderr=open(os.path.join(work, "upstream-%s.err" % name), "w"),
            )
            children.append(p)
            line = p.stdout.readline().decode().split()
            if line[:1] != ["PORT"]:
                raise SystemExit("upstream %s did not start" % name)
            ports[name] = int(line[1])

        config = os.path.join(work, "sluice.toml")
        write_config(config, config_text(ports["a"], 0))
        sluice = start(
            [args.sluice, "--config", config, "--admin", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        children.append(sluice)
        log = Log(sluice.stderr, os.path.join(work, "sluice.log"))

        def banner(prefix):
            line = sluice.stdout.readline().decode().strip()
            if not line.startswith(prefix):
                raise SystemExit("sluice did not start: %r (see %s/sluice.log)" % (line, work))
            return line[len(prefix):]

        proxy = banner("sluice listening on http://")
        admin = banner("admin listening on http://")
        # Kept open and drained: a closed pipe is not what is tested here.
        threading.Thread(target=lambda: sluice.stdout.read(), daemon=True).start()

        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "scrape_configs:\n  - job_name: sluice\n"
                "    static_configs:\n      - targets: ['%s']\n" % admin
            )
        prom = "127.0.0.1:%d" % free_port()
        children.append(
            start(
                [
                    args.prometheus,
                    "--config.file=%s/prometheus.yml" % work,
                    "--storage.tsdb.path=%s/prometheus-data" % work,
                    "--web.listen-address=%s" % prom,
                ],
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(work, "prometheus.log"), "w"),
            )
        )
        if not checks.check(promql_until(prom, 'up{job="sluice"}', 1.0) == 1.0, "Prometheus scrapes the admin listener"):
            raise SystemExit("prometheus never scraped sluice (see %s/prometheus.log)" % work)

        # The load and the streams, all on the first config.
        timeline = Timeline(("a", "0"))
        loaders = [
            threading.Thread(target=load, args=(proxy, i + 1, stop, timeline, checks, per_thread[i]), daemon=True)
            for i in range(THREADS)
        ]
        seen = {}
        streamers = [threading.Thread(target=stream, args=(proxy, i, seen), daemon=True) for i in range(STREAMS)]
        load_began = time.monotonic()
        for t in loaders + streamers:
            t.start()
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline and not all(
            seen.get(i, {}).get("events") or seen.get(i, {}).get("error") for i in range(STREAMS)
        ):
            time.sleep(0.05)
        checks.check(
            all(seen.get(i, {}).get("events") for i in range(STREAMS)),
            "every stream is open before the first reload",
        )

        generation = 0
        first_signal = last_applied = None
        for n in range(RELOADS):
            good = n % 2 == 1
            reloaded, refused = log.reloaded, log.refused
            if good:
                generation += 1
                target = ("b" if generation % 2 else "a", str(generation))
                write_config(config, config_text(ports[target[0]], generation))
                entry = [time.monotonic(), None, target]
                with timeline.lock:
                    timeline.good.append(entry)
            else:
                running = ports["b" if generation % 2 else "a"]
                write_config(config, bad_text(n // 2, config_text(running, generation)))
            signalled = time.monotonic()
            first_signal = first_signal or signalled
            sluice.send_signal(signal.SIGHUP)
            applied = log.wait(reloaded + good, refused + (not good))
            last_applied = time.monotonic()
            if good:
                with timeline.lock:
                    entry[1] = last_applied
            kind = "good" if good else "bad"
            if not checks.check(applied, "reload %d (%s) logged its outcome" % (n + 1, kind)):
                break
            checks.check(
                (log.reloaded, log.refused) == (reloaded + good, refused + (not good)),
                "reload %d (%s) was the only one" % (n + 1, kind),
            )
            gauge = scrape(admin, "sluice_config_last_reload_successful")
            checks.check(gauge == float(good), "after reload %d the gauge is %s, not %s" % (n + 1, gauge, float(good)))
            ok = scrape(admin, 'sluice_config_reloads_total{outcome="ok"}') or 0.0
            invalid = scrape(admin, 'sluice_config_reloads_total{outcome="invalid"}') or 0.0
            checks.check(
                (ok, invalid) == ((n + 1) // 2, n // 2 + 1),
                "after reload %d the counters are ok=%s invalid=%s" % (n + 1, ok, invalid),
            )
            if good:
                # A request on a fresh connection reaches the new upstream.
                host, port = proxy.rsplit(":", 1)
                rid = "probe-%d" % generation
                try:
                    c = http.client.HTTPConnection(host, int(port), timeout=PATIENCE)
                    c.request("POST", "/mcp", call_body(rid), HEADERS)
                    r = c.getresponse()
                    got = answer_of(rid, r.status, r.read())
                    c.close()
                except (OSError, ValueError, http.client.HTTPException) as e:
                    got = repr(e)
                probes += 1
                checks.check(got == target, "after reload %d a new request reached %s, not %s" % (n + 1, got, target))
            reloads = (log.reloaded, log.refused)
            if n == 0:
                # Prometheus sees the refused config while it stands.
                checks.check(
                    promql_until(prom, "sluice_config_last_reload_successful", 0.0) == 0.0,
                    "Prometheus saw sluice_config_last_reload_successful 0 after a refused reload",
                )
            time.sleep(0.5)

        time.sleep(1.0)
        stop.set()
        for t in loaders:
            t.join(PATIENCE)
        load_seconds = time.monotonic() - load_began
        open(release, "w").close()
        for t in streamers:
            t.join(PATIENCE)
        checks.check(not any(t.is_alive() for t in loaders + streamers), "the load and the streams ended")

        for i in range(STREAMS):
            s = seen.get(i, {})
            result = s.get("result") or {}
            whole = (
                "error" not in s
                and s["in_order"]
                and s["events"] > 0
                and result.get("events") == s["events"]
                and (result.get("from"), result.get("generation")) == ("a", "0")
            )
            checks.check(whole, "stream %d whole, on the config it opened on: %r" % (i, s))
            spanned = bool(s.get("first") and s.get("end")) and s["first"] < first_signal and s["end"] > last_applied
            checks.check(spanned, "stream %d was open across every reload" % i)
            streams_whole += whole

        for key in stats:
            stats[key] = sum(t[key] for t in per_thread[:THREADS])
        sent = stats["sent"] + probes + STREAMS
        for query, want in [
            ('sluice_config_reloads_total{outcome="ok"}', float(RELOADS // 2)),
            ('sluice_config_reloads_total{outcome="invalid"}', float(RELOADS - RELOADS // 2)),
            ("sluice_config_last_reload_successful", 1.0),
            ('sum(sluice_requests_total{outcome="complete"})', float(sent)),
            ("sum(sluice_requests_total)", float(sent)),
        ]:
            got = promql_until(prom, query, want)
            checks.check(got == want, "Prometheus: %s is %s, not %s" % (query, got, want))
        checks.check(stats["failed"] == 0, "no request failed")
        checks.check(stats["checked"] > RATE * 5, "requests checked against the route: %d" % stats["checked"])
    finally:
        # Daemon threads, stopped here too: an interrupted run ends.
        stop.set()
        for p in reversed(children):
            p.terminate()
        for p in children:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    print(
        "reload: %d passed, %d failed (requests %d at %.0f/s, %d failed, %d checked against the route, %d stale; "
        "streams %d/%d whole; reloads %d applied + %d refused; %.1f s)"
        % (
            checks.passed,
            len(checks.failed),
            stats["sent"] + probes,
            stats["sent"] / load_seconds if load_seconds else 0.0,
            stats["failed"],
            stats["checked"],
            stats["stale"],
            streams_whole,
            STREAMS,
            reloads[0],
            reloads[1],
            time.monotonic() - began,
        )
    )
    return 1 if checks.failed else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["upstream"]:
        serve_upstream(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main())
