"""A real plumpy 0.26.1 worker, for the interop test to compare Damson with.

Usage: plumpy_worker.py AMQP_URL MESSAGE_EXCHANGE TASK_EXCHANGE TASK_QUEUE wrapped|bare

kiwipy's default communicator (its YAML codec), a `plumpy.ProcessLauncher` with an in-memory
persister taking the tasks on the worker's event loop (through `plumpy.wrap_communicator`, as
AiiDA's runner does), and two process classes named as the Damson plugins they stand in for,
`lifecycle` and `add`, which behave as those plugins do. The processes listen for RPCs and
broadcasts on

- `wrapped`: the wrapped communicator, as an AiiDA daemon's processes do;
- `bare`: kiwipy's communicator itself, as a process given a plain kiwipy communicator does.

The two answer with different numbers of `pending` replies (the wrapper adds one), and only the
second is what plumpy's asyncio controller expects. Prints `ready` once it listens; stops on
SIGTERM.
"""
import asyncio
import signal
import sys

import kiwipy.rmq
import plumpy

url, message_exchange, task_exchange, task_queue, mode = sys.argv[1:6]
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
threaded = kiwipy.rmq.RmqThreadCommunicator.connect(
    connection_params={'url': url},
    message_exchange=message_exchange,
    task_exchange=task_exchange,
    task_queue=task_queue,
)
communicator = plumpy.wrap_communicator(threaded, loop)
for_processes = {'wrapped': communicator, 'bare': threaded}[mode]


class _Listening:
    """A process that takes the worker's communicator when launched: plumpy's launcher passes
    none, and a process without one neither answers RPCs nor broadcasts its state changes (an
    AiiDA runner gives its processes its communicator the same way)."""

    def __init__(self, *args, communicator=None, **kwargs):
        super().__init__(*args, communicator=communicator or for_processes, **kwargs)


class lifecycle(_Listening, plumpy.Process):  # noqa: N801 - named as the Damson plugin
    """The `lifecycle` plugin: its one step ends the way its `mode` input says."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('mode', valid_type=str, default='ok')
        spec.inputs.dynamic = True
        spec.output('default', valid_type=int, required=False)
        spec.output('finished', valid_type=bool, required=False)

    def run(self):
        mode = self.inputs.mode
        if mode == 'ok':
            self.out('default', 5)
            return None
        if mode == 'raise':
            raise RuntimeError('exception during run')
        if mode == 'wait':
            return plumpy.Wait(self.last_step, msg='waiting to be resumed')
        raise ValueError(f"unknown mode '{mode}'")

    def last_step(self):
        self.out('finished', True)


class add(_Listening, plumpy.Process):  # noqa: N801 - named as the Damson plugin
    """The `add` plugin: x + y."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('x', valid_type=int)
        spec.input('y', valid_type=int)
        spec.output('sum', valid_type=int)

    def run(self):
        self.out('sum', self.inputs.x + self.inputs.y)


class Plugins(plumpy.DefaultObjectLoader):
    """Loads the process classes by the names Damson's plugins have, and everything else a
    checkpoint names (plumpy's own classes) as plumpy's default loader does."""

    classes = {'lifecycle': lifecycle, 'add': add}

    def load_object(self, identifier):
        return self.classes.get(identifier) or super().load_object(identifier)

    def identify_object(self, obj):
        return obj.__name__ if obj in self.classes.values() else super().identify_object(obj)


launcher = plumpy.ProcessLauncher(
    loop,
    persister=plumpy.InMemoryPersister(loader=Plugins()),
    load_context=plumpy.LoadSaveContext(communicator=communicator, loop=loop, loader=Plugins()),
    loader=Plugins(),
)
communicator.add_task_subscriber(launcher)


# plumpy resolves a reply's future from the communicator's thread with a callback the loop is not
# woken for (`plum_to_kiwi_future`), so without something else to wake the loop a final reply
# can wait for ever; an AiiDA daemon's loop is always busy enough. A ticker stands in for that.
def tick():
    loop.call_later(0.05, tick)


loop.call_soon(tick)
loop.add_signal_handler(signal.SIGTERM, loop.stop)
print('ready', flush=True)
try:
    loop.run_forever()
finally:
    threaded.close()
