"""Drive a worker with plumpy 0.26.1's controllers over kiwipy 0.9's default communicator (its
YAML codec: no encoder or decoder given), as an AiiDA user's tools do, and print what came back.

Usage: plumpy_controllers.py AMQP_URL MESSAGE_EXCHANGE TASK_EXCHANGE TASK_QUEUE

The same calls go to a `damson worker` and to a plumpy worker (`plumpy_worker.py`), and the
interop test compares the two printouts. Both workers run processes named `lifecycle` and `add`.
Every answer is reduced to what must agree — a pid stands as "pid", a float as "float", a
failure as {"exception": <kiwipy's class>} — and kept in full under "texts" for the reader.

- `thread`: `RemoteProcessThreadController`, every future unwrapped to its value as AiiDA's
  `unwrap_kiwi_future` does, and `depth` how many futures stood in front of it (the number of
  `pending` replies);
- `asyncio`: `RemoteProcessController`, whose methods unwrap a fixed number of futures;
- `broadcasts`: `pause_all`, `play_all`, `kill_all`, and the `state_changed` subjects a kiwipy
  broadcast subscriber heard from each process;
- `bad`: bodies that are garbage, in another codec (pickle), an unknown intent, an unknown task
  type and a list, each as an RPC and as a task; then whether the worker still serves; and how
  many messages the worker dead-lettered.
"""
import asyncio
import concurrent.futures
import json
import pickle
import sys
import threading
import time
import uuid

import aio_pika
import kiwipy
import kiwipy.rmq
import plumpy

url, message_exchange, task_exchange, task_queue = sys.argv[1:5]
NAMES = {'message_exchange': message_exchange, 'task_exchange': task_exchange, 'task_queue': task_queue}
comm = kiwipy.rmq.RmqThreadCommunicator.connect(connection_params={'url': url}, **NAMES)
# Sends the bytes it is given as they are (a task's are kiwipy's `(task, no_reply)` pair).
raw = kiwipy.rmq.RmqThreadCommunicator.connect(
    connection_params={'url': url},
    encoder=lambda body: body[0] if isinstance(body, tuple) else body,
    **NAMES,
)
thread = plumpy.RemoteProcessThreadController(comm)
TIMEOUT = 30
# How long a bad body is given to be answered; plumpy answers some never.
BAD_TIMEOUT = 4
# More `pending` replies than any intent or task sends before its answer.
MAX_DEPTH = 3
texts = {}


class Plugins(plumpy.ObjectLoader):
    """Names process classes as the workers know them: by plugin name."""

    def load_object(self, identifier):
        return identifier

    def identify_object(self, obj):
        return obj


PLUGINS = Plugins()


def shape(value):
    """What of an answer must agree between the two workers."""
    if isinstance(value, uuid.UUID) or (isinstance(value, str) and _is_uuid(value)):
        return 'pid'
    if isinstance(value, float):
        return 'float'
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [shape(v) for v in value]
    if isinstance(value, (concurrent.futures.Future, asyncio.Future)):
        return 'an unresolved future'
    return value


def _is_uuid(text):
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36


def failure(name, exc):
    texts[name] = f'{type(exc).__name__}: {exc}'
    if isinstance(exc, (TimeoutError, concurrent.futures.TimeoutError, asyncio.TimeoutError)):
        return {'no reply': True}
    return {'exception': type(exc).__name__}


def unwrapped(name, send, timeout=TIMEOUT):
    """The value at the end of the chain of kiwipy futures that `send()` returns, and how many
    stood in front of it (kiwipy raises some failures, such as an unroutable RPC, at once).
    The whole chain gets `timeout` seconds: a task no worker takes is answered with a `pending`
    reply each time it is passed round, for ever, and that is "no reply" too."""
    deadline = time.monotonic() + timeout
    depth = 0
    try:
        value = send().result(timeout=timeout)
        while isinstance(value, concurrent.futures.Future):
            depth += 1
            value = value.result(timeout=max(0.0, deadline - time.monotonic()))
    except Exception as exc:  # noqa: BLE001 - every failure is an answer here
        return {'failure': failure(name, exc), 'depth': depth if depth <= MAX_DEPTH else 'many'}
    return {'value': value, 'depth': depth}


def value(answer):
    if 'value' not in answer:
        raise SystemExit(f'expected a value, got {answer}; the failures: {texts}')
    return answer['value']


def status_of(pid):
    return value(unwrapped('status', lambda: thread.get_status(pid)))


def until(pid, check, what):
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        try:
            status = status_of(pid)
        except SystemExit:
            status = None
        if check(status):
            return status
        time.sleep(0.05)
    raise SystemExit(f'{pid} never became {what}: {status}')


def waiting(pid):
    return until(pid, lambda s: s and s['state'] == 'ProcessState.WAITING', 'waiting')


