/*
 * _X_AMZN_TRACE_ID for the node runtime, set on every invoke without leaking memory.
 *
 * `process.env.X = v` calls glibc's setenv(), which keeps every distinct "name=value" string it
 * was ever given (in a search tree, never freed, so that pointers handed out by getenv() stay
 * valid). The trace id differs on every invoke: each one leaked ~155 bytes (31 MiB per 200,000
 * invokes), so a small function under steady load ran out of memory within the hour. Here the
 * variable is one static buffer registered with putenv(), which keeps the pointer rather than a
 * copy, and rewritten in place: process.env, native code and child processes all read the
 * current value, as after setenv(). (The Python runtime does the same with ctypes.)
 *
 * set(value) -> true, or false when the value does not fit (the caller then assigns
 * process.env itself). The runtime calls it from its one JavaScript thread only.
 *
 * Built by scripts/build-native.sh into _brazier_trace_env.node beside this file; the runtime
 * falls back to process.env when the module is missing.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <stdlib.h>
#include <string.h>

#define NAME "_X_AMZN_TRACE_ID"
#define PREFIX_LEN (sizeof(NAME)) /* the name and '=' */
#define VALUE_MAX 1024

static char entry[PREFIX_LEN + VALUE_MAX + 1] = NAME "=";

static napi_value set(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_value result;
  size_t len = 0;
  int fits = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == 1 &&
      napi_get_value_string_utf8(env, argv[0], NULL, 0, &len) == napi_ok && len < VALUE_MAX) {
    char value[VALUE_MAX + 1];
    size_t copied = 0;
    if (napi_get_value_string_utf8(env, argv[0], value, sizeof(value), &copied) == napi_ok &&
        memchr(value, '\0', copied) == NULL) {
      memcpy(entry + PREFIX_LEN, value, copied + 1);
      if (getenv(NAME) != entry + PREFIX_LEN) {
        putenv(entry); /* the handler may have set or deleted the variable itself */
      }
      fits = 1;
    }
  }
  napi_get_boolean(env, fits, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "set", NAPI_AUTO_LENGTH, set, NULL, &fn) == napi_ok) {
    napi_set_named_property(env, exports, "set", fn);
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
