/*
 * damson.h: write Damson process plugins in C.
 *
 * A plugin declares its ports, exit codes and outline in a `define` function, and its steps and
 * conditions are plain functions; `DAMSON_PLUGIN(define)` exports them as the plugin:
 *
 *     #include "damson.h"
 *
 *     static damson_next add(damson_ctx *ctx) {
 *         damson_out_int(ctx, "sum", damson_input_int(ctx, "x") + damson_input_int(ctx, "y"));
 *         return DAMSON_CONTINUE;
 *     }
 *
 *     static void define(damson_spec *spec) {
 *         damson_input(spec, "x", DAMSON_INT, "The first addend");
 *         damson_input(spec, "y", DAMSON_INT, "The second addend");
 *         damson_output(spec, "sum", DAMSON_INT, "x + y");
 *         damson_outline(spec, DAMSON_STEP(add));
 *     }
 *
 *     DAMSON_PLUGIN(define)
 *
 * Rules the SDK keeps, and the ones it asks of you:
 * - Errors are sticky, as `errno` is but without the checks: the first failure in a call (an
 *   input that is missing or of another type, an output the host refuses, `damson_fail`) is
 *   remembered, later effects of the same call are dropped, and the call ends with that
 *   message, so the process ends EXCEPTED. Reads after a failure return zero values;
 *   `damson_failed(ctx)` tells a step to stop early.
 * - Everything the SDK returns (strings, JSON values) lives until the current step, condition,
 *   validator or default returns: copy what you keep. State kept between steps lives in your own
 *   static variables; it is part of the process's memory image.
 * - Log with `damson_log` only. `printf`, `puts` and `stderr` go through a WASI stream whose
 *   handle would be kept in memory, which makes the memory image unrestorable.
 * - `damson_panic` (and a failed `assert`) tells the host why before trapping.
 */
#ifndef DAMSON_H
#define DAMSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DAMSON_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

/* ---- Values: JSON, parsed ---------------------------------------------------------------- */

/* The kind of a parsed JSON value. */
typedef enum damson_kind {
    DAMSON_KIND_NULL,
    DAMSON_KIND_BOOL,
    /* A number without fraction or exponent that fits an int64_t. */
    DAMSON_KIND_INT,
    /* Any other number. */
    DAMSON_KIND_FLOAT,
    DAMSON_KIND_STR,
    DAMSON_KIND_LIST,
    DAMSON_KIND_DICT,
} damson_kind;

/* A parsed JSON value. Read its fields directly; it lives until the current call returns. */
typedef struct damson_json {
    damson_kind kind;
    bool boolean;
    int64_t integer;
    /* Any number, as a double. */
    double number;
    /* A string (NUL-terminated; `len` bytes, which may include NULs), or a number's text as
     * written, so it passes through unchanged. */
    const char *string;
    /* The string's bytes, or how many items a list or dict holds. */
    size_t len;
    /* The items of a list or the values of a dict. */
    struct damson_json *items;
    /* The keys of a dict, one per item. */
    const char **keys;
} damson_json;

/* The value at a dotted path below `value` (`"outputs.steps"`), or NULL. */
const damson_json *damson_at(const damson_json *value, const char *path);
/* Parse JSON text; NULL (and a sticky error naming `what`) when it is malformed. */
const damson_json *damson_parse(const char *text, const char *what);
/* `value` as JSON text. */
const char *damson_to_json(const damson_json *value);
/* `s` as a JSON string, quoted and escaped: for composing JSON text. */
const char *damson_quote(const char *s);
/* printf into a string that lives until the current call returns. */
const char *damson_format(const char *fmt, ...) DAMSON_PRINTF(1, 2);

/* ---- Declaring: ports, exit codes, outline ----------------------------------------------- */

typedef struct damson_spec damson_spec;
typedef struct damson_ctx damson_ctx;

/* JSON types a port accepts; combine with `|`. `DAMSON_ANY` (0) accepts everything. */
enum {
    DAMSON_ANY = 0,
    DAMSON_NULL = 1 << 1,
    DAMSON_BOOL = 1 << 2,
    /* A number without fraction or exponent (never `true`). */
    DAMSON_INT = 1 << 3,
    /* A number with a fraction or exponent. */
    DAMSON_FLOAT = 1 << 4,
    DAMSON_NUMBER = 1 << 5,
    DAMSON_STR = 1 << 6,
    DAMSON_LIST = 1 << 7,
    DAMSON_DICT = 1 << 8,
};

