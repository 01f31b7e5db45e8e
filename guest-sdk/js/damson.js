// damson.js: write Damson process plugins in JavaScript (QuickJS, built with componentize-qjs).
//
// A plugin module exports `process = definePlugin({...})`: an object (or a class) whose `define`
// declares ports, exit codes and the outline, and whose methods are the outline's steps and
// conditions, named as in the outline. See README.md beside this file.
//
// Rules the SDK keeps for you:
// - `console.*` goes to the host's `log` import, never to a WASI stream: a stream handle held in
//   memory would make the plugin's memory image unrestorable.
// - A thrown exception is reported with its stack through `report-panic` and the call traps, so the
//   process ends EXCEPTED with that text. Throw a `StepError` to fail with just a message instead
//   (the step's `result` err, like Rust's `bail!`).
import * as host from 'damson:workflow/host';

/** The JSON types a port accepts, as WIT's `value-type` names them. */
const TYPES = new Set(['any', 'null', 'bool', 'int', 'float', 'number', 'str', 'list', 'dict']);

// componentize-qjs lowers a thrown string or Error into the export's `result` err; anything else
// cannot be lowered into a string and traps, which is how a call fails after `report-panic`.
const TRAP = Object.freeze({ damson: 'trap after report-panic' });

/**
 * An error that fails the step with this message only (no stack): the step's `result` err. A
 * `kind` (e.g. 'invalid-request') lets a retry policy's `nonRetryableErrors` leave it out.
 */
export class StepError extends Error {
  constructor(message, { kind = null } = {}) {
    super(message);
    this.name = 'StepError';
    this.kind = kind;
  }
}

// ---- Logging ---------------------------------------------------------------------------------

function format(args) {
  return args
    .map((a) => {
      if (typeof a === 'string') return a;
      if (a instanceof Error) return errorText(a);
      try {
        return JSON.stringify(a, (_, v) => (typeof v === 'bigint' ? v.toString() : v)) ?? String(a);
      } catch {
        return String(a);
      }
    })
    .join(' ');
}

/** Log through the host at a level: `trace`, `debug`, `info`, `warn` or `error`. */
export function log(level, ...args) {
  host.log(level, format(args));
}

// QuickJS has no console; this one is the host's log, so plugins and libraries can use it.
globalThis.console = {
  log: (...a) => log('info', ...a),
  info: (...a) => log('info', ...a),
  warn: (...a) => log('warn', ...a),
  error: (...a) => log('error', ...a),
  debug: (...a) => log('debug', ...a),
  trace: (...a) => log('trace', ...a),
};

// ---- Failures --------------------------------------------------------------------------------

// This file's name as stacks show it, to leave the SDK's own frames out of reports.
const SDK_FILE = /\((.*):\d+:\d+\)/.exec(new Error().stack ?? '')?.[1];

/** `Error: message` and the stack (QuickJS's `stack` holds only the frames) up to the SDK's. */
function errorText(e) {
  const head = String(e);
  const frames = typeof e.stack === 'string' ? e.stack.trimEnd().split('\n') : [];
  while (SDK_FILE && frames.length > 1 && frames.at(-1).includes(`(${SDK_FILE}:`)) frames.pop();
  const stack = frames.join('\n');
  return stack.startsWith(head) ? stack : stack ? `${head}\n${stack}` : head;
}

/** Run `f`; a StepError becomes the call's err, any other exception a reported panic and a trap. */
function guard(f) {
  try {
    return f();
  } catch (e) {
    if (e instanceof StepError) {
      if (e.kind !== null) host.errorKind(e.kind);
      throw e.message;
    }
    const text = e instanceof Error ? errorText(e) : `uncaught ${typeof e}: ${String(e)}`;
    const location = e instanceof Error ? /\((.*:\d+:\d+)\)/.exec(e.stack ?? '')?.[1] : undefined;
    host.reportPanic(text, location ?? null);
    throw TRAP;
  }
}

// ---- Outline ---------------------------------------------------------------------------------

/** Call the plugin's method `name`. */
export function step(name) {
  return { kind: 'step', name };
}

/** `while_(condition, body)`: run `body` while the method `condition` returns true. */
export function while_(condition, body) {
  return { kind: 'while', condition, body };
}

/** `return_()` ends the process successfully here; `return_(status)` with that exit status. */
export function return_(status) {
  return { kind: 'return', status: status ?? null };
}

/** `if_(condition, body)`, chained with `.elif_(condition, body)` and `.else_(body)`. */
export function if_(condition, body) {
  const branches = [{ condition, body }];
  const node = {
    kind: 'if',
    branches,
    elif_(c, b) {
      return add(c, b, 'elif_');
    },
    else_(b) {
      return add(null, b, 'else_');
    },
  };
  function add(c, b, what) {
    if (branches.at(-1).condition === null) {
      throw new Error(`${what} after else_: else_ must be the last branch of an if_`);
    }
    branches.push({ condition: c, body: b });
    return node;
  }
  return node;
}