def gone(pid):
    """Waits until the process no longer answers (it ended). A request that gets no reply in
    time (a process being killed while it was asked: plumpy's worker, busy on a loaded machine,
    can leave one unanswered) is asked again."""
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        answer = unwrapped('gone', lambda: thread.get_status(pid), timeout=5)
        if 'failure' in answer and answer['failure'] != {'no reply': True}:
            return answer['failure']
        time.sleep(0.05)
    raise SystemExit(f'{pid} still answers')


def launch_waiting():
    return value(unwrapped('launch', lambda: thread.launch_process(
        'lifecycle', init_kwargs={'inputs': {'mode': 'wait'}}, persist=True, nowait=True, loader=PLUGINS)))


# -- state changes ------------------------------------------------------------------------------
heard = {}
heard_lock = threading.Lock()


def on_state_changed(_comm, _body, sender, subject, _correlation_id):
    with heard_lock:
        heard.setdefault(str(sender), []).append(subject)


comm.add_broadcast_subscriber(kiwipy.BroadcastFilter(on_state_changed, subject='state_changed.*'))


def subjects(pid):
    time.sleep(0.3)  # the last broadcast may still be on its way
    with heard_lock:
        return list(heard.get(str(pid), []))


# -- the threaded controller --------------------------------------------------------------------
def threaded_calls():
    out = {}
    pid = launch_waiting()
    out['launch nowait'] = shape(pid)
    waiting(pid)
    status = unwrapped('status', lambda: thread.get_status(pid))
    out['status'] = shape(status)
    texts['status'] = status.get('value')
    out['pause'] = shape(unwrapped('pause', lambda: thread.pause_process(pid, 'from plumpy')))
    out['status paused'] = shape(status_of(pid))['paused']
    out['pause again'] = shape(unwrapped('pause again', lambda: thread.pause_process(pid)))
    out['play'] = shape(unwrapped('play', lambda: thread.play_process(pid)))
    out['status played'] = shape(status_of(pid))['paused']
    out['kill'] = shape(unwrapped('kill', lambda: thread.kill_process(pid, 'bye')))
    out['status of the killed'] = gone(pid)
    out['kill the killed'] = shape(unwrapped('kill the killed', lambda: thread.kill_process(pid, 'again'), timeout=5))
    out['state changes'] = subjects(pid)

    out['launch and wait'] = shape(unwrapped('launch and wait', lambda: thread.launch_process(
        'add', init_kwargs={'inputs': {'x': 1, 'y': 2}}, persist=True, nowait=False, loader=PLUGINS)))
    out['launch that raises'] = shape(unwrapped('launch that raises', lambda: thread.launch_process(
        'lifecycle', init_kwargs={'inputs': {'mode': 'raise'}}, persist=True, nowait=False, loader=PLUGINS)))
    out['launch of an unknown class'] = shape(unwrapped('launch of an unknown class', lambda: thread.launch_process(
        'nothing-by-this-name', persist=True, nowait=False, loader=PLUGINS)))
    created = unwrapped('create', lambda: thread.task_send(plumpy.process_comms.create_create_body(
        'lifecycle', init_kwargs={'inputs': {'mode': 'ok'}}, persist=True, loader=PLUGINS)))
    out['create'] = shape(created)
    out['continue'] = shape(unwrapped('continue', lambda: thread.continue_process(value(created), nowait=False)))
    out['continue of an unknown pid'] = shape(unwrapped('continue of an unknown pid', lambda: thread.continue_process(
        str(uuid.uuid4()), nowait=False)))
    # AiiDA's pids are integers (node pks), which plumpy takes as they are.
    out['launch with an integer pid'] = shape(unwrapped('launch with an integer pid', lambda: thread.launch_process(
        'lifecycle', init_kwargs={'inputs': {'mode': 'wait'}, 'pid': 1001}, persist=True, nowait=True, loader=PLUGINS)))
    out['status by an integer pid'] = waiting(1001)['state']
    out['kill by an integer pid'] = shape(unwrapped('kill by an integer pid', lambda: thread.kill_process(1001)))
    out['create with an integer pid'] = shape(unwrapped('create with an integer pid', lambda: thread.task_send(
        plumpy.process_comms.create_create_body(
            'add', init_kwargs={'inputs': {'x': 4, 'y': 5}, 'pid': 1002}, persist=True, loader=PLUGINS))))
    out['continue by an integer pid'] = shape(unwrapped('continue by an integer pid', lambda: thread.continue_process(
        1002, nowait=False)))
    out['execute'] = shape(unwrapped('execute', lambda: thread.execute_process(
        'add', init_kwargs={'inputs': {'x': 2, 'y': 3}}, loader=PLUGINS)))
    return out


