/*
 * `collatz-c`: counts the steps of the Collatz sequence from `n` down to 1.
 *
 * The C twin of the Rust `collatz`: a work chain with DAMSON_WHILE and DAMSON_IF that keeps its
 * running count in static variables (memory only) and the current value in the context
 * (durable), so it exercises both kinds of state a checkpoint must carry.
 */
#include "damson.h"

/* Exit status when `n` is below 1. */
enum { NOT_POSITIVE = 400 };

/* Steps taken so far; lives in the plugin's memory, not in the context. */
static uint64_t steps;
/* The largest value seen on the way. */
static uint64_t peak;

static damson_next start(damson_ctx *ctx) {
    int64_t n = damson_input_int(ctx, "n");
    if (n < 1) return damson_finish(ctx, NOT_POSITIVE, "n must be at least 1, got %lld", (long long)n);
    damson_set_int(ctx, "n", n);
    peak = (uint64_t)n;
    return DAMSON_CONTINUE;
}

static bool above_one(damson_ctx *ctx) { return damson_get_int(ctx, "n") > 1; }

static bool is_even(damson_ctx *ctx) { return damson_get_int(ctx, "n") % 2 == 0; }

static damson_next halve(damson_ctx *ctx) {
    damson_set_int(ctx, "n", damson_get_int(ctx, "n") / 2);
    return DAMSON_CONTINUE;
}

static damson_next triple_plus_one(damson_ctx *ctx) {
    int64_t n = damson_get_int(ctx, "n"), next;
    if (__builtin_mul_overflow(n, 3, &next) || __builtin_add_overflow(next, 1, &next))
        return damson_fail(ctx, "3n + 1 overflows at n = %lld", (long long)n);
    if ((uint64_t)next > peak) peak = (uint64_t)next;
    damson_set_int(ctx, "n", next);
    return DAMSON_CONTINUE;
}

static damson_next count(damson_ctx *ctx) {
    steps++;
    damson_status(ctx, "%llu steps so far", (unsigned long long)steps);
    return DAMSON_CONTINUE;
}

static damson_next finish(damson_ctx *ctx) {
    damson_log(DAMSON_DEBUG, "reached 1 after %llu steps", (unsigned long long)steps);
    damson_out_int(ctx, "steps", (int64_t)steps);
    damson_out_int(ctx, "peak", (int64_t)peak);
    return DAMSON_CONTINUE;
}

static void define(damson_spec *spec) {
    damson_description(spec, "Counts the steps of the Collatz sequence from n down to 1.");
    damson_input(spec, "n", DAMSON_INT, "Where to start (at least 1)");
    damson_output(spec, "steps", DAMSON_INT, "How many steps it took to reach 1");
    damson_output(spec, "peak", DAMSON_INT, "The largest value on the way");
    damson_exit_code(spec, NOT_POSITIVE, "ERROR_NOT_POSITIVE", "n must be at least 1");
    damson_outline(spec,
        DAMSON_STEP(start),
        DAMSON_WHILE(above_one,
            DAMSON_IF(is_even, DAMSON_STEP(halve)),
            DAMSON_ELSE(DAMSON_STEP(triple_plus_one)),
            DAMSON_STEP(count)),
        DAMSON_STEP(finish));
}

DAMSON_PLUGIN(define)