/** Flatten `seq` into WIT's indexed node list; returns the index of its sequence node. */
function flatten(seq, nodes, names) {
  const push = (instruction) => nodes.push(instruction) - 1;
  const name = (n, what) => {
    if (typeof n !== 'string' || n === '') throw new Error(`a ${what} needs a name`);
    names[what].add(n);
    return n;
  };
  const one = (o) => {
    switch (o?.kind) {
      case 'step':
        return push({ tag: 'step', val: name(o.name, 'step') });
      case 'while': {
        const condition = name(o.condition, 'condition');
        return push({ tag: 'while-loop', val: { condition, body: flatten(o.body, nodes, names) } });
      }
      case 'if':
        return push({
          tag: 'conditional',
          val: o.branches.map((b) => ({
            condition: b.condition === null ? null : name(b.condition, 'condition'),
            body: flatten(b.body, nodes, names),
          })),
        });
      case 'return':
        return push({ tag: 'return', val: o.status });
      default:
        throw new Error(`not an outline element: ${format([o])} (use step, if_, while_, return_)`);
    }
  };
  return push({ tag: 'sequence', val: [seq].flat().map(one) });
}

// ---- Spec ------------------------------------------------------------------------------------

function validTypes(type) {
  const types = type === undefined ? [] : [type].flat();
  for (const t of types) {
    if (!TYPES.has(t)) throw new Error(`unknown port type '${t}' (one of ${[...TYPES].join(', ')})`);
  }
  return types;
}

/** The failures a retry policy can leave out. */
const FAILURE_KINDS = new Set(['error', 'trap', 'timeout', 'memory']);

/** What `define(spec)` declares. Port options are documented in README.md. */
class Spec {
  #description = null;
  inputs = [];
  outputs = [];
  exposes = [];
  exitCodes = [];
  retries = [];
  root = [];
  validators = new Map();
  defaults = new Map();

  /** A description of the plugin, shown by `damson describe`. */
  description(text) {
    this.#description = text;
    return this;
  }
  /** An input port at a dotted path (`options.greeting` creates the namespace `options`). */
  input(path, options = {}) {
    return this.#port('inputs', path, false, options);
  }
  /** An output port at a dotted path. */
  output(path, options = {}) {
    return this.#port('outputs', path, false, options);
  }
  /** An input namespace; `''` is the root of all inputs. A `type` makes it dynamic. */
  inputNamespace(path, options = {}) {
    return this.#port('inputs', path, true, options);
  }
  /** An output namespace; `''` is the root of all outputs. */
  outputNamespace(path, options = {}) {
    return this.#port('outputs', path, true, options);
  }
  /** Copy another plugin's inputs into the namespace `namespace` (`''`: the top level). */
  exposeInputs(plugin, namespace = '', options = {}) {
    return this.#expose('inputs', plugin, namespace, options);
  }
  /** Copy another plugin's outputs into the namespace `namespace`. */
  exposeOutputs(plugin, namespace = '', options = {}) {
    return this.#expose('outputs', plugin, namespace, options);
  }
  /** An exit code a step may end with (`return finish(status, message)`). */
  exitCode(status, label, message) {
    this.exitCodes.push({ status, label, message });
    return this;
  }
  /**
   * Retry the step `step` (its name; `null`: every step without a policy of its own) when it
   * fails: from the state before it (context, outputs and the plugin's memory), at most
   * `maxAttempts` attempts in all, `initialInterval` ms before the second, each interval
   * `backoff` times the one before, at most `maxInterval` ms. `nonRetryable` lists failures
   * that end the process at once: 'error' (a StepError), 'trap' (any other exception),
   * 'timeout', 'memory'; `nonRetryableErrors` the kinds of StepError that do.
   * `ctx.attempt` tells a step which attempt it is.
   */
  retry(
    step,
    { maxAttempts = 3, initialInterval = 1000, backoff = 2, maxInterval = null, nonRetryable = [], nonRetryableErrors = [] } = {},
  ) {
    for (const kind of nonRetryable) {
      if (!FAILURE_KINDS.has(kind)) {
        throw new Error(`unknown failure kind '${kind}' (one of ${[...FAILURE_KINDS].join(', ')})`);
      }
    }
    this.retries.push({
      step,
      maxAttempts,
      initialIntervalMs: Math.round(initialInterval),
      backoff,
      maxIntervalMs: maxInterval === null ? null : Math.round(maxInterval),
      nonRetryable,
      nonRetryableErrors,
    });
    return this;
  }
  /** The outline: `step`, `if_`, `while_` and `return_` elements, in order. */
  outline(...elements) {
    this.root = elements.flat();
    return this;
  }

