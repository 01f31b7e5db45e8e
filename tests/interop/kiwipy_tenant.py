"""A tenant's kiwipy 0.9 client (JSON encoder and decoder) on its own virtual host, for the
broker tenant tests: what it may reach, and what the broker keeps from it.

Usage:
  kiwipy_tenant.py connect AMQP_URL
      Connect and close. Prints {"connected": true}, or {"refused": {"error", "code", "text"}}
      with the broker's reply code and text when it refuses the connection.
  kiwipy_tenant.py launch AMQP_URL
      Launch a waiting `lifecycle` process by a launch task and wait until it waits. Prints
      {"pid": PID}.
  kiwipy_tenant.py rpc AMQP_URL PID INTENT
      Send one RPC (status, pause, play or kill) to PID. Prints {"reply": …} or
      {"error": EXCEPTION_CLASS, "text": …}.
  kiwipy_tenant.py drive AMQP_URL OTHER_PID
      Launch a waiting `lifecycle` process, ask for its status, pause, play and kill it; send
      a status RPC to OTHER_PID (another tenant's process); then broadcast `pause` to every
      process that hears this virtual host. Prints every reply as one JSON object; exits
      non-zero on the first wrong reply.

The exchanges and the task queue are kiwipy's defaults: each tenant has them in its own
virtual host.
"""
import concurrent.futures
import json
import sys
import time

import kiwipy
import kiwipy.rmq

TIMEOUT = 60


def connect(url):
    return kiwipy.rmq.RmqThreadCommunicator.connect(
        connection_params={'url': url},
        encoder=lambda obj: json.dumps(obj).encode('utf-8'),
        decoder=json.loads,
    )


def unwrapped(future):
    """The answer a kiwipy future stands for, through the futures a pending reply adds."""
    result = future.result(timeout=TIMEOUT)
    while isinstance(result, concurrent.futures.Future):
        result = result.result(timeout=TIMEOUT)
    return result


def rpc(comm, pid, intent, message=None):
    body = {'intent': intent, 'message': message}
    if intent == 'kill':
        body['force_kill'] = False
    return unwrapped(comm.rpc_send(pid, body))


def launch(comm):
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
    deadline = time.time() + TIMEOUT
    status = rpc(comm, pid, 'status')
    while status['state'] != 'ProcessState.WAITING' and time.time() < deadline:
        time.sleep(0.05)
        status = rpc(comm, pid, 'status')
    return pid, status


def refusal(error):
    """The broker's Connection.Close (reply code and text) behind a failed connect, if any."""
    close = next((a for a in getattr(error, 'args', ()) if hasattr(a, 'reply_code')), None)
    if close is not None:
        return close.reply_code, close.reply_text
    text = ' '.join(str(a) for a in getattr(error, 'args', ())) or str(error)
    return None, text


def main():
    mode, url = sys.argv[1:3]
    if mode == 'connect':
        try:
            connect(url).close()
            print(json.dumps({'connected': True}), flush=True)
        except Exception as error:  # the broker's refusal, whatever aiormq calls it
            code, text = refusal(error)
            print(json.dumps({'refused': {
                'error': type(error).__name__, 'code': code, 'text': text}}), flush=True)
        return
    comm = connect(url)
    try:
        if mode == 'launch':
            pid, status = launch(comm)
            if status['state'] != 'ProcessState.WAITING':
                sys.exit(f'the process does not wait: {status!r}')
            print(json.dumps({'pid': pid}), flush=True)
        elif mode == 'rpc':
            pid, intent = sys.argv[3:5]
            try:
                print(json.dumps({'reply': rpc(comm, pid, intent)}), flush=True)
            except Exception as error:
                print(json.dumps({'error': type(error).__name__, 'text': str(error)}), flush=True)
        elif mode == 'drive':
            drive(comm, sys.argv[3])
        else:
            sys.exit(f'unknown mode {mode}')
    finally:
        comm.close()


def drive(comm, other):
    replies = {}

    def check(name, value, condition):
        replies[name] = value
        if not condition(value):
            print(json.dumps(replies), flush=True)
            sys.exit(f'unexpected reply to {name}: {value!r}')

    pid, status = launch(comm)
    replies['pid'] = pid
    check('status', status,
          lambda s: s['state'] == 'ProcessState.WAITING' and s['paused'] is False)
    check('pause', rpc(comm, pid, 'pause', 'from the tenant'), lambda r: r is True)
    check('status_paused', rpc(comm, pid, 'status'), lambda s: s['paused'] is True)
    check('play', rpc(comm, pid, 'play'), lambda r: r is True)
    check('status_played', rpc(comm, pid, 'status'), lambda s: s['paused'] is False)
    try:
        answer = rpc(comm, other, 'status')
        replies['other'] = {'reply': answer}
    except Exception as error:
        replies['other'] = {'error': type(error).__name__, 'text': str(error)}
    check('kill', rpc(comm, pid, 'kill', 'bye'), lambda r: r is True)
    # plumpy's `pause_all`: every process on this virtual host hears it — and only those.
    comm.broadcast_send(None, subject='pause')
    replies['broadcast'] = True
    print(json.dumps(replies), flush=True)


if __name__ == '__main__':
    main()
