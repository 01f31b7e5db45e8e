"""`hailstone-py`: walks the hailstone sequence from `n` down to 1, keeping all of its running
state in the process object (the current value, the step count and a dict of every value seen)
and none in the context.

The Python twin of `plugins/hailstone`, with the same outputs for the same `n`: its outputs can
only come out right after a crash if the checkpoint carried the plugin's memory.
"""

import logging
import time

import damson
from damson import WorkChain, while_

# The Rust plugin's u64 arithmetic, wrapping.
U64 = 2**64 - 1


def rotate_left(value, bits):
    return ((value << bits) | (value >> (64 - bits))) & U64 if bits else value


class Hailstone(WorkChain):
    """Walks the hailstone sequence from n to 1, its state in memory only."""

    @classmethod
    def define(cls, spec):
        spec.name = "hailstone-py"
        spec.input("n", valid_type=int, help="Where to start (at least 1)")
        spec.input("delay_ms", valid_type=int, default=0, help="Milliseconds each step lingers")
        spec.output("steps", valid_type=int, help="Steps to reach 1")
        spec.output("peak", valid_type=int, help="The largest value seen")
        spec.output("checksum", valid_type=int, help="A digest of every value seen and when")
        spec.outline(cls.start, while_(cls.above_one)(cls.advance), cls.finish)

    def start(self):
        n = self.inputs.n
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        self.current = n
        self.steps = 0
        # Every value seen, with the step it was seen at.
        self.seen = {n: 0}
        self.delay = self.inputs.delay_ms / 1000

    def above_one(self):
        return self.current > 1

    def advance(self):
        n = self.current
        if n % 2 == 0:
            self.current = n // 2
        elif 3 * n + 1 > U64:
            raise OverflowError(f"3n + 1 overflows at n = {n}")
        else:
            self.current = 3 * n + 1
        self.steps += 1
        self.seen[self.current] = self.steps
        if self.delay:
            time.sleep(self.delay)
        self.set_status(f"step {self.steps} at {self.current}")
        logging.info("step %d at %d", self.steps, self.current)

    def finish(self):
        checksum = 0
        for value, step in self.seen.items():
            checksum = (checksum + rotate_left(value * (step + 1) & U64, step % 64)) & U64
        self.out("steps", self.steps)
        self.out("peak", max(self.seen))
        self.out("checksum", checksum % 2**53)


Process = damson.export(Hailstone)
