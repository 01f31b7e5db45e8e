/*
 * `trials-c`: misbehaves on request, so the tests can watch the host stop it, and launches a
 * child to show awaiting one.
 *
 * do=raise fails the step, do=spin loops until the host's step timeout, do=hog allocates until
 * the host's memory cap, and do=child launches `child` with n = 27, awaits it into the context
 * and outputs its `steps`; do=sleep sleeps 300 ms, and do=ask waits for `approved` at most
 * 300 ms and outputs whether it timed out; do=flaky runs a step that fails on its first two
 * attempts, retried by its policy, and outputs the attempt that succeeded.
 */
#include <stdlib.h>
#include <string.h>

#include "damson.h"

/* What do=hog holds: a list of chunks, each starting with a pointer to the one before. Kept
 * reachable, or the compiler would drop allocations that nothing reads. */
static void *volatile hoard;

static damson_next act(damson_ctx *ctx) {
    const char *what = damson_input_str(ctx, "do");
    if (strcmp(what, "raise") == 0) return damson_fail(ctx, "asked to raise");
    if (strcmp(what, "spin") == 0) {
        /* Volatile, so the loop is not optimised into a different (or no) loop. */
        for (volatile uint64_t turns = 0;; turns++) {
        }
    }
    if (strcmp(what, "hog") == 0) {
        for (size_t mib = 0;; mib++) {
            void **chunk = malloc(1 << 20);
            if (!chunk) damson_panic("out of memory after %zu MiB", mib);
            /* Touched, so every page is really there. */
            memset(chunk, 0xA5, 1 << 20);
            *chunk = hoard;
            hoard = chunk;
        }
    }
    if (strcmp(what, "child") == 0) {
        const char *child = damson_launch(ctx, damson_input_str(ctx, "child"), "{\"n\": 27}");
        damson_to_context(ctx, "child", child);
        return DAMSON_CONTINUE;
    }
    if (strcmp(what, "sleep") == 0) return damson_sleep(ctx, 300);
    if (strcmp(what, "ask") == 0) return damson_wait_at_most(ctx, "approved", NULL, 300);
    if (strcmp(what, "flaky") == 0 || strcmp(what, "refuse") == 0) return DAMSON_CONTINUE;
    return damson_fail(ctx, "unknown do '%s' (raise | spin | hog | child | sleep | ask | flaky)", what);
}

static bool flaky(damson_ctx *ctx) {
    const char *what = damson_input_str(ctx, "do");
    return strcmp(what, "flaky") == 0 || strcmp(what, "refuse") == 0;
}

static damson_next wobble(damson_ctx *ctx) {
    if (strcmp(damson_input_str(ctx, "do"), "refuse") == 0)
        return damson_fail_kind(ctx, "refused", "refused outright");
    uint32_t attempt = damson_attempt(ctx);
    if (attempt < 3) return damson_fail(ctx, "wobbled on attempt %u", (unsigned)attempt);
    damson_out_int(ctx, "attempts", attempt);
    return DAMSON_CONTINUE;
}

static bool asked(damson_ctx *ctx) { return strcmp(damson_input_str(ctx, "do"), "ask") == 0; }

static damson_next report(damson_ctx *ctx) {
    damson_out_bool(ctx, "timed_out", damson_timed_out(ctx));
    return DAMSON_CONTINUE;
}

static bool launched_child(damson_ctx *ctx) { return strcmp(damson_input_str(ctx, "do"), "child") == 0; }

static damson_next collect(damson_ctx *ctx) {
    damson_out_value(ctx, "child_steps", damson_at(damson_get(ctx, "child"), "outputs.steps"));
    return DAMSON_CONTINUE;
}

static void define(damson_spec *spec) {
    damson_description(spec, "Misbehaves on request (raise, spin, hog) or launches a child.");
    damson_input(spec, "do", DAMSON_STR, "raise | spin | hog | child | sleep | ask | flaky");
    damson_input(spec, "child", DAMSON_STR, "The plugin to launch when do=child", .default_str = "collatz-c");
    damson_output(spec, "child_steps", DAMSON_INT, "The child's `steps` output", .optional = true);
    damson_output(spec, "timed_out", DAMSON_BOOL, "do=ask: whether the wait for `approved` timed out",
                  .optional = true);
    damson_outline(spec,
        DAMSON_STEP(act),
        DAMSON_IF(launched_child, DAMSON_STEP(collect)),
        DAMSON_IF(asked, DAMSON_STEP(report)),
        DAMSON_IF(flaky, DAMSON_STEP(wobble)));
    damson_output(spec, "attempts", DAMSON_INT, "do=flaky: the attempt at which the flaky step succeeded",
                  .optional = true);
    damson_retry(spec, "wobble", .max_attempts = 3, .initial_interval_ms = 50, .backoff = 2.0,
                 .non_retryable = DAMSON_FAIL_TRAP,
                 .non_retryable_errors = (const char *[]){"refused", NULL});
}

DAMSON_PLUGIN(define)
