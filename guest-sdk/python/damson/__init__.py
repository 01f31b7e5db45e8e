"""damson: write Damson process plugins in Python, the way plumpy writes work chains.

A plugin is a :class:`WorkChain` subclass whose ``define`` classmethod declares its ports, exit
codes and outline; its methods are the outline's steps and conditions. The module that
componentize-py builds assigns ``Process = damson.export(TheClass)``::

    import damson
    from damson import WorkChain

    class Add(WorkChain):
        \"\"\"Adds two numbers.\"\"\"

        @classmethod
        def define(cls, spec):
            spec.input("x", valid_type=int, help="The first addend")
            spec.input("y", valid_type=int, help="The second addend")
            spec.output("sum", valid_type=int, help="x + y")
            spec.outline(cls.add)

        def add(self):
            self.out("sum", self.inputs.x + self.inputs.y)

    Process = damson.export(Add)

``print()`` and the ``logging`` module write to the host's log, never to a WASI stream: a
stream handle kept in memory would make the plugin's memory image unrestorable.
"""

from ._runtime import export
from .outline import if_, return_, while_
from .process import (AttributeDict, Child, Context, Kill, Sleep, StepError, ToContext, Wait,
                      WorkChain, append_, inspect_)
from .spec import ExitCode, Spec

__all__ = ["AttributeDict", "Child", "Context", "ExitCode", "Kill", "Sleep", "Spec", "StepError",
           "ToContext", "Wait", "WorkChain", "append_", "export", "if_", "inspect_", "return_",
           "while_"]
