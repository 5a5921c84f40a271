"""The SDK's own tests, under plain CPython: `./test.sh` (or
`python3 -m unittest discover -s tests -t .` in this directory)."""

import importlib
import json
import sys
import types
import unittest
from dataclasses import dataclass
from enum import Enum
from typing import List, Optional, Tuple

from sluice_hook import Context, Hook, Identity, Level, Message, Phase, RpcError, Scheme, Verdict, _wit, export_hook, host
from sluice_hook.testing import Call, InvalidVerdict


class Guard(Hook):
    def methods(self):
        m = ["tools/call@request", "tools/list@response"]
        if "sampling" in host.config():
            m.append("sampling/createMessage@server-message")
        return m

    def on_request(self, ctx, request):
        call = request.tool_call()
        if call is None:
            return Verdict.CONTINUE
        admin = ctx.identity is not None and ctx.identity.has_scope("admin")
        if call.name == "deploy" and not admin:
            host.info(f"refused deploy for {ctx.session_id} ({ctx.header('X-Team')})")
            return Verdict.reject(-31001, "deploy needs the admin scope", data={"tool": call.name})
        if "path" in call.arguments:
            return request.edited(lambda m: m["params"]["arguments"].update(path="/sandbox"))
        return Verdict.CONTINUE

    def on_response(self, ctx, request, response):
        return response.keep_tools(lambda t: t["name"] != "deploy")

    def on_server_message(self, ctx, message):
        return Verdict.reject(-31002, f"no {message.method}")

    def on_client_answer(self, ctx, request, answer):
        if "secret" in answer.json:
            return Verdict.reject(-31004, "withheld", data={"role": ctx.identity.claim("role")})
        return Verdict.CONTINUE


DEPLOY = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "deploy"}}
ADMIN = Identity("ops", scheme=Scheme.API_KEY, scopes=["admin"])


