"""sluice hook: validate tools/call arguments against rules from the config.

Config (JSON):

    {"rules": {
        "add": {"a": {"type": "number", "max": 1000}, "b": {"type": "number"}},
        "*":   {"max_string_length": 10000}
    }}

`rules` maps a tool name (or "*" for every tool) to that tool's rules. Inside,
each key names an argument and holds its constraints, except two tool-wide
options:

    max_string_length     no string anywhere in the arguments (nested too)
                          may be longer than this many characters
    additional_arguments  false: refuse arguments that no rule names

Argument constraints (all optional):

    type        "string" | "number" | "integer" | "boolean" | "object" |
                "array" | "null", or a list of them
    required    true: the argument must be present
    min, max    bounds for a number
    min_length, max_length
                bounds on a string's characters or an array's items
    enum        the list of allowed values
    pattern     a regular expression the whole string must match

A call that breaks a rule is answered with JSON-RPC error -32602 (invalid
params) whose data names the tool, the argument and the rule; it never
reaches the upstream. Everything else passes unchanged.
"""

import json
import re
from functools import cached_property

from sluice_hook import Hook, Verdict, export_hook, host

INVALID_PARAMS = -32602
TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
CONSTRAINTS = ("type", "required", "min", "max", "min_length", "max_length", "enum", "pattern")


class ConfigError(Exception):
    pass


class Broken(Exception):
    """A rule the arguments break; `data` is the error's data but the tool."""

    def __init__(self, argument, rule, message, expected=None, path=None):
        super().__init__(message)
        self.data = {"argument": argument, "rule": rule}
        if expected is not None:
            self.data["expected"] = expected
        if path is not None:
            self.data["path"] = path


def json_type(value):
    # bool is an int in Python; JSON keeps them apart.
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def type_matches(want, value):
    got = json_type(value)
    if want == "number":
        return got in ("number", "integer")
    if want == "integer":
        return got == "integer" or (got == "number" and value.is_integer())
    return want == got


def compile_argument(tool, name, spec):
    where = f"rules.{tool}.{name}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be an object of constraints")
    for key in spec:
        if key not in CONSTRAINTS:
            raise ConfigError(f"{where}: unknown constraint {key!r}")
    types = spec.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not isinstance(types, list) or any(t not in TYPES for t in types):
            raise ConfigError(f"{where}.type must be one of {', '.join(TYPES)} or a list of them")
    for key in ("min", "max"):
        if key in spec and not is_number(spec[key]):
            raise ConfigError(f"{where}.{key} must be a number")
    for key in ("min_length", "max_length"):
        if key in spec and (not isinstance(spec[key], int) or isinstance(spec[key], bool)):
            raise ConfigError(f"{where}.{key} must be an integer")
    if "enum" in spec and not isinstance(spec["enum"], list):
        raise ConfigError(f"{where}.enum must be a list")
    pattern = None
    if "pattern" in spec:
        try:
            pattern = re.compile(spec["pattern"])
        except (re.error, TypeError) as e:
            raise ConfigError(f"{where}.pattern: {e}") from None
    return {**spec, "type": types, "pattern": pattern}


def compile_rules(text):
    try:
        config = json.loads(text) if text.strip() else {}
    except ValueError as e:
        raise ConfigError(f"config is not JSON: {e}") from None
    if not isinstance(config, dict) or not isinstance(config.get("rules", {}), dict):
        raise ConfigError('config must be {"rules": {tool: {argument: {...}}}}')
    rules = {}
    for tool, raw in config.get("rules", {}).items():
        if not isinstance(raw, dict):
            raise ConfigError(f"rules.{tool} must be an object")
        compiled = {"arguments": {}, "max_string_length": None, "additional_arguments": True}
        for key, value in raw.items():
            if key == "max_string_length":
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ConfigError(f"rules.{tool}.max_string_length must be a count")
                compiled[key] = value
            elif key == "additional_arguments":
                if not isinstance(value, bool):
                    raise ConfigError(f"rules.{tool}.additional_arguments must be true or false")
                compiled[key] = value
            else:
                compiled["arguments"][key] = compile_argument(tool, key, value)
        rules[tool] = compiled
    return rules