# -- the asyncio controller ---------------------------------------------------------------------
def asyncio_calls():
    controller = plumpy.RemoteProcessController(comm)

    async def answer(name, coroutine):
        try:
            return {'value': shape(await asyncio.wait_for(coroutine, TIMEOUT))}
        except Exception as exc:  # noqa: BLE001
            return {'failure': failure(name, exc)}

    async def calls():
        out = {}
        pid = launch_waiting()
        waiting(pid)
        out['status'] = await answer('asyncio status', controller.get_status(pid))
        out['pause'] = await answer('asyncio pause', controller.pause_process(pid, 'from asyncio'))
        until(pid, lambda s: s and s['paused'], 'paused')
        out['play'] = await answer('asyncio play', controller.play_process(pid))
        until(pid, lambda s: s and not s['paused'], 'played')
        out['kill'] = await answer('asyncio kill', controller.kill_process(pid, 'bye'))
        gone(pid)
        out['launch and wait'] = await answer('asyncio launch', controller.launch_process(
            'add', init_kwargs={'inputs': {'x': 1, 'y': 2}}, persist=True, nowait=False, loader=PLUGINS))
        out['execute'] = await answer('asyncio execute', controller.execute_process(
            'add', init_kwargs={'inputs': {'x': 2, 'y': 3}}, loader=PLUGINS))
        return out

    return asyncio.run(calls())


# -- broadcasts ---------------------------------------------------------------------------------
def broadcasts():
    out = {}
    pids = [launch_waiting(), launch_waiting()]
    for pid in pids:
        waiting(pid)
    thread.pause_all('all of you')
    out['pause_all'] = [shape(until(p, lambda s: s and s['paused'], 'paused'))['paused'] for p in pids]
    thread.play_all()
    out['play_all'] = [shape(until(p, lambda s: s and not s['paused'], 'played'))['paused'] for p in pids]
    thread.kill_all('all of you')
    out['kill_all'] = [gone(p) for p in pids]
    out['state changes'] = [subjects(p) for p in pids]
    return out


# -- bad bodies ---------------------------------------------------------------------------------
def bad_bodies():
    out = {}
    pid = launch_waiting()
    waiting(pid)
    garbage = b'\x00\xff{not: [a message'
    other_codec = pickle.dumps({'intent': 'status', 'message': None})
    for name, sent in [
        ('rpc garbage', raw.rpc_send(pid, garbage)),
        ('rpc in another codec', raw.rpc_send(pid, other_codec)),
        ('rpc unknown intent', comm.rpc_send(pid, {'intent': 'frobnicate', 'message': None})),
        ('rpc with no intent', comm.rpc_send(pid, {'message': None})),
        ('rpc a list', comm.rpc_send(pid, [1, 2])),
    ]:
        out[name] = shape(unwrapped(name, lambda sent=sent: sent, timeout=BAD_TIMEOUT))
    out['status after bad rpcs'] = shape(status_of(pid))['state']

    tasks = [
        ('task garbage', raw.task_send(garbage)),
        ('task in another codec', raw.task_send(pickle.dumps({'task': 'launch', 'args': {}}))),
        ('task unknown type', comm.task_send({'task': 'frobnicate', 'args': {}})),
        ('task a list', comm.task_send([1, 2])),
    ]
    for name, sent in tasks:
        out[name] = shape(unwrapped(name, lambda sent=sent: sent, timeout=BAD_TIMEOUT))
    out['serving after bad tasks'] = shape(unwrapped('serving after bad tasks', lambda: thread.launch_process(
        'add', init_kwargs={'inputs': {'x': 1, 'y': 2}}, persist=True, nowait=False, loader=PLUGINS),
        timeout=BAD_TIMEOUT))
    out['dead-lettered'] = asyncio.run(dead_letters())
    value(unwrapped('kill', lambda: thread.kill_process(pid)))
    return out


async def dead_letters():
    """How many messages wait in the worker's dead-letter queue (None if it has none)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(f'{task_queue}.dead-letter', passive=True)
        return queue.declaration_result.message_count
    except aio_pika.exceptions.ChannelClosed:
        return None
    finally:
        await connection.close()


async def remove_the_queues():
    """Takes away what the calls left on the broker (the task queue may hold a task plumpy
    passes round for ever)."""
    connection = await aio_pika.connect(url)
    try:
        for queue in (task_queue, f'{task_queue}.dead-letter'):
            channel = await connection.channel()
            try:
                await channel.queue_delete(queue)
            except aio_pika.exceptions.ChannelClosed:
                pass
    finally:
        await connection.close()


try:
    answers = {
        'thread': threaded_calls(),
        'asyncio': asyncio_calls(),
        'broadcasts': broadcasts(),
        'bad': bad_bodies(),
    }
finally:
    comm.close()
    raw.close()
    asyncio.run(remove_the_queues())
answers['texts'] = texts
print(json.dumps(answers, default=repr), flush=True)