/* Checks a value; returns an error message (e.g. from `damson_format`), or NULL when valid. */
typedef const char *(*damson_validator)(const damson_json *value);
/* Computes a default as JSON text (`"42"`, `damson_quote(name)`); NULL is an error. */
typedef const char *(*damson_default_fn)(void);

/* What a port declares beyond its path, types and help: the optional fields of
 * `damson_input` and friends, given by name (`.default_json = "0"`). Unset fields are off. */
typedef struct damson_port_options {
    /* A fixed default as JSON text (`"0"`, `"[1, 2]"`); makes the port optional. */
    const char *default_json;
    /* A fixed default string (quoted by the SDK); makes the port optional. */
    const char *default_str;
    /* A default computed when the host needs one (only when no value was given). */
    damson_default_fn default_with;
    /* Check values with this function. */
    damson_validator validator;
    /* The value may be left out (ports with a default are optional anyway). */
    bool optional;
    /* Namespace only: keys that are not declared ports are accepted (implied by types). */
    bool dynamic;
    /* Namespace only: do not fill the defaults inside when the namespace was not given. */
    bool skip_defaults;
} damson_port_options;

/* Declare an input port at a dotted path (`"options.greeting"` creates namespace `options`),
 * accepting `types`, with `help` shown by `damson describe` (NULL for none); then options:
 *     damson_input(spec, "delay_ms", DAMSON_INT, "Milliseconds each step lingers",
 *                  .default_json = "0");  */
#define damson_input(spec, path, types, help, ...)                                            \
    damson_port_((spec), false, false, (path), (types), (help),                              \
                 &(damson_port_options){__VA_ARGS__})
/* Declare an output port. */
#define damson_output(spec, path, types, help, ...)                                           \
    damson_port_((spec), true, false, (path), (types), (help),                               \
                 &(damson_port_options){__VA_ARGS__})
/* Declare (or configure) an input namespace; `""` is the root of all inputs. Types type the
 * undeclared values and make it dynamic. */
#define damson_input_namespace(spec, path, types, help, ...)                                  \
    damson_port_((spec), false, true, (path), (types), (help),                               \
                 &(damson_port_options){__VA_ARGS__})
/* Declare (or configure) an output namespace. */
#define damson_output_namespace(spec, path, types, help, ...)                                 \
    damson_port_((spec), true, true, (path), (types), (help),                                \
                 &(damson_port_options){__VA_ARGS__})

/* The plugin's name (by default the build's: `<directory>-c`) and version (`0.1.0`). */
void damson_name(damson_spec *spec, const char *name);
void damson_version(damson_spec *spec, const char *version);
/* A description, shown by `damson describe`. */
void damson_description(damson_spec *spec, const char *description);
/* Declare an exit code a step can end with (`damson_finish`). */
void damson_exit_code(damson_spec *spec, uint32_t status, const char *label, const char *message);

/* Failures a retry policy can leave out (`.non_retryable`, or-ed together). */
enum {
    DAMSON_FAIL_ERROR = 1 << 0,   /* the step failed (`damson_fail`) */
    DAMSON_FAIL_TRAP = 1 << 1,    /* the plugin trapped (`damson_panic`, a crash) */
    DAMSON_FAIL_TIMEOUT = 1 << 2, /* the step ran past the host's time limit */
    DAMSON_FAIL_MEMORY = 1 << 3,  /* the plugin grew past the host's memory limit */
};
/* How a failed step is tried again. A field left zero takes its default. */
typedef struct damson_retry_options {
    uint32_t max_attempts;        /* attempts in all, the first included (default 3) */
    uint64_t initial_interval_ms; /* before the second attempt (default 1000) */
    double backoff;               /* each interval is this times the one before (default 2.0) */
    uint64_t max_interval_ms;     /* the longest interval (default: no bound) */
    unsigned non_retryable;       /* DAMSON_FAIL_* that end the process at once (default none) */
    /* Kinds of error (`damson_fail_kind`) that end the process at once: a NULL-terminated
     * list, e.g. `(const char *[]){"invalid-request", NULL}` (default none). */
    const char *const *non_retryable_errors;
} damson_retry_options;
/* Retry step `step` (NULL: every step without a policy of its own) when it fails: from the
 * state before it (context, outputs and the plugin's memory), as the options say, e.g.
 * `damson_retry(spec, "send", .max_attempts = 5, .non_retryable = DAMSON_FAIL_TRAP)`.
 * `damson_attempt` tells a step which attempt it is. */
