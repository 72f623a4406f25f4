// In-sandbox Lambda runtime client for nodejsNN.x functions. Plain Node (>= 20), no dependencies.
//
// Launched as `node /var/runtime/node_runtime.mjs` with cwd /var/task and the Lambda environment
// (AWS_LAMBDA_RUNTIME_API, _HANDLER, LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_*, AWS_LAMBDA_LOG_*).
// Or pre-started, before the function is known, with _BRAZIER_WAIT_FD=<fd> (a socket to the
// sandbox's PID 1): then it loads itself, writes `ready\n` there and blocks until one line
// {"env": {...}, "handler": "...", "cwd": "/var/task"} arrives, takes that environment and cwd
// (default /var/task), and goes on
// as above. Nothing reads the environment or touches /var/task before that line.
// What a handler can observe is modelled on aws-lambda-ric (the RIC of the managed nodejs
// runtimes): handler resolution, the context object, callback/async semantics including
// callbackWaitsForEmptyEventLoop, the error payload {errorType, errorMessage, trace}, the console
// log formats (text, JSON, framed on _LAMBDA_TELEMETRY_LOG_FD) and _X_AMZN_TRACE_ID handling.
//
// Not implemented: response streaming (awslambda.streamifyResponse), the global `awslambda`
// object, TypeScript handlers, multi-concurrency. ESM handlers do get bare-specifier fallback to
// the NODE_PATH directories (layers' /opt/nodejs/node_modules) through a resolve hook, because
// Node's ESM resolver ignores NODE_PATH.

