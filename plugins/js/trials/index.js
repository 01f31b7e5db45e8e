// `trials-js`: one plugin for the host's failure paths, chosen by the input `do`: a step that
// throws, one that never returns, one that allocates without bound, a child awaited, a sleep,
// a wait for a signal with a timeout, and a step that fails twice and is retried.
import { StepError, definePlugin, if_, sleep, step, wait } from '../../../guest-sdk/js/damson.js';

export const process = definePlugin({
  name: 'trials-js',
  version: '0.1.0',

  define(spec) {
    spec.description('Throws, spins, hogs memory or awaits a child, as `do` says.');
    spec.input('do', { type: 'str', help: 'raise | spin | hog | child | sleep | ask | flaky' });
    spec.input('child', { type: 'str', default: 'collatz-c', help: 'The plugin do=child launches' });
    spec.output('child_steps', { type: 'int', required: false, help: "The child's steps output" });
    spec.output('timed_out', {
      type: 'bool',
      required: false,
      help: 'do=ask: whether the wait for `approved` timed out',
    });
    spec.output('attempts', {
      type: 'int',
      required: false,
      help: 'do=flaky: the attempt at which the flaky step succeeded',
    });
    spec.retry('wobble', {
      maxAttempts: 3,
      initialInterval: 50,
      backoff: 2,
      nonRetryable: ['trap'],
      nonRetryableErrors: ['refused'],
    });
    spec.outline(
      step('act'),
      if_('awaited_child', [step('collect')]),
      if_('asked', [step('report')]),
      if_('flaky', [step('wobble')]),
    );
  },

  act(ctx) {
    switch (ctx.input('do')) {
      case 'raise':
        throw new Error('asked to raise');
      case 'spin':
        // The host's step timeout stops this.
        for (;;);
      case 'hog': {
        // The host's memory cap stops this; filling each MiB makes the memory really used.
        const hoard = [];
        for (;;) hoard.push(new Uint8Array(1 << 20).fill(0xa5));
      }
      case 'child':
        ctx.toContext('child', ctx.launch(ctx.input('child'), { n: 27 }));
        return;
      case 'sleep':
        return sleep(300);
      case 'ask':
        return wait({ event: 'approved', timeout: 300 });
      case 'flaky':
      case 'refuse':
        return;
      default:
        throw new Error(
          `unknown do '${ctx.input('do')}' (raise | spin | hog | child | sleep | ask | flaky)`,
        );
    }
  },
  awaited_child: (ctx) => ctx.input('do') === 'child',
  asked: (ctx) => ctx.input('do') === 'ask',
  flaky: (ctx) => ['flaky', 'refuse'].includes(ctx.input('do')),
  wobble(ctx) {
    if (ctx.input('do') === 'refuse') throw new StepError('refused outright', { kind: 'refused' });
    // A StepError fails the step (retried); any other exception is a panic, which is not.
    if (ctx.attempt < 3) throw new StepError(`wobbled on attempt ${ctx.attempt}`);
    ctx.out('attempts', ctx.attempt);
  },
  report(ctx) {
    ctx.out('timed_out', ctx.get('timed_out'));
  },
  collect(ctx) {
    ctx.out('child_steps', ctx.get('child').outputs.steps);
  },
});