#define damson_retry(spec, step, ...) \
    damson_retry_((spec), (step), &(damson_retry_options){__VA_ARGS__})
void damson_retry_(damson_spec *spec, const char *step, const damson_retry_options *options);

/* What an exposure copies, beyond the plugin and namespace; unset fields keep the exposed
 * namespace's own. Lists end with NULL. */
typedef struct damson_expose_options {
    /* Only these ports (dotted paths relative to the exposed namespace). */
    const char *const *include;
    /* All ports but these. */
    const char *const *exclude;
    /* The receiving namespace's attributes: 0 keeps the exposed one's, else DAMSON_YES/NO. */
    int required, dynamic, populate_defaults;
    /* Types of the receiving namespace's undeclared values; 0 keeps the exposed one's. */
    unsigned types;
    const char *help;
} damson_expose_options;
enum { DAMSON_NO = -1, DAMSON_YES = 1 };

/* Copy the inputs of another plugin into the namespace at a dotted path (`""`: the top level),
 * as plumpy's `expose_inputs`: damson_expose_inputs(spec, "add", "sub", .exclude = (const char
 * *[]){"y", NULL}). */
#define damson_expose_inputs(spec, plugin, namespace, ...)                                    \
    damson_expose_((spec), false, (plugin), (namespace), &(damson_expose_options){__VA_ARGS__})
/* Copy the outputs of another plugin, as plumpy's `expose_outputs`. */
#define damson_expose_outputs(spec, plugin, namespace, ...)                                   \
    damson_expose_((spec), true, (plugin), (namespace), &(damson_expose_options){__VA_ARGS__})

/* ---- The outline ------------------------------------------------------------------------- */

/* What a step returns: where the outline goes next. Make one with the functions below. */
typedef struct damson_next {
    int kind;
    uint32_t status;
    const char *message;
    const char *event;
    /* A wait's timeout (when `has_timer`), or a sleep's length, in milliseconds. */
    bool has_timer;
    uint64_t timer_ms;
} damson_next;

/* A step: reads inputs and context, emits outputs, says what comes next. */
typedef damson_next (*damson_step_fn)(damson_ctx *ctx);
/* A condition of `DAMSON_IF`, `DAMSON_ELIF` or `DAMSON_WHILE`. */
typedef bool (*damson_condition_fn)(damson_ctx *ctx);

/* Go on with the outline. */
#define DAMSON_CONTINUE ((damson_next){.kind = DAMSON_NEXT_CONTINUE_})
/* End the outline now with this exit status (0 is success) and message (a format; NULL for
 * none). */
damson_next damson_finish(damson_ctx *ctx, uint32_t status, const char *fmt, ...)
    DAMSON_PRINTF(3, 4);
/* Wait until resumed, or until the named event arrives (`event` NULL: a plain resume), showing
 * `message` (NULL for none). The signal's payload is then in the context under the event's
 * name (`resumed` for a plain resume). */
damson_next damson_wait(damson_ctx *ctx, const char *event, const char *message);
/* The same, at most `ms` milliseconds: the context key `timed_out` then says how it ended
 * (true: the timer fired first; see `damson_timed_out`). */
damson_next damson_wait_at_most(damson_ctx *ctx, const char *event, const char *message,
                                uint64_t ms);
/* Sleep `ms` milliseconds on a durable timer (it survives a restart of the host, and fires at
 * once if it came due meanwhile), then go on with the outline. */
damson_next damson_sleep(damson_ctx *ctx, uint64_t ms);
/* Whether the last wait with a timeout ended because its timer fired first. */
bool damson_timed_out(damson_ctx *ctx);
/* Kill the process with this message. */
damson_next damson_kill(damson_ctx *ctx, const char *fmt, ...) DAMSON_PRINTF(2, 3);
/* Fail the call: the process ends EXCEPTED with this message. In a step,
 * `return damson_fail(ctx, ...)`; in a condition, call it and return anything. */
