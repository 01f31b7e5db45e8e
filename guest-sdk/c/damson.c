/*
 * damson.c: the C SDK's implementation, between the generated bindings (`plugin.h`, from the
 * WIT world `damson:workflow/plugin`) and a plugin's `define`, steps and conditions.
 *
 * Memory: what the plugin declares is copied once into static tables that live for the whole
 * component. Everything else the SDK makes during an export call (host strings, parsed JSON,
 * formatted text) comes from a per-call arena freed when the call returns, so plugins never free
 * anything. What crosses back to the host is malloc'd, as the bindings' post-return frees it.
 */
#include "damson.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

#ifndef DAMSON_PLUGIN_NAME
#define DAMSON_PLUGIN_NAME "plugin"
#endif
#ifndef DAMSON_PLUGIN_VERSION
#define DAMSON_PLUGIN_VERSION "0.1.0"
#endif

/* Deeper JSON than this is refused rather than risk the (small) wasm stack. */
#define MAX_DEPTH 128

/* ---- Allocation ---------------------------------------------------------------------------- */

/* The per-call arena: a list of blocks, freed together by `arena_reset`. */
typedef struct block {
    struct block *next;
    max_align_t data[];
} block;
static block *arena;

static void *xmalloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p) damson_panic("out of memory (%zu bytes wanted)", size);
    return p;
}

static void *xrealloc(void *old, size_t size) {
    void *p = realloc(old, size ? size : 1);
    if (!p) damson_panic("out of memory (%zu bytes wanted)", size);
    return p;
}

static void *alloc(size_t size) {
    block *b = xmalloc(sizeof(block) + size);
    b->next = arena;
    arena = b;
    return b->data;
}

static void arena_reset(void) {
    while (arena) {
        block *next = arena->next;
        free(arena);
        arena = next;
    }
}

static char *copy_n(const char *s, size_t len) {
    char *c = alloc(len + 1);
    memcpy(c, s, len);
    c[len] = '\0';
    return c;
}

/* A copy that lives as long as the component: for what `define` declares. */
static const char *keep(const char *s) {
    if (!s) return NULL;
    size_t len = strlen(s);
    char *c = xmalloc(len + 1);
    memcpy(c, s, len + 1);
    return c;
}

static const char *vformat(const char *fmt, va_list args) {
    va_list again;
    va_copy(again, args);
    int len = vsnprintf(NULL, 0, fmt, args);
    if (len < 0) damson_panic("bad format string '%s'", fmt);
    char *s = alloc((size_t)len + 1);
    vsnprintf(s, (size_t)len + 1, fmt, again);
    va_end(again);
    return s;
}

const char *damson_format(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    const char *s = vformat(fmt, args);
    va_end(args);
    return s;
}

/* A growable byte buffer (malloc'd) for JSON text. */
typedef struct buffer {
    char *data;
    size_t len, cap;
} buffer;

