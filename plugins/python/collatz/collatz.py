"""`collatz-py`: counts the steps of the Collatz sequence from `n` down to 1.

The Python twin of `plugins/collatz`: the running count and peak live in attributes of the
process object (memory only), the current value in the context (durable).
"""

import logging

import damson
from damson import ExitCode, WorkChain, if_, while_

# Exit status when `n` is below 1.
NOT_POSITIVE = 400
# The Rust plugin counts in u64; so does this one, to fail where it does.
U64_MAX = 2**64 - 1


class Collatz(WorkChain):
    """Counts the steps of the Collatz sequence from n down to 1."""

    @classmethod
    def define(cls, spec):
        spec.name = "collatz-py"
        spec.input("n", valid_type=int, help="Where to start (at least 1)")
        spec.output("steps", valid_type=int, help="How many steps it took to reach 1")
        spec.output("peak", valid_type=int, help="The largest value on the way")
        spec.exit_code(NOT_POSITIVE, "ERROR_NOT_POSITIVE", "n must be at least 1")
        spec.outline(
            cls.start,
            while_(cls.above_one)(
                if_(cls.is_even)(cls.halve).else_(cls.triple_plus_one),
                cls.count,
            ),
            cls.finish,
        )

    def start(self):
        n = self.inputs.n
        if n < 1:
            return ExitCode(NOT_POSITIVE, f"n must be at least 1, got {n}")
        self.ctx.n = n
        self.steps = 0
        self.peak = n

    def above_one(self):
        return self.ctx.n > 1

    def is_even(self):
        return self.ctx.n % 2 == 0

    def halve(self):
        self.ctx.n //= 2

    def triple_plus_one(self):
        n = self.ctx.n
        if 3 * n + 1 > U64_MAX:
            raise OverflowError(f"3n + 1 overflows at n = {n}")
        self.ctx.n = 3 * n + 1
        self.peak = max(self.peak, 3 * n + 1)

    def count(self):
        self.steps += 1
        self.set_status(f"{self.steps} steps so far")

    def finish(self):
        logging.debug("reached 1 after %d steps", self.steps)
        self.out("steps", self.steps)
        self.out("peak", self.peak)


Process = damson.export(Collatz)
