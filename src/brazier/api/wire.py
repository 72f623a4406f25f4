"""The rest-json wire contract, driven by botocore's Lambda model (2015-03-31).

botocore ships the model AWS generates its SDKs from: routes, locations of every member (uri,
querystring, header, payload, body), types, enums, lengths, ranges and patterns. This module reads
it once and does the server's half of the protocol that botocore does for clients: match a request
to an operation, turn it into a plain ``dict`` of input members (validated against the model the
way the service does, with AWS's ValidationException text), and turn an output ``dict`` back into
status, headers and body. Handlers never see HTTP.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import botocore.session
import regex
from botocore.model import OperationModel, Shape, StructureShape

from brazier import __version__
from brazier.api.query import query_pairs
from brazier.model import jsondoc
from brazier.model.errors import (
    InvalidRequestContentException,
    UnknownOperationException,
    ValidationException,
)
from brazier.model.runtimes import LAMBDA_RUNTIME_ENUM
from brazier.model.semver import RANGE_WIRE_PATTERN

_LABEL = re.compile(r"\{([A-Za-z0-9_]+)(\+?)\}")


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    method: str
    path_regex: re.Pattern[str]
    static_query: tuple[tuple[str, str], ...]
    model: OperationModel
    success_status: int


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    content_type: str | None


def _compile_uri(uri: str) -> tuple[re.Pattern[str], tuple[tuple[str, str], ...]]:
    path, _, query = uri.partition("?")
    static: list[tuple[str, str]] = []
    for part in query.split("&") if query else []:
        key, _, value = part.partition("=")
        static.append((key, value))
    regex = "^"
    pos = 0
    for m in _LABEL.finditer(path):
        regex += re.escape(path[pos : m.start()])
        regex += f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)"
        pos = m.end()
    regex += re.escape(path[pos:]) + "/?$"
    return re.compile(regex), tuple(static)


def _first_route(
    ops: Sequence[Operation], raw_path: str, params: Mapping[str, str]
) -> tuple[Operation, dict[str, str]] | None:
    for op in ops:
        m = op.path_regex.match(raw_path)
        if m is None:
            continue
        if any(params.get(k) != v for k, v in op.static_query if v) or any(
            k not in params for k, _ in op.static_query
        ):
            continue
        return op, {k: unquote(v) for k, v in m.groupdict().items()}
    return None


class ServiceWire:
    """The Lambda API's routes and shapes, loaded once from botocore."""

    def __init__(self, operations: frozenset[str] | None = None) -> None:
        self.service = botocore.session.get_session().get_service_model("lambda")
        by_method: dict[str, list[Operation]] = {}
        missing: dict[str, list[Operation]] = {}  # in the model, not served: named when asked
        for name in self.service.operation_names:
            table = by_method if operations is None or name in operations else missing
            om = self.service.operation_model(name)
            regex, static = _compile_uri(om.http["requestUri"])
            op = Operation(
                name=name,
                method=om.http["method"],
                path_regex=regex,
                static_query=static,
                model=om,
                success_status=int(om.http.get("responseCode", 200)),
            )
            table.setdefault(op.method, []).append(op)
        # Routes with static query requirements first: `GET /layers?find=LayerVersion` must win
        # over `GET /layers`.
        self._routes = {
            m: sorted(ops, key=lambda o: -len(o.static_query)) for m, ops in by_method.items()
        }
        self._missing = {
            m: sorted(ops, key=lambda o: -len(o.static_query)) for m, ops in missing.items()
        }

    def match(self, method: str, raw_path: str, query: str) -> tuple[Operation, dict[str, str]]:
        params = dict(query_pairs(query))
        found = _first_route(self._routes.get(method, ()), raw_path, params)
        if found is not None:
            return found
        # Not served: name the model's operation, or say which model brazier knows, so a client
        # of a newer model sees what it asked for and what answered (issue 15 item 7).
        missing = _first_route(self._missing.get(method, ()), raw_path, params)
        if missing is not None:
            raise UnknownOperationException(
                f"Brazier {__version__} does not implement the Lambda operation {missing[0].name}."
            )
        path = raw_path.split("?", maxsplit=1)[0]
        raise UnknownOperationException(
            f"Unknown operation {method} {path}: not in the Lambda API model"
            f" {self.service.api_version} that brazier {__version__} serves."
        )

    # -- requests -------------------------------------------------------------------------------

    def parse(
        self,
        op: Operation,
        labels: Mapping[str, str],
        query: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> dict[str, Any]:
        """Build and validate the operation's input from the request parts."""
        shape = op.model.input_shape
        if shape is None:
            return {}
        qs: dict[str, list[str]] = {}
        for k, v in query_pairs(query):
            qs.setdefault(k, []).append(v)
        out: dict[str, Any] = {}
        body_members: dict[str, Shape] = {}
        payload_name = shape.serialization.get("payload")
        for name, member in shape.members.items():
            loc = member.serialization.get("location")
            if loc is not None:
                _take_located(out, name, member, labels, qs, headers)
            elif name == payload_name:
                if member.type_name in ("blob", "string"):
                    out[name] = body if member.type_name == "blob" else body.decode()
                elif body:
                    out[name] = _from_json(member, _load_json(body), name)
            else:
                body_members[name] = member
        if body_members and payload_name is None and body:
            doc = _load_json(body)
            if not isinstance(doc, dict):
                raise InvalidRequestContentException("Could not parse request body into json")
            for name, member in body_members.items():
                if name in doc and doc[name] is not None:
                    out[name] = _from_json(member, doc[name], name)
        errors: list[str] = []
        # The service reports the top-level members in reverse name order (recorded:
        # "qualifier" before "functionName", "compatibleRuntimes" before
        # "compatibleArchitectures").
        _validate(shape, dict(sorted(out.items(), reverse=True)), "", errors)
        if errors:
            raise ValidationException(
                f"{len(errors)} validation error{'s' if len(errors) > 1 else ''} detected: "
                + "; ".join(errors)
            )
        return out

    # -- responses ------------------------------------------------------------------------------

    def render(self, op: Operation, result: Mapping[str, Any]) -> Reply:
        shape = op.model.output_shape
        status = op.success_status
        headers: dict[str, str] = {}
        if shape is None:
            return Reply(status, headers, b"", None)
        payload_name = shape.serialization.get("payload")
        doc: dict[str, Any] = {}
        raw: bytes | None = None
        for name, member in shape.members.items():
            if name not in result or result[name] is None:
                continue
            value = result[name]
            loc = member.serialization.get("location")
            if loc == "statusCode":
                status = int(value)
            elif loc == "header":
                headers[member.serialization.get("name", name)] = str(value)
            elif name == payload_name and member.type_name == "blob":
                raw = bytes(value)
            elif name == payload_name:
                doc = _to_json(member, value)
            else:
                doc[name] = _to_json(member, value)
        if raw is not None:
            return Reply(status, headers, raw, "application/json")
        if payload_name is not None and shape.members[payload_name].type_name == "blob":
            return Reply(status, headers, b"", None)
        if status == 204 and not doc:
            return Reply(status, headers, b"", None)
        body = json.dumps(doc, separators=(",", ":")).encode()
        return Reply(status, headers, body, "application/json")


def _take_located(
    out: dict[str, Any],
    name: str,
    member: Shape,
    labels: Mapping[str, str],
    qs: Mapping[str, list[str]],
    headers: Mapping[str, str],
) -> None:
    """Copy one uri/querystring/header member from the request into ``out``."""
    loc = member.serialization["location"]
    wire_name = member.serialization.get("name", name)
    if loc == "uri":
        if wire_name in labels:  # typed like a query value (VersionNumber is a long)
            out[name] = _scalar(member, labels[wire_name], name)
    elif loc == "querystring":
        if wire_name in qs:
            values = qs[wire_name]
            out[name] = values if member.type_name == "list" else _scalar(member, values[0], name)
    elif loc == "header":
        value = headers.get(wire_name.lower())
        if value is not None:
            out[name] = _scalar(member, value, name)
    elif loc == "headers":
        prefix = wire_name.lower()
        found = {k[len(prefix) :]: v for k, v in headers.items() if k.startswith(prefix)}
        if found:
            out[name] = found


def _load_json(body: bytes) -> Any:
    try:
        return jsondoc.loads(body)
    except ValueError as exc:
        raise InvalidRequestContentException(
            f"Could not parse request body into json: {exc}"
        ) from exc


# The service's integers are Java's: a number outside these is not an integer or long to it.
INT_RANGES: dict[str, tuple[int, int]] = {
    "integer": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
}
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]{1,20}")
_DOUBLE_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def parse_integer(text: str, type_name: str = "long") -> int | None:
    """The number in ``text`` as the service reads an integer or long, or None if it is not one."""
    lo, hi = INT_RANGES[type_name]
    if _INTEGER_TEXT.fullmatch(text) and lo <= int(text) <= hi:
        return int(text)
    return None


