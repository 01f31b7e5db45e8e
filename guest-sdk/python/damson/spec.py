"""What a plugin declares in ``define``: ports, exit codes and the outline (plumpy's
``ProcessSpec``)."""

import inspect
import json
import numbers
import re
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional

from wit_world.imports import types as wit

from .outline import Flattened

__all__ = ["ExitCode", "Spec"]

# Python types and the JSON types they stand for in `valid_type`.
_TYPES = {
    object: wit.ValueType.ANY,
    type(None): wit.ValueType.NULL,
    bool: wit.ValueType.BOOL,
    int: wit.ValueType.INT,
    float: wit.ValueType.FLOAT,
    numbers.Number: wit.ValueType.NUMBER,
    numbers.Real: wit.ValueType.NUMBER,
    str: wit.ValueType.STR,
    list: wit.ValueType.LIST,
    dict: wit.ValueType.DICT,
}

# The failure kinds a retry policy can leave out, by name.
_FAILURE_KINDS = {
    "error": wit.FailureKind.ERROR,
    "trap": wit.FailureKind.TRAP,
    "timeout": wit.FailureKind.TIMEOUT,
    "memory": wit.FailureKind.MEMORY,
}

# Tells "no default" from a default of None.
_UNSET: Any = object()


class ExitCode(NamedTuple):
    """An exit status (0 is success) and its message, as plumpy's ``ExitCode``. A step that
    returns one ends the process with it."""

    status: int = 0
    message: Optional[str] = None

    def format(self, **kwargs) -> "ExitCode":
        """This exit code with its message formatted (``str.format``) with ``kwargs``."""
        return self._replace(message=self.message.format(**kwargs) if self.message else self.message)


class ExitCodes:
    """The declared exit codes by label: ``self.exit_codes.ERROR_NOT_POSITIVE``."""

    def __init__(self, codes: Dict[str, ExitCode]) -> None:
        self.__dict__.update(codes)

    def __iter__(self):
        return iter(self.__dict__.values())


def _value_types(valid_type) -> List[wit.ValueType]:
    if valid_type is None:
        return []
    kinds = valid_type if isinstance(valid_type, tuple) else (valid_type,)
    found = []
    for kind in kinds:
        if kind not in _TYPES:
            names = ", ".join(getattr(t, "__name__", str(t)) for t in _TYPES)
            raise TypeError(f"valid_type {kind!r} is no JSON type; use {names} or a tuple of them")
        if _TYPES[kind] not in found:
            found.append(_TYPES[kind])
    return found