def check_strings(argument, value, limit, path):
    if isinstance(value, str):
        if len(value) > limit:
            raise Broken(argument, "max_string_length",
                         f"a string in argument {argument!r} is longer than {limit} characters",
                         limit, path)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_strings(argument, item, limit, f"{path}/{i}")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_strings(argument, key, limit, path)
            check_strings(argument, item, limit, f"{path}/{key}")


def check_argument(name, spec, present, value):
    if not present:
        if spec.get("required"):
            raise Broken(name, "required", f"argument {name!r} is required", True)
        return
    types = spec["type"]
    if types and not any(type_matches(t, value) for t in types):
        want = " or ".join(types)
        raise Broken(name, "type", f"argument {name!r} must be {want}, not {json_type(value)}",
                     types[0] if len(types) == 1 else types)
    if is_number(value):
        if "min" in spec and value < spec["min"]:
            raise Broken(name, "min", f"argument {name!r} must be at least {spec['min']}", spec["min"])
        if "max" in spec and value > spec["max"]:
            raise Broken(name, "max", f"argument {name!r} must be at most {spec['max']}", spec["max"])
    if isinstance(value, (str, list)):
        what = "characters" if isinstance(value, str) else "items"
        if "min_length" in spec and len(value) < spec["min_length"]:
            raise Broken(name, "min_length",
                         f"argument {name!r} needs at least {spec['min_length']} {what}",
                         spec["min_length"])
        if "max_length" in spec and len(value) > spec["max_length"]:
            raise Broken(name, "max_length",
                         f"argument {name!r} allows at most {spec['max_length']} {what}",
                         spec["max_length"])
    if "enum" in spec and value not in spec["enum"]:
        raise Broken(name, "enum", f"argument {name!r} must be one of {json.dumps(spec['enum'])}",
                     spec["enum"])
    pattern = spec["pattern"]
    if pattern is not None and not (isinstance(value, str) and pattern.fullmatch(value)):
        raise Broken(name, "pattern", f"argument {name!r} must match {pattern.pattern!r}",
                     pattern.pattern)


def check(rules, arguments):
    for name, spec in rules["arguments"].items():
        check_argument(name, spec, name in arguments, arguments.get(name))
    if not rules["additional_arguments"]:
        for name in arguments:
            if name not in rules["arguments"]:
                raise Broken(name, "additional_arguments", f"argument {name!r} is not allowed")
    limit = rules["max_string_length"]
    if limit is not None:
        for name, value in arguments.items():
            check_strings(name, value, limit, f"/{name}")


def reject(tool, message, data):
    return Verdict.reject(INVALID_PARAMS, f"Invalid params for tool {tool!r}: {message}", {"tool": tool, **data})


class ArgValidator(Hook):
    @cached_property
    def rules(self):
        # Parsed once per instance (a warm instance keeps them).
        return compile_rules(host.config())

    def methods(self):
        # Called once at load: a bad config fails the load with its reason.
        self.rules
        # Arguments are checked on the way in only.
        return ["tools/call@request"]

    def on_request(self, ctx, request):
        call = request.tool_call()
        if call is None:
            return Verdict.CONTINUE
        tool, arguments = call.name, call.arguments
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            return reject(tool, "arguments must be an object", {"rule": "type", "expected": "object"})
        for key in ("*", tool):
            if key in self.rules:
                try:
                    check(self.rules[key], arguments)
                except Broken as b:
                    host.info(f"rejected tools/call {tool}: {b}")
                    return reject(tool, str(b), b.data)
        return Verdict.CONTINUE


Handler = export_hook(ArgValidator)
