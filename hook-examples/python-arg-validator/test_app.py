"""The validator's tests, natively under CPython with the SDK's harness:
`../sluice-hook-py/test.sh .` (runtime/tests/hooks_guests.rs runs the built
component on the same cases)."""

import re
import unittest

from sluice_hook import Level, Verdict
from sluice_hook.testing import Call

from app import ArgValidator, ConfigError

RULES = Call().config({"rules": {
    "add": {"a": {"type": "number", "max": 1000}, "b": {"type": "number", "required": True}},
    "mode": {"level": {"enum": ["low", "high"]}, "tag": {"pattern": "[a-z]+"}, "additional_arguments": False},
    "*": {"max_string_length": 10000},
}})


def call(tool, arguments, **params):
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments, **params}}


class Validator(unittest.TestCase):
    def passes(self, tool, arguments):
        self.assertIs(RULES.request(ArgValidator, call(tool, arguments)).verdict, Verdict.CONTINUE, arguments)

    def refused(self, tool, arguments):
        """The error's data; the message names the tool and the argument."""
        out = RULES.request(ArgValidator, call(tool, arguments))
        self.assertEqual(out.verdict.kind, "reject", arguments)
        error = out.verdict.error
        self.assertEqual(error.code, -32602)
        data = error.data_value
        self.assertTrue(error.message.startswith(f"Invalid params for tool {tool!r}: "), error.message)
        if "argument" in data:
            self.assertIn(repr(data["argument"]), error.message)
        return data

    def test_bounds_types_and_required(self):
        self.passes("add", {"a": 999.5, "b": -3})
        self.assertEqual(self.refused("add", {"a": 1001, "b": 1}),
                         {"tool": "add", "argument": "a", "rule": "max", "expected": 1000})
        self.assertEqual(self.refused("add", {"a": "12", "b": 1})["rule"], "type")
        # A JSON true is not a number, even though Python's bool is an int.
        self.assertEqual(self.refused("add", {"a": True, "b": 1})["rule"], "type")
        self.assertEqual(self.refused("add", {"a": 1}),
                         {"tool": "add", "argument": "b", "rule": "required", "expected": True})

    def test_the_star_rule_applies_to_every_tool_nested_strings_too(self):
        self.assertEqual(self.refused("echo", {"msg": {"parts": ["a", "x" * 10_001]}}),
                         {"tool": "echo", "argument": "msg", "rule": "max_string_length",
                          "expected": 10000, "path": "/msg/parts/1"})
        self.passes("echo", {"text": "x" * 10_000})

    def test_enum_pattern_and_additional_arguments(self):
        self.assertEqual(self.refused("mode", {"level": "mid"})["rule"], "enum")
        self.assertEqual(self.refused("mode", {"tag": "ABC"})["rule"], "pattern")
        self.assertEqual(self.refused("mode", {"level": "low", "x": 1}),
                         {"tool": "mode", "argument": "x", "rule": "additional_arguments"})
        self.passes("mode", {"level": "high", "tag": "abc"})

    def test_arguments_that_are_no_object(self):
        self.assertEqual(self.refused("add", [1, 2]), {"tool": "add", "rule": "type", "expected": "object"})
        # Absent or null arguments are no arguments.
        self.assertEqual(self.refused("add", None)["rule"], "required")
        self.passes("echo", None)

    def test_a_refusal_is_logged(self):
        out = RULES.request(ArgValidator, call("add", {"a": 5000, "b": 1}))
        self.assertEqual(out.logs, [(Level.INFO, "rejected tools/call add: argument 'a' must be at most 1000")])

    def test_methods_and_config(self):
        self.assertEqual(RULES.methods(ArgValidator), ["tools/call@request"])
        self.assertEqual(Call().methods(ArgValidator), ["tools/call@request"], "no config: no rules")
        self.assertIs(Call().request(ArgValidator, call("add", {"a": "x"})).verdict, Verdict.CONTINUE)
        # A bad config fails the load (methods()) with its reason.
        for config, why in [("{", "config is not JSON"),
                            ({"rules": {"add": {"a": {"type": "float"}}}}, "rules.add.a.type must be one of"),
                            ({"rules": {"add": {"a": {"maximum": 1}}}}, "unknown constraint 'maximum'"),
                            ({"rules": {"add": {"a": {"pattern": "("}}}}, "rules.add.a.pattern"),
                            ({"rules": []}, 'config must be {"rules"')]:
            with self.subTest(config=config), self.assertRaisesRegex(ConfigError, re.escape(why)):
                Call().config(config).methods(ArgValidator)


if __name__ == "__main__":
    unittest.main()
