"""In-sandbox Lambda runtime client for python3.X functions (stdlib only, Python 3.9 to 3.13).

The zygote of a python3.X environment imports this module before forking, then calls
``main(handler)`` in the forked child with cwd=/var/task, ``os.environ`` holding the complete
Lambda environment and ``sys.path`` holding /var/task and the layer directories. ``main`` never
returns: it loads the handler, then loops over the Runtime API (GET next, POST response or error).

What a handler can observe is modelled on ``awslambdaric`` 4.2.2 (the RIC of the managed python
runtimes): the context object, the error payloads and their messages, the log line formats, the
``_X_AMZN_TRACE_ID`` handling and the JSON encoding rules. Deliberate differences:

* stdout is line buffered and flushed before each post instead of being wrapped in an object that
  flushes on every write; ``sys.stdout`` stays a real ``io.TextIOWrapper``.
* in stdout mode a multi-line log record has its inner ``\\n`` replaced by ``\\r`` so a line based
  collector keeps it whole (AWS frames records on ``_LAMBDA_TELEMETRY_LOG_FD`` instead; when that
  variable is set we frame too).
* simplejson's ``namedtuple_as_object`` is not replicated (namedtuples encode as arrays).
* SnapStart hooks, multi-concurrency (``AWS_LAMBDA_MAX_CONCURRENCY``) and the restore endpoints are
  not implemented.

Import cost matters (the zygote imports us and every fork inherits it), so module level code only
defines things and imports stdlib modules that the invoke path needs anyway.
"""

from __future__ import annotations

import contextlib
import ctypes
import decimal
import importlib
import json
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from _brazier_rt_context import LambdaContext, _client_context, _Fault, _identity
from _brazier_rt_http import _ConnectionLost, _RuntimeConnection

__all__ = ["LambdaContext", "main"]

_NEXT_PATH = "/2018-06-01/runtime/invocation/next"
_INVOKE_PREFIX = "/2018-06-01/runtime/invocation/"
_INIT_ERROR_PATH = "/2018-06-01/runtime/init/error"
_CT_JSON = "Content-Type: application/json\r\n"
_CT_UNKNOWN = "Content-Type: application/unknown\r\n"
# awslambdaric's encoder stops escaping non-ASCII characters from python3.12 on.
_UNICODE_JSON_ENVS = frozenset("AWS_Lambda_python3." + minor for minor in ("12", "13", "14", "15"))
_ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
_XRAY_CAUSE_HEADER = "Lambda-Runtime-Function-XRay-Error-Cause"
_XRAY_CAUSE_MAX = 1024 * 1024  # awslambdaric drops the X-Ray cause header at 1 MiB
_TRACE_ENV = "_X_AMZN_TRACE_ID"
_NBSP = "\u00a0"  # Lambda indents logged stack lines with NO-BREAK SPACE
_THIS_FILE = __file__
_UNHANDLED_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function code. "
    "However, in rare cases, a Lambda runtime update can cause unexpected function behavior. For "
    "functions using managed runtimes, runtime updates can be triggered by a function change, or "
    "can be applied automatically. To determine if the runtime has been updated, check the "
    "runtime version in the INIT_START log entry. If this error correlates with a change in the "
    "runtime version, you may be able to mitigate this error by temporarily rolling back to the "
    "previous runtime version. For more information, see "
    "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html\r"
)

# Per-invoke state read by the logging filter. Module globals (not attributes of an object) keep
# the hot path at one STORE_GLOBAL each.
_request_id: str | None = None
_tenant_id: str | None = None
# Set once by main() from AWS_EXECUTION_ENV, like awslambdaric's Encoder.
_ensure_ascii = True


# ----------------------------------------------------------------------------------------------
# The context object
# ----------------------------------------------------------------------------------------------


_DEC_MARK = "\x00brazier-decimal\x00"
_DEC_RE = re.compile(r'"\\u0000brazier-decimal\\u0000([^"\\]*)"')