def _scalar(shape: Shape, text: str, name: str) -> Any:
    t = shape.type_name
    if t in INT_RANGES:
        number = parse_integer(text, t)
        if number is not None:
            return number
    elif t in ("double", "float"):
        if _DOUBLE_TEXT.fullmatch(text):
            return float(text)
    elif t == "boolean":
        return text.lower() == "true"
    else:
        return text
    raise ValidationException(
        f"1 validation error detected: Value '{text}' at '{_camel(name)}' failed to satisfy "
        "constraint: Member must be a number"
    )


def _from_json(shape: Shape, value: Any, path: str) -> Any:
    t = shape.type_name
    if t == "structure" and isinstance(value, dict):
        assert isinstance(shape, StructureShape)
        return {
            k: _from_json(shape.members[k], v, f"{path}.{k}")
            for k, v in value.items()
            if k in shape.members and v is not None
        }
    if t == "list" and isinstance(value, list):
        return [_from_json(shape.member, v, path) for v in value]  # type: ignore[attr-defined]
    if t == "map" and isinstance(value, dict):
        return {k: _from_json(shape.value, v, path) for k, v in value.items()}  # type: ignore[attr-defined]
    if t == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError as exc:
            raise InvalidRequestContentException(
                f"Could not parse request body into json: {path} is not valid base64"
            ) from exc
    if t in INT_RANGES and isinstance(value, int) and not isinstance(value, bool):
        lo, hi = INT_RANGES[t]
        if not lo <= value <= hi:
            raise InvalidRequestContentException(
                f"Could not parse request body into json: Numeric value ({value}) out of range"
                f" of {'int' if t == 'integer' else 'long'}"
            )
    return value


