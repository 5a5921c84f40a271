// sluice hook: an audit log of tool calls, in C.
//
// For every tools/call request it logs the request id, the tool name and the
// argument names; for every response, the id, the tool and whether it was a
// success, a tool error (result.isError) or a JSON-RPC error (with its code).
// Lines go through the host's logger; the verdict is always `continue`.
//
//   audit call id=7 tool="echo" args=["text","loud"] upstream=everything
//   audit done id=7 tool="echo" outcome=ok
//
// Config: the log level of the lines (trace|debug|info|warn|error), default
// info.
//
// Names and keys are logged as their raw JSON text, quotes and escapes
// included: a log line can never be split or forged by a crafted name.

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "hook.h"

// ---- a small, bounds-checked JSON scanner over the message text ----

// Deeper nesting than this is treated as malformed (bounds the recursion).
#define MAX_DEPTH 64

typedef struct {
  const char *p;
  const char *end;
} span;

static void skip_ws(span *s) {
  while (s->p < s->end &&
         (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

// At a '"': move past the closing quote.
static bool skip_string(span *s) {
  s->p++;
  while (s->p < s->end) {
    char c = *s->p++;
    if (c == '"') return true;
    if (c == '\\') {
      if (s->p >= s->end) return false;
      s->p++;
    }
  }
  return false;
}

static bool skip_value(span *s, int depth) {
  skip_ws(s);
  if (s->p >= s->end || depth > MAX_DEPTH) return false;
  char c = *s->p;
  if (c == '"') return skip_string(s);
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
      s->p++;
      return true;
    }
    for (;;) {
      if (c == '{') {
        skip_ws(s);
        if (s->p >= s->end || *s->p != '"' || !skip_string(s)) return false;
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':') return false;
        s->p++;
      }
      if (!skip_value(s, depth + 1)) return false;
      skip_ws(s);
      if (s->p >= s->end) return false;
      if (*s->p == ',') {
        s->p++;
        continue;
      }
      if (*s->p == close) {
        s->p++;
        return true;
      }
      return false;
    }
  }
  // A number, true, false or null: up to the next delimiter.
  const char *start = s->p;
  while (s->p < s->end && !strchr(",]} \t\r\n", *s->p)) s->p++;
  return s->p > start;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Whether the JSON string token [tok, tok_end) (quotes included) decodes to
// the ASCII `key`. Escapes are decoded, so "n\u0061me" is "name" here as it
// is for the upstream's parser.
static bool key_is(const char *tok, const char *tok_end, const char *key) {
  const char *p = tok + 1, *end = tok_end - 1;
  while (p < end) {
    unsigned ch = (unsigned char)*p++;
    if (ch == '\\') {
      if (p >= end) return false;
      char e = *p++;
      switch (e) {
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u': {
          if (end - p < 4) return false;
          ch = 0;
          for (int i = 0; i < 4; i++) {
            int d = hex_digit(p[i]);
            if (d < 0) return false;
            ch = ch * 16 + (unsigned)d;
          }
          p += 4;
          break;
        }
        default: ch = (unsigned char)e;  // " \ /
      }
    }
    if (*key == '\0' || ch != (unsigned char)*key++) return false;
  }
  return *key == '\0';
}

// The value of member `key` of the object `obj` (the last one, as most JSON
// parsers keep the last of duplicate keys). Returns false when `obj` is not
// an object or has no such member.
static bool member(span obj, const char *key, span *value) {
  span s = obj;
  bool found = false;
  skip_ws(&s);
  if (s.p >= s.end || *s.p != '{') return false;
  s.p++;
  skip_ws(&s);
  if (s.p < s.end && *s.p == '}') return false;
  for (;;) {
    skip_ws(&s);
    const char *k = s.p;
    if (s.p >= s.end || *s.p != '"' || !skip_string(&s)) return false;
    const char *k_end = s.p;
    skip_ws(&s);
    if (s.p >= s.end || *s.p != ':') return false;
    s.p++;
    skip_ws(&s);
    const char *v = s.p;
    if (!skip_value(&s, 1)) return false;
    if (key_is(k, k_end, key)) {
      value->p = v;
      value->end = s.p;
      found = true;
    }
    skip_ws(&s);
    if (s.p < s.end && *s.p == ',') {
      s.p++;
      continue;
    }
    return found;
  }
}

static bool is_literal(span v, const char *lit) {
  size_t n = strlen(lit);
  return (size_t)(v.end - v.p) == n && memcmp(v.p, lit, n) == 0;
}

// ---- the log line ----

#define LINE_MAX 2048
// Argument names listed at most; the rest are counted.
#define MAX_KEYS 32

typedef struct {
  char buf[LINE_MAX];
  size_t len;
  bool cut;
} line;

static void put(line *l, const char *p, size_t n) {
  // Keep room for the "..." marker.
  if (l->len + n > LINE_MAX - 3) {
    n = LINE_MAX - 3 - l->len;
    l->cut = true;
  }
  memcpy(l->buf + l->len, p, n);
  l->len += n;
}

static void puts_(line *l, const char *s) { put(l, s, strlen(s)); }
static void put_span(line *l, span v) { put(l, v.p, (size_t)(v.end - v.p)); }

static void put_uint(line *l, size_t n) {
  char d[24];
  size_t i = sizeof d;
  do d[--i] = (char)('0' + n % 10); while ((n /= 10) && i);
  put(l, d + i, sizeof d - i);
}