static void put_n(buffer *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->data = xrealloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void put(buffer *b, const char *s) { put_n(b, s, strlen(s)); }

/* The buffer's text moved into the arena. */
static const char *finish_buffer(buffer *b) {
    const char *s = copy_n(b->data ? b->data : "", b->len);
    free(b->data);
    return s;
}

/* ---- Host strings ------------------------------------------------------------------------ */

static plugin_string_t borrow(const char *s) {
    return (plugin_string_t){(uint8_t *)s, strlen(s)};
}

/* A malloc'd copy for the host (the bindings' post-return frees it). */
static plugin_string_t give(const char *s) {
    plugin_string_t out;
    plugin_string_dup(&out, s);
    return out;
}

static plugin_option_string_t give_option(const char *s) {
    plugin_option_string_t out = {.is_some = s != NULL};
    if (s) out.val = give(s);
    return out;
}

/* A string the host handed over, copied into the arena (NUL-terminated) and freed. */
static const char *take(plugin_string_t *s) {
    const char *c = copy_n((const char *)s->ptr, s->len);
    plugin_string_free(s);
    return c;
}

/* ---- The call context and its sticky error ----------------------------------------------- */

struct damson_ctx {
    /* The first failure of this call, or NULL. */
    const char *error;
    damson_workflow_types_await_child_t *awaits;
    size_t awaits_len, awaits_cap;
};
static damson_ctx the_ctx;

static void vfail(damson_ctx *ctx, const char *fmt, va_list args) {
    if (!ctx->error) ctx->error = vformat(fmt, args);
}

static void fail(damson_ctx *ctx, const char *fmt, ...) DAMSON_PRINTF(2, 3);
static void fail(damson_ctx *ctx, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vfail(ctx, fmt, args);
    va_end(args);
}

damson_next damson_fail(damson_ctx *ctx, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vfail(ctx, fmt, args);
    va_end(args);
    return (damson_next){.kind = DAMSON_NEXT_FAIL_};
}

damson_next damson_fail_kind(damson_ctx *ctx, const char *kind, const char *fmt, ...) {
    if (!ctx->error && kind) {
        plugin_string_t k = borrow(kind);
        damson_workflow_host_error_kind(&k);
    }
    va_list args;
    va_start(args, fmt);
    vfail(ctx, fmt, args);
    va_end(args);
    return (damson_next){.kind = DAMSON_NEXT_FAIL_};
}

bool damson_failed(const damson_ctx *ctx) { return ctx->error != NULL; }

damson_next damson_finish(damson_ctx *ctx, uint32_t status, const char *fmt, ...) {
    (void)ctx;
    damson_next next = {.kind = DAMSON_NEXT_FINISH_, .status = status};
    if (fmt) {
        va_list args;
        va_start(args, fmt);
        next.message = vformat(fmt, args);
        va_end(args);
    }
    return next;
}

damson_next damson_wait(damson_ctx *ctx, const char *event, const char *message) {
    (void)ctx;
    return (damson_next){.kind = DAMSON_NEXT_WAIT_, .event = event, .message = message};
}

damson_next damson_wait_at_most(damson_ctx *ctx, const char *event, const char *message,
                                uint64_t ms) {
    (void)ctx;
    return (damson_next){.kind = DAMSON_NEXT_WAIT_, .event = event, .message = message,
                         .has_timer = true, .timer_ms = ms};
}

damson_next damson_sleep(damson_ctx *ctx, uint64_t ms) {
    (void)ctx;
    return (damson_next){.kind = DAMSON_NEXT_SLEEP_, .has_timer = true, .timer_ms = ms};
}

bool damson_timed_out(damson_ctx *ctx) {
    if (ctx->error) return false;
    const damson_json *v = damson_get(ctx, "timed_out");
    return v && v->kind == DAMSON_KIND_BOOL && v->boolean;
}

damson_next damson_kill(damson_ctx *ctx, const char *fmt, ...) {
    (void)ctx;
    va_list args;
    va_start(args, fmt);
    damson_next next = {.kind = DAMSON_NEXT_KILL_, .message = vformat(fmt, args)};
    va_end(args);
    return next;
}

/* ---- JSON: parsing ----------------------------------------------------------------------- */

typedef struct parser {
    const char *p, *end;
    const char *error;
} parser;

static void skip_space(parser *ps) {
    while (ps->p < ps->end && *ps->p && strchr(" \t\n\r", *ps->p)) ps->p++;
}

static bool parse_value(parser *ps, damson_json *out, int depth);

static bool parse_error(parser *ps, const char *what) {
    if (!ps->error) ps->error = what;
    return false;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool parse_hex4(parser *ps, uint32_t *out) {
    if (ps->end - ps->p < 4) return parse_error(ps, "a short \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(*ps->p++);
        if (d < 0) return parse_error(ps, "a bad \\u escape");
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return true;
}

static void put_utf8(buffer *b, uint32_t c) {
    char s[4];
    size_t n;
    if (c < 0x80) {
        s[0] = (char)c, n = 1;
    } else if (c < 0x800) {
        s[0] = (char)(0xC0 | c >> 6), s[1] = (char)(0x80 | (c & 0x3F)), n = 2;
    } else if (c < 0x10000) {
        s[0] = (char)(0xE0 | c >> 12), s[1] = (char)(0x80 | (c >> 6 & 0x3F));
        s[2] = (char)(0x80 | (c & 0x3F)), n = 3;
    } else {
        s[0] = (char)(0xF0 | c >> 18), s[1] = (char)(0x80 | (c >> 12 & 0x3F));
        s[2] = (char)(0x80 | (c >> 6 & 0x3F)), s[3] = (char)(0x80 | (c & 0x3F)), n = 4;
    }
    put_n(b, s, n);
}

/* A string after its opening quote, into `*out` and `*len`. */
static bool parse_string(parser *ps, const char **out, size_t *len) {
    buffer b = {0};
    put_n(&b, "", 0);
    while (ps->p < ps->end && *ps->p != '"') {
        unsigned char c = (unsigned char)*ps->p++;
        if (c < 0x20) {
            free(b.data);
            return parse_error(ps, "a control character in a string");
        }
        if (c != '\\') {
            put_n(&b, (const char *)&c, 1);
            continue;
        }
        if (ps->p >= ps->end) break;
        char e = *ps->p++;
        const char *plain = strchr("\"\\/bfnrt", e);
        if (plain && e) {
            put_n(&b, &"\"\\/\b\f\n\r\t"[plain - "\"\\/bfnrt"], 1);
            continue;
        }
        uint32_t code, low;
        if (e != 'u' || !parse_hex4(ps, &code)) {
            free(b.data);
            return parse_error(ps, "a bad escape in a string");
        }
        /* A UTF-16 surrogate pair spells one code point beyond the BMP. */
        if (code >= 0xD800 && code < 0xDC00) {
            if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                free(b.data);
                return parse_error(ps, "a lone surrogate in a string");
            }
            ps->p += 2;
            if (!parse_hex4(ps, &low) || low < 0xDC00 || low > 0xDFFF) {
                free(b.data);
                return parse_error(ps, "a lone surrogate in a string");
            }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
        }
        put_utf8(&b, code);
    }
    if (ps->p >= ps->end) {
        free(b.data);
        return parse_error(ps, "an unterminated string");
    }
    ps->p++;
    *len = b.len;
    *out = finish_buffer(&b);
    return true;
}

static bool parse_number(parser *ps, damson_json *out) {
    const char *start = ps->p, *p = ps->p, *end = ps->end;
    bool integral = true;
#define DIGITS(p) ((p) < end && *(p) >= '0' && *(p) <= '9')
    if (p < end && *p == '-') p++;
    if (!DIGITS(p)) return parse_error(ps, "a bad number");
    if (*p == '0') {
        p++;
    } else {
        while (DIGITS(p)) p++;
    }
    if (p < end && *p == '.') {
        integral = false;
        p++;
        if (!DIGITS(p)) return parse_error(ps, "a bad number");
        while (DIGITS(p)) p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        integral = false;
        if (++p < end && (*p == '+' || *p == '-')) p++;
        if (!DIGITS(p)) return parse_error(ps, "a bad number");
        while (DIGITS(p)) p++;
    }
#undef DIGITS
    ps->p = p;
    out->string = copy_n(start, (size_t)(p - start));
    out->len = (size_t)(p - start);
    out->number = strtod(out->string, NULL);
    out->kind = DAMSON_KIND_FLOAT;
    if (integral) {
        errno = 0;
        long long v = strtoll(out->string, NULL, 10);
        /* Integers beyond int64_t stay floats: their text still passes through exactly. */
        if (errno == 0) {
            out->kind = DAMSON_KIND_INT;
            out->integer = v;
        }
    }
    return true;
}

/* The items of a list or dict, up to `close`. */
static bool parse_items(parser *ps, damson_json *out, bool dict, int depth) {
    damson_json *items = NULL;
    const char **keys = NULL;
    size_t len = 0, cap = 0;
    bool ok = true;
    char close = dict ? '}' : ']';
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
    } else {
        for (;;) {
            if (len == cap) {
                cap = cap ? cap * 2 : 4;
                items = xrealloc(items, cap * sizeof *items);
                keys = xrealloc(keys, cap * sizeof *keys);
            }
            skip_space(ps);
            if (dict) {
                size_t key_len;
                if (ps->p >= ps->end || *ps->p++ != '"' ||
                    !parse_string(ps, &keys[len], &key_len)) {
                    ok = parse_error(ps, "a dict key that is not a string");
                    break;
                }
                skip_space(ps);
                if (ps->p >= ps->end || *ps->p++ != ':') {
                    ok = parse_error(ps, "a missing ':' in a dict");
                    break;
                }
            }
            if (!parse_value(ps, &items[len], depth + 1)) {
                ok = false;
                break;
            }
            len++;
            skip_space(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->end && *ps->p == close) {
                ps->p++;
                break;
            }
            ok = parse_error(ps, dict ? "a missing ',' or '}'" : "a missing ',' or ']'");
            break;
        }
    }
    out->kind = dict ? DAMSON_KIND_DICT : DAMSON_KIND_LIST;
    out->len = len;
    out->items = alloc(len * sizeof *items);
    if (len) memcpy(out->items, items, len * sizeof *items);
    if (dict) {
        out->keys = alloc(len * sizeof *keys);
        if (len) memcpy(out->keys, keys, len * sizeof *keys);
    }
    free(items);
    free(keys);
    return ok;
}

static bool parse_literal(parser *ps, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return parse_error(ps, "an unknown word");
    ps->p += n;
    return true;
}

static bool parse_value(parser *ps, damson_json *out, int depth) {
    memset(out, 0, sizeof *out);
    if (depth > MAX_DEPTH) return parse_error(ps, "nesting too deep");
    skip_space(ps);
    if (ps->p >= ps->end) return parse_error(ps, "an unexpected end");
    switch (*ps->p) {
    case '{':
        ps->p++;
        return parse_items(ps, out, true, depth);
    case '[':
        ps->p++;
        return parse_items(ps, out, false, depth);
    case '"':
        ps->p++;
        out->kind = DAMSON_KIND_STR;
        return parse_string(ps, &out->string, &out->len);
    case 't':
        out->kind = DAMSON_KIND_BOOL;
        out->boolean = true;
        return parse_literal(ps, "true");
    case 'f':
        out->kind = DAMSON_KIND_BOOL;
        return parse_literal(ps, "false");
    case 'n':
        out->kind = DAMSON_KIND_NULL;
        return parse_literal(ps, "null");
    default:
        if (*ps->p != '-' && (*ps->p < '0' || *ps->p > '9'))
            return parse_error(ps, "an unexpected character");
        return parse_number(ps, out);
    }
}

/* Parse `len` bytes of JSON text; on failure NULL and a sticky error naming `what`. */
static const damson_json *parse_n(const char *text, size_t len, const char *what) {
    parser ps = {text, text + len, NULL};
    damson_json *value = alloc(sizeof *value);
    if (parse_value(&ps, value, 0)) {
        skip_space(&ps);
        if (ps.p == ps.end) return value;
        parse_error(&ps, "text after the value");
    }
    fail(&the_ctx, "%s is not valid JSON: %s at byte %zu", what, ps.error,
         (size_t)(ps.p - text));
    return NULL;
}

const damson_json *damson_parse(const char *text, const char *what) {
    return parse_n(text, strlen(text), what);
}

const damson_json *damson_at(const damson_json *value, const char *path) {
    while (value && *path) {
        size_t n = strcspn(path, ".");
        const damson_json *found = NULL;
        if (value->kind == DAMSON_KIND_DICT) {
            for (size_t i = 0; i < value->len && !found; i++)
                if (strlen(value->keys[i]) == n && memcmp(value->keys[i], path, n) == 0)
                    found = &value->items[i];
        } else if (value->kind == DAMSON_KIND_LIST) {
            char *end;
            unsigned long i = strtoul(path, &end, 10);
            if (end == path + n && i < value->len) found = &value->items[i];
        }
        value = found;
        path += n;
        if (*path == '.') path++;
    }
    return value;
}

/* ---- JSON: writing ----------------------------------------------------------------------- */

static void put_quoted(buffer *b, const char *s, size_t len) {
    put(b, "\"");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *plain = c ? strchr("\"\\\b\f\n\r\t", c) : NULL;
        if (plain) {
            char escape[2] = {'\\', "\"\\bfnrt"[plain - "\"\\\b\f\n\r\t"]};
            put_n(b, escape, 2);
        } else if (c < 0x20) {
            char escape[7];
            snprintf(escape, sizeof escape, "\\u%04x", c);
            put(b, escape);
        } else {
            put_n(b, (const char *)&c, 1);
        }
    }
    put(b, "\"");
}

