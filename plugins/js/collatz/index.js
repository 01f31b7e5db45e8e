// `collatz-js`: counts the steps of the Collatz sequence from `n` down to 1, as the Rust `collatz`.
//
// A work chain with `while_` and `if_`. It keeps its running count and peak in properties of the
// plugin object (memory only) and the current value in the context (durable), so it exercises both
// kinds of state a checkpoint must carry.
import { StepError, definePlugin, finish, if_, step, while_ } from '../../../guest-sdk/js/damson.js';

/** Exit status when `n` is below 1. */
const NOT_POSITIVE = 400;

export const process = definePlugin({
  name: 'collatz-js',
  version: '0.1.0',
  /** Steps taken so far; lives in the plugin's memory, not in the context. */
  steps: 0,
  /** The largest value seen on the way. */
  peak: 0,

  define(spec) {
    spec.description('Counts the steps of the Collatz sequence from n down to 1.');
    spec.input('n', { type: 'int', help: 'Where to start (at least 1)' });
    spec.output('steps', { type: 'int', help: 'How many steps it took to reach 1' });
    spec.output('peak', { type: 'int', help: 'The largest value on the way' });
    spec.exitCode(NOT_POSITIVE, 'ERROR_NOT_POSITIVE', 'n must be at least 1');
    spec.outline(
      step('start'),
      while_('above_one', [
        if_('is_even', [step('halve')]).else_([step('triple_plus_one')]),
        step('count'),
      ]),
      step('finish'),
    );
  },

  start(ctx) {
    const n = ctx.input('n');
    if (n < 1) return finish(NOT_POSITIVE, `n must be at least 1, got ${n}`);
    ctx.set('n', n);
    this.peak = n;
  },
  above_one: (ctx) => ctx.get('n') > 1,
  is_even: (ctx) => ctx.get('n') % 2 === 0,
  halve(ctx) {
    ctx.set('n', ctx.get('n') / 2);
  },
  triple_plus_one(ctx) {
    const n = ctx.get('n');
    const next = 3 * n + 1;
    // Past 2^53 a JavaScript number is no longer exact.
    if (!Number.isSafeInteger(next)) throw new StepError(`3n + 1 overflows at n = ${n}`);
    this.peak = Math.max(this.peak, next);
    ctx.set('n', next);
  },
  count(ctx) {
    this.steps += 1;
    ctx.status(`${this.steps} steps so far`);
  },
  finish(ctx) {
    console.debug(`reached 1 after ${this.steps} steps`);
    ctx.out('steps', this.steps);
    ctx.out('peak', this.peak);
  },
});