class _Encoder:
    __slots__ = ("_enc", "saw_decimal")

    def __init__(self, ensure_ascii: bool) -> None:
        self.saw_decimal = False
        self._enc = json.JSONEncoder(
            ensure_ascii=ensure_ascii, allow_nan=True, default=self._default
        )

    def _default(self, obj: Any) -> Any:
        if isinstance(obj, decimal.Decimal):
            if obj.is_nan():
                return float("nan")
            self.saw_decimal = True
            return _DEC_MARK + str(obj)
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    def encode(self, obj: Any) -> str:
        out = self._enc.encode(obj)
        if self.saw_decimal:
            self.saw_decimal = False
            out = _DEC_RE.sub(r"\1", out)
        return out


# ----------------------------------------------------------------------------------------------
# Logging
# ----------------------------------------------------------------------------------------------

_TEXT_FMT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
_TEXT_DATEFMT = "%Y-%m-%dT%H:%M:%S"
_JSON_DATEFMT = "%Y-%m-%dT%H:%M:%SZ"
_TEXT_FRAME = 0xA55A0003
_JSON_FRAME = 0xA55A0002
# Python level -> framed-protocol level mask (DEBUG 8, INFO 12, WARN 16, ERROR 20, FATAL 24)
_LEVEL_MASK = {0: 0, 10: 8, 20: 12, 30: 16, 40: 20, 50: 24}
_RESERVED = frozenset(
    (
        "name",
        "msg",
        "args",
        "levelname",
        "levelno",
        "pathname",
        "filename",
        "module",
        "exc_info",
        "exc_text",
        "stack_info",
        "lineno",
        "funcName",
        "created",
        "msecs",
        "relativeCreated",
        "thread",
        "threadName",
        "processName",
        "process",
        "aws_request_id",
        "tenant_id",
        "_frame_type",
    )
)


def _level_bucket(levelno: int) -> int:
    return min(50, max(0, levelno)) // 10 * 10


class _StdoutSink:
    """Writes records to stdout, one line each: inner newlines become ``\\r``."""

    def log(self, msg: str, frame_type: int | None = None) -> None:
        if msg.endswith("\n"):
            msg = msg[:-1]
        if "\n" in msg:
            msg = msg.replace("\n", "\r")
        # Looked up per call: the handler may have replaced sys.stdout.
        sys.stdout.write(msg + "\n")

    def log_error(self, lines: list[str]) -> None:
        sys.stdout.write("\r".join(lines) + "\n")


