"""Glue between componentize-py's generated bindings and a :class:`~damson.WorkChain`."""

import io
import linecache
import logging
import os
import sys
import traceback
from typing import Any, Callable, Optional

from wit_world import exports
from wit_world.imports import host
from wit_world.imports import types as wit
from componentize_py_types import Err

from . import process
from .spec import ExitCode, Spec

_SDK_DIR = os.path.dirname(__file__)


def _level(levelno: int) -> wit.LogLevel:
    if levelno >= logging.ERROR:
        return wit.LogLevel.ERROR
    if levelno >= logging.WARNING:
        return wit.LogLevel.WARN
    if levelno >= logging.INFO:
        return wit.LogLevel.INFO
    if levelno >= logging.DEBUG:
        return wit.LogLevel.DEBUG
    return wit.LogLevel.TRACE


class _HostStream(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr``: each line written becomes one host log line. A WASI
    stream would leave a handle in memory that a restored image cannot use."""

    def __init__(self, level: wit.LogLevel) -> None:
        self._level = level
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            host.log(self._level, line)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            host.log(self._level, self._partial)
            self._partial = ""


class _HostHandler(logging.Handler):
    """Sends ``logging`` records to the host's log at the matching level."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            host.log(_level(record.levelno), self.format(record))
        except Exception:
            self.handleError(record)


def _redirect_output() -> None:
    # Done at the first call rather than at import: componentize-py imports the plugin while it
    # builds the component, where the host is not there to log to.
    if isinstance(sys.stdout, _HostStream):
        return
    sys.stdout = _HostStream(wit.LogLevel.INFO)
    sys.stderr = _HostStream(wit.LogLevel.WARN)
    root = logging.getLogger()
    root.handlers[:] = [_HostHandler()]
    root.setLevel(logging.DEBUG)


def _fail(error: BaseException) -> None:
    """Report ``error`` with its traceback through the host, then trap: the call fails and the
    process ends EXCEPTED with the traceback as its message."""
    # The SDK's own frames above the plugin's code say nothing to its author.
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_SDK_DIR):
        tb = tb.tb_next
    if tb is not None:
        error = error.with_traceback(tb)
    frames = traceback.extract_tb(error.__traceback__)
    # Where the plugin's code was when it failed, not where the SDK raised for it.
    own = [f for f in frames if not f.filename.startswith(_SDK_DIR)] or frames
    location = f"{own[-1].filename}:{own[-1].lineno}" if own else None
    message = "".join(traceback.format_exception(error)).rstrip()
    host.report_panic(message, location)
    # abort() traps at once, without componentize-py printing the traceback again.
    os.abort()


class _Runtime:
    """The plugin class, its spec (built once) and its process object (made at the first step)."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.spec: Optional[Spec] = None
        self.instance: Any = None

    def call(self, function: Callable, *args):
        _redirect_output()
        try:
            if self.spec is None:
                self._build()
            return function(*args)
        except Err:
            raise
        except process.StepError as error:
            # The call's error, with just its message (and its kind, for retry policies).
            if error.kind is not None:
                host.error_kind(error.kind)
            raise Err(str(error)) from None
        except BaseException as error:
            _fail(error)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()

    def _build(self) -> None:
        spec = Spec(self.cls)
        self.cls.define(spec)
        self.wit, self.outline, self.cls.exit_codes = spec.finish()
        self.spec = spec

    def _process(self):
        if self.instance is None:
            self.instance = self.cls()
        return self.instance

    def describe(self) -> wit.Spec:
        return self.wit

    def run_step(self, name: str) -> wit.StepResult:
        step = self.outline.steps.get(name)
        if step is None:
            raise Err(f"the plugin has no step named '{name}'")
        process.pending_awaits.clear()
        returned = step(self._process())
        if isinstance(returned, process.ToContext):
            process.add_awaits(returned)
            returned = None
        awaits = list(process.pending_awaits)
        process.pending_awaits.clear()
        return wit.StepResult(next=_next(name, returned), awaits=awaits)

    def check_condition(self, name: str) -> bool:
        condition = self.outline.conditions.get(name)
        if condition is None:
            raise Err(f"the plugin has no condition named '{name}'")
        return bool(condition(self._process()))

    def validate(self, path: str, value: str) -> Optional[str]:
        validator = self.spec.validators.get(path)
        if validator is None:
            return f"the plugin has no validator for '{path}'"
        message = validator(process.loads(value))
        return None if message is None else str(message)

    def compute_default(self, path: str) -> str:
        default = self.spec.defaults.get(path)
        if default is None:
            raise Err(f"the plugin has no computed default for '{path}'")
        return process.dumps(default())


def _next(step: str, returned) -> Any:
    if returned is None:
        return wit.Next_Continue()
    if isinstance(returned, ExitCode):
        return wit.Next_Finish(wit.Exit(status=returned.status, message=returned.message))
    if isinstance(returned, int) and not isinstance(returned, bool):
        return wit.Next_Finish(wit.Exit(status=returned, message=None))
    if isinstance(returned, process.Wait):
        timeout = None if returned.timeout is None else _after(step, returned.timeout)
        return wit.Next_Wait(wit.WaitFor(event=returned.event, message=returned.message,
                                         timeout=timeout))
    if isinstance(returned, process.Sleep):
        return wit.Next_Sleep(_after(step, returned.seconds))
    if isinstance(returned, process.Kill):
        return wit.Next_Kill(returned.message)
    raise TypeError(f"step '{step}' returned {returned!r}; a step returns None, an ExitCode, "
                    "an int status, ToContext, Wait, Sleep or Kill")


def _after(step: str, seconds: float) -> Any:
    """A timer ``seconds`` from when the step returns."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
        raise TypeError(f"step '{step}' asked for a timer of {seconds!r}; give a number of "
                        "seconds, 0 or more")
    return wit.Timer_AfterMs(round(seconds * 1000))


def _keep_sources(*modules) -> None:
    """Keep the modules' source lines in memory, for the tracebacks: this runs while
    componentize-py builds the component, and the running component has no files to read."""
    for module in modules:
        path = getattr(module, "__file__", None)
        lines = linecache.getlines(path) if path else None
        if lines:
            # No modification time: `linecache.checkcache` keeps the entry without a file.
            linecache.cache[path] = (sum(map(len, lines)), None, lines, path)


def export(cls: type) -> type:
    """The class componentize-py exports for the plugin ``cls``: assign it to ``Process`` at the
    end of the plugin's module (``Process = damson.export(Collatz)``)."""
    runtime = _Runtime(cls)
    _keep_sources(sys.modules.get(cls.__module__),
                  *(m for name, m in sys.modules.items() if name.startswith("damson.")))

    class Process(exports.Process):
        def describe(self) -> wit.Spec:
            return runtime.call(runtime.describe)

        def run_step(self, name: str) -> wit.StepResult:
            return runtime.call(runtime.run_step, name)

        def check_condition(self, name: str) -> bool:
            return runtime.call(runtime.check_condition, name)

        def validate(self, path: str, value: str) -> Optional[str]:
            return runtime.call(runtime.validate, path, value)

        def compute_default(self, path: str) -> str:
            return runtime.call(runtime.compute_default, path)

    Process.__qualname__ = Process.__name__ = "Process"
    return Process