import fs from 'node:fs';
import http from 'node:http';
import moduleApi, { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import util from 'node:util';

let API = '';

// _X_AMZN_TRACE_ID changes on every invoke. Assigning process.env calls glibc's setenv(), which
// keeps every value it was ever given: ~155 bytes per invoke, never freed. The native helper
// (trace_env.c, built by scripts/build-native.sh) rewrites one buffer in place instead; without
// it, process.env it is.
const traceEnv = (() => {
  try {
    return createRequire(import.meta.url)('./_brazier_trace_env.node');
  } catch {
    return null;
  }
})();
function setTraceId(value) {
  if (!traceEnv || !traceEnv.set(value)) process.env._X_AMZN_TRACE_ID = value;
}
const NEXT_PATH = '/2018-06-01/runtime/invocation/next';
const INVOKE_PREFIX = '/2018-06-01/runtime/invocation/';
const INIT_ERROR_PATH = '/2018-06-01/runtime/init/error';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';
const XRAY_CAUSE_HEADER = 'Lambda-Runtime-Function-XRay-Error-Cause';
const XRAY_CAUSE_MAX = 1024 * 1024;

// ------------------------------------------------------------------------------------------------
// Errors, shaped like the RIC's
// ------------------------------------------------------------------------------------------------

class RuntimeError extends Error {}
function runtimeErrorClass(name) {
  const cls = class extends RuntimeError {};
  Object.defineProperty(cls, 'name', { value: name });
  cls.prototype.name = `Runtime.${name}`;
  return cls;
}
const ImportModuleError = runtimeErrorClass('ImportModuleError');
const HandlerNotFound = runtimeErrorClass('HandlerNotFound');
const MalformedHandlerName = runtimeErrorClass('MalformedHandlerName');
const UserCodeSyntaxError = runtimeErrorClass('UserCodeSyntaxError');
const UnhandledPromiseRejection = runtimeErrorClass('UnhandledPromiseRejection');
const NodeJsExit = runtimeErrorClass('NodeJsExit');

function isErrorLike(e) {
  return (
    e &&
    typeof e.name === 'string' &&
    typeof e.message === 'string' &&
    typeof e.stack === 'string'
  );
}

/** The body posted to /error and /init/error. */
function toRapidResponse(error) {
  try {
    if (util.types.isNativeError(error) || isErrorLike(error)) {
      return { errorType: error.name, errorMessage: error.message, trace: error.stack.split('\n') };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
    };
  }
}

/** The X-Ray cause header: the error and its parsed stack frames. */
function xrayCause(error) {
  try {
    const stack = [];
    const paths = new Set();
    const lines = typeof error?.stack === 'string' ? error.stack.split('\n').slice(1) : [];
    for (const line of lines) {
      const m = /^\s*at (?:(.+?) \()?(.+?):(\d+):\d+\)?$/.exec(line);
      if (!m) continue;
      stack.push({ path: m[2], line: Number(m[3]), label: m[1] ?? 'anonymous' });
      paths.add(m[2]);
    }
    const cause = JSON.stringify({
      working_directory: process.cwd(),
      exceptions: [{ type: error?.name, message: error?.message, stack }],
      paths: [...paths],
    });
    // header values must stay latin-1: escape everything else
    const ascii = cause.replace(
      /[\u007f-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
    return ascii.length < XRAY_CAUSE_MAX ? ascii : undefined;
  } catch {
    return undefined;
  }
}

/** Error -> JSON with its name, message, code, enumerable fields and stack lines (text logs). */
function toFormatted(error) {
  const withProps = (_k, v) => {
    if (v instanceof Error) {
      const ret = { errorType: v.name, errorMessage: v.message, code: v.code, ...v };
      if (typeof v.stack === 'string') ret.stack = v.stack.split('\n');
      return ret;
    }
    return v;
  };
  try {
    return '\t' + JSON.stringify(error, withProps);
  } catch {
    return '\t' + JSON.stringify(toRapidResponse(error));
  }
}

// ------------------------------------------------------------------------------------------------
// Console patching
// ------------------------------------------------------------------------------------------------

const LEVELS = {
  TRACE: { name: 'TRACE', priority: 1, mask: 0b00100 },
  DEBUG: { name: 'DEBUG', priority: 2, mask: 0b01000 },
  INFO: { name: 'INFO', priority: 3, mask: 0b01100 },
  WARN: { name: 'WARN', priority: 4, mask: 0b10000 },
  ERROR: { name: 'ERROR', priority: 5, mask: 0b10100 },
  FATAL: { name: 'FATAL', priority: 6, mask: 0b11000 },
};

const current = { requestId: undefined, tenantId: undefined };
let JSON_FORMAT = false;

function jsonErrorReplacer(_k, value) {
  if (value instanceof Error) {
    return {
      errorType: value?.constructor?.name ?? 'UnknownError',
      errorMessage: value.message,
      stackTrace: typeof value.stack === 'string' ? value.stack.split('\n') : value.stack,
      ...value,
    };
  }
  return value;
}

function formatJson(time, level, message, params) {
  const result = { timestamp: time, level: level.name, requestId: current.requestId };
  if (current.tenantId) result.tenantId = current.tenantId;
  if (params.length === 0) {
    result.message = message;
    try {
      return JSON.stringify(result, jsonErrorReplacer);
    } catch {
      result.message = util.format(message);
      return JSON.stringify(result);
    }
  }
  result.message = util.format(message, ...params);
  for (const p of params) {
    if (p instanceof Error) {
      result.errorType = p?.constructor?.name ?? 'UnknownError';
      result.errorMessage = p.message;
      result.stackTrace = typeof p.stack === 'string' ? p.stack.split('\n') : [];
      break;
    }
  }
  return JSON.stringify(result);
}

function formatText(time, level, message, params) {
  return `${time}\t${current.requestId}\t${level.name}\t${util.format(message, ...params)}`;
}

function makeLogger() {
  const format = JSON_FORMAT ? formatJson : formatText;
  const fdEnv = process.env._LAMBDA_TELEMETRY_LOG_FD;
  if (fdEnv != null) {
    delete process.env._LAMBDA_TELEMETRY_LOG_FD;
    const fd = parseInt(fdEnv, 10);
    const base = JSON_FORMAT ? 0xa55a0002 : 0xa55a0003;
    const head = Buffer.alloc(16);
    return (level, message, params) => {
      const date = new Date();
      let line = format(date.toISOString(), level, message, params);
      if (!JSON_FORMAT) line += '\n';
      const data = Buffer.from(line, 'utf8');
      head.writeUInt32BE((base | level.mask) >>> 0, 0);
      head.writeUInt32BE(data.length, 4);
      head.writeBigUInt64BE(BigInt(date.valueOf()) * 1000n, 8);
      fs.writeSync(fd, Buffer.concat([head, data]));
    };
  }
  return (level, message, params) => {
    const line = format(new Date().toISOString(), level, message, params);
    // one line per record: a line-based collector must keep multi-line records whole
    process.stdout.write(line.replace(/\n/g, '\r') + '\n');
  };
}

function patchConsole() {
  const log = makeLogger();
  const threshold = LEVELS[(process.env.AWS_LAMBDA_LOG_LEVEL ?? '').toUpperCase()] ?? LEVELS.TRACE;
  const nop = () => {};
  const make = (level) =>
    level.priority >= threshold.priority ? (msg, ...params) => log(level, msg, params) : nop;
  console.trace = make(LEVELS.TRACE);
  console.debug = make(LEVELS.DEBUG);
  console.info = make(LEVELS.INFO);
  console.log = console.info;
  console.warn = make(LEVELS.WARN);
  console.error = make(LEVELS.ERROR);
  console.fatal = (msg, ...params) => log(LEVELS.FATAL, msg, params);
}

/** How the RIC logs an error it reports: text `<label> \t{json}`, or the Error as JSON. */
function logError(label, err) {
  const e = err instanceof Error ? err : new Error(err);
  if (JSON_FORMAT) console.error(e);
  else console.error(label, toFormatted(e));
}

// ------------------------------------------------------------------------------------------------
// The Runtime API client: node:http on one keep-alive socket
// ------------------------------------------------------------------------------------------------

let apiHost = '';
let apiPortText = '';
let apiPort = NaN;
// Idle keep-alive sockets are unref'd by the agent, so they never hold the event loop open (the
// callbackWaitsForEmptyEventLoop semantics rely on the loop draining).
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function request(method, reqPath, body, headers, target = undefined) {
  return new Promise((resolve, reject) => {
    const opts = { host: apiHost, port: apiPort, path: reqPath, method, agent, ...target };
    if (body !== undefined) {
      opts.headers = { 'Content-Length': Buffer.byteLength(body), ...headers };
    }
    const req = http.request(opts, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function fatal(message) {
  process.stdout.write(`Runtime.RuntimeClientError: ${message}\n`);
  process.exit(1);
}

async function post(reqPath, body, headers) {
  let res;
  try {
    res = await request('POST', reqPath, body, headers);
  } catch (e) {
    fatal(`POST ${reqPath} failed: ${e}`);
  }
  if (res.status !== 202) {
    // e.g. 413: the platform already fails the invoke; keep serving.
    process.stdout.write(`Runtime API answered ${res.status} to POST ${reqPath}: ${res.body}\n`);
  }
}

function postError(id, error) {
  const body = JSON.stringify(toRapidResponse(error));
  const headers = { 'Content-Type': 'application/json' };
  const cause = xrayCause(error);
  if (cause) headers[XRAY_CAUSE_HEADER] = cause;
  return post(`${INVOKE_PREFIX}${encodeURIComponent(id)}/error`, body, headers);
}

async function postInitError(error) {
  const response = toRapidResponse(error);
  await post(INIT_ERROR_PATH, JSON.stringify(response), {
    'Content-Type': 'application/json',
    [ERROR_TYPE_HEADER]: response.errorType,
  });
}

// ------------------------------------------------------------------------------------------------
// Loading the handler (resolution rules of the RIC's UserFunction)
// ------------------------------------------------------------------------------------------------

const runtimeRequire = createRequire(import.meta.url);

function packageTypeIsModule(folder) {
  for (let dir = folder; ; dir = path.dirname(dir)) {
    if (dir.endsWith('/node_modules')) return false;
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        return JSON.parse(fs.readFileSync(pj, 'utf8'))?.type === 'module';
      } catch {
        return false;
      }
    }
    if (dir === path.dirname(dir)) return false;
  }
}

let esmHookInstalled = false;
/**
 * Let ESM bare imports fall back to the NODE_PATH directories (layers' /opt/nodejs/node_modules):
 * Node's ESM resolver ignores NODE_PATH, the CommonJS one does not. Only directories that exist,
 * hold something and are not the task or runtime root count, because on Node 20 the hook runs on
 * a loader thread that costs ~35 ms of cold start; Node >= 22.15 has in-thread registerHooks.
 */
function installEsmNodePathFallback() {
  if (esmHookInstalled) return;
  esmHookInstalled = true;
  const skip = new Set(
    [process.env.LAMBDA_TASK_ROOT, process.env.LAMBDA_RUNTIME_DIR, process.cwd()]
      .filter(Boolean)
      .map((d) => path.resolve(d)),
  );
  const dirs = (process.env.NODE_PATH ?? '').split(':').filter((d) => {
    if (!d || skip.has(path.resolve(d))) return false;
    try {
      return fs.readdirSync(d).length > 0;
    } catch {
      return false;
    }
  });
  if (dirs.length === 0) return;
  // A parent module inside <dir> makes the node_modules walk-up find <dir>/<pkg> for dirs named
  // node_modules, the usual NODE_PATH shape.
  const parents = dirs.map((d) => pathToFileURL(path.join(d, '__brazier_parent__.mjs')).href);
  const isBare = (s) => !/^(?:[./]|[a-zA-Z][a-zA-Z0-9+.-]*:)/.test(s);
  if (typeof moduleApi.registerHooks === 'function') {
    moduleApi.registerHooks({
      resolve(specifier, context, next) {
        try {
          return next(specifier, context);
        } catch (err) {
          if (!isBare(specifier) || err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
          for (const parentURL of parents) {
            try {
              return next(specifier, { ...context, parentURL });
            } catch {}
          }
          throw err;
        }
      },
    });
    return;
  }
  const hook = `
    const parents = ${JSON.stringify(parents)};
    export async function resolve(specifier, context, next) {
      try {
        return await next(specifier, context);
      } catch (err) {
        const bare = !/^(?:[./]|[a-zA-Z][a-zA-Z0-9+.-]*:)/.test(specifier);
        if (!bare || err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
        for (const parentURL of parents) {
          try { return await next(specifier, { ...context, parentURL }); } catch {}
        }
        throw err;
      }
    }`;
  moduleApi.register(`data:text/javascript,${encodeURIComponent(hook)}`);
}

async function tryImport(file) {
  if (!fs.existsSync(file)) return undefined;
  installEsmNodePathFallback();
  return import(pathToFileURL(file).href);
}

function tryRequire(file) {
  return fs.existsSync(file) ? runtimeRequire(file) : undefined;
}

async function loadModule(appRoot, moduleRoot, moduleName) {
  const base = path.resolve(appRoot, moduleRoot, moduleName);
  const extensionless = tryRequire(base);
  if (extensionless) return extensionless;
  const isModule = packageTypeIsModule(path.dirname(base));
  if (!isModule) {
    const js = tryRequire(`${base}.js`);
    if (js) return js;
  }
  const loaded =
    (isModule && (await tryImport(`${base}.js`))) ||
    (await tryImport(`${base}.mjs`)) ||
    tryRequire(`${base}.cjs`);
  if (loaded) return loaded;
  // Node-style resolution relative to the app root (a package directory, node_modules, ...)
  const resolved = runtimeRequire.resolve(moduleName, {
    paths: [appRoot, path.resolve(appRoot, moduleRoot)],
  });
  return runtimeRequire(resolved);
}

async function loadHandler(appRoot, fullHandler) {
  if (fullHandler.includes('..')) {
    throw new MalformedHandlerName(
      `'${fullHandler}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const moduleAndHandler = path.basename(fullHandler);
  const moduleRoot = fullHandler.substring(0, fullHandler.indexOf(moduleAndHandler));
  const match = /^([^.]*)\.(.*)$/.exec(moduleAndHandler);
  if (!match) throw new MalformedHandlerName('Bad handler');
  const [, moduleName, handlerPath] = match;
  let userApp;
  try {
    userApp = await loadModule(appRoot, moduleRoot, moduleName);
  } catch (e) {
    if (e instanceof SyntaxError) throw new UserCodeSyntaxError(String(e));
    if (e?.code === 'MODULE_NOT_FOUND' || e?.code === 'ERR_MODULE_NOT_FOUND') {
      throw new ImportModuleError(String(e));
    }
    throw e;
  }
  const fn = handlerPath.split('.').reduce((obj, key) => obj && obj[key], userApp);
  if (!fn) throw new HandlerNotFound(`${fullHandler} is undefined or not exported`);
  if (typeof fn !== 'function') throw new HandlerNotFound(`${fullHandler} is not a function`);
  return fn;
}

// ------------------------------------------------------------------------------------------------
// The invoke loop
// ------------------------------------------------------------------------------------------------

let ENV_CONTEXT = {};

/** Everything taken from the environment, read once it is the function's. */
function configure() {
  API = process.env.AWS_LAMBDA_RUNTIME_API ?? '';
  [apiHost, apiPortText] = API.split(':');
  apiPort = Number(apiPortText);
  JSON_FORMAT = (process.env.AWS_LAMBDA_LOG_FORMAT ?? '').toUpperCase() === 'JSON';
  ENV_CONTEXT = {
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
  };
}

/**
 * Pre-started mode, before `ready`: run the client's code paths once (http request and response
 * parsing on a keep-alive agent, JSON, log formatting) against a throwaway server on the
 * sandbox's own loopback, so that the first real invocation, which already runs under the
 * function's CPU quota, does not pay for compiling them.
 */
async function warmUp() {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(req.method === 'GET' ? 200 : 202, {
        'Content-Type': 'application/json',
        'Lambda-Runtime-Aws-Request-Id': 'warm-up',
        'Lambda-Runtime-Deadline-Ms': String(Date.now() + 1000),
      });
      res.end(JSON.stringify({ warm: Buffer.concat(chunks).length }));
    });
  });
  try {
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const target = {
      host: '127.0.0.1',
      port: server.address().port,
      agent: new http.Agent({ keepAlive: true, maxSockets: 1 }),
    };
    for (let i = 0; i < 2; i++) {
      const next = await request('GET', NEXT_PATH, undefined, undefined, target);
      JSON.parse(next.body.toString('utf8'));
      const body = JSON.stringify(null);
      const json = { 'Content-Type': 'application/json' };
      await request('POST', `${INVOKE_PREFIX}warm-up/response`, body, json, target);
      formatText(new Date().toISOString(), LEVELS.INFO, 'warm %s', [i]);
      formatJson(new Date().toISOString(), LEVELS.INFO, 'warm', [i]);
    }
    target.agent.destroy();
  } catch {
    // only a warm-up
  } finally {
    await new Promise((resolve) => server.close(resolve));
    current.requestId = undefined;
  }
}

/**
 * Pre-started mode: say `ready` on the wait fd, block for the go line, then become the
 * function's runtime process: its environment (NODE_PATH included: the CommonJS loader's global
 * paths are recomputed), its handler and cwd /var/task.
 */
async function awaitGo(fd) {
  await warmUp();
  fs.writeSync(fd, 'ready\n');
  const buf = Buffer.alloc(65536);
  const chunks = [];
  for (;;) {
    let n;
    try {
      n = fs.readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN' || e.code === 'EINTR') continue;
      throw e;
    }
    if (n === 0) process.exit(1); // PID 1 went away: nothing to run
    chunks.push(Buffer.from(buf.subarray(0, n)));
    if (buf[n - 1] === 0x0a) break;
  }
  fs.closeSync(fd);
  const go = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  // Only what differs: a change of TZ (set for the pre-started runtime already) makes Node reset
  // ICU's time zone, ~15 ms when deleting it.
  for (const key of Object.keys(process.env)) {
    if (!Object.hasOwn(go.env, key)) delete process.env[key];
  }
  for (const [key, value] of Object.entries(go.env)) {
    if (process.env[key] !== value) process.env[key] = value;
  }
  process.chdir(go.cwd ?? '/var/task');
  moduleApi._initPaths();
}

let beforeExit = () => {};
let errorCallbacks = {
  uncaughtException: (error) => postInitError(error).finally(() => process.exit(129)),
  unhandledRejection: (error) => postInitError(error).finally(() => process.exit(128)),
};

function parseJsonHeader(value, name) {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

function isPromise(x) {
  return x && typeof x.then === 'function';
}

/** The callback, and the succeed/fail/done part of the context; only the first call counts. */
function buildCallbackContext(id, isAsync, scheduleNext) {
  let finished = false;
  let completed = false;
  let waitForEmptyEventLoop = true;

  const complete = (result) => {
    if (completed) {
      console.error(
        'Invocation has already been reported as done. Cannot call complete more than once per invocation.',
      );
      return;
    }
    completed = true;
    let body;
    try {
      body = JSON.stringify(result === undefined ? null : result);
    } catch {
      const err = new Error('Unable to stringify response body');
      logError('Invoke Error', err);
      postError(id, err).then(scheduleNext);
      return;
    }
    post(`${INVOKE_PREFIX}${encodeURIComponent(id)}/response`, body, {
      'Content-Type': 'application/json',
    }).then(scheduleNext);
  };
  const failWith = (err) => {
    completed = true;
    logError('Invoke Error', err);
    postError(id, err).then(scheduleNext);
  };
  const once = (f) =>
    function (...args) {
      if (finished) return;
      f(...args);
      finished = true;
    };
  const callback = once((err, result) => {
    beforeExit = () => {};
    if (err !== undefined && err !== null) failWith(err);
    else if (!waitForEmptyEventLoop) complete(result);
    else beforeExit = () => setImmediate(() => complete(result));
  });
  const done = (err, result) => {
    beforeExit = () => {};
    if (err !== undefined && err !== null) failWith(err);
    else complete(result);
  };
  const context = {
    get callbackWaitsForEmptyEventLoop() {
      return waitForEmptyEventLoop;
    },
    set callbackWaitsForEmptyEventLoop(value) {
      waitForEmptyEventLoop = value;
    },
    succeed: once((result) => done(null, result)),
    fail: once((err) => done(err ?? 'handled')),
    done: once(done),
  };
  // Neither the callback nor a promise settled and the loop drained: the RIC reports null for
  // sync/callback handlers and an error for async ones.
  beforeExit = () => {
    finished = true;
    if (isAsync) failWith(new NodeJsExit('Runtime exited without providing a reason'));
    else complete(null);
  };
  return [callback, context];
}

async function invokeOnce(handler, isAsync) {
  let next;
  try {
    next = await request('GET', NEXT_PATH);
  } catch (e) {
    fatal(`Failed to get next invocation: ${e}`);
  }
  if (next.status !== 200) fatal(`/next answered ${next.status}: ${next.body}`);
  const h = next.headers;
  const id = h['lambda-runtime-aws-request-id'];
  if (!id) fatal('/next answered without Lambda-Runtime-Aws-Request-Id');
  current.requestId = id;
  current.tenantId = h['lambda-runtime-aws-tenant-id'];
  const trace = h['lambda-runtime-trace-id'];
  if (trace) setTraceId(trace);
  else delete process.env._X_AMZN_TRACE_ID;

  errorCallbacks = {
    uncaughtException: (error) => postError(id, error).finally(() => process.exit(129)),
    unhandledRejection: (error) => postError(id, error).finally(() => process.exit(128)),
  };
  const [callback, callbackContext] = buildCallbackContext(id, isAsync, scheduleNext);
  try {
    const deadline = Number(h['lambda-runtime-deadline-ms']);
    const context = Object.assign(callbackContext, ENV_CONTEXT, {
      clientContext: parseJsonHeader(h['lambda-runtime-client-context'], 'ClientContext'),
      identity: parseJsonHeader(h['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
      invokedFunctionArn: h['lambda-runtime-invoked-function-arn'],
      awsRequestId: id,
      tenantId: current.tenantId,
      getRemainingTimeInMillis: () => deadline - Date.now(),
    });
    const event = JSON.parse(next.body.toString('utf8'));
    const result = handler(event, context, callback);
    if (isPromise(result)) {
      result.then(callbackContext.succeed, callbackContext.fail).catch(callbackContext.fail);
    }
  } catch (err) {
    callback(err);
  }
}

let runOnce;
function scheduleNext() {
  setImmediate(() => {
    runOnce().catch((err) => {
      process.stdout.write(`Unexpected Top Level Error: ${err}\n`);
      errorCallbacks.uncaughtException(err);
    });
  });
}

async function main() {
  const waitFd = process.env._BRAZIER_WAIT_FD;
  if (waitFd !== undefined) await awaitGo(Number(waitFd));
  configure();
  patchConsole();
  if (!API || !/^\d+$/.test(apiPortText ?? '') || apiPort > 65535) {
    fatal(`AWS_LAMBDA_RUNTIME_API must be host:port, got '${API}'`);
  }
  process.on('uncaughtException', (error) => {
    logError('Uncaught Exception', error);
    errorCallbacks.uncaughtException(error);
  });
  process.on('unhandledRejection', (reason) => {
    const error = new UnhandledPromiseRejection(reason?.stack ?? String(reason));
    logError('Unhandled Promise Rejection', error);
    errorCallbacks.unhandledRejection(error);
  });
  process.on('beforeExit', () => beforeExit());

  const appRoot = process.env.LAMBDA_TASK_ROOT || process.cwd();
  let handler;
  try {
    handler = await loadHandler(appRoot, process.env._HANDLER ?? '');
  } catch (error) {
    logError('Uncaught Exception', error);
    await postInitError(error);
    process.exit(1);
  }
  const isAsync = handler.constructor?.name === 'AsyncFunction';
  runOnce = () => invokeOnce(handler, isAsync);
  scheduleNext();
}

await main();