class Harness(unittest.TestCase):
    def test_a_hook_runs_natively_with_its_config_caller_and_log(self):
        out = Call().session("s-1").header("X-Team", "blue").request(Guard, DEPLOY)
        self.assertEqual(out.verdict, Verdict.reject(-31001, "deploy needs the admin scope", data={"tool": "deploy"}))
        self.assertEqual(out.verdict.error.data, '{"tool":"deploy"}')
        self.assertEqual(out.logs, [(Level.INFO, "refused deploy for s-1 (blue)")])
        out = Call().identity(ADMIN).request(Guard, json.dumps(DEPLOY))
        self.assertIs(out.verdict, Verdict.CONTINUE)
        self.assertEqual(out.logs, [])

        self.assertEqual(len(Call().methods(Guard)), 2)
        self.assertEqual(len(Call().config("sampling").methods(Guard)), 3)

    def test_setters_return_a_new_call(self):
        base = Call().config("sampling")
        with_session = base.session("s-2")
        self.assertIsNone(base._ctx.session_id)
        self.assertEqual(with_session._config, "sampling")
        self.assertEqual(base.header("a", "1")._ctx.headers, [("a", "1")])
        self.assertEqual(base._ctx.headers, [])

    def test_typed_views_and_edits(self):
        call = {"jsonrpc": "2.0", "id": "é", "method": "tools/call",
                "params": {"name": "read", "arguments": {"path": "/etc"}}}
        out = Call().request(Guard, call)
        self.assertEqual(out.verdict.kind, "replace")
        self.assertEqual(out.verdict.value["params"]["arguments"]["path"], "/sandbox")
        # The id as it came, not escaped: the proxy compares it byte for byte.
        self.assertIn('"id":"é"', out.verdict.json)

        req = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        listed = {"jsonrpc": "2.0", "id": 2, "result": {"tools": [{"name": "read"}, {"name": "deploy"}],
                                                          "nextCursor": "c"}}
        out = Call().response(Guard, req, listed)
        self.assertEqual(out.verdict.value["result"], {"tools": [{"name": "read"}], "nextCursor": "c"})
        listed["result"]["tools"].pop()
        self.assertIs(Call().response(Guard, req, listed).verdict, Verdict.CONTINUE)

        m = Message("tools/call", '{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"a"},'
                                  '{"type":"image"},{"type":"text","text":"b"}]}}')
        self.assertEqual(m.text(), "a\nb")
        self.assertEqual(m.id, 3)
        self.assertIsNone(m.error)
        self.assertIsNone(m.tool_call(), "an answer is no call")
        e = Message("x", '{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"no","data":{"why":"é"}}}')
        self.assertEqual(e.error, RpcError(-1, "no", '{"why":"é"}'))
        self.assertEqual(e.error.data_value, {"why": "é"})
        self.assertIsNone(e.result)
        self.assertIsNone(e.tools())
        self.assertIsNone(Message("x", "not json").value)

        bare = Message("tools/call", '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"t"}}')
        self.assertEqual(bare.tool_call().arguments, {})
        self.assertIsNone(Message("tools/call", '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{}}').tool_call())
        # edited() works on a copy: the message itself is unchanged.
        bare.edited(lambda m: m["params"].update(name="u"))
        self.assertEqual(bare.tool_call().name, "t")
        # ... and may return a new message instead of changing the copy.
        self.assertEqual(bare.edited(lambda m: {**m, "params": {"name": "v"}}).value["params"], {"name": "v"})

    def test_server_messages_and_client_answers(self):
        sampling = {"jsonrpc": "2.0", "id": 0, "method": "sampling/createMessage", "params": {}}
        self.assertEqual(Call().server_message(Guard, sampling).verdict,
                         Verdict.reject(-31002, "no sampling/createMessage"))
        elicit = {"jsonrpc": "2.0", "id": 5, "method": "elicitation/create", "params": {}}
        answer = {"jsonrpc": "2.0", "id": 5, "result": {"content": {"name": "secret"}}}
        out = Call().identity(Identity("bob", claims={"role": "dev"})).client_answer(Guard, elicit, answer)
        self.assertEqual(out.verdict.error.data_value, {"role": "dev"})
        answer["result"]["content"]["name"] = "bob"
        self.assertIs(Call().identity(ADMIN).client_answer(Guard, elicit, answer).verdict, Verdict.CONTINUE)

    def test_the_context_each_phase_sees(self):
        seen = []

        class Spy(Hook):
            def methods(self):
                return ["*"]

            def on_request(self, ctx, request):
                seen.append((ctx.phase, request.method))
                return Verdict.CONTINUE

            def on_response(self, ctx, request, response):
                seen.append((ctx.phase, response.method, request.id))
                return Verdict.CONTINUE

        c = Call().upstream("tools").protocol_version("2025-11-25")
        c.request(Spy, DEPLOY)
        c.response(Spy, DEPLOY, {"jsonrpc": "2.0", "id": 1, "result": {}})
        c.server_message(Spy, {"jsonrpc": "2.0", "method": "notifications/progress"})
        self.assertEqual(seen, [(Phase.REQUEST, "tools/call"), (Phase.RESPONSE, "tools/call", 1)])

    def test_identity(self):
        bob = Identity("bob", scopes=["a", "b"], claims={"roles": ["x"]})
        self.assertTrue(bob.has_scope("b"))
        self.assertFalse(bob.has_scope("c"))
        self.assertEqual(bob.claim("roles"), ["x"])
        self.assertIsNone(bob.claim("nope"))
        self.assertIsNone(ADMIN.claim("roles"), "an API key has no claims")
        self.assertEqual(Context(headers=[("x-a", "1"), ("x-a", "2")]).header("X-A"), "1")


