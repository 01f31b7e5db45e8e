"""The plugin's base class, :class:`WorkChain`, and what its steps return."""

import json
import logging
from typing import Any, Dict, List, NamedTuple, Optional

from wit_world.imports import host
from wit_world.imports import types as wit
from componentize_py_types import Err

__all__ = ["AttributeDict", "Child", "Context", "Kill", "Sleep", "StepError", "ToContext", "Wait",
           "WorkChain", "append_", "inspect_"]


class AttributeDict(dict):
    """A dict whose keys are also attributes (``self.inputs.n``), as plumpy's
    ``AttributesDict``."""

    def __getattr__(self, key: str):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"no key '{key}'") from None


def loads(text: str) -> Any:
    """JSON from the host, its objects as :class:`AttributeDict`."""
    return json.loads(text, object_hook=AttributeDict)


def dumps(value: Any) -> str:
    """JSON for the host; NaN and infinities are not JSON, so they raise ``ValueError``."""
    return json.dumps(value, allow_nan=False)


class Context:
    """The process's context (``self.ctx``): JSON values by key, kept in every checkpoint.

    Read, set and delete keys as attributes (``self.ctx.n = 1``) or items (``self.ctx["n"]``).
    A value read is a copy: change it, then set it again.
    """

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        text = host.context_get(key)
        if text is None:
            raise KeyError(key)
        return loads(text)

    def __setitem__(self, key: str, value: Any) -> None:
        host.context_set(key, dumps(value))

    def __delitem__(self, key: str) -> None:
        if not host.context_remove(key):
            raise KeyError(key)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"the context has no key '{key}'") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        try:
            del self[key]
        except KeyError:
            raise AttributeError(f"the context has no key '{key}'") from None

    def __contains__(self, key: str) -> bool:
        return host.context_get(key) is not None

    def __iter__(self):
        return iter(host.context_keys())

    def keys(self) -> List[str]:
        """All keys, sorted."""
        return host.context_keys()

    def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""
        try:
            return self[key]
        except KeyError:
            return default


class Child(NamedTuple):
    """A launched child process, to await with :class:`ToContext`."""

    pid: str


class _Await(NamedTuple):
    pid: str
    append: bool = False
    inspect: bool = False


def append_(child) -> _Await:
    """Await ``child`` and append its record to the list under the key, as plumpy's ``append_``."""
    return _awaited(child)._replace(append=True)


def inspect_(child) -> _Await:
    """Await ``child`` and store its record even when it failed, for a later step to inspect
    (otherwise a child that does not finish successfully makes this process end EXCEPTED)."""
    return _awaited(child)._replace(inspect=True)


def _awaited(child) -> _Await:
    if isinstance(child, _Await):
        return child
    if isinstance(child, (Child, str)):
        return _Await(child if isinstance(child, str) else child.pid)
    raise TypeError(f"only a child launched with self.launch can be awaited, not {child!r}")


class ToContext(dict):
    """Returned by a step: await children into context keys before the outline goes on
    (``return ToContext(child=self.launch("add", x=1, y=2))``).

    A child's record is a dict with ``pid``, ``plugin``, ``state``, ``successful``,
    ``exit_status``, ``exit_message``, ``outputs`` and ``error``.
    """


class Wait(NamedTuple):
    """Returned by a step: wait until resumed, or until the signal ``event`` arrives (its
    payload is then in the context under the event's name, ``resumed`` for a plain resume); at
    most ``timeout`` seconds if given, after which ``self.ctx.timed_out`` is true (false when
    the signal came)."""

    message: Optional[str] = None
    event: Optional[str] = None
    timeout: Optional[float] = None


class Sleep(NamedTuple):
    """Returned by a step: sleep ``seconds`` on a durable timer (it survives a restart of the
    host, and fires at once if it came due meanwhile), then go on with the outline."""

    seconds: float