damson_next damson_fail(damson_ctx *ctx, const char *fmt, ...) DAMSON_PRINTF(2, 3);
/* The same, an error of the kind `kind` (e.g. "invalid-request"), which a retry policy's
 * `.non_retryable_errors` may list. */
damson_next damson_fail_kind(damson_ctx *ctx, const char *kind, const char *fmt, ...)
    DAMSON_PRINTF(3, 4);
/* Whether this call has failed already (see the sticky errors above). */
bool damson_failed(const damson_ctx *ctx);

/* One element of an outline; built by the macros below, named after plumpy's outline. */
typedef struct damson_node {
    int kind;
    const char *name;
    damson_step_fn step;
    damson_condition_fn condition;
    const struct damson_node *body;
    uint32_t status;
} damson_node;

/* Set the outline: damson_outline(spec, DAMSON_STEP(start), DAMSON_WHILE(more, ...), ...). */
#define damson_outline(spec, ...) damson_outline_((spec), DAMSON_NODES_(__VA_ARGS__))
/* Call step `f`, known to the host by its C name. */
#define DAMSON_STEP(f) ((damson_node){.kind = DAMSON_NODE_STEP_, .name = #f, .step = (f)})
/* Run the body if condition `c` holds; `DAMSON_ELIF` and `DAMSON_ELSE` may follow. */
#define DAMSON_IF(c, ...)                                                                      \
    ((damson_node){.kind = DAMSON_NODE_IF_, .name = #c, .condition = (c),                     \
                   .body = DAMSON_NODES_(__VA_ARGS__)})
#define DAMSON_ELIF(c, ...)                                                                    \
    ((damson_node){.kind = DAMSON_NODE_ELIF_, .name = #c, .condition = (c),                   \
                   .body = DAMSON_NODES_(__VA_ARGS__)})
#define DAMSON_ELSE(...)                                                                       \
    ((damson_node){.kind = DAMSON_NODE_ELSE_, .body = DAMSON_NODES_(__VA_ARGS__)})
/* Run the body again and again while condition `c` holds. */
#define DAMSON_WHILE(c, ...)                                                                   \
    ((damson_node){.kind = DAMSON_NODE_WHILE_, .name = #c, .condition = (c),                  \
                   .body = DAMSON_NODES_(__VA_ARGS__)})
/* End the process here with this exit status (0 is success). */
#define DAMSON_RETURN(s) ((damson_node){.kind = DAMSON_NODE_RETURN_, .status = (s)})

/* Export the plugin declared by `void define(damson_spec *)`. */
#define DAMSON_PLUGIN(define)                                                                  \
    void damson_define_(damson_spec *spec) { define(spec); }

/* ---- In a step: inputs, context, outputs, children --------------------------------------- */

/* This process's id. */
const char *damson_pid(damson_ctx *ctx);
/* Which attempt of the running step this is: 1 for the first, 2 for the first retry. */
uint32_t damson_attempt(damson_ctx *ctx);

/* The input at a dotted path, of this type; a sticky error when missing or of another type. */
int64_t damson_input_int(damson_ctx *ctx, const char *path);
double damson_input_float(damson_ctx *ctx, const char *path);
bool damson_input_bool(damson_ctx *ctx, const char *path);
const char *damson_input_str(damson_ctx *ctx, const char *path);
/* The input at a dotted path, or NULL when not given. */
const damson_json *damson_input_value(damson_ctx *ctx, const char *path);
/* All inputs, as one dict. */
const damson_json *damson_inputs(damson_ctx *ctx);

/* The context value under `key`, of this type; a sticky error when missing or of another
 * type. The context is the process's durable store, kept in every checkpoint. */
int64_t damson_get_int(damson_ctx *ctx, const char *key);
double damson_get_float(damson_ctx *ctx, const char *key);
bool damson_get_bool(damson_ctx *ctx, const char *key);
const char *damson_get_str(damson_ctx *ctx, const char *key);
/* The context value under `key`, or NULL when there is none. */
const damson_json *damson_get(damson_ctx *ctx, const char *key);
/* Set the context value under `key`. */
void damson_set_int(damson_ctx *ctx, const char *key, int64_t value);
void damson_set_float(damson_ctx *ctx, const char *key, double value);
void damson_set_bool(damson_ctx *ctx, const char *key, bool value);
void damson_set_str(damson_ctx *ctx, const char *key, const char *value);
/* Set the context value under `key` to this JSON text (checked first). */
void damson_set_json(damson_ctx *ctx, const char *key, const char *json);
/* Remove `key`; returns whether it was there. */
bool damson_remove(damson_ctx *ctx, const char *key);
/* All context keys, sorted; `*count` receives how many. */
const char *const *damson_keys(damson_ctx *ctx, size_t *count);