class Verdicts(unittest.TestCase):
    def verdict_of(self, verdict, message=DEPLOY, phase="request"):
        class Says(Hook):
            def methods(self):
                return ["*"]

            def on_request(self, ctx, request):
                return verdict

            def on_server_message(self, ctx, m):
                return verdict

        run = Call().request if phase == "request" else Call().server_message
        return run(Says, message).verdict

    def test_builders(self):
        self.assertIs(Verdict.continue_(), Verdict.CONTINUE)
        self.assertEqual(Verdict.respond({"ok": True}).json, '{"ok":true}')
        self.assertEqual(Verdict.respond("text").value, "text")
        self.assertIsNone(Verdict.reject(1, "m").error.data)
        self.assertEqual(repr(Verdict.reject(1, "m", data=[1])), "Verdict.reject(1, 'm', data=[1])")
        with self.assertRaises(ValueError):
            Verdict("allow")
        with self.assertRaises(ValueError):
            Verdict("replace")

    def test_what_the_proxy_takes_passes(self):
        for v in [Verdict.CONTINUE, Verdict.reject(-32602, "bad params"), Verdict.reject(-31000, "no"),
                  Verdict.reject(1, "one", data=None), Verdict.respond({"content": []}),
                  Verdict.replace({**DEPLOY, "params": {"name": "echo"}})]:
            self.assertIs(self.verdict_of(v), v)

    def test_what_the_proxy_refuses_is_an_invalid_verdict(self):
        cases = [
            (None, "returned None, not a sluice_hook.Verdict"),
            ("continue", "not a sluice_hook.Verdict"),
            (Verdict.reject(-32010, "mine"), "error code -32010 is reserved"),
            (Verdict.reject(2**53, "big"), "beyond"),
            (Verdict.reject(True, "bool"), "not an integer"),
            (Verdict("reject", error=RpcError(-1, "m", "{not json")), "data is not JSON"),
            (Verdict("respond", json="{"), "the result is not JSON"),
            (Verdict.replace({**DEPLOY, "id": 2}), "the id 1 became 2"),
            (Verdict.replace({**DEPLOY, "id": 1.0}), "the id 1 became 1.0"),
            (Verdict.replace({**DEPLOY, "method": "tools/list"}), "the method 'tools/call' became 'tools/list'"),
            (Verdict.replace({"jsonrpc": "2.0", "id": 1, "result": {}}), "a request cannot become a answer"),
            (Verdict.replace({"id": 1, "method": "tools/call"}), "not a JSON-RPC 2.0 message"),
            (Verdict("replace", json='{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/call"}'), "duplicate key 'id'"),
        ]
        for verdict, why in cases:
            with self.subTest(verdict=verdict):
                with self.assertRaises(InvalidVerdict) as e:
                    self.verdict_of(verdict)
                self.assertIn(why, str(e.exception))
        note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {}}
        with self.assertRaisesRegex(InvalidVerdict, "cannot be answered"):
            self.verdict_of(Verdict.respond({}), note, phase="server")
        self.assertEqual(self.verdict_of(Verdict.reject(-1, "drop"), note, phase="server").kind, "reject")

    def test_bad_input_and_bad_hooks_say_so(self):
        with self.assertRaisesRegex(ValueError, "not JSON"):
            Call().request(Guard, "{nope")
        with self.assertRaisesRegex(ValueError, "one by one"):
            Call().request(Guard, [DEPLOY])
        with self.assertRaisesRegex(TypeError, "subclass of sluice_hook.Hook"):
            Call().request(object, DEPLOY)
        with self.assertRaisesRegex(TypeError, "subclass of sluice_hook.Hook"):
            export_hook(Guard())

        class NoMethods(Hook):
            pass

        with self.assertRaisesRegex(NotImplementedError, "NoMethods must define methods"):
            Call().methods(NoMethods)

        class OneMethod(Hook):
            def methods(self):
                return "tools/call"

        with self.assertRaisesRegex(TypeError, "not a list of strings"):
            Call().methods(OneMethod)
        # Outside a test and outside a component there is no proxy to ask.
        with self.assertRaisesRegex(RuntimeError, "no proxy here"):
            host.config()
        with self.assertRaisesRegex(TypeError, "not a sluice_hook.Level"):
            Call().request(type("Logs", (Hook,), {"methods": lambda s: ["*"], "on_request": lambda s, c, r: host.log("info", "x")}), DEPLOY)


