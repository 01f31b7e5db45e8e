"""Drive a running `damson worker` from Python with kiwipy 0.9 (JSON encoder and decoder).

Damson answers as plumpy's processes and workers do: a `pending` reply first where they answer
with a future (pause, play, kill, and every task), so kiwipy hands back a future of the answer,
which is unwrapped here as plumpy and AiiDA unwrap it.

Usage: kiwipy_client.py AMQP_URL MESSAGE_EXCHANGE TASK_EXCHANGE TASK_QUEUE

Launches a waiting `lifecycle` process by a launch task, then asks for its status, pauses,
plays and kills it by RPC, and launches an `add` process waiting for its outputs. Checks every
reply and prints them all as one JSON object; exits non-zero on the first wrong reply.
"""
import concurrent.futures
import json
import sys
import time

import kiwipy.rmq

url, message_exchange, task_exchange, task_queue = sys.argv[1:5]
comm = kiwipy.rmq.RmqThreadCommunicator.connect(
    connection_params={'url': url},
    message_exchange=message_exchange,
    task_exchange=task_exchange,
    task_queue=task_queue,
    encoder=lambda obj: json.dumps(obj).encode('utf-8'),
    decoder=json.loads,
)
TIMEOUT = 60
replies = {}


def check(name, value, condition):
    replies[name] = value
    if not condition(value):
        print(json.dumps(replies), flush=True)
        sys.exit(f'unexpected reply to {name}: {value!r}')


def unwrapped(future):
    """The answer a kiwipy future stands for, through the futures a pending reply adds."""
    result = future.result(timeout=TIMEOUT)
    while isinstance(result, concurrent.futures.Future):
        result = result.result(timeout=TIMEOUT)
    return result


def rpc(pid, body):
    return unwrapped(comm.rpc_send(pid, body))


try:
    pid = unwrapped(comm.task_send({
        'task': 'launch',
        'args': {
            'process_class': 'lifecycle',
            'init_args': None,
            'init_kwargs': {'inputs': {'mode': 'wait'}},
            'persist': True,
            'nowait': True,
        },
    }))
    check('launch', pid, lambda p: isinstance(p, str) and len(p) == 36)

    deadline = time.time() + TIMEOUT
    status = rpc(pid, {'intent': 'status', 'message': None})
    while status['state'] != 'ProcessState.WAITING' and time.time() < deadline:
        time.sleep(0.05)
        status = rpc(pid, {'intent': 'status', 'message': None})
    check('status', status,
          lambda s: s['state'] == 'ProcessState.WAITING' and s['paused'] is False and 'ctime' in s and 'process_string' in s)

    check('pause', rpc(pid, {'intent': 'pause', 'message': 'from kiwipy'}), lambda r: r is True)
    check('status_paused', rpc(pid, {'intent': 'status', 'message': None}), lambda s: s['paused'] is True)
    check('play', rpc(pid, {'intent': 'play', 'message': None}), lambda r: r is True)
    check('kill', rpc(pid, {'intent': 'kill', 'message': 'bye', 'force_kill': False}), lambda r: r is True)

    # Damson's own intent: a signal with a payload, taken once per key.
    approval = unwrapped(comm.task_send({
        'task': 'launch',
        'args': {
            'process_class': 'approval',
            'init_args': None,
            'init_kwargs': {'inputs': {'request': 'deploy'}},
            'persist': True,
            'nowait': True,
        },
    }))
    replies['approval_pid'] = approval
    deadline = time.time() + TIMEOUT
    while rpc(approval, {'intent': 'status', 'message': None})['state'] != 'ProcessState.WAITING':
        if time.time() > deadline:
            raise RuntimeError('the approval never waited')
        time.sleep(0.05)
    check('pause_approval', rpc(approval, {'intent': 'pause', 'message': None}), lambda r: r is True)
    signal = {'intent': 'signal', 'event': 'approved', 'data': {'by': 'kiwipy'}, 'key': 'k'}
    check('signal', rpc(approval, signal), lambda r: r == {'seq': 1, 'duplicate': False})
    check('signal_again', rpc(approval, signal), lambda r: r == {'seq': 1, 'duplicate': True})
    check('play_approval', rpc(approval, {'intent': 'play', 'message': None}), lambda r: r is True)

    outputs = unwrapped(comm.task_send({
        'task': 'launch',
        'args': {
            'process_class': 'add',
            'init_args': None,
            'init_kwargs': {'inputs': {'x': 1, 'y': 2}},
            'persist': True,
            'nowait': False,
        },
    }))
    check('launch_and_wait', outputs, lambda o: o == {'sum': 3})
finally:
    comm.close()

print(json.dumps(replies), flush=True)
