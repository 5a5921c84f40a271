"""The auth interop test: three real processes and sluice between them.

    oidc-provider (oidc_as.mjs)  <- discovery, registration, token --  TS SDK client (ts_oauth_client.cjs),
                                                                       Python SDK client (py_token_client.py)
            ^ JWKS                                                          | 401, metadata, Bearer JWT
            |                                                               v
          sluice --config (route /mcp, [route.auth] issuer = the provider)  -> ts_server.cjs (knows nothing of auth)

and a second route, /x/mcp, for opaque tokens: sluice introspects the
Python client's opaque token at the provider (RFC 7662) and exchanges it
there (RFC 8693) for a token issued for the upstream, which the provider
reports (`TOKEN-EXCHANGE ok … aud=<upstream>`).

On every route sluice runs hook-examples/rust-caller-policy (a
sluice:hook@0.2.0 hook reading the caller's identity): the tool `add` is
listed and callable only for callers whose token carries the scope
`mcp:admin`; two Python clients with tokens of different scopes check that
one is refused the tool and the other gets it.

sluice's port is chosen first (the token's audience is the URL the client
uses, so the authorization server must know it); every process is started
in its own group and killed by its pid at the end, pass or fail.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CALLER_POLICY = '{"tools": {"add": {"scope": "mcp:admin"}}}'


def caller_policy_hook(out: Path) -> Path:
    """The rust-caller-policy component, built by its script (from the
    build cache when the runtime tests built it already)."""
    script = HERE.parents[2] / "hook-examples" / "rust-caller-policy" / "build.sh"
    env = {k: v for k, v in os.environ.items()
           if k not in ("RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET")}
    built = subprocess.run(["sh", str(script)], env=dict(env, SLUICE_HOOK_OUT=str(out)),
                           capture_output=True, text=True, timeout=900)
    if built.returncode != 0:
        raise RuntimeError(f"building rust-caller-policy failed: {built.stderr[-800:]}")
    return out / "rust-caller-policy.wasm"
sys.path.insert(0, str(HERE.parent))
from harness import Running, free_port, kill_all, wait_tcp  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--env-dir", required=True, type=Path)
    args = ap.parse_args()
    sluice = os.environ.get("SLUICE_BIN")
    if not sluice or not os.access(sluice, os.X_OK):
        print(f"auth interop: SLUICE_BIN must name the sluice binary (got {sluice!r})", file=sys.stderr)
        return 2
    node_modules = args.env_dir / "node_modules"
    env = dict(os.environ, NODE_PATH=str(node_modules), OIDC_PROVIDER_DIR=str(node_modules / "oidc-provider"))
    results = []
    tmp = tempfile.TemporaryDirectory(prefix="sluice-auth-interop-")
    try:
        as_port, proxy_port = free_port(), free_port()
        resource = f"http://127.0.0.1:{proxy_port}/mcp"
        # The second route takes opaque tokens (introspected), and its
        # upstream gets a token exchanged for the caller's.
        opaque_resource = f"http://127.0.0.1:{proxy_port}/x/mcp"
        server = Running("ts-server", ["node", str(HERE.parent / "servers" / "ts_server.cjs"),
                                       "--mode", "sessions", "--port", "0"], env)
        upstream = server.wait_for(re.compile(r"READY (http://\S+)"), 30).group(1)
        secret = Path(tmp.name) / "sluice-client-secret"
        secret.write_text("interop-secret\n")
        provider = Running("oidc-provider", ["node", str(HERE / "oidc_as.mjs"), "--port", str(as_port),
                                             "--resource", resource, "--scope", "mcp:tools mcp:admin",
                                             "--opaque-resource", opaque_resource,
                                             "--upstream-resource", upstream,
                                             "--sluice-client", "sluice:interop-secret"], env)
        issuer = provider.wait_for(re.compile(r"READY (http://\S+)"), 30).group(1)
        hook = caller_policy_hook(Path(tmp.name) / "hooks")
        config = Path(tmp.name) / "sluice.toml"
        client = f'client_id = "sluice"\nclient_secret = {{ from_file = "{secret}" }}\n'
        config.write_text(
            f'listen = "127.0.0.1:{proxy_port}"\n\n'
            f'[[route]]\npath = "/mcp"\nupstream = "{upstream}"\n\n'
            f'[route.auth]\naudience = "{resource}"\nissuer = "{issuer}"\n'
            f'required_scopes = ["mcp:tools"]\n\n'
            f'[[route]]\npath = "/x/mcp"\nupstream = "{upstream}"\n\n'
            f'[route.auth]\naudience = "{opaque_resource}"\nissuer = "{issuer}"\n'
            f'required_scopes = ["mcp:tools"]\n\n'
            f'[route.auth.introspection]\n{client}\n'
            f'[route.auth.token_exchange]\n{client}\n'
            f'[[hook]]\npath = "{hook}"\nconfig = \'{CALLER_POLICY}\'\n'
        )
        proxy = Running("sluice", [sluice, "--config", str(config)], env)
        proxy.wait_for(re.compile(r"sluice listening on"), 30)
        wait_tcp(proxy_port, 10)
        client_cfg = json.dumps({"url": resource, "issuer": issuer})
        py = str(args.env_dir / "venv-mcp2" / "bin" / "python")
        guarded = [(f"py-sdk token, scope {scope!r}",
                    [py, str(HERE / "py_token_client.py"),
                     json.dumps({"url": resource, "issuer": issuer, "scope": scope, "guarded": "add"})])
                   for scope in ("mcp:tools", "mcp:tools mcp:admin")]
        clients = [("ts-sdk oauth", ["node", str(HERE / "ts_oauth_client.cjs"), client_cfg]),
                   ("ts-sdk code+pkce", ["node", str(HERE / "ts_oauth_code_client.cjs"), client_cfg]),
                   ("py-sdk token", [str(args.env_dir / "venv-mcp2" / "bin" / "python"),
                                     str(HERE / "py_token_client.py"), client_cfg]),
                   ("py-sdk opaque token, exchanged", [str(args.env_dir / "venv-mcp2" / "bin" / "python"),
                                                       str(HERE / "py_token_client.py"),
                                                       json.dumps({"url": opaque_resource, "issuer": issuer})])] + guarded
        for name, cmd in clients:
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
            got = [dict(json.loads(line), client=name) for line in out.stdout.splitlines()
                   if line.startswith("{")]
            if out.returncode != 0 or not got:
                got.append({"client": name, "check": "driver", "status": "fail",
                            "detail": f"exit {out.returncode}: {out.stderr[-800:]}"})
            results += got
        # The opaque route's calls went upstream with a token the provider
        # issued for it by token exchange (it prints each one): one
        # exchange for the Python client's one token, however many calls.
        exchanges = [line for line in provider.log if line.startswith("TOKEN-EXCHANGE ok")]
        ok = len(exchanges) == 1 and exchanges[0].endswith(f"actor=sluice aud={upstream}")
        results.append({"client": "oidc-provider", "check": "token-exchange-for-the-upstream",
                        "status": "pass" if ok else "fail", "detail": "; ".join(exchanges) or "no exchange"})
        if any(r["status"] != "pass" for r in results):
            print(f"sluice log: {proxy.tail(20)}", file=sys.stderr)
            print(f"oidc-provider log: {provider.tail(20)}", file=sys.stderr)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        results.append({"client": "-", "check": "setup", "status": "fail", "detail": str(e)})
    finally:
        kill_all()
        tmp.cleanup()
    for r in results:
        print(f"{r['status']:4}  {r['client']}  {r['check']}: {r['detail']}")
    passed = sum(r["status"] == "pass" for r in results)
    failed = len(results) - passed
    print(f"auth interop: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