/* Emit an output at a dotted path. The host validates it at once; a refusal is a sticky error. */
void damson_out_int(damson_ctx *ctx, const char *path, int64_t value);
void damson_out_float(damson_ctx *ctx, const char *path, double value);
void damson_out_bool(damson_ctx *ctx, const char *path, bool value);
void damson_out_str(damson_ctx *ctx, const char *path, const char *value);
void damson_out_json(damson_ctx *ctx, const char *path, const char *json);
/* Emit a parsed value (NULL emits JSON null). */
void damson_out_value(damson_ctx *ctx, const char *path, const damson_json *value);

/* Set the status message (a format; NULL clears it). */
void damson_status(damson_ctx *ctx, const char *fmt, ...) DAMSON_PRINTF(2, 3);
/* Pause once this step returns, showing `message` (NULL keeps the status). */
void damson_pause(damson_ctx *ctx, const char *message);

/* Launch a child process of the named plugin with these inputs (a JSON object's text); returns
 * its pid, or NULL (a sticky error) when the host refuses. */
const char *damson_launch(damson_ctx *ctx, const char *plugin, const char *inputs);
/* Await child `pid` after this step and store its record under `key` (plumpy's `ToContext`).
 * The record is a dict with `pid`, `plugin`, `state`, `successful`, `exit_status`,
 * `exit_message`, `outputs` and `error`. A child that does not finish successfully makes this
 * process end EXCEPTED. */
void damson_to_context(damson_ctx *ctx, const char *key, const char *pid);
/* Await child `pid` and append its record to the list under `key`. */
void damson_append_to_context(damson_ctx *ctx, const char *key, const char *pid);
/* Await child `pid` and store its record under `key` whether or not it succeeded. */
void damson_inspect_in_context(damson_ctx *ctx, const char *key, const char *pid);

/* ---- Logging and panics ------------------------------------------------------------------ */

typedef enum damson_level {
    DAMSON_TRACE,
    DAMSON_DEBUG,
    DAMSON_INFO,
    DAMSON_WARN,
    DAMSON_ERROR,
} damson_level;

/* Write a log line through the host, which tags it with the process id. */
void damson_log(damson_level level, const char *fmt, ...) DAMSON_PRINTF(2, 3);

/* Tell the host what went wrong and where, then trap: the process ends EXCEPTED. */
#define damson_panic(...) damson_panic_(__FILE__ ":" DAMSON_LINE_(__LINE__), __VA_ARGS__)

/* ---- Internals the macros use ------------------------------------------------------------ */

enum {
    DAMSON_NEXT_CONTINUE_,
    DAMSON_NEXT_WAIT_,
    DAMSON_NEXT_FINISH_,
    DAMSON_NEXT_KILL_,
    DAMSON_NEXT_FAIL_,
    DAMSON_NEXT_SLEEP_,
};
enum {
    DAMSON_NODE_END_,
    DAMSON_NODE_STEP_,
    DAMSON_NODE_IF_,
    DAMSON_NODE_ELIF_,
    DAMSON_NODE_ELSE_,
    DAMSON_NODE_WHILE_,
    DAMSON_NODE_RETURN_,
};
/* A node list ends with a zeroed node. */
#define DAMSON_NODES_(...) ((const damson_node[]){__VA_ARGS__, {0}})
#define DAMSON_LINE_(n) DAMSON_LINE2_(n)
#define DAMSON_LINE2_(n) #n
void damson_port_(damson_spec *spec, bool output, bool namespace_, const char *path,
                  unsigned types, const char *help, const damson_port_options *options);
void damson_expose_(damson_spec *spec, bool outputs, const char *plugin, const char *namespace_,
                    const damson_expose_options *options);
void damson_outline_(damson_spec *spec, const damson_node *nodes);
_Noreturn void damson_panic_(const char *location, const char *fmt, ...) DAMSON_PRINTF(2, 3);
void damson_define_(damson_spec *spec);

#ifdef __cplusplus
}
#endif
#endif