class _FramedSink:
    """The framed telemetry protocol (§4.4): type, length, timestamp in µs, message; big-endian."""

    def __init__(self, fd: int, error_frame: int) -> None:
        self._fd = fd
        self._error_frame = error_frame

    def log(self, msg: str, frame_type: int | None = None) -> None:
        data = msg.encode("utf-8")
        head = (frame_type or _TEXT_FRAME).to_bytes(4, "big") + len(data).to_bytes(4, "big")
        head += (time.time_ns() // 1000).to_bytes(8, "big")
        os.write(self._fd, head + data)

    def log_error(self, lines: list[str]) -> None:
        self.log("\n".join(lines), self._error_frame)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = _request_id or ""
        record.tenant_id = _tenant_id
        return True


class _LambdaHandler(logging.Handler):
    def __init__(self, sink: _StdoutSink | _FramedSink, json_mode: bool) -> None:
        super().__init__()
        self.log_sink = sink
        self._base = _JSON_FRAME if json_mode else _TEXT_FRAME

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            frame = self._base | _LEVEL_MASK.get(_level_bucket(record.levelno), 0)
            self.log_sink.log(msg, frame)
        except Exception:
            self.handleError(record)


class _JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(datefmt=_JSON_DATEFMT)
        self._encode = json.JSONEncoder(ensure_ascii=False, default=str).encode

    def format(self, record: logging.LogRecord) -> str:
        record.levelno = _level_bucket(record.levelno)
        record.levelname = logging.getLevelName(record.levelno)
        msg = record.msg
        exc = record.exc_info
        result: dict[str, Any] = {
            "timestamp": self.formatTime(record, self.datefmt),
            "level": record.levelname,
            "message": msg if isinstance(msg, dict) and not record.args else record.getMessage(),
            "logger": record.name,
            "stackTrace": traceback.format_tb(exc[2]) if exc else None,
            "errorType": exc[0].__name__ if exc and exc[0] else None,
            "errorMessage": str(exc[1]) if exc else None,
            "requestId": getattr(record, "aws_request_id", None),
            "location": f"{record.pathname}:{record.funcName}:{record.lineno}" if exc else None,
        }
        tenant = getattr(record, "tenant_id", None)
        if tenant is not None:
            result["tenantId"] = tenant
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in result:
                result[key] = value
        return self._encode({k: v for k, v in result.items() if v is not None}) + "\n"


def _setup_logging(json_mode: bool, level: str) -> _StdoutSink | _FramedSink:
    error_frame = (_JSON_FRAME if json_mode else _TEXT_FRAME) | 20
    fd = os.environ.pop("_LAMBDA_TELEMETRY_LOG_FD", None)
    sink: _StdoutSink | _FramedSink
    sink = _FramedSink(int(fd), error_frame) if fd is not None else _StdoutSink()
    # awslambdaric sets this process-wide, so user formatters print UTC too.
    logging.Formatter.converter = time.gmtime
    handler = _LambdaHandler(sink, json_mode)
    handler.setFormatter(
        _JsonFormatter() if json_mode else logging.Formatter(_TEXT_FMT, _TEXT_DATEFMT)
    )
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    if level and isinstance(logging.getLevelName(level), int):
        root.setLevel(level)
    root.addHandler(handler)
    return sink


def _log_error(sink: _StdoutSink | _FramedSink, json_mode: bool, err: dict[str, Any]) -> None:
    if json_mode:
        stamp = time.strftime(_JSON_DATEFMT, time.gmtime())
        sink.log_error([_to_json({"timestamp": stamp, "level": "ERROR", **err})])
        return
    etype = err.get("errorType")
    emsg = err.get("errorMessage")
    head = "[ERROR]"
    if etype:
        head += " " + etype
    if emsg:
        if etype:
            head += ":"
        head += " " + emsg
    lines = [head]
    trace = err.get("stackTrace")
    if trace is not None:
        lines.append("Traceback (most recent call last):")
        for element in trace:
            if element == "":
                lines.append("")
                continue
            for line in element.splitlines():
                stripped = line.lstrip(" ")
                lines.append(_NBSP * (len(line) - len(stripped)) + stripped)
    sink.log_error(lines)


def _to_json(obj: Any, ensure_ascii: bool | None = None) -> str:
    """awslambdaric's ``to_json``: ASCII-escaped unless the execution env is python3.12 or later."""
    if ensure_ascii is None:
        ensure_ascii = _ensure_ascii
    return json.dumps(obj, ensure_ascii=ensure_ascii, allow_nan=True, default=str)


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------


def _make_error(
    msg: str, etype: str, trace: list[str] | None, request_id: str = ""
) -> dict[str, Any]:
    return {
        "errorMessage": msg or "",
        "errorType": etype or "",
        "requestId": request_id,
        "stackTrace": trace or [],
    }


def _user_frames(tb: Any) -> list[tuple[str, int, str, str | None]]:
    """Frames of a traceback as tuples, minus the leading frames of this file."""
    frames = [(f.filename, f.lineno or 0, f.name, f.line) for f in traceback.extract_tb(tb)]
    for i, frame in enumerate(frames):
        if frame[0] != _THIS_FILE:
            return frames[i:]
    return frames


def _format_frames(frames: list[tuple[str, int, str, str | None]]) -> list[str]:
    # format_list on plain tuples gives the classic two-line form without 3.11+ caret lines,
    # exactly what awslambdaric puts in stackTrace.
    return traceback.format_list(frames)


def _xray_cause(etype: str, msg: str, frames: list[tuple[str, int, str, str | None]]) -> str:
    stack = [{"label": f[2], "path": f[0], "line": f[1]} for f in frames]
    cause = {
        "working_directory": os.getcwd(),
        "exceptions": [{"message": msg, "type": etype, "stack": stack}],
        "paths": list({f[0] for f in frames}),
    }
    return _to_json(cause, ensure_ascii=True)  # an HTTP header value must stay latin-1


# ----------------------------------------------------------------------------------------------
# Loading the handler
# ----------------------------------------------------------------------------------------------


def _load_handler(handler: str) -> Callable[[Any, LambdaContext], Any]:
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise _Fault("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {e}") from None
    if modname.split(".")[0] in sys.builtin_module_names:
        raise _Fault(
            "Runtime.BuiltInModuleConflict",
            f"Cannot use built-in module {modname} as a handler module",
        )
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise _Fault(
            "Runtime.ImportModuleError", f"Unable to import module '{modname}': {e}"
        ) from None
    except SyntaxError as e:
        trace = [f'  File "{e.filename}" Line {e.lineno}\n    {e.text}']
        raise _Fault(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{modname}': {e}", trace
        ) from None
    try:
        return getattr(module, fname)  # type: ignore[no-any-return]
    except AttributeError:
        raise _Fault(
            "Runtime.HandlerNotFound", f"Handler '{fname}' missing on module '{modname}'"
        ) from None


# ----------------------------------------------------------------------------------------------
# The Runtime API client
# ----------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------
# The Runtime API transport
# ----------------------------------------------------------------------------------------------


def _fatal(msg: str) -> NoReturn:
    sys.stdout.write(f"[ERROR] Runtime.RuntimeClientError: {msg}\n")
    _exit(1)


def _exit(code: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    # SAFETY: we run in the forked child of a zygote; SystemExit would unwind into the zygote's
    # frames (its finally blocks and atexit hooks belong to the parent's lifecycle). Everything
    # this process owes the platform has been posted and flushed above.
    os._exit(code)


def _configure_streams() -> None:
    # The host reads our stdout from a pipe: flush every line (and explicitly before each post).
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(Exception):  # a replaced stream keeps its own buffering
                reconfigure(line_buffering=True)


def main(handler: str) -> NoReturn:
    """Run the Lambda runtime loop for ``handler`` (``module.function``); never returns.

    Call it in the sandboxed process with cwd=/var/task, ``sys.path`` covering the task root and
    the layers, and ``os.environ`` holding the Lambda environment. Reads AWS_LAMBDA_RUNTIME_API,
    AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_VERSION, AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    AWS_LAMBDA_LOG_GROUP_NAME, AWS_LAMBDA_LOG_STREAM_NAME, AWS_LAMBDA_LOG_FORMAT,
    AWS_LAMBDA_LOG_LEVEL, AWS_EXECUTION_ENV and _LAMBDA_TELEMETRY_LOG_FD (removed once read);
    sets or unsets _X_AMZN_TRACE_ID per invoke. On an init failure it posts /init/error and exits
    with status 1; if the Runtime API fails or answers /next with anything but 200 it exits with 1.
    """
    global _ensure_ascii  # noqa: PLW0603 - set once, read by _to_json on error paths
    env = os.environ
    # The zygote read TZ when it imported time; the function's own TZ (Lambda honours one) is
    # only in this process's environment.
    time.tzset()
    _configure_streams()
    json_mode = (env.get("AWS_LAMBDA_LOG_FORMAT") or "").upper() == "JSON"
    level = (env.get("AWS_LAMBDA_LOG_LEVEL") or "").upper()
    sink = _setup_logging(json_mode, "DEBUG" if level == "TRACE" else level)
    _ensure_ascii = env.get("AWS_EXECUTION_ENV") not in _UNICODE_JSON_ENVS
    LambdaContext.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
    LambdaContext.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
    LambdaContext.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    LambdaContext.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
    LambdaContext.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
    address = env.get("AWS_LAMBDA_RUNTIME_API") or ""
    if address.count(":") < 1 or not address.rpartition(":")[2].isdigit():
        _fatal(f"AWS_LAMBDA_RUNTIME_API must be host:port, got {address!r}")
    conn = _RuntimeConnection(address)

    try:
        fn = _load_handler(handler)
    except Exception as e:
        _init_failed(conn, sink, json_mode, e)
    _Loop(conn, fn, sink, json_mode).run()


def _init_failed(
    conn: _RuntimeConnection, sink: _StdoutSink | _FramedSink, json_mode: bool, e: Exception
) -> NoReturn:
    if isinstance(e, _Fault):
        err = _make_error(e.msg, e.error_type, e.trace)
    else:
        err = _make_error(str(e), type(e).__name__, _format_frames(_user_frames(e.__traceback__)))
    logging.warning(_UNHANDLED_WARNING)
    _log_error(sink, json_mode, err)
    sys.stdout.flush()
    try:
        # awslambdaric sends no Content-Type here, and the error type as a header.
        header = f"{_ERROR_TYPE_HEADER}: {err['errorType'] or 'Runtime.Unknown'}\r\n"
        conn.request("POST", _INIT_ERROR_PATH, _to_json(err).encode("utf-8"), header)
    except (OSError, _ConnectionLost, ValueError) as post_error:
        sys.stdout.write(f"[ERROR] could not post the init error: {post_error}\n")
    _exit(1)


class _TraceVariable:
    """``_X_AMZN_TRACE_ID``, set to a new value on every invoke, without leaking memory.

    ``os.environ[k] = v`` calls glibc's ``setenv``, which keeps every distinct ``name=value``
    string it was ever given in a search tree and never frees one (so that pointers handed out by
    ``getenv`` stay valid). A trace id differs on every invoke: each one leaked ~140 bytes
    (28 MiB per 200,000 invokes; a 128 MB function under steady load would run out of memory
    within the hour), and the tree's search showed up in profiles of the runtime. Instead, the
    C-level variable is one buffer of ours, registered with ``putenv`` (which keeps the pointer,
    not a copy) and rewritten in place; ``os.environ``'s own mapping is updated to match. So
    Python code, C extensions and subprocesses all see the current value, as with ``setenv``.

    If the handler set or deleted the variable itself, the buffer is registered again; a value
    too long for the buffer takes the ``setenv`` path. One instance per process (``get``): the
    environment may point into its buffer for as long as the process lives.
    """

    _instance: _TraceVariable | None = None

    _SIZE = 1024

    def __init__(self, name: str) -> None:
        self._name = name
        self._key = name.encode()
        self._prefix = len(self._key) + 1
        self._buf = ctypes.create_string_buffer(self._key + b"=", self._prefix + self._SIZE)
        self._value_at = ctypes.addressof(self._buf) + self._prefix
        libc = ctypes.CDLL(None)
        self._getenv = libc.getenv
        self._getenv.restype = ctypes.c_void_p
        self._getenv.argtypes = (ctypes.c_char_p,)
        self._putenv = libc.putenv
        self._putenv.argtypes = (ctypes.c_void_p,)
        # os._Environ's mapping of encoded names to encoded values (the same on 3.9-3.13).
        self._data: dict[bytes, bytes] = os.environ._data  # type: ignore[attr-defined]

    @classmethod
    def get(cls) -> _TraceVariable:
        if cls._instance is None:
            cls._instance = cls(_TRACE_ENV)
        return cls._instance

    def set(self, value: str) -> None:
        raw = value.encode(sys.getfilesystemencoding(), "surrogateescape")
        if len(raw) >= self._SIZE or b"\0" in raw:
            os.environ[self._name] = value
            return
        ctypes.memmove(self._value_at, raw + b"\0", len(raw) + 1)
        if self._getenv(self._key) != self._value_at:
            self._putenv(ctypes.addressof(self._buf))
        self._data[self._key] = raw

    def unset(self) -> None:
        if self._key in self._data or self._getenv(self._key):
            os.environ.pop(self._name, None)
            os.unsetenv(self._name)


class _Loop:
    """GET /next, run the handler, POST the outcome; forever."""

    def __init__(
        self,
        conn: _RuntimeConnection,
        fn: Callable[[Any, LambdaContext], Any],
        sink: _StdoutSink | _FramedSink,
        json_mode: bool,
    ) -> None:
        self.conn = conn
        self.fn = fn
        self.sink = sink
        self.json_mode = json_mode
        self.encode = _Encoder(_ensure_ascii).encode
        self.trace = _TraceVariable.get()

    def run(self) -> NoReturn:
        once = self.once
        while True:
            once()

    def once(self) -> None:
        """One invocation: GET /next, run the handler, POST its outcome."""
        global _request_id, _tenant_id  # noqa: PLW0603 - read by the logging filter
        conn = self.conn
        try:
            status, headers, body = conn.get(_NEXT_PATH)
        except (OSError, _ConnectionLost, ValueError) as e:
            _fatal(f"Failed to get next invocation: {e}")
        if status != 200:
            _fatal(f"/next answered {status}: {body[:200]!r}")
        rid = headers.get("lambda-runtime-aws-request-id")
        if not rid:
            _fatal("/next answered without Lambda-Runtime-Aws-Request-Id")
        _request_id = rid
        _tenant_id = headers.get("lambda-runtime-aws-tenant-id")
        trace = headers.get("lambda-runtime-trace-id")
        if trace is not None:
            self.trace.set(trace)
        else:
            self.trace.unset()
        path, out, extra = self.invoke(rid, headers, body)
        # The invoke's output reaches the host before its result. suppress() costs ~0.3 µs;
        # a handler may have closed or replaced stdout.
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        try:  # and ask for the next event in the same write
            status, _, answer = conn.request("POST", path, out, extra, then_get=_NEXT_PATH)
        except (OSError, _ConnectionLost, ValueError) as e:
            _fatal(f"Failed to post the result of {rid}: {e}")
        if status != 202:
            # e.g. 413: the platform already fails the invoke; keep serving like the RIE
            # expects rather than dying.
            sys.stdout.write(f"[WARNING] Runtime API answered {status} for {rid}: {answer!r}\n")

    def invoke(self, rid: str, headers: dict[str, str], body: bytes) -> tuple[str, bytes, str]:
        """Run the handler; returns the path, body and extra header lines of the post."""
        try:
            result = self.fn(self.event(headers, body), self.context(rid, headers))
            if result is None:
                return f"{_INVOKE_PREFIX}{rid}/response", b"null", _CT_JSON
            if isinstance(result, bytes):
                return f"{_INVOKE_PREFIX}{rid}/response", result, _CT_UNKNOWN
            try:
                out = self.encode(result).encode("utf-8")
            except Exception as e:
                raise _Fault("Runtime.MarshalError", f"Unable to marshal response: {e}") from None
            return f"{_INVOKE_PREFIX}{rid}/response", out, _CT_JSON
        except _Fault as f:
            err = _make_error(f.msg, f.error_type, f.trace, rid)
            cause = _xray_cause("LambdaValidationError", f.msg, [])
        except Exception as e:
            frames = _user_frames(e.__traceback__)
            etype, msg = type(e).__name__, str(e)
            err = _make_error(msg, etype, _format_frames(frames), rid)
            cause = _xray_cause(etype, msg, frames)
        _log_error(self.sink, self.json_mode, err)
        extra = _CT_JSON
        if len(cause) < _XRAY_CAUSE_MAX:
            extra += f"{_XRAY_CAUSE_HEADER}: {cause}\r\n"
        return f"{_INVOKE_PREFIX}{rid}/error", _to_json(err).encode("utf-8"), extra

    @staticmethod
    def event(headers: dict[str, str], body: bytes) -> Any:
        if headers.get("content-type", "application/json") != "application/json":
            return body  # awslambdaric hands non-JSON content types over as bytes
        try:
            return json.loads(body)
        except Exception as e:
            raise _Fault("Runtime.UnmarshalError", f"Unable to unmarshal input: {e}") from None

    @staticmethod
    def context(rid: str, headers: dict[str, str]) -> LambdaContext:
        deadline = headers.get("lambda-runtime-deadline-ms")
        try:
            deadline_ms = int(deadline) if deadline else 0
        except ValueError:
            deadline_ms = 0
        arn = headers.get("lambda-runtime-invoked-function-arn")
        tenant = headers.get("lambda-runtime-aws-tenant-id")
        cc_raw = headers.get("lambda-runtime-client-context")
        ident_raw = headers.get("lambda-runtime-cognito-identity")
        if not cc_raw and not ident_raw:
            return LambdaContext(rid, arn, deadline_ms, None, None, tenant)
        cc, w3c = _client_context(cc_raw) if cc_raw else (None, None)
        ident = _identity(ident_raw) if ident_raw else None
        return LambdaContext(rid, arn, deadline_ms, cc, ident, tenant, w3c)


# ----------------------------------------------------------------------------------------------
# Rehearsal (in the zygote)
# ----------------------------------------------------------------------------------------------

_REHEARSAL_NEXT = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Lambda-Runtime-Aws-Request-Id: 00000000-0000-0000-0000-000000000000\r\n"
    b"Lambda-Runtime-Deadline-Ms: 4102444800000\r\n"
    b"Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:000000000000:function:f\r\n"
    b"Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n"
    b'Content-Length: 12\r\n\r\n{"k": [1.5]}'
)
_REHEARSAL_ACCEPTED = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
    b'{"status":"OK"}'
)


