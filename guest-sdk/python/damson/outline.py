"""The outline of a work chain, written as plumpy writes it::

    spec.outline(
        cls.start,
        while_(cls.above_one)(
            if_(cls.is_even)(cls.halve).else_(cls.triple_plus_one),
            cls.count,
        ),
        cls.finish,
    )

Steps and conditions are the plugin's methods; the host knows them by their ``__name__``.
"""

from typing import Callable, Dict, List, Optional, Tuple

from wit_world.imports import types as wit

__all__ = ["if_", "while_", "return_"]


class _If:
    """``if_(condition)(*body)``, then any ``.elif_(condition)(*body)`` and one ``.else_(*body)``."""

    def __init__(self, condition: Callable) -> None:
        self._branches: List[Tuple[Optional[Callable], Optional[tuple]]] = [(condition, None)]

    def __call__(self, *body) -> "_If":
        condition, known = self._branches[-1]
        if known is not None:
            raise TypeError(f"{_describe(self)} already has its body")
        self._branches[-1] = (condition, body)
        return self

    def elif_(self, condition: Callable) -> "_If":
        """Add a branch, run when no branch before holds and ``condition`` does."""
        self._open("elif_")
        self._branches.append((condition, None))
        return self

    def else_(self, *body) -> "_If":
        """Add the last branch, run when no other holds."""
        self._open("else_")
        self._branches.append((None, body))
        return self

    def _open(self, what: str) -> None:
        condition, body = self._branches[-1]
        if condition is None:
            raise TypeError(f"{what} after else_: else_ must be the last branch of an if_")
        if body is None:
            raise TypeError(f"{what} before the body of {_describe(self)}")


class _While:
    """``while_(condition)(*body)``."""

    def __init__(self, condition: Callable) -> None:
        self.condition = condition
        self.body: Optional[tuple] = None

    def __call__(self, *body) -> "_While":
        if self.body is not None:
            raise TypeError(f"{_describe(self)} already has its body")
        self.body = body
        return self


class _Return:
    """``return_`` ends the process successfully; ``return_(status)`` with that exit status
    (an ``int`` or an :class:`~damson.ExitCode`)."""

    def __init__(self, status: Optional[int] = None) -> None:
        self.status = status

    def __call__(self, status) -> "_Return":
        return _Return(int(getattr(status, "status", status)))


def if_(condition: Callable) -> _If:
    """Run the body that follows when ``condition`` (a method returning a bool) holds."""
    return _If(condition)


def while_(condition: Callable) -> _While:
    """Run the body that follows again and again while ``condition`` holds."""
    return _While(condition)


return_ = _Return()


def _describe(node) -> str:
    if isinstance(node, _If):
        return f"if_({_name(node._branches[0][0], 'condition')})"
    return f"while_({_name(node.condition, 'condition')})"


def _name(function, what: str) -> str:
    name = getattr(function, "__name__", None)
    if not callable(function) or not name or name == "<lambda>":
        raise TypeError(f"a {what} of the outline must be a named method, not {function!r}")
    return name


class Flattened:
    """An outline as WIT's node list, with the steps and conditions by name."""

    def __init__(self, outline: tuple) -> None:
        self.nodes: List[wit.Instruction] = []
        self.steps: Dict[str, Callable] = {}
        self.conditions: Dict[str, Callable] = {}
        self.root = self._sequence(outline)

    def _sequence(self, body: tuple) -> int:
        return self._push(wit.Instruction_Sequence([self._node(item) for item in body]))

    def _node(self, item) -> int:
        if isinstance(item, _If):
            branches = []
            for condition, body in item._branches:
                if body is None:
                    raise TypeError(f"{_describe(item)} has no body: write if_(cls.check)(cls.step)")
                name = None if condition is None else self._register(self.conditions, condition, "condition")
                branches.append(wit.Branch(condition=name, body=self._sequence(body)))
            return self._push(wit.Instruction_Conditional(branches))
        if isinstance(item, _While):
            if item.body is None:
                raise TypeError(f"{_describe(item)} has no body: write while_(cls.check)(cls.step)")
            name = self._register(self.conditions, item.condition, "condition")
            return self._push(wit.Instruction_WhileLoop(wit.WhileLoop(condition=name, body=self._sequence(item.body))))
        if isinstance(item, _Return):
            return self._push(wit.Instruction_Return(item.status))
        return self._push(wit.Instruction_Step(self._register(self.steps, item, "step")))

    @staticmethod
    def _register(known: Dict[str, Callable], function: Callable, what: str) -> str:
        # A name may appear several times, but always for one function.
        name = _name(function, what)
        if known.setdefault(name, function) is not function:
            raise TypeError(f"the {what} name '{name}' is used for two different functions")
        return name

    def _push(self, instruction) -> int:
        self.nodes.append(instruction)
        return len(self.nodes) - 1