# ---- the export, against stand-ins for componentize-py's bindings ----
#
# componentize-py generates `wit_world` into the component only. These
# stand-ins have the shapes it generates for sluice:hook@0.2.0 (see
# `componentize-py -d wit -w hook bindings out/`): enums by name,
# dataclasses, `Verdict_*` cases holding `value`. The built component runs
# the real ones (runtime/tests/hooks_guests.rs, hook_cli.rs).


class WitPhase(Enum):
    REQUEST = 0
    RESPONSE = 1
    SERVER_MESSAGE = 2
    CLIENT_ANSWER = 3


class WitScheme(Enum):
    JWT = 0
    INTROSPECTION = 1
    API_KEY = 2


class WitLevel(Enum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


@dataclass
class WitIdentity:
    scheme: WitScheme
    subject: str
    issuer: Optional[str]
    client_id: Optional[str]
    scopes: List[str]
    claims: Optional[str]


@dataclass
class WitContext:
    session_id: Optional[str]
    protocol_version: Optional[str]
    upstream: str
    headers: List[Tuple[str, str]]
    phase: WitPhase
    identity: Optional[WitIdentity]


@dataclass
class WitMessage:
    method: str
    json: str


@dataclass
class WitRpcError:
    code: int
    message: str
    data: Optional[str]


@dataclass
class Verdict_Continue:
    pass


@dataclass
class Verdict_Replace:
    value: str


@dataclass
class Verdict_Reject:
    value: WitRpcError


@dataclass
class Verdict_Respond:
    value: str


class Export(unittest.TestCase):
    def setUp(self):
        wit_types = types.ModuleType("wit_world.imports.types")
        for name, v in dict(Phase=WitPhase, Scheme=WitScheme, Level=WitLevel, Identity=WitIdentity,
                            Context=WitContext, Message=WitMessage, RpcError=WitRpcError,
                            Verdict_Continue=Verdict_Continue, Verdict_Replace=Verdict_Replace,
                            Verdict_Reject=Verdict_Reject, Verdict_Respond=Verdict_Respond).items():
            setattr(wit_types, name, v)
        self.logged = []
        wit_host = types.ModuleType("wit_world.imports.host")
        wit_host.config = lambda: "sampling"
        wit_host.log = lambda level, line: self.logged.append((level, line))
        imports = types.ModuleType("wit_world.imports")
        imports.types, imports.host = wit_types, wit_host
        world = types.ModuleType("wit_world")
        world.imports = imports
        self.modules = {"wit_world": world, "wit_world.imports": imports,
                        "wit_world.imports.types": wit_types, "wit_world.imports.host": wit_host}
        self.saved = {k: sys.modules.get(k) for k in self.modules}
        sys.modules.update(self.modules)
        # As in the component: the bindings are there while the app module
        # (and so the SDK) is imported, and gone when the proxy calls it.
        importlib.reload(_wit)
        for k in self.modules:
            del sys.modules[k]
        self.saved_backend, host._backend = host._backend, None

    def tearDown(self):
        for k, v in self.saved.items():
            if v is not None:
                sys.modules[k] = v
        importlib.reload(_wit)
        self.assertIsNone(_wit.wit, "no bindings under plain CPython")
        host._backend = self.saved_backend

    def ctx(self, phase, identity=None):
        return WitContext("s-1", None, "up", [("x-team", "red")], phase, identity)

    def test_the_export_runs_the_hook_on_the_wit_values(self):
        handler = export_hook(Guard)()
        self.assertEqual(handler.methods(), ["tools/call@request", "tools/list@response",
                                             "sampling/createMessage@server-message"])
        deploy = WitMessage("tools/call", json.dumps(DEPLOY))
        v = handler.on_request(self.ctx(WitPhase.REQUEST), deploy)
        self.assertEqual(v, Verdict_Reject(WitRpcError(-31001, "deploy needs the admin scope", '{"tool":"deploy"}')))
        self.assertEqual(self.logged, [(WitLevel.INFO, "refused deploy for s-1 (red)")])
        admin = WitIdentity(WitScheme.JWT, "ops", "https://idp", "app", ["admin"], '{"role":"dev"}')
        self.assertEqual(handler.on_request(self.ctx(WitPhase.REQUEST, admin), deploy), Verdict_Continue())
        read = dict(DEPLOY, params={"name": "read", "arguments": {"path": "/"}})
        v = handler.on_request(self.ctx(WitPhase.REQUEST), WitMessage("tools/call", json.dumps(read)))
        self.assertIsInstance(v, Verdict_Replace)
        self.assertEqual(json.loads(v.value)["params"]["arguments"]["path"], "/sandbox")
        listed = {"jsonrpc": "2.0", "id": 2, "result": {"tools": [{"name": "deploy"}]}}
        v = handler.on_response(self.ctx(WitPhase.RESPONSE), WitMessage("tools/list", "{}"),
                                WitMessage("tools/list", json.dumps(listed)))
        self.assertEqual(json.loads(v.value)["result"]["tools"], [])
        ping = WitMessage("ping", '{"jsonrpc":"2.0","id":3,"method":"ping"}')
        self.assertEqual(handler.on_server_message(self.ctx(WitPhase.SERVER_MESSAGE), ping),
                         Verdict_Reject(WitRpcError(-31002, "no ping", None)))
        answer = WitMessage("elicitation/create", '{"jsonrpc":"2.0","id":4,"result":{"secret":1}}')
        v = handler.on_client_answer(self.ctx(WitPhase.CLIENT_ANSWER, admin), answer, answer)
        self.assertEqual(v.value.data, '{"role":"dev"}', "the claims reach the hook parsed")

    def test_respond_and_a_handler_left_out(self):
        class Answers(Hook):
            def methods(self):
                return ["ping@server-message"]

            def on_server_message(self, ctx, message):
                assert ctx.phase is Phase.SERVER_MESSAGE and ctx.identity.scheme is Scheme.API_KEY
                return Verdict.respond({})

        handler = export_hook(Answers)()
        key = WitIdentity(WitScheme.API_KEY, "k", None, None, [], None)
        ping = WitMessage("ping", '{"jsonrpc":"2.0","id":3,"method":"ping"}')
        self.assertEqual(handler.on_server_message(self.ctx(WitPhase.SERVER_MESSAGE, key), ping),
                         Verdict_Respond("{}"))
        self.assertEqual(handler.on_request(self.ctx(WitPhase.REQUEST), ping), Verdict_Continue())

    def test_a_handler_that_returns_no_verdict_fails_clearly(self):
        class Forgets(Hook):
            def methods(self):
                return ["*"]

            def on_request(self, ctx, request):
                host.info("forgot to return")

        handler = export_hook(Forgets)()
        with self.assertRaisesRegex(TypeError, r"Forgets.on_request returned None, not a sluice_hook.Verdict"):
            handler.on_request(self.ctx(WitPhase.REQUEST), WitMessage("ping", '{"jsonrpc":"2.0","id":1,"method":"ping"}'))

    def test_one_hook_instance_per_component_instance(self):
        made = []

        class Counts(Hook):
            def __init__(self):
                made.append(self)

            def methods(self):
                return ["*"]

        exported = export_hook(Counts)
        self.assertEqual(made, [], "nothing runs at import (componentize-py pre-initialises the module)")
        exported().methods()
        exported().on_request(self.ctx(WitPhase.REQUEST), WitMessage("ping", "{}"))
        self.assertEqual(len(made), 1)


if __name__ == "__main__":
    unittest.main()
