// `hailstone-js`: walks the Collatz (hailstone) sequence from `n` down to 1, as the Rust
// `hailstone`, keeping *all* of its running state in the plugin's own memory (properties of the
// plugin object and a `Map` of every value seen) and none in the context.
//
// Its outputs can only come out right after a crash if the checkpoint carried the plugin's
// memory: the durability tests kill a host in the middle of its loop and continue it.
import { StepError, definePlugin, step, while_ } from '../../../guest-sdk/js/damson.js';

const U64 = (1n << 64n) - 1n;

/** `x.rotate_left(by)` on a u64. */
const rotl = (x, by) => ((x << by) | (x >> ((64n - by) % 64n))) & U64;

export const process = definePlugin({
  name: 'hailstone-js',
  version: '0.1.0',
  /** Where the walk is. */
  current: 0,
  /** Steps taken so far. */
  steps: 0,
  /** Every value seen, with the step it was seen at. */
  seen: new Map(),
  /** How long each step lingers (ms), so a test can interrupt the walk. */
  delay: 0,

  define(spec) {
    spec.description('Walks the hailstone sequence from n to 1, its state in memory only.');
    spec.input('n', { type: 'int', help: 'Where to start (at least 1)' });
    spec.input('delay_ms', { type: 'int', default: 0, help: 'Milliseconds each step lingers' });
    spec.output('steps', { type: 'int', help: 'Steps to reach 1' });
    spec.output('peak', { type: 'int', help: 'The largest value seen' });
    spec.output('checksum', { type: 'int', help: 'A digest of every value seen and when' });
    spec.outline(step('start'), while_('above_one', [step('advance')]), step('finish'));
  },

  start(ctx) {
    const n = ctx.input('n');
    if (n < 1) throw new StepError(`n must be at least 1, got ${n}`);
    this.current = n;
    this.seen.set(n, 0);
    this.delay = ctx.input('delay_ms');
  },
  above_one() {
    return this.current > 1;
  },
  advance(ctx) {
    const n = this.current;
    const next = n % 2 === 0 ? n / 2 : 3 * n + 1;
    // Past 2^53 a JavaScript number is no longer exact.
    if (!Number.isSafeInteger(next)) throw new StepError(`3n + 1 overflows at n = ${n}`);
    this.current = next;
    this.steps += 1;
    this.seen.set(next, this.steps);
    // QuickJS has no sleep: wait on the clock.
    const until = Date.now() + this.delay;
    while (Date.now() < until);
    ctx.status(`step ${this.steps} at ${next}`);
    console.info(`step ${this.steps} at ${next}`);
  },
  finish(ctx) {
    let peak = this.current;
    for (const value of this.seen.keys()) peak = Math.max(peak, value);
    // As the Rust plugin: u64 wrapping arithmetic, hence BigInt.
    let sum = 0n;
    for (const [value, at] of this.seen) {
      const step = BigInt(at);
      sum = (sum + rotl((BigInt(value) * (step + 1n)) & U64, step % 64n)) & U64;
    }
    ctx.out('steps', this.steps);
    ctx.out('peak', peak);
    ctx.out('checksum', Number(sum % (1n << 53n)));
  },
});