class StepError(Exception):
    """Raised in a step: fails it with just this message (no traceback), an error of ``kind``
    if given (e.g. ``"invalid-request"``), which a retry policy's ``non_retryable_errors`` may
    list. Any other exception is a trap, with its traceback."""

    def __init__(self, message: str, kind: Optional[str] = None) -> None:
        super().__init__(message)
        self.kind = kind


class Kill(NamedTuple):
    """Returned by a step: kill the process with this message."""

    message: str


# The children the running step awaits through `self.to_context`.
pending_awaits: List[wit.AwaitChild] = []


def add_awaits(awaitables: Dict[str, Any]) -> None:
    for key, child in awaitables.items():
        awaited = _awaited(child)
        pending_awaits.append(wit.AwaitChild(pid=awaited.pid, key=key, append=awaited.append,
                                             inspect=awaited.inspect))


class WorkChain:
    """The base class of a plugin: ``define(cls, spec)`` declares it, and its methods are the
    outline's steps and conditions.

    One object of the class is made (with no arguments) before the first step and kept for the
    whole process, so its attributes carry state from step to step in memory; the context
    (``self.ctx``) carries it in the checkpoint's record.

    A step returns ``None`` to go on, an :class:`~damson.ExitCode` (or an ``int`` status) to end
    the process with it, a :class:`ToContext` to await children, :class:`Wait` or :class:`Kill`.
    An exception ends the process EXCEPTED with its traceback.
    """

    #: The context, shared by all steps.
    ctx = Context()
    #: The declared exit codes by label (``self.exit_codes.ERROR_NOT_POSITIVE``), set once the
    #: spec is built.
    exit_codes: Any = None

    @classmethod
    def define(cls, spec) -> None:
        """Declare the plugin's ports, exit codes and outline on ``spec`` (a :class:`~damson.Spec`).
        Called once per component, with no process object; it must have no side effects."""

    @property
    def inputs(self) -> AttributeDict:
        """All inputs, validated and with defaults applied (``self.inputs.n``)."""
        cached = self.__dict__.get("_damson_inputs")
        if cached is None:
            cached = self.__dict__["_damson_inputs"] = loads(host.inputs())
        return cached

    @property
    def pid(self) -> str:
        """This process's id."""
        return host.pid()

    @property
    def attempt(self) -> int:
        """Which attempt of the running step this is: 1 for the first, 2 for the first retry
        under its retry policy (``spec.retry``)."""
        return host.attempt()

    @property
    def logger(self) -> logging.Logger:
        """A logger whose records go to the host's log."""
        return logging.getLogger(f"damson.{type(self).__name__}")

    def report(self, message: str, *args) -> None:
        """Log at info level, formatting ``message % args`` as plumpy's ``report`` does."""
        self.logger.info(message, *args)

    def out(self, name: str, value: Any) -> None:
        """Emit an output at a dotted path. The host validates it at once; an invalid output
        raises ``ValueError``."""
        try:
            host.emit_output(name, dumps(value))
        except Err as e:
            raise ValueError(e.value) from None

    def set_status(self, message: Optional[str]) -> None:
        """Set the status message (``None`` clears it)."""
        host.set_status(message)

    def pause(self, message: Optional[str] = None) -> None:
        """Pause the process once this step returns; ``message`` is the status while paused."""
        host.pause(message)

    def launch(self, plugin: str, inputs: Optional[Dict[str, Any]] = None, **kwargs) -> Child:
        """Launch a child process of the named plugin with ``inputs`` (and ``kwargs``); it starts
        when this step returns. Await it with :class:`ToContext` or :meth:`to_context`."""
        try:
            return Child(host.launch(plugin, dumps({**(inputs or {}), **kwargs})))
        except Err as e:
            raise ValueError(e.value) from None

    def to_context(self, **children) -> None:
        """Await children into context keys after this step, as AiiDA's ``to_context``."""
        add_awaits(children)
