/*
 * `hailstone-c`: walks the Collatz (hailstone) sequence from `n` down to 1, keeping *all* of its
 * running state in the plugin's own memory — static variables for the current value and a
 * static open-addressing table of every value seen — and none in the context.
 *
 * Its outputs can only come out right after a crash if the checkpoint carried the plugin's
 * memory: the durability tests kill a host in the middle of its loop and continue it. The
 * outputs equal the Rust `hailstone`'s for the same `n`, the checksum included.
 */
#include <time.h>

#include "damson.h"

/* Slots in the table of values seen: a power of two, and far more than any sequence below
 * 2^63 visits (the longest known ones take a few thousand steps). */
#define SLOTS (1u << 14)

/* One value seen and the step it was seen at; `value` 0 marks a free slot (0 is never seen). */
static struct {
    uint64_t value, step;
} seen[SLOTS];
static size_t seen_len;

/* Where the walk is. */
static uint64_t current;
/* Steps taken so far. */
static uint64_t steps;
/* How long each step lingers, so a test can interrupt the walk. */
static int64_t delay_ms;

/* Record that `value` was seen at `step` (again: the later step wins, as in a map). */
static bool remember(uint64_t value, uint64_t step) {
    /* Fibonacci hashing spreads the mostly even values over the table. */
    for (size_t i = (size_t)((value * 0x9E3779B97F4A7C15u) >> 50);; i = (i + 1) % SLOTS) {
        if (seen[i].value == value || seen[i].value == 0) {
            if (seen[i].value == 0) {
                if (seen_len + 1 == SLOTS) return false;
                seen_len++;
            }
            seen[i].value = value;
            seen[i].step = step;
            return true;
        }
    }
}

static damson_next start(damson_ctx *ctx) {
    int64_t n = damson_input_int(ctx, "n");
    delay_ms = damson_input_int(ctx, "delay_ms");
    if (damson_failed(ctx)) return DAMSON_CONTINUE;
    if (n < 1) return damson_fail(ctx, "n must be at least 1, got %lld", (long long)n);
    if (delay_ms < 0) return damson_fail(ctx, "delay_ms must not be negative, got %lld", (long long)delay_ms);
    current = (uint64_t)n;
    remember(current, 0);
    return DAMSON_CONTINUE;
}

static bool above_one(damson_ctx *ctx) { return current > 1; }

static damson_next advance(damson_ctx *ctx) {
    uint64_t n = current;
    if (n % 2 == 0) {
        current = n / 2;
    } else if (__builtin_mul_overflow(n, 3, &current) || __builtin_add_overflow(current, 1, &current)) {
        current = n;
        return damson_fail(ctx, "3n + 1 overflows at n = %llu", (unsigned long long)n);
    }
    steps++;
    if (!remember(current, steps))
        return damson_fail(ctx, "more than %u values seen", SLOTS - 1);
    if (delay_ms > 0) {
        /* wasi-libc's nanosleep polls a clock through the host and keeps no handle. */
        struct timespec delay = {.tv_sec = delay_ms / 1000, .tv_nsec = delay_ms % 1000 * 1000000};
        nanosleep(&delay, NULL);
    }
    damson_status(ctx, "step %llu at %llu", (unsigned long long)steps, (unsigned long long)current);
    damson_log(DAMSON_INFO, "step %llu at %llu", (unsigned long long)steps, (unsigned long long)current);
    return DAMSON_CONTINUE;
}

static uint64_t rotate_left(uint64_t x, unsigned k) { return k ? x << k | x >> (64 - k) : x; }

static damson_next finish(damson_ctx *ctx) {
    uint64_t peak = current, checksum = 0;
    /* The Rust plugin's fold; unsigned arithmetic wraps as its wrapping_* does, and a sum does
     * not depend on the order the table is walked in. */
    for (size_t i = 0; i < SLOTS; i++) {
        if (seen[i].value == 0) continue;
        uint64_t value = seen[i].value, step = seen[i].step;
        if (value > peak) peak = value;
        checksum += rotate_left(value * (step + 1), (unsigned)(step % 64));
    }
    checksum %= UINT64_C(1) << 53;
    damson_out_int(ctx, "steps", (int64_t)steps);
    damson_out_int(ctx, "peak", (int64_t)peak);
    damson_out_int(ctx, "checksum", (int64_t)checksum);
    return DAMSON_CONTINUE;
}

static void define(damson_spec *spec) {
    damson_description(spec, "Walks the hailstone sequence from n to 1, its state in memory only.");
    damson_input(spec, "n", DAMSON_INT, "Where to start (at least 1)");
    damson_input(spec, "delay_ms", DAMSON_INT, "Milliseconds each step lingers", .default_json = "0");
    damson_output(spec, "steps", DAMSON_INT, "Steps to reach 1");
    damson_output(spec, "peak", DAMSON_INT, "The largest value seen");
    damson_output(spec, "checksum", DAMSON_INT, "A digest of every value seen and when");
    damson_outline(spec,
        DAMSON_STEP(start),
        DAMSON_WHILE(above_one, DAMSON_STEP(advance)),
        DAMSON_STEP(finish));
}

DAMSON_PLUGIN(define)