_PLAIN: dict[str, bool] = {}


def _is_plain(shape: Shape) -> bool:
    """True when a value of this shape is already its JSON form (no blob or timestamp inside)."""
    known = _PLAIN.get(shape.name)
    if known is not None:
        return known
    _PLAIN[shape.name] = True  # recursive shapes: assume plain while looking
    t = shape.type_name
    if t in ("blob", "timestamp"):
        plain = False
    elif t == "structure":
        plain = all(_is_plain(m) for m in shape.members.values())  # type: ignore[attr-defined]
    elif t == "list":
        plain = _is_plain(shape.member)  # type: ignore[attr-defined]
    elif t == "map":
        plain = _is_plain(shape.value)  # type: ignore[attr-defined]
    else:
        plain = True
    _PLAIN[shape.name] = plain
    return plain


def _to_json(shape: Shape, value: Any) -> Any:  # noqa: PLR0911 - one return per type
    if _is_plain(shape):
        return value
    t = shape.type_name
    if t == "structure":
        assert isinstance(shape, StructureShape)
        return {
            k: _to_json(shape.members[k], v)
            for k, v in value.items()
            if k in shape.members and v is not None
        }
    if t == "list":
        return [_to_json(shape.member, v) for v in value]  # type: ignore[attr-defined]
    if t == "map":
        return {k: _to_json(shape.value, v) for k, v in value.items()}  # type: ignore[attr-defined]
    if t == "blob":
        return base64.b64encode(bytes(value)).decode()
    if t == "timestamp" and not isinstance(value, (int, float, str)):
        return value.timestamp()
    return value


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "boolean": (bool,),
    "double": (int, float),
    "float": (int, float),
    "blob": (bytes, bytearray),
    "structure": (dict,),
    "map": (dict,),
    "list": (list,),
}