static void put_value(buffer *b, const damson_json *v) {
    switch (v->kind) {
    case DAMSON_KIND_NULL:
        put(b, "null");
        break;
    case DAMSON_KIND_BOOL:
        put(b, v->boolean ? "true" : "false");
        break;
    case DAMSON_KIND_INT:
    case DAMSON_KIND_FLOAT:
        put(b, v->string);
        break;
    case DAMSON_KIND_STR:
        put_quoted(b, v->string, v->len);
        break;
    case DAMSON_KIND_LIST:
    case DAMSON_KIND_DICT:
        put(b, v->kind == DAMSON_KIND_DICT ? "{" : "[");
        for (size_t i = 0; i < v->len; i++) {
            if (i) put(b, ",");
            if (v->kind == DAMSON_KIND_DICT) {
                put_quoted(b, v->keys[i], strlen(v->keys[i]));
                put(b, ":");
            }
            put_value(b, &v->items[i]);
        }
        put(b, v->kind == DAMSON_KIND_DICT ? "}" : "]");
        break;
    }
}

const char *damson_to_json(const damson_json *value) {
    buffer b = {0};
    if (value) {
        put_value(&b, value);
    } else {
        put(&b, "null");
    }
    return finish_buffer(&b);
}

const char *damson_quote(const char *s) {
    buffer b = {0};
    put_quoted(&b, s, strlen(s));
    return finish_buffer(&b);
}

static const char *int_json(int64_t v) { return damson_format("%lld", (long long)v); }

/* A float as JSON that reads back as the same double, and as a float (never an int). */
static const char *float_json(damson_ctx *ctx, double v) {
    if (!isfinite(v)) {
        fail(ctx, "%g cannot be written as JSON", v);
        return NULL;
    }
    const char *s = damson_format("%.17g", v);
    return strpbrk(s, ".eE") ? s : damson_format("%s.0", s);
}

/* ---- Declaring --------------------------------------------------------------------------- */

typedef struct port {
    bool output;
    damson_workflow_types_port_t wit;
    damson_validator validator;
    damson_default_fn default_with;
    const char *full_path;
} port;

typedef struct named_step {
    const char *name;
    damson_step_fn fn;
} named_step;

typedef struct named_condition {
    const char *name;
    damson_condition_fn fn;
} named_condition;

/* One outline node as the WIT has it: a step, a sequence, a conditional, a loop or a return. */
typedef struct node {
    uint8_t tag;
    const char *name;
    uint32_t *children;
    size_t len;
    /* Conditional: one condition (NULL for else) per child body. */
    const char **conditions;
    bool has_status;
    uint32_t status;
} node;

struct damson_spec {
    const char *name, *version, *description;
    port *ports;
    size_t ports_len;
    damson_workflow_types_expose_t *exposes;
    size_t exposes_len;
    damson_workflow_types_exit_code_t *exit_codes;
    size_t exit_codes_len;
    damson_workflow_types_retry_policy_t *retries;
    size_t retries_len;
    node *nodes;
    size_t nodes_len;
    uint32_t root;
    named_step *steps;
    size_t steps_len;
    named_condition *conditions;
    size_t conditions_len;
};
static damson_spec the_spec;
static bool defined;