def rehearse(rounds: int = 100) -> None:
    """Run what ``main`` runs, in this process: the zygote calls it once, before it forks.

    Memory, not speed: in a forked environment, the first calls of a function rewrite its bytecode
    (CPython 3.11+ quickens and specialises it in place, counting down inline-cache counters), and
    each such write copies a page that the environment shared with the zygote. Warmed up here,
    those pages stay shared by every environment. Measured with python3.11 (docs/decisions/0006),
    this and the zygote's other preparations take an idle environment from ~3.25 to ~2.85 MiB of
    private memory.

    Nothing of the rehearsal stays behind: the handler is a no-op of ours (tenant code never runs
    in a zygote), the Runtime API is a socketpair, the modules are loaded from a temporary
    directory and forgotten, and the globals, environment variable and logging handlers it
    touches are restored.
    """
    _rehearse_imports()
    _rehearse_invokes(rounds)


def _rehearse_invokes(rounds: int) -> None:
    import socket

    global _request_id, _tenant_id  # noqa: PLW0603 - restored below
    mine, theirs = socket.socketpair()
    conn = _RuntimeConnection("127.0.0.1:9001")
    conn._sock = mine  # the real transport, minus the connect
    root = logging.getLogger()
    handlers, level, converter = list(root.handlers), root.level, logging.Formatter.converter
    trace = os.environ.get(_TRACE_ENV)
    try:
        for _ in range(rounds):
            sink = _setup_logging(False, "")
            for handler in root.handlers[len(handlers) :]:
                root.removeHandler(handler)
            loop = _Loop(conn, _rehearsal_handler, sink, False)
            theirs.sendall(_REHEARSAL_NEXT + _REHEARSAL_ACCEPTED)
            loop.once()
            theirs.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while theirs.recv(65536):  # the two requests the loop sent
                    pass
            theirs.setblocking(True)
    finally:
        conn.close()
        theirs.close()
        _request_id = _tenant_id = None
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.Formatter.converter = converter
        if trace is None:
            os.environ.pop(_TRACE_ENV, None)
        else:
            os.environ[_TRACE_ENV] = trace


_REHEARSAL_MODULE = "import json\n\n\ndef handler(event, context):\n    return json.dumps(event)\n"


def _rehearse_imports(modules: int = 10) -> None:
    """Load ``modules`` handler modules from source, as ``main`` loads a function's handler."""
    import shutil
    import tempfile

    where = tempfile.mkdtemp(prefix="brazier-rehearsal-")
    names = [f"_brazier_rehearsal_{i}" for i in range(modules)]
    try:
        for name in names:
            with open(os.path.join(where, name + ".py"), "w") as f:
                f.write(_REHEARSAL_MODULE)
        sys.path.insert(0, where)
        for name in names:
            _load_handler(name + ".handler")
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(where)
        sys.path_importer_cache.pop(where, None)
        for name in names:
            sys.modules.pop(name, None)
        shutil.rmtree(where, ignore_errors=True)


def _rehearsal_handler(event: Any, context: LambdaContext) -> Any:
    return {"event": event, "left": context.get_remaining_time_in_millis() > 0}
