"""`trials-py`: one step that fails in the way asked, for the tests of what the host does with
a Python plugin that raises, spins, hogs memory, launches a child, sleeps, or waits for a signal
with a timeout, or fails twice in a step it retries."""

import damson
from damson import Sleep, ToContext, Wait, WorkChain, if_


class Trials(WorkChain):
    """Raises, spins, hogs memory, launches a child, sleeps or asks, as asked."""

    @classmethod
    def define(cls, spec):
        spec.name = "trials-py"
        spec.input("do", valid_type=str, help="raise | spin | hog | child | sleep | ask | flaky | refuse")
        spec.input("child", valid_type=str, default="collatz-c", help="The plugin do=child launches")
        spec.output("child_steps", valid_type=int, required=False, help="The child's steps output")
        spec.output("timed_out", valid_type=bool, required=False,
                    help="do=ask: whether the wait for `approved` timed out")
        spec.output("attempts", valid_type=int, required=False,
                    help="do=flaky: the attempt at which the flaky step succeeded")
        # An exception raised in a step is a trap (with its traceback), retried like any failure
        # but the host's limits.
        spec.retry(cls.wobble, max_attempts=3, initial_interval=0.05, backoff=2.0,
                   non_retryable=["timeout", "memory"], non_retryable_errors=["refused"])
        spec.outline(cls.act, if_(cls.launched)(cls.collect), if_(cls.asked)(cls.report),
                     if_(cls.flaky)(cls.wobble))

    def act(self):
        do = self.inputs.do
        if do == "raise":
            raise RuntimeError("asked to raise")
        if do == "spin":
            while True:
                pass
        if do == "hog":
            # Touch every MiB so it is really used, and keep it.
            self.hoard = []
            while True:
                self.hoard.append(bytearray(b"\xa5" * (1 << 20)))
        if do == "child":
            return ToContext(child=self.launch(self.inputs.child, n=27))
        if do == "sleep":
            return Sleep(0.3)
        if do == "ask":
            return Wait(event="approved", timeout=0.3)
        if do in ("flaky", "refuse"):
            return None
        raise ValueError(f"unknown do '{do}': raise | spin | hog | child | sleep | ask | flaky")

    def launched(self):
        return self.inputs.do == "child"

    def flaky(self):
        return self.inputs.do in ("flaky", "refuse")

    def wobble(self):
        if self.inputs.do == "refuse":
            raise damson.StepError("refused outright", kind="refused")
        if self.attempt < 3:
            raise RuntimeError(f"wobbled on attempt {self.attempt}")
        self.out("attempts", self.attempt)

    def asked(self):
        return self.inputs.do == "ask"

    def report(self):
        self.out("timed_out", self.ctx.timed_out)

    def collect(self):
        self.out("child_steps", self.ctx.child.outputs.steps)


Process = damson.export(Trials)