  /** The WIT `spec` record, and the step and condition names the outline uses. */
  finish(name, version) {
    const nodes = [];
    const names = { step: new Set(), condition: new Set() };
    const root = flatten(this.root, nodes, names);
    const wit = {
      name,
      version,
      description: this.#description,
      inputs: this.inputs,
      outputs: this.outputs,
      exposes: this.exposes,
      exitCodes: this.exitCodes,
      outline: { nodes, root },
      retries: this.retries,
    };
    return { wit, names, validators: this.validators, defaults: this.defaults };
  }

  #port(side, path, namespace, o) {
    const full = path === '' ? side : `${side}.${path}`;
    const types = validTypes(o.type);
    let fixed = null;
    if (typeof o.default === 'function') {
      this.defaults.set(full, o.default);
      fixed = { tag: 'computed' };
    } else if (o.default !== undefined) {
      fixed = { tag: 'value', val: JSON.stringify(o.default) };
    }
    if (o.validator) this.validators.set(full, o.validator);
    this[side].push({
      path,
      namespace,
      validTypes: types,
      // Required unless a default is given, as in plumpy.
      required: o.required ?? fixed === null,
      default: fixed,
      help: o.help ?? null,
      validator: Boolean(o.validator),
      dynamic: o.dynamic ?? (namespace && types.length > 0),
      populateDefaults: o.populateDefaults ?? true,
    });
    return this;
  }

  #expose(side, plugin, namespace, o) {
    if (o.include && o.exclude) throw new Error(`expose of '${plugin}': include or exclude, not both`);
    this.exposes.push({
      side,
      plugin,
      namespace,
      include: o.include ?? null,
      exclude: o.exclude ?? null,
      namespaceOptions: {
        required: o.required ?? null,
        dynamic: o.dynamic ?? null,
        validTypes: o.type === undefined ? null : validTypes(o.type),
        help: o.help ?? null,
        populateDefaults: o.populateDefaults ?? null,
      },
    });
    return this;
  }
}

// ---- Steps -----------------------------------------------------------------------------------

/** What a step may return, besides nothing (go on). */
const NEXT = new Set(['continue', 'wait', 'finish', 'kill', 'sleep']);

/** End the outline now with this exit status (0: success) and message. */
export function finish(status = 0, message = null) {
  return { tag: 'finish', val: { status, message } };
}

/**
 * Wait until resumed (or until the signal `event` arrives: its payload is then in the context
 * under the event's name, `resumed` for a plain resume), showing `message` meanwhile; at most
 * `timeout` milliseconds if given, after which `ctx.timed_out` is true (false when the signal
 * came).
 */
export function wait({ event = null, message = null, timeout = null } = {}) {
  return { tag: 'wait', val: { event, message, timeout: timeout === null ? null : after(timeout) } };
}

/**
 * Sleep `ms` milliseconds on a durable timer (it survives a restart of the host, and fires at
 * once if it came due meanwhile), then go on with the outline.
 */
export function sleep(ms) {
  return { tag: 'sleep', val: after(ms) };
}

function after(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
    throw new TypeError(`a timer takes a number of milliseconds, 0 or more, not ${ms}`);
  }
  // componentize-qjs takes a u64 as a number.
  return { tag: 'after-ms', val: Math.round(ms) };
}

/** Kill the process with this message. */
export function kill(message) {
  return { tag: 'kill', val: message };
}

const missing = Symbol('missing');

function parse(json, what) {
  try {
    return JSON.parse(json);
  } catch (e) {
    throw new StepError(`${what}: the host sent invalid JSON: ${e.message}`);
  }
}

function toJson(value, what) {
  const json = JSON.stringify(value);
  if (json === undefined) throw new StepError(`${what}: ${typeof value} is not a JSON value`);
  return json;
}

/** Host calls that return a WIT `result` throw an Error on err; fail the step with its text. */
function fallible(f) {
  try {
    return f();
  } catch (e) {
    throw new StepError(e.message);
  }
}

/**
 * A step's (or condition's) view of its process: inputs, context, outputs, status and children.
 * The context is the process's durable key-value store of JSON values, kept in every checkpoint.
 */
class Ctx {
  awaits = [];

