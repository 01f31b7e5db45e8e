"""Drive a running `damson worker` from Python with kiwipy 0.9 (JSON encoder and decoder).

Usage: kiwipy_client.py AMQP_URL MESSAGE_EXCHANGE TASK_EXCHANGE TASK_QUEUE

Launches a waiting `lifecycle` process by a launch task, then asks for its status, pauses,
plays and kills it by RPC, and launches an `add` process waiting for its outputs. Checks every
reply and prints them all as one JSON object; exits non-zero on the first wrong reply.
"""
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


def rpc(pid, body):
    return comm.rpc_send(pid, body).result(timeout=TIMEOUT)


try:
    pid = comm.task_send({
        'task': 'launch',
        'args': {
            'process_class': 'lifecycle',
            'init_args': None,
            'init_kwargs': {'inputs': {'mode': 'wait'}},
            'persist': True,
            'nowait': True,
        },
    }).result(timeout=TIMEOUT)
    check('launch', pid, lambda p: isinstance(p, str) and len(p) == 36)

    deadline = time.time() + TIMEOUT
    status = rpc(pid, {'intent': 'status', 'message': None})
    while status['state'] != 'waiting' and time.time() < deadline:
        time.sleep(0.05)
        status = rpc(pid, {'intent': 'status', 'message': None})
    check('status', status,
          lambda s: s['state'] == 'waiting' and s['paused'] is False and 'ctime' in s and 'process_string' in s)

    check('pause', rpc(pid, {'intent': 'pause', 'message': 'from kiwipy'}), lambda r: r is True)
    check('status_paused', rpc(pid, {'intent': 'status', 'message': None}), lambda s: s['paused'] is True)
    check('play', rpc(pid, {'intent': 'play', 'message': None}), lambda r: r is True)
    check('kill', rpc(pid, {'intent': 'kill', 'message': 'bye', 'force_kill': False}), lambda r: r is True)

    outputs = comm.task_send({
        'task': 'launch',
        'args': {
            'process_class': 'add',
            'init_args': None,
            'init_kwargs': {'inputs': {'x': 1, 'y': 2}},
            'persist': True,
            'nowait': False,
        },
    }).result(timeout=TIMEOUT)
    check('launch_and_wait', outputs, lambda o: o == {'sum': 3})
finally:
    comm.close()

print(json.dumps(replies), flush=True)