/* Append one zeroed element to a growable array and return it (grown one at a time: `define`
 * runs once and declares a handful). */
#define APPEND(array, len) (memset(&((array) = xrealloc((array), ((len) + 1) * sizeof *(array)))[(len)], 0, sizeof *(array)), &(array)[(len)++])

static plugin_string_t keep_string(const char *s) {
    return (plugin_string_t){(uint8_t *)keep(s), strlen(s)};
}

void damson_name(damson_spec *spec, const char *name) { spec->name = keep(name); }
void damson_version(damson_spec *spec, const char *version) { spec->version = keep(version); }
void damson_description(damson_spec *spec, const char *d) { spec->description = keep(d); }

void damson_exit_code(damson_spec *spec, uint32_t status, const char *label, const char *message) {
    damson_workflow_types_exit_code_t *code = APPEND(spec->exit_codes, spec->exit_codes_len);
    code->status = status;
    code->label = keep_string(label);
    code->message = keep_string(message);
}

void damson_retry_(damson_spec *spec, const char *step, const damson_retry_options *o) {
    damson_workflow_types_retry_policy_t *r = APPEND(spec->retries, spec->retries_len);
    if (step) {
        r->step.is_some = true;
        r->step.val = keep_string(step);
    }
    r->max_attempts = o->max_attempts ? o->max_attempts : 3;
    r->initial_interval_ms = o->initial_interval_ms ? o->initial_interval_ms : 1000;
    r->backoff = o->backoff != 0 ? o->backoff : 2.0;
    if (o->max_interval_ms) {
        r->max_interval_ms.is_some = true;
        r->max_interval_ms.val = o->max_interval_ms;
    }
    static const struct {
        unsigned flag;
        damson_workflow_types_failure_kind_t kind;
    } kinds[] = {
        {DAMSON_FAIL_ERROR, DAMSON_WORKFLOW_TYPES_FAILURE_KIND_ERROR},
        {DAMSON_FAIL_TRAP, DAMSON_WORKFLOW_TYPES_FAILURE_KIND_TRAP},
        {DAMSON_FAIL_TIMEOUT, DAMSON_WORKFLOW_TYPES_FAILURE_KIND_TIMEOUT},
        {DAMSON_FAIL_MEMORY, DAMSON_WORKFLOW_TYPES_FAILURE_KIND_MEMORY},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (o->non_retryable & kinds[i].flag)
            *APPEND(r->non_retryable.ptr, r->non_retryable.len) = kinds[i].kind;
    for (const char *const *e = o->non_retryable_errors; e && *e; e++)
        *APPEND(r->non_retryable_errors.ptr, r->non_retryable_errors.len) = keep_string(*e);
}

static damson_workflow_types_list_value_type_t type_list(unsigned types) {
    damson_workflow_types_list_value_type_t list = {0};
    for (uint8_t t = DAMSON_WORKFLOW_TYPES_VALUE_TYPE_NULL; t <= DAMSON_WORKFLOW_TYPES_VALUE_TYPE_DICT;
         t++)
        if (types & 1u << t) *APPEND(list.ptr, list.len) = t;
    return list;
}

void damson_port_(damson_spec *spec, bool output, bool namespace_, const char *path,
                  unsigned types, const char *help, const damson_port_options *o) {
    port *p = APPEND(spec->ports, spec->ports_len);
    p->output = output;
    p->full_path = keep(*path ? damson_format("%s.%s", output ? "outputs" : "inputs", path)
                              : (output ? "outputs" : "inputs"));
    p->validator = o->validator;
    p->default_with = o->default_with;
    damson_workflow_types_port_t *w = &p->wit;
    w->path = keep_string(path);
    w->namespace_ = namespace_;
    w->valid_types = type_list(types);
    w->help = (plugin_option_string_t){.is_some = help != NULL};
    if (help) w->help.val = keep_string(help);
    w->validator = o->validator != NULL;
    w->dynamic = o->dynamic || (namespace_ && types != DAMSON_ANY);
    w->populate_defaults = !o->skip_defaults;
    w->required = !o->optional;
    const char *fixed = o->default_str ? keep(damson_quote(o->default_str)) : o->default_json;
    if (fixed || o->default_with) {
        w->required = false;
        w->default_.is_some = true;
        w->default_.val.tag = fixed ? DAMSON_WORKFLOW_TYPES_DEFAULT_VALUE_VALUE
                                    : DAMSON_WORKFLOW_TYPES_DEFAULT_VALUE_COMPUTED;
        if (fixed) w->default_.val.val.value = keep_string(fixed);
    }
}

static plugin_option_list_string_t keep_list(const char *const *items) {
    plugin_option_list_string_t list = {.is_some = items != NULL};
    for (; items && *items; items++) *APPEND(list.val.ptr, list.val.len) = keep_string(*items);
    return list;
}

static plugin_option_bool_t tristate(int value) {
    return (plugin_option_bool_t){.is_some = value != 0, .val = value > 0};
}

void damson_expose_(damson_spec *spec, bool outputs, const char *plugin, const char *namespace_,
                    const damson_expose_options *o) {
    damson_workflow_types_expose_t *e = APPEND(spec->exposes, spec->exposes_len);
    e->side = outputs ? DAMSON_WORKFLOW_TYPES_PORT_SIDE_OUTPUTS : DAMSON_WORKFLOW_TYPES_PORT_SIDE_INPUTS;
    e->plugin = keep_string(plugin);
    e->namespace_ = keep_string(namespace_);
    e->include = keep_list(o->include);
    e->exclude = keep_list(o->exclude);
    damson_workflow_types_namespace_options_t *n = &e->namespace_options;
    n->required = tristate(o->required);
    n->dynamic = tristate(o->dynamic);
    n->populate_defaults = tristate(o->populate_defaults);
    n->valid_types = (damson_workflow_types_option_list_value_type_t){.is_some = o->types != 0};
    if (o->types) n->valid_types.val = type_list(o->types);
    n->help = (plugin_option_string_t){.is_some = o->help != NULL};
    if (o->help) n->help.val = keep_string(o->help);
}

/* Register `fn` under `name`; one name may appear several times, but for one function only. */
static void register_step(damson_spec *spec, const char *name, damson_step_fn fn) {
    for (size_t i = 0; i < spec->steps_len; i++) {
        if (strcmp(spec->steps[i].name, name) != 0) continue;
        if (spec->steps[i].fn != fn)
            damson_panic("the step name '%s' is used for two different functions", name);
        return;
    }
    *APPEND(spec->steps, spec->steps_len) = (named_step){name, fn};
}

static void register_condition(damson_spec *spec, const char *name, damson_condition_fn fn) {
    for (size_t i = 0; i < spec->conditions_len; i++) {
        if (strcmp(spec->conditions[i].name, name) != 0) continue;
        if (spec->conditions[i].fn != fn)
            damson_panic("the condition name '%s' is used for two different functions", name);
        return;
    }
    *APPEND(spec->conditions, spec->conditions_len) = (named_condition){name, fn};
}

static uint32_t push_node(damson_spec *spec, node n) {
    *APPEND(spec->nodes, spec->nodes_len) = n;
    return (uint32_t)(spec->nodes_len - 1);
}

static uint32_t flatten_sequence(damson_spec *spec, const damson_node *nodes);

/* Flatten one element (an `if` takes the `elif`s and `else` after it); returns its index and
 * advances `*at` past what it took. */
static uint32_t flatten(damson_spec *spec, const damson_node **at) {
    const damson_node *n = (*at)++;
    node out = {0};
    switch (n->kind) {
    case DAMSON_NODE_STEP_:
        if (!n->step) damson_panic("DAMSON_STEP(%s) has no function", n->name);
        register_step(spec, n->name, n->step);
        out.tag = DAMSON_WORKFLOW_TYPES_INSTRUCTION_STEP;
        out.name = n->name;
        break;
    case DAMSON_NODE_IF_:
        out.tag = DAMSON_WORKFLOW_TYPES_INSTRUCTION_CONDITIONAL;
        for (const damson_node *branch = n;; branch = (*at)++) {
            bool is_else = branch->kind == DAMSON_NODE_ELSE_;
            if (!is_else) register_condition(spec, branch->name, branch->condition);
            uint32_t body = flatten_sequence(spec, branch->body);
            size_t len = out.len;
            *APPEND(out.children, out.len) = body;
            out.conditions = xrealloc(out.conditions, out.len * sizeof *out.conditions);
            out.conditions[len] = is_else ? NULL : branch->name;
            if (is_else || ((*at)->kind != DAMSON_NODE_ELIF_ && (*at)->kind != DAMSON_NODE_ELSE_))
                break;
        }
        if ((*at)->kind == DAMSON_NODE_ELIF_ || (*at)->kind == DAMSON_NODE_ELSE_)
            damson_panic("DAMSON_ELIF or DAMSON_ELSE after DAMSON_ELSE: DAMSON_ELSE must be the "
                         "last branch of a DAMSON_IF");
        break;
    case DAMSON_NODE_ELIF_:
    case DAMSON_NODE_ELSE_:
        damson_panic("DAMSON_ELIF and DAMSON_ELSE can only follow DAMSON_IF or DAMSON_ELIF");
    case DAMSON_NODE_WHILE_:
        register_condition(spec, n->name, n->condition);
        out.tag = DAMSON_WORKFLOW_TYPES_INSTRUCTION_WHILE_LOOP;
        out.name = n->name;
        *APPEND(out.children, out.len) = flatten_sequence(spec, n->body);
        break;
    case DAMSON_NODE_RETURN_:
        out.tag = DAMSON_WORKFLOW_TYPES_INSTRUCTION_RETURN;
        out.has_status = n->status != 0;
        out.status = n->status;
        break;
    default:
        damson_panic("an outline element of unknown kind %d", n->kind);
    }
    return push_node(spec, out);
}

static uint32_t flatten_sequence(damson_spec *spec, const damson_node *nodes) {
    node seq = {.tag = DAMSON_WORKFLOW_TYPES_INSTRUCTION_SEQUENCE};
    for (const damson_node *at = nodes; at->kind != DAMSON_NODE_END_;) {
        uint32_t child = flatten(spec, &at);
        *APPEND(seq.children, seq.len) = child;
    }
    return push_node(spec, seq);
}

void damson_outline_(damson_spec *spec, const damson_node *nodes) {
    spec->nodes_len = spec->steps_len = spec->conditions_len = 0;
    spec->root = flatten_sequence(spec, nodes);
}

static damson_spec *spec(void) {
    if (!defined) {
        defined = true;
        the_spec.name = DAMSON_PLUGIN_NAME;
        the_spec.version = DAMSON_PLUGIN_VERSION;
        damson_define_(&the_spec);
        arena_reset();
    }
    return &the_spec;
}

/* ---- In a step --------------------------------------------------------------------------- */

static const char *kind_name(damson_kind kind) {
    static const char *const names[] = {"null", "a bool", "an int", "a float",
                                        "a string", "a list", "a dict"};
    return names[kind];
}

/* `value` if it is of `kind`, else NULL and a sticky error: `what` names where it came from. */
static const damson_json *expect(damson_ctx *ctx, const damson_json *value, damson_kind kind,
                                 const char *what, const char *missing) {
    if (!value) {
        if (missing) fail(ctx, "%s", missing);
        return NULL;
    }
    bool ok = value->kind == kind || (kind == DAMSON_KIND_FLOAT && value->kind == DAMSON_KIND_INT);
    if (!ok) {
        fail(ctx, "%s is %s, not %s", what, kind_name(value->kind), kind_name(kind));
        return NULL;
    }
    return value;
}

uint32_t damson_attempt(damson_ctx *ctx) {
    (void)ctx;
    return damson_workflow_host_attempt();
}

const char *damson_pid(damson_ctx *ctx) {
    (void)ctx;
    plugin_string_t pid;
    damson_workflow_host_pid(&pid);
    return take(&pid);
}

const damson_json *damson_input_value(damson_ctx *ctx, const char *path) {
    if (ctx->error) return NULL;
    plugin_string_t key = borrow(path), json;
    if (!damson_workflow_host_input(&key, &json)) return NULL;
    size_t len = json.len;
    const char *text = take(&json);
    return parse_n(text, len, damson_format("input '%s'", path));
}

const damson_json *damson_inputs(damson_ctx *ctx) {
    plugin_string_t json;
    damson_workflow_host_inputs(&json);
    size_t len = json.len;
    const char *text = take(&json);
    (void)ctx;
    return parse_n(text, len, "the inputs");
}

static const damson_json *input_of(damson_ctx *ctx, const char *path, damson_kind kind) {
    return expect(ctx, damson_input_value(ctx, path), kind, damson_format("input '%s'", path),
                  damson_format("input '%s' was not given", path));
}

int64_t damson_input_int(damson_ctx *ctx, const char *path) {
    const damson_json *v = input_of(ctx, path, DAMSON_KIND_INT);
    return v ? v->integer : 0;
}

double damson_input_float(damson_ctx *ctx, const char *path) {
    const damson_json *v = input_of(ctx, path, DAMSON_KIND_FLOAT);
    return v ? v->number : 0;
}

bool damson_input_bool(damson_ctx *ctx, const char *path) {
    const damson_json *v = input_of(ctx, path, DAMSON_KIND_BOOL);
    return v ? v->boolean : false;
}

const char *damson_input_str(damson_ctx *ctx, const char *path) {
    const damson_json *v = input_of(ctx, path, DAMSON_KIND_STR);
    return v ? v->string : "";
}

const damson_json *damson_get(damson_ctx *ctx, const char *key) {
    if (ctx->error) return NULL;
    plugin_string_t k = borrow(key), json;
    if (!damson_workflow_host_context_get(&k, &json)) return NULL;
    size_t len = json.len;
    const char *text = take(&json);
    return parse_n(text, len, damson_format("context key '%s'", key));
}

static const damson_json *context_of(damson_ctx *ctx, const char *key, damson_kind kind) {
    return expect(ctx, damson_get(ctx, key), kind, damson_format("context key '%s'", key),
                  damson_format("the context has no key '%s'", key));
}

int64_t damson_get_int(damson_ctx *ctx, const char *key) {
    const damson_json *v = context_of(ctx, key, DAMSON_KIND_INT);
    return v ? v->integer : 0;
}

double damson_get_float(damson_ctx *ctx, const char *key) {
    const damson_json *v = context_of(ctx, key, DAMSON_KIND_FLOAT);
    return v ? v->number : 0;
}

bool damson_get_bool(damson_ctx *ctx, const char *key) {
    const damson_json *v = context_of(ctx, key, DAMSON_KIND_BOOL);
    return v ? v->boolean : false;
}

const char *damson_get_str(damson_ctx *ctx, const char *key) {
    const damson_json *v = context_of(ctx, key, DAMSON_KIND_STR);
    return v ? v->string : "";
}

/* Set `key` to JSON text the SDK wrote (NULL: a failure already recorded). */
static void set_text(damson_ctx *ctx, const char *key, const char *json) {
    if (ctx->error || !json) return;
    plugin_string_t k = borrow(key), v = borrow(json);
    damson_workflow_host_context_set(&k, &v);
}

void damson_set_int(damson_ctx *ctx, const char *key, int64_t value) {
    set_text(ctx, key, int_json(value));
}

void damson_set_float(damson_ctx *ctx, const char *key, double value) {
    set_text(ctx, key, float_json(ctx, value));
}

void damson_set_bool(damson_ctx *ctx, const char *key, bool value) {
    set_text(ctx, key, value ? "true" : "false");
}

void damson_set_str(damson_ctx *ctx, const char *key, const char *value) {
    set_text(ctx, key, damson_quote(value));
}

void damson_set_json(damson_ctx *ctx, const char *key, const char *json) {
    if (damson_parse(json, damson_format("the value for context key '%s'", key)))
        set_text(ctx, key, json);
}

bool damson_remove(damson_ctx *ctx, const char *key) {
    if (ctx->error) return false;
    plugin_string_t k = borrow(key);
    return damson_workflow_host_context_remove(&k);
}

const char *const *damson_keys(damson_ctx *ctx, size_t *count) {
    (void)ctx;
    plugin_list_string_t list;
    damson_workflow_host_context_keys(&list);
    const char **keys = alloc((list.len + 1) * sizeof *keys);
    for (size_t i = 0; i < list.len; i++) keys[i] = take(&list.ptr[i]);
    keys[list.len] = NULL;
    free(list.ptr);
    if (count) *count = list.len;
    return keys;
}

static void out_text(damson_ctx *ctx, const char *path, const char *json) {
    if (ctx->error || !json) return;
    plugin_string_t p = borrow(path), v = borrow(json), err;
    if (!damson_workflow_host_emit_output(&p, &v, &err)) fail(ctx, "%s", take(&err));
}

void damson_out_int(damson_ctx *ctx, const char *path, int64_t value) {
    out_text(ctx, path, int_json(value));
}

void damson_out_float(damson_ctx *ctx, const char *path, double value) {
    out_text(ctx, path, float_json(ctx, value));
}

void damson_out_bool(damson_ctx *ctx, const char *path, bool value) {
    out_text(ctx, path, value ? "true" : "false");
}

void damson_out_str(damson_ctx *ctx, const char *path, const char *value) {
    out_text(ctx, path, damson_quote(value));
}

void damson_out_json(damson_ctx *ctx, const char *path, const char *json) {
    if (damson_parse(json, damson_format("the value for output '%s'", path)))
        out_text(ctx, path, json);
}

void damson_out_value(damson_ctx *ctx, const char *path, const damson_json *value) {
    out_text(ctx, path, damson_to_json(value));
}

void damson_status(damson_ctx *ctx, const char *fmt, ...) {
    if (ctx->error) return;
    if (!fmt) {
        damson_workflow_host_set_status(NULL);
        return;
    }
    va_list args;
    va_start(args, fmt);
    plugin_string_t message = borrow(vformat(fmt, args));
    va_end(args);
    damson_workflow_host_set_status(&message);
}

void damson_pause(damson_ctx *ctx, const char *message) {
    if (ctx->error) return;
    plugin_string_t m = message ? borrow(message) : (plugin_string_t){0};
    damson_workflow_host_pause(message ? &m : NULL);
}

const char *damson_launch(damson_ctx *ctx, const char *plugin, const char *inputs) {
    if (ctx->error) return NULL;
    if (!damson_parse(inputs, damson_format("the inputs for a '%s' child", plugin))) return NULL;
    plugin_string_t p = borrow(plugin), i = borrow(inputs), pid, err;
    if (damson_workflow_host_launch(&p, &i, &pid, &err)) return take(&pid);
    fail(ctx, "cannot launch '%s': %s", plugin, take(&err));
    return NULL;
}

static void await_child(damson_ctx *ctx, const char *key, const char *pid, bool append,
                        bool inspect) {
    if (ctx->error) return;
    if (!pid) {
        fail(ctx, "no child to await into context key '%s'", key);
        return;
    }
    if (ctx->awaits_len == ctx->awaits_cap) {
        ctx->awaits_cap = ctx->awaits_cap ? ctx->awaits_cap * 2 : 4;
        damson_workflow_types_await_child_t *grown = alloc(ctx->awaits_cap * sizeof *grown);
        if (ctx->awaits_len) memcpy(grown, ctx->awaits, ctx->awaits_len * sizeof *grown);
        ctx->awaits = grown;
    }
    ctx->awaits[ctx->awaits_len++] = (damson_workflow_types_await_child_t){
        .pid = borrow(pid), .key = borrow(key), .append = append, .inspect = inspect};
}

void damson_to_context(damson_ctx *ctx, const char *key, const char *pid) {
    await_child(ctx, key, pid, false, false);
}

void damson_append_to_context(damson_ctx *ctx, const char *key, const char *pid) {
    await_child(ctx, key, pid, true, false);
}

void damson_inspect_in_context(damson_ctx *ctx, const char *key, const char *pid) {
    await_child(ctx, key, pid, false, true);
}

/* ---- Logging and panics ------------------------------------------------------------------ */

void damson_log(damson_level level, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    plugin_string_t message = borrow(vformat(fmt, args));
    va_end(args);
    damson_workflow_host_log((damson_workflow_host_log_level_t)level, &message);
}

/* No allocation here: the panic may be about memory running out. */
_Noreturn static void report_and_trap(const char *message, const char *location) {
    plugin_string_t m = borrow(message), l = location ? borrow(location) : (plugin_string_t){0};
    damson_workflow_host_report_panic(&m, location ? &l : NULL);
    __builtin_trap();
}

_Noreturn void damson_panic_(const char *location, const char *fmt, ...) {
    static char message[2048];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    report_and_trap(message, location);
}

/* wasi-libc's `assert` would print to stderr (a WASI stream); report it to the host instead. */
_Noreturn void __assert_fail(const char *expr, const char *file, int line, const char *func) {
    static char message[1024], location[512];
    snprintf(message, sizeof message, "assertion failed: %s (in %s)", expr, func);
    snprintf(location, sizeof location, "%s:%d", file, line);
    report_and_trap(message, location);
}

/* ---- The exports ------------------------------------------------------------------------- */

/* Start an export call: a fresh context; returns the name argument in the arena. */
static const char *begin(plugin_string_t *name) {
    spec();
    the_ctx = (damson_ctx){0};
    return take(name);
}

/* End an export call with the context's error, if any, into `*err`. */
static bool end(plugin_string_t *err) {
    bool ok = the_ctx.error == NULL;
    if (!ok) *err = give(the_ctx.error);
    the_ctx = (damson_ctx){0};
    arena_reset();
    return ok;
}

static damson_workflow_types_list_port_t wit_ports(bool outputs) {
    damson_workflow_types_list_port_t list = {0};
    for (size_t i = 0; i < the_spec.ports_len; i++) {
        const port *p = &the_spec.ports[i];
        if (p->output != outputs) continue;
        damson_workflow_types_port_t *w = APPEND(list.ptr, list.len);
        *w = p->wit;
        w->path = give((const char *)p->wit.path.ptr);
        w->valid_types.ptr = NULL;
        if (w->valid_types.len) {
            w->valid_types.ptr = xmalloc(w->valid_types.len);
            memcpy(w->valid_types.ptr, p->wit.valid_types.ptr, w->valid_types.len);
        }
        if (w->help.is_some) w->help.val = give((const char *)p->wit.help.val.ptr);
        if (w->default_.is_some && w->default_.val.tag == DAMSON_WORKFLOW_TYPES_DEFAULT_VALUE_VALUE)
            w->default_.val.val.value = give((const char *)p->wit.default_.val.val.value.ptr);
    }
    return list;
}

static plugin_option_list_string_t give_list(plugin_option_list_string_t kept) {
    plugin_option_list_string_t list = {.is_some = kept.is_some};
    for (size_t i = 0; i < kept.val.len; i++)
        *APPEND(list.val.ptr, list.val.len) = give((const char *)kept.val.ptr[i].ptr);
    return list;
}

void exports_damson_workflow_process_describe(exports_damson_workflow_process_spec_t *ret) {
    const damson_spec *s = spec();
    *ret = (exports_damson_workflow_process_spec_t){0};
    ret->name = give(s->name);
    ret->version = give(s->version);
    ret->description = give_option(s->description);
    ret->inputs = wit_ports(false);
    ret->outputs = wit_ports(true);
    for (size_t i = 0; i < s->exposes_len; i++) {
        damson_workflow_types_expose_t *e = APPEND(ret->exposes.ptr, ret->exposes.len);
        const damson_workflow_types_expose_t *k = &s->exposes[i];
        *e = *k;
        e->plugin = give((const char *)k->plugin.ptr);
        e->namespace_ = give((const char *)k->namespace_.ptr);
        e->include = give_list(k->include);
        e->exclude = give_list(k->exclude);
        if (k->namespace_options.help.is_some)
            e->namespace_options.help.val = give((const char *)k->namespace_options.help.val.ptr);
        damson_workflow_types_option_list_value_type_t *types = &e->namespace_options.valid_types;
        if (types->is_some && types->val.len) {
            types->val.ptr = xmalloc(types->val.len);
            memcpy(types->val.ptr, k->namespace_options.valid_types.val.ptr, types->val.len);
        }
    }
    for (size_t i = 0; i < s->exit_codes_len; i++) {
        damson_workflow_types_exit_code_t *c = APPEND(ret->exit_codes.ptr, ret->exit_codes.len);
        c->status = s->exit_codes[i].status;
        c->label = give((const char *)s->exit_codes[i].label.ptr);
        c->message = give((const char *)s->exit_codes[i].message.ptr);
    }
    for (size_t i = 0; i < s->retries_len; i++) {
        damson_workflow_types_retry_policy_t *r = APPEND(ret->retries.ptr, ret->retries.len);
        const damson_workflow_types_retry_policy_t *k = &s->retries[i];
        *r = *k;
        r->step = give_option(k->step.is_some ? (const char *)k->step.val.ptr : NULL);
        r->non_retryable.ptr = NULL;
        r->non_retryable.len = 0;
        for (size_t n = 0; n < k->non_retryable.len; n++)
            *APPEND(r->non_retryable.ptr, r->non_retryable.len) = k->non_retryable.ptr[n];
        r->non_retryable_errors.ptr = NULL;
        r->non_retryable_errors.len = 0;
        for (size_t n = 0; n < k->non_retryable_errors.len; n++)
            *APPEND(r->non_retryable_errors.ptr, r->non_retryable_errors.len) =
                give((const char *)k->non_retryable_errors.ptr[n].ptr);
    }
    damson_workflow_types_outline_t *outline = &ret->outline;
    outline->root = s->root;
    for (size_t i = 0; i < s->nodes_len; i++) {
        const node *n = &s->nodes[i];
        damson_workflow_types_instruction_t *w = APPEND(outline->nodes.ptr, outline->nodes.len);
        w->tag = n->tag;
        switch (n->tag) {
        case DAMSON_WORKFLOW_TYPES_INSTRUCTION_STEP:
            w->val.step = give(n->name);
            break;
        case DAMSON_WORKFLOW_TYPES_INSTRUCTION_SEQUENCE:
            for (size_t c = 0; c < n->len; c++)
                *APPEND(w->val.sequence.ptr, w->val.sequence.len) = n->children[c];
            break;
        case DAMSON_WORKFLOW_TYPES_INSTRUCTION_CONDITIONAL:
            for (size_t c = 0; c < n->len; c++)
                *APPEND(w->val.conditional.ptr, w->val.conditional.len) =
                    (damson_workflow_types_branch_t){give_option(n->conditions[c]),
                                                     n->children[c]};
            break;
        case DAMSON_WORKFLOW_TYPES_INSTRUCTION_WHILE_LOOP:
            w->val.while_loop = (damson_workflow_types_while_loop_t){give(n->name), n->children[0]};
            break;
        case DAMSON_WORKFLOW_TYPES_INSTRUCTION_RETURN:
            w->val.return_ = (plugin_option_u32_t){n->has_status, n->status};
            break;
        }
    }
}

bool exports_damson_workflow_process_run_step(plugin_string_t *name,
                                              exports_damson_workflow_process_step_result_t *ret,
                                              plugin_string_t *err) {
    const char *step = begin(name);
    damson_step_fn fn = NULL;
    for (size_t i = 0; i < the_spec.steps_len && !fn; i++)
        if (strcmp(the_spec.steps[i].name, step) == 0) fn = the_spec.steps[i].fn;
    damson_next next = {0};
    if (fn) {
        next = fn(&the_ctx);
    } else {
        fail(&the_ctx, "the plugin has no step named '%s'", step);
    }
    if (next.kind == DAMSON_NEXT_FAIL_ && !the_ctx.error)
        fail(&the_ctx, "step '%s' failed", step);
    if (the_ctx.error) return end(err);

    *ret = (exports_damson_workflow_process_step_result_t){0};
    damson_workflow_types_next_t *n = &ret->next;
    switch (next.kind) {
    case DAMSON_NEXT_WAIT_:
        n->tag = DAMSON_WORKFLOW_TYPES_NEXT_WAIT;
        n->val.wait = (damson_workflow_types_wait_for_t){.event = give_option(next.event),
                                                         .message = give_option(next.message)};
        if (next.has_timer) {
            n->val.wait.timeout.is_some = true;
            n->val.wait.timeout.val = (damson_workflow_types_timer_t){
                .tag = DAMSON_WORKFLOW_TYPES_TIMER_AFTER_MS, .val.after_ms = next.timer_ms};
        }
        break;
    case DAMSON_NEXT_SLEEP_:
        n->tag = DAMSON_WORKFLOW_TYPES_NEXT_SLEEP;
        n->val.sleep = (damson_workflow_types_timer_t){.tag = DAMSON_WORKFLOW_TYPES_TIMER_AFTER_MS,
                                                       .val.after_ms = next.timer_ms};
        break;
    case DAMSON_NEXT_FINISH_:
        n->tag = DAMSON_WORKFLOW_TYPES_NEXT_FINISH;
        n->val.finish = (damson_workflow_types_exit_t){next.status, give_option(next.message)};
        break;
    case DAMSON_NEXT_KILL_:
        n->tag = DAMSON_WORKFLOW_TYPES_NEXT_KILL;
        n->val.kill = give(next.message ? next.message : "killed");
        break;
    default:
        n->tag = DAMSON_WORKFLOW_TYPES_NEXT_CONTINUE;
    }
    for (size_t i = 0; i < the_ctx.awaits_len; i++) {
        damson_workflow_types_await_child_t *a = APPEND(ret->awaits.ptr, ret->awaits.len);
        const damson_workflow_types_await_child_t *k = &the_ctx.awaits[i];
        *a = *k;
        a->pid = give((const char *)k->pid.ptr);
        a->key = give((const char *)k->key.ptr);
    }
    return end(err);
}

bool exports_damson_workflow_process_check_condition(plugin_string_t *name, bool *ret,
                                                     plugin_string_t *err) {
    const char *condition = begin(name);
    damson_condition_fn fn = NULL;
    for (size_t i = 0; i < the_spec.conditions_len && !fn; i++)
        if (strcmp(the_spec.conditions[i].name, condition) == 0) fn = the_spec.conditions[i].fn;
    if (fn) {
        *ret = fn(&the_ctx);
    } else {
        fail(&the_ctx, "the plugin has no condition named '%s'", condition);
    }
    return end(err);
}

static const port *port_named(const char *full_path) {
    for (size_t i = 0; i < the_spec.ports_len; i++)
        if (strcmp(the_spec.ports[i].full_path, full_path) == 0) return &the_spec.ports[i];
    return NULL;
}

bool exports_damson_workflow_process_validate(plugin_string_t *path,
                                              exports_damson_workflow_process_json_t *value,
                                              plugin_string_t *ret) {
    const char *full = begin(path);
    const port *p = port_named(full);
    size_t len = value->len;
    const char *text = take(value);
    const char *problem = NULL;
    if (!p || !p->validator) {
        problem = damson_format("the plugin has no validator for '%s'", full);
    } else {
        const damson_json *parsed = parse_n(text, len, "the value to validate");
        problem = parsed ? p->validator(parsed) : NULL;
    }
    if (!problem) problem = the_ctx.error;
    if (problem) *ret = give(problem);
    the_ctx = (damson_ctx){0};
    arena_reset();
    return problem != NULL;
}

bool exports_damson_workflow_process_compute_default(plugin_string_t *path,
                                                     exports_damson_workflow_process_json_t *ret,
                                                     plugin_string_t *err) {
    const char *full = begin(path);
    const port *p = port_named(full);
    const char *json = NULL;
    if (!p || !p->default_with) {
        fail(&the_ctx, "the plugin has no computed default for '%s'", full);
    } else if (!(json = p->default_with())) {
        fail(&the_ctx, "the computed default of '%s' returned NULL", full);
    } else if (damson_parse(json, damson_format("the computed default of '%s'", full))) {
        *ret = give(json);
    }
    return end(err);
}