static void put_field(line *l, const char *name, bool ok, span v) {
  puts_(l, name);
  if (ok)
    put_span(l, v);
  else
    puts_(l, "-");
}

static sluice_hook_types_level_t level = SLUICE_HOOK_TYPES_LEVEL_INFO;

static void emit(line *l) {
  if (l->cut) {
    memcpy(l->buf + l->len, "...", 3);
    l->len += 3;
  }
  hook_string_t s = {(uint8_t *)l->buf, l->len};
  sluice_hook_host_log(level, &s);
}

// "id=.. tool=.." from a tools/call request.
static void put_call(line *l, span request, span *params_out, bool *has_params) {
  span id = {0}, params = {0}, name = {0};
  put_field(l, " id=", member(request, "id", &id), id);
  *has_params = member(request, "params", &params);
  put_field(l, " tool=", *has_params && member(params, "name", &name), name);
  *params_out = params;
}

static void put_arg_keys(line *l, span params, bool has_params) {
  span args = {0};
  puts_(l, " args=");
  if (!has_params || !member(params, "arguments", &args)) {
    puts_(l, "-");
    return;
  }
  span s = args;
  skip_ws(&s);
  if (s.p >= s.end || *s.p != '{') {
    puts_(l, "(not an object)");
    return;
  }
  s.p++;
  puts_(l, "[");
  size_t n = 0;
  for (;;) {
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '"') break;
    const char *k = s.p;
    if (!skip_string(&s)) break;
    if (n < MAX_KEYS) {
      if (n) puts_(l, ",");
      put(l, k, (size_t)(s.p - k));
    }
    n++;
    skip_ws(&s);
    if (s.p >= s.end || *s.p != ':') break;
    s.p++;
    if (!skip_value(&s, 1)) break;
    skip_ws(&s);
    if (s.p < s.end && *s.p == ',') s.p++;
  }
  if (n > MAX_KEYS) {
    puts_(l, ",+");
    put_uint(l, n - MAX_KEYS);
    puts_(l, " more");
  }
  puts_(l, "]");
}

static span as_span(const hook_string_t *s) {
  span v = {(const char *)s->ptr, (const char *)s->ptr + s->len};
  return v;
}

// ---- the exports ----

static bool configured = false;

static void configure(void) {
  if (configured) return;
  configured = true;
  hook_string_t cfg;
  sluice_hook_host_config(&cfg);
  static const struct {
    const char *name;
    sluice_hook_types_level_t level;
  } names[] = {
      {"trace", SLUICE_HOOK_TYPES_LEVEL_TRACE}, {"debug", SLUICE_HOOK_TYPES_LEVEL_DEBUG},
      {"info", SLUICE_HOOK_TYPES_LEVEL_INFO},   {"warn", SLUICE_HOOK_TYPES_LEVEL_WARN},
      {"error", SLUICE_HOOK_TYPES_LEVEL_ERROR},
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (cfg.len == strlen(names[i].name) && memcmp(cfg.ptr, names[i].name, cfg.len) == 0)
      level = names[i].level;
  }
  hook_string_free(&cfg);
}

void exports_sluice_hook_handler_methods(hook_list_string_t *ret) {
  configure();
  // Freed by the generated post-return function: must come from malloc.
  static const char method[] = "tools/call";
  ret->len = 1;
  ret->ptr = malloc(sizeof(hook_string_t));
  hook_string_dup(&ret->ptr[0], method);
}

void exports_sluice_hook_handler_on_request(exports_sluice_hook_handler_context_t *ctx,
                                            exports_sluice_hook_handler_message_t *request,
                                            exports_sluice_hook_handler_verdict_t *ret) {
  configure();
  line l = {.len = 0, .cut = false};
  span params;
  bool has_params;
  puts_(&l, "audit call");
  put_call(&l, as_span(&request->json), &params, &has_params);
  put_arg_keys(&l, params, has_params);
  puts_(&l, " upstream=");
  put(&l, (const char *)ctx->upstream.ptr, ctx->upstream.len);
  emit(&l);
  ret->tag = SLUICE_HOOK_TYPES_VERDICT_CONTINUE;
  exports_sluice_hook_handler_context_free(ctx);
  exports_sluice_hook_handler_message_free(request);
}

void exports_sluice_hook_handler_on_response(exports_sluice_hook_handler_context_t *ctx,
                                             exports_sluice_hook_handler_message_t *request,
                                             exports_sluice_hook_handler_message_t *response,
                                             exports_sluice_hook_handler_verdict_t *ret) {
  configure();
  line l = {.len = 0, .cut = false};
  span params = {0}, error = {0}, code = {0}, result = {0}, is_error = {0};
  bool has_params;
  span resp = as_span(&response->json);
  puts_(&l, "audit done");
  put_call(&l, as_span(&request->json), &params, &has_params);
  if (member(resp, "error", &error)) {
    puts_(&l, " outcome=rpc_error");
    put_field(&l, " code=", member(error, "code", &code), code);
  } else if (member(resp, "result", &result) && member(result, "isError", &is_error) &&
             is_literal(is_error, "true")) {
    puts_(&l, " outcome=tool_error");
  } else {
    puts_(&l, " outcome=ok");
  }
  emit(&l);
  ret->tag = SLUICE_HOOK_TYPES_VERDICT_CONTINUE;
  exports_sluice_hook_handler_context_free(ctx);
  exports_sluice_hook_handler_message_free(request);
  exports_sluice_hook_handler_message_free(response);
}