_PATTERNS: dict[str, Any] = {}

# Brazier's extensions of a model pattern, by string shape name: a value matching either pattern
# is valid. The model's pattern still words the error, so AWS's messages are unchanged for values
# that neither accepts. LayerVersionArn (a function's Layers entries, GetLayerVersionByArn's Arn)
# also takes a semver range after the layer name: `arn:aws:lambda:R:A:layer:NAME:^1.4`.
PATTERN_EXTENSIONS: dict[str, str] = {
    "LayerVersionArn": r"arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:layer:[a-zA-Z0-9-_]+:"
    + RANGE_WIRE_PATTERN,
    # LoggingConfig.LogGroup also takes a log group's ARN (of the caller's own account and region
    # only: brazier.model.logs.own_log_group), stored as the group's name.
    "LogGroup": r"arn:aws[a-zA-Z-]*:logs:[a-z0-9-]+:\d{12}:log-group:[\.\-_/#A-Za-z0-9]+(:\*)?",
}


# Where AWS's message names another pattern than the installed model's, by string shape name:
# the recording wins for the words (validation still uses the model's pattern).
PATTERN_WORDING: dict[str, str] = {
    # recorded: test_tag_exceptions (TagResource on "arn:aws:something")
    "TaggableResource": (
        r"arn:(aws[a-zA-Z-]*):lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}"
        r":\d{12}:(function:[a-zA-Z0-9-_]+(:(\$LATEST|[a-zA-Z0-9-_]+))?|layer:([a-zA-Z0-9-"
        r"_]+)|code-signing-config:csc-[a-z0-9]{17}|event-source-mapping:[0-9a-fA-F]{8}-[0"
        r"-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|capacity-provider:[a-"
        r"zA-Z0-9-_]+)"
    ),
}

PATTERN_WORDING["LayerVersionArn"] = (  # recorded: test_layer_exceptions, ..._function_exceptions
    r"(arn:(aws[a-zA-Z-]*)?:lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{"
    r"1}:\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+)|(arn:[a-zA-Z0-9-]+:lambda:::awslayer:[a-z"
    r"A-Z0-9-_]+)"
)

# Enum lists AWS words differently from the installed model, by (shape, member path): the
# recording wins (ListLayers' CompatibleRuntime, recorded: test_layer_exceptions).
ENUM_WORDING: dict[tuple[str, str], tuple[str, ...]] = {
    # recorded: test_lambda_url_invalid_invoke_mode
    ("InvokeMode", "invokeMode"): ("RESPONSE_STREAM", "BUFFERED"),
    ("Runtime", "compatibleRuntime"): (
        "ruby3.5",
        "ruby2.6",
        "dotnetcore1.0",
        "python3.7",
        "nodejs8.10",
        "nasa",
        "ruby2.7",
        "python2.7-greengrass",
        "dotnetcore2.0",
        "python3.8",
        "java21",
        "dotnet6",
        "dotnetcore2.1",
        "python3.9",
        "java11",
        "nodejs6.10",
        "provided",
        "dotnetcore3.1",
        "dotnet8",
        "java25",
        "java17",
        "nodejs",
        "nodejs4.3",
        "java8.al2",
        "go1.x",
        "dotnet10",
        "nodejs20.x",
        "go1.9",
        "byol",
        "nodejs10.x",
        "provided.al2023",
        "nodejs22.x",
        "python3.10",
        "java8",
        "nodejs12.x",
        "python3.11",
        "nodejs24.x",
        "nodejs8.x",
        "python3.12",
        "nodejs14.x",
        "nodejs8.9",
        "nodejs26.x",
        "python3.13",
        "python3.14",
        "nodejs16.x",
        "python3.15",
        "provided.al2",
        "nodejs4.3-edge",
        "nodejs18.x",
        "ruby3.2",
        "python3.4",
        "ruby3.3",
        "ruby3.4",
        "ruby2.5",
        "python3.6",
        "python2.7",
    ),
}