  /** Which attempt of the running step this is: 1 for the first, 2 for the first retry. */
  get attempt() {
    return host.attempt();
  }
  /** This process's id. */
  get pid() {
    return host.pid();
  }
  /** The input at a dotted path; `fallback` when not given (without one, a missing input fails). */
  input(path, fallback = missing) {
    const json = host.input(path);
    if (json !== null) return parse(json, `input '${path}'`);
    if (fallback !== missing) return fallback;
    throw new StepError(`input '${path}' was not given`);
  }
  /** All inputs, as one object. */
  inputs() {
    return parse(host.inputs(), 'inputs');
  }
  /** The context value under `key`; `fallback` when absent (without one, a missing key fails). */
  get(key, fallback = missing) {
    const json = host.contextGet(key);
    if (json !== null) return parse(json, `context key '${key}'`);
    if (fallback !== missing) return fallback;
    throw new StepError(`the context has no key '${key}'`);
  }
  /** Set the context value under `key`. */
  set(key, value) {
    host.contextSet(key, toJson(value, `context key '${key}'`));
  }
  /** Remove `key` from the context; returns whether it was there. */
  remove(key) {
    return host.contextRemove(key);
  }
  /** All context keys, sorted. */
  keys() {
    return host.contextKeys();
  }
  /** Emit an output at a dotted path; the host validates it at once (an invalid one fails). */
  out(path, value) {
    const json = toJson(value, `output '${path}'`);
    fallible(() => host.emitOutput(path, json));
  }
  /** Set the status message (`null` clears it). */
  status(message) {
    host.setStatus(message ?? null);
  }
  /** Pause the process once this step returns; `message` replaces the status while paused. */
  pause(message) {
    host.pause(message ?? null);
  }
  /** Launch a child process of the named plugin with these inputs; returns its pid. */
  launch(plugin, inputs = {}) {
    const json = toJson(inputs, `inputs of '${plugin}'`);
    return fallible(() => host.launch(plugin, json));
  }
  /**
   * Await child `pid` after this step and store its record under `key` (plumpy's `ToContext`).
   * The record has `pid`, `plugin`, `state`, `successful`, `exit_status`, `exit_message`,
   * `outputs` and `error`; a child that does not succeed makes this process end EXCEPTED.
   */
  toContext(key, pid) {
    this.awaits.push({ pid, key, append: false, inspect: false });
  }
  /** Await child `pid` and append its record to the list under `key`. */
  appendToContext(key, pid) {
    this.awaits.push({ pid, key, append: true, inspect: false });
  }
  /** Await child `pid` and store its record under `key` whether or not it succeeded. */
  inspectInContext(key, pid) {
    this.awaits.push({ pid, key, append: false, inspect: true });
  }
}

// ---- The export ------------------------------------------------------------------------------

/**
 * The `process` export for a plugin: `export const process = definePlugin({...})`.
 *
 * `plugin` is an object (used as the process's state) or a class (instantiated before the first
 * step, `define` static). It has `name` and `version`, `define(spec)`, and one method per step
 * (`(ctx) => next`) and condition (`(ctx) => boolean`) of the outline, named as in the outline.
 */
export function definePlugin(plugin) {
  const isClass = typeof plugin === 'function';
  if (!isClass && (typeof plugin !== 'object' || plugin === null)) {
    throw new Error('definePlugin takes an object or a class');
  }
  let built = null;
  let state = null;
  // Declared on the first call (`describe`), not at build time, so a mistake in `define` shows
  // where the host reports it.
  const spec = () => {
    if (built !== null) return built;
    if (typeof plugin.name !== 'string' || plugin.name === '') {
      throw new Error('the plugin has no name: give definePlugin a `name` (a class: `static name`)');
    }
    const s = new Spec();
    plugin.define(s);
    const b = s.finish(plugin.name, plugin.version ?? '0.0.0');
    const methods = isClass ? plugin.prototype : plugin;
    for (const [what, names] of Object.entries(b.names)) {
      for (const n of names) {
        if (typeof methods[n] !== 'function') {
          throw new Error(`the outline names the ${what} '${n}', which the plugin does not define`);
        }
      }
    }
    return (built = b);
  };
  const call = (what, name, ctx) => {
    if (!spec().names[what].has(name)) throw new StepError(`the plugin has no ${what} named '${name}'`);
    state ??= isClass ? new plugin() : plugin;
    return state[name](ctx);
  };
  return {
    describe: () => guard(() => spec().wit),
    runStep: (name) =>
      guard(() => {
        const ctx = new Ctx();
        const next = call('step', name, ctx) ?? { tag: 'continue' };
        if (!NEXT.has(next?.tag)) {
          throw new Error(`step '${name}' returned ${format([next])}: return nothing, finish(), wait() or kill()`);
        }
        return { next, awaits: ctx.awaits };
      }),
    checkCondition: (name) => guard(() => Boolean(call('condition', name, new Ctx()))),
    validate: (path, value) =>
      guard(() => {
        const check = spec().validators.get(path);
        if (!check) return `the plugin has no validator for '${path}'`;
        const message = check(JSON.parse(value));
        return message === undefined || message === null ? null : String(message);
      }),
    computeDefault: (path) =>
      guard(() => {
        const compute = spec().defaults.get(path);
        if (!compute) throw new StepError(`the plugin has no computed default for '${path}'`);
        return toJson(compute(), `the default of '${path}'`);
      }),
  };
}