class Spec:
    """The spec a plugin's ``define(cls, spec)`` fills.

    ``name`` defaults to the class name in kebab case, ``version`` to ``"0.1.0"`` and
    ``description`` to the first paragraph of the class docstring; assign them to change them.
    """

    def __init__(self, cls: type) -> None:
        self.name = re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__).lower()
        self.version = "0.1.0"
        doc = inspect.getdoc(cls)
        self.description: Optional[str] = doc.split("\n\n")[0].replace("\n", " ") if doc else None
        self._ports: Dict[str, List[wit.Port]] = {"inputs": [], "outputs": []}
        self._exposes: List[wit.Expose] = []
        self._retries: List[wit.RetryPolicy] = []
        self._exit_codes: Dict[str, wit.ExitCode] = {}
        self._outline: tuple = ()
        # Validators and computed defaults by full path (`inputs.options.greeting`).
        self.validators: Dict[str, Callable[[Any], Optional[str]]] = {}
        self.defaults: Dict[str, Callable[[], Any]] = {}

    def input(self, name: str, valid_type=None, help: Optional[str] = None, required: bool = True,
              default=_UNSET, validator: Optional[Callable[[Any], Optional[str]]] = None) -> None:
        """Declare an input port at a dotted path (``options.greeting`` makes namespace
        ``options``).

        :param valid_type: a type or a tuple of types among ``bool``, ``int``, ``float``,
            ``numbers.Number``, ``str``, ``list``, ``dict``, ``type(None)`` and ``object``;
            ``None`` (the default) accepts anything.
        :param help: shown by ``damson describe``.
        :param required: whether a value must be given; a port with a default never needs one.
        :param default: the value used when none is given, or a callable computing it then
            (plumpy's callable default).
        :param validator: ``validator(value)`` returns an error message, or ``None`` when valid.
        """
        self._port("inputs", name, False, valid_type, help, required, default, validator)

    def output(self, name: str, valid_type=None, help: Optional[str] = None, required: bool = True,
               validator: Optional[Callable[[Any], Optional[str]]] = None) -> None:
        """Declare an output port at a dotted path; the options are those of :meth:`input`."""
        self._port("outputs", name, False, valid_type, help, required, _UNSET, validator)

    def input_namespace(self, name: str, valid_type=None, help: Optional[str] = None,
                        required: bool = True, dynamic: bool = False, populate_defaults: bool = True,
                        default=_UNSET, validator=None) -> None:
        """Declare (or configure) an input namespace; ``""`` is the root of all inputs.

        :param valid_type: the type of undeclared values; giving one makes the namespace dynamic.
        :param dynamic: whether keys that are not declared ports are accepted.
        :param populate_defaults: whether the defaults inside are filled when the namespace is
            not given.
        """
        self._port("inputs", name, True, valid_type, help, required, default, validator,
                   dynamic or valid_type is not None, populate_defaults)

    def output_namespace(self, name: str, valid_type=None, help: Optional[str] = None,
                         required: bool = True, dynamic: bool = False, validator=None) -> None:
        """Declare (or configure) an output namespace; ``""`` is the root of all outputs."""
        self._port("outputs", name, True, valid_type, help, required, _UNSET, validator,
                   dynamic or valid_type is not None, True)

    def expose_inputs(self, plugin: str, namespace: str = "", include: Optional[Iterable[str]] = None,
                      exclude: Optional[Iterable[str]] = None,
                      namespace_options: Optional[Dict[str, Any]] = None) -> None:
        """Copy the inputs of another plugin (by name) into the namespace at a dotted path, as
        plumpy's ``expose_inputs``. ``include`` and ``exclude`` take dotted paths relative to
        the exposed namespace; ``namespace_options`` may set ``required``, ``dynamic``,
        ``valid_type``, ``help`` and ``populate_defaults`` of the receiving namespace."""
        self._expose(wit.PortSide.INPUTS, plugin, namespace, include, exclude, namespace_options)

    def expose_outputs(self, plugin: str, namespace: str = "", include: Optional[Iterable[str]] = None,
                       exclude: Optional[Iterable[str]] = None,
                       namespace_options: Optional[Dict[str, Any]] = None) -> None:
        """Copy the outputs of another plugin into the output namespace at a dotted path."""
        self._expose(wit.PortSide.OUTPUTS, plugin, namespace, include, exclude, namespace_options)

    def exit_code(self, status: int, label: str, message: str) -> ExitCode:
        """Declare an exit code; steps return it as ``self.exit_codes.LABEL``."""
        if label in self._exit_codes:
            raise ValueError(f"the exit code label '{label}' is declared twice")
        self._exit_codes[label] = wit.ExitCode(status=status, label=label, message=message)
        return ExitCode(status, message)

    def retry(self, step=None, *, max_attempts: int = 3, initial_interval: float = 1.0,
              backoff: float = 2.0, max_interval: Optional[float] = None,
              non_retryable: Iterable[str] = (), non_retryable_errors: Iterable[str] = ()) -> None:
        """Retry ``step`` (a method of the outline, or its name; ``None``: every step without a
        policy of its own) when it fails: from the state before it (context, outputs and the
        plugin's memory, its attributes included), at most ``max_attempts`` attempts in all,
        ``initial_interval`` seconds before the second, each interval ``backoff`` times the one
        before, at most ``max_interval`` seconds. ``non_retryable`` names failures that end the
        process at once: ``"error"`` (a ``StepError``), ``"trap"`` (any other exception),
        ``"timeout"``, ``"memory"``; ``non_retryable_errors`` the kinds of ``StepError`` that do.
        ``self.attempt`` tells a step which attempt it is."""
        name = step if step is None or isinstance(step, str) else step.__name__
        kinds = []
        for kind in non_retryable:
            if kind not in _FAILURE_KINDS:
                raise ValueError(f"unknown failure kind '{kind}' (error | trap | timeout | memory)")
            kinds.append(_FAILURE_KINDS[kind])

        def ms(seconds: float) -> int:
            return round(seconds * 1000)

        self._retries.append(wit.RetryPolicy(
            step=name, max_attempts=max_attempts, initial_interval_ms=ms(initial_interval),
            backoff=float(backoff), max_interval_ms=None if max_interval is None else ms(max_interval),
            non_retryable=kinds, non_retryable_errors=list(non_retryable_errors)))

    def outline(self, *instructions) -> None:
        """Set the outline: steps (methods), ``if_``, ``while_`` and ``return_``."""
        self._outline = instructions

    def _port(self, side, name, namespace, valid_type, help, required, default, validator,
              dynamic=False, populate_defaults=True) -> None:
        full = f"{side}.{name}" if name else side
        value = None
        if default is not _UNSET:
            required = False
            if callable(default):
                self.defaults[full] = default
                value = wit.DefaultValue_Computed()
            else:
                value = wit.DefaultValue_Value(json.dumps(default, allow_nan=False))
        if validator is not None:
            self.validators[full] = validator
        self._ports[side].append(wit.Port(
            path=name, namespace=namespace, valid_types=_value_types(valid_type), required=required,
            default=value, help=help, validator=validator is not None, dynamic=dynamic,
            populate_defaults=populate_defaults))

    def _expose(self, side, plugin, namespace, include, exclude, options) -> None:
        options = dict(options or {})
        valid_type = options.pop("valid_type", None)
        known = {"required", "dynamic", "help", "populate_defaults"}
        if set(options) - known:
            raise TypeError(f"unknown namespace_options: {', '.join(sorted(set(options) - known))}")
        self._exposes.append(wit.Expose(
            side=side, plugin=plugin, namespace=namespace,
            include=None if include is None else list(include),
            exclude=None if exclude is None else list(exclude),
            namespace_options=wit.NamespaceOptions(
                required=options.get("required"), dynamic=options.get("dynamic"),
                valid_types=None if valid_type is None else _value_types(valid_type),
                help=options.get("help"), populate_defaults=options.get("populate_defaults"))))

    def finish(self):
        """The WIT spec, the outline's steps and conditions, and the exit codes by label."""
        outline = Flattened(self._outline)
        spec = wit.Spec(
            name=self.name, version=self.version, description=self.description,
            inputs=self._ports["inputs"], outputs=self._ports["outputs"], exposes=self._exposes,
            exit_codes=list(self._exit_codes.values()),
            outline=wit.Outline(nodes=outline.nodes, root=outline.root), retries=self._retries)
        codes = ExitCodes({label: ExitCode(c.status, c.message) for label, c in self._exit_codes.items()})
        return spec, outline, codes