_MATCHED: dict[tuple[str, str], bool] = {}
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _fullmatch(pattern: str, value: str) -> bool:
    # The model's patterns are Java regexes (``\p{L}`` and friends): the ``regex`` module reads
    # them as the service does; ``re`` does not. Answers are memoised: the same function names
    # and qualifiers come back on every invoke, and the long ARN patterns are not cheap.
    key = (pattern, value)
    known = _MATCHED.get(key)
    if known is not None:
        return known
    rx = _PATTERNS.get(pattern)
    if rx is None:
        rx = _PATTERNS[pattern] = regex.compile(pattern)
    matched = rx.fullmatch(value) is not None
    if len(value) <= 256:
        if len(_MATCHED) >= 20_000:
            _MATCHED.clear()
        _MATCHED[key] = matched
    return matched


def _shown(value: Any, shape: Shape | None = None) -> str:
    """A value as the service's Java shows it: ``[a, b]`` for a list, ``{k=v}`` for a map,
    ``1.0`` for a whole double (never Python's repr)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (bytes, bytearray)):
        return "java.nio.HeapByteBuffer"
    if isinstance(value, list):
        member = getattr(shape, "member", None)
        return "[" + ", ".join(_shown(v, member) for v in value) + "]"
    if isinstance(value, dict):
        key, val = getattr(shape, "key", None), getattr(shape, "value", None)
        return "{" + ", ".join(f"{_shown(k, key)}={_shown(v, val)}" for k, v in value.items()) + "}"
    if (
        shape is not None
        and shape.type_name in ("double", "float")
        and isinstance(value, int | float)
    ):
        return str(float(value))
    return str(value)


def _constraints(shape: Shape, *, nullable: bool) -> list[str]:
    """Every constraint of a member shape, worded and ordered as the service lists them when a
    list's member or a map's key or value breaks one of them."""
    meta = shape.metadata
    out: list[str] = []
    enum = getattr(shape, "enum", None)
    if enum:
        out.append(f"Member must satisfy enum value set: [{', '.join(enum)}]")
    what = "length" if shape.type_name in ("string", "list", "map", "blob") else "value"
    if "max" in meta:
        out.append(f"Member must have {what} less than or equal to {meta['max']}")
    if "min" in meta:
        out.append(f"Member must have {what} greater than or equal to {meta['min']}")
    if "pattern" in meta:
        worded = PATTERN_WORDING.get(shape.name, meta["pattern"])
        out.append(f"Member must satisfy regular expression pattern: {worded}")
    if not nullable:
        out.append("Member must not be null")
    return out


def _validate(shape: Shape, value: Any, path: str, errors: list[str]) -> None:
    """Validate like the service does: required, type, enum, length, range, pattern."""
    where = path or ""
    expected = _TYPES.get(shape.type_name)
    if expected is not None and (
        not isinstance(value, expected)
        or (isinstance(value, bool) and shape.type_name != "boolean")
    ):
        errors.append(
            f"Value '{_shown(value)}' at '{where}' failed to satisfy constraint: "
            f"Member must be of type {shape.type_name}"
        )
        return
    if shape.type_name == "structure":
        assert isinstance(shape, StructureShape)
        _validate_structure(shape, value, where, errors)
        return
    _validate_value(shape, value, where, errors)


def _validate_structure(
    shape: StructureShape, value: Mapping[str, Any], where: str, errors: list[str]
) -> None:
    for req in shape.required_members:
        if req not in value and shape.members[req].serialization.get("location") != "uri":
            child = f"{where}.{_camel(req)}" if where else _camel(req)
            errors.append(
                f"Value null at '{child}' failed to satisfy constraint: Member must not be null"
            )
    for name, v in value.items():
        child = f"{where}.{_camel(name)}" if where else _camel(name)
        _validate(shape.members[name], v, child, errors)


def _validate_value(shape: Shape, value: Any, where: str, errors: list[str]) -> None:
    meta = shape.metadata
    shown = "" if meta.get("sensitive") else f" '{_shown(value, shape)}'"
    prefix = f"Value{shown} at '{where}' failed to satisfy constraint: "
    if shape.type_name in ("string", "list", "map", "blob"):
        n = len(value)
        if "min" in meta and n < meta["min"]:
            errors.append(
                prefix + f"Member must have length greater than or equal to {meta['min']}"
            )
        if "max" in meta and n > meta["max"]:
            errors.append(prefix + f"Member must have length less than or equal to {meta['max']}")
    elif shape.type_name in ("integer", "long", "double", "float"):
        if "min" in meta and value < meta["min"]:
            errors.append(prefix + f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            errors.append(prefix + f"Member must have value less than or equal to {meta['max']}")
    if shape.type_name == "string":
        _validate_string(shape, value, where, prefix, errors)
    elif shape.type_name == "list":
        _validate_list(shape, value, where, prefix, errors)
    elif shape.type_name == "map":
        _validate_map(shape, value, where, prefix, errors)


def _validate_list(
    shape: Shape, value: list[Any], where: str, prefix: str, errors: list[str]
) -> None:
    member: Shape = shape.member  # type: ignore[attr-defined]
    if member.type_name == "string":
        # A list of strings is checked as a whole: "Value '[X86_64]' at 'architectures' failed
        # to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value
        # set: [x86_64, arm64], Member must not be null]" (every constraint of the member);
        # runtimes name Lambda's runtime list alone (recorded: test_layer_exceptions).
        found: list[str] = []
        for item in value:
            _validate(member, item, where, found)
        if not found:
            return
        if member.name == "Runtime":
            runtimes = ", ".join(LAMBDA_RUNTIME_ENUM)
            errors.append(prefix + f"Member must satisfy enum value set: [{runtimes}]")
        else:
            listed = ", ".join(_constraints(member, nullable=False))
            errors.append(prefix + f"Member must satisfy constraint: [{listed}]")
        return
    for i, item in enumerate(value):
        _validate(member, item, f"{where}.{i + 1}.member", errors)


def _validate_map(
    shape: Shape, value: dict[Any, Any], where: str, prefix: str, errors: list[str]
) -> None:
    key_shape: Shape = shape.key  # type: ignore[attr-defined]
    value_shape: Shape = shape.value  # type: ignore[attr-defined]
    key_errors: list[str] = []
    value_errors: list[str] = []
    for k, v in value.items():
        _validate_value(key_shape, k, where, key_errors)
        _validate(value_shape, v, where, value_errors)
    # The service lists every constraint of the key or value shape, not only the one broken
    # (recorded: routingConfig.additionalVersionWeights).
    if key_errors:
        listed = ", ".join(_constraints(key_shape, nullable=True))
        errors.append(prefix + f"Map keys must satisfy constraint: [{listed}]")
    if value_errors:
        listed = ", ".join(_constraints(value_shape, nullable=False))
        errors.append(prefix + f"Map value must satisfy constraint: [{listed}]")


# Enums Lambda checks in the service rather than at the edge, with its own exception and text:
# a function's Runtime answers InvalidParameterValueException (control/rules.py
# ``check_runtime``). Layers' CompatibleRuntimes keep the edge's ValidationException.
_SERVICE_CHECKED_ENUMS = frozenset({("Runtime", "runtime")})


def _validate_string(shape: Shape, value: str, where: str, prefix: str, errors: list[str]) -> None:
    meta = shape.metadata
    if _UNSTORABLE.search(value):
        # Brazier's rule (decision 0016): no string reaches a process or the store with a NUL
        # (execve and C strings cut there) or a lone surrogate (not encodable as UTF-8).
        errors.append(
            f"Value at '{where}' failed to satisfy constraint: "
            "Member must not contain NUL or unpaired surrogate characters"
        )
        return
    enum = getattr(shape, "enum", None)
    if enum and value not in enum and (shape.name, where) not in _SERVICE_CHECKED_ENUMS:
        listed = ENUM_WORDING.get((shape.name, where), enum)
        errors.append(prefix + f"Member must satisfy enum value set: [{', '.join(listed)}]")
    pattern = meta.get("pattern")
    extension = PATTERN_EXTENSIONS.get(shape.name)
    if (
        pattern
        and not _fullmatch(pattern, value)
        and not (extension and _fullmatch(extension, value))
    ):
        worded = PATTERN_WORDING.get(shape.name, pattern)
        errors.append(prefix + f"Member must satisfy regular expression pattern: {worded}")
