// Sends identify, track, group and page through RudderStack's Node SDK
// (`@rudderstack/rudder-sdk-node`) to `actionkit serve`, for serve_node_clients.rs.
//
// The SDK is configured as its documentation shows, with `dataPlaneUrl` set to the server; it
// posts `{batch, timestamp, sentAt}` to `<dataPlaneUrl>/v1/batch` through axios, by default
// gzip-compressed with axios's default content type for a binary body. The SDK's own hooks tell
// the script what it sent: `beforeEnqueue` sees each event (with its messageId) and is returned
// it unchanged, and interceptors on the SDK's axios instance note each request and answer.
//
// Standard output is one JSON object: the library's name and version, every call with its
// messageId and the outcome its callback reported, every message as sent, every request with
// its answer, and the problems seen (a callback or the `errorHandler` with an error, an answer
// >= 400, a failed request, a message not accepted exactly once).

import { gunzipSync } from "node:zlib";

import {
  checkAcceptedOnce,
  describeError,
  finish,
  importInstalled,
  installedVersion,
  readArguments,
  settleWithin,
} from "./common.mjs";
import { callsFor, eventMatchesCall, sendCall } from "./calls.mjs";

const USAGE = `Usage: ACTIONKIT_WRITE_KEY=... node rudder_node.mjs --serve URL --tag TAG [--mode gzip|plain]

  --serve URL  the server's base URL, e.g. http://127.0.0.1:8088
  --tag TAG    makes this run's ids unique (user "<TAG>-user", company "<TAG>-company")
  --mode gzip   the SDK's default: gzip-compressed bodies
  --mode plain  gzip: false, plain JSON bodies`;

const PACKAGE = "@rudderstack/rudder-sdk-node";

const args = readArguments(USAGE, ["gzip", "plain"]);
const { default: Analytics } = await importInstalled(PACKAGE);

const problems = [];
const requests = [];
const messages = [];
const enqueued = [];

const client = new Analytics(args.writeKey, {
  dataPlaneUrl: args.serveUrl,
  // The run ends with flush(); the timer should not split the batch.
  flushAt: 20,
  flushInterval: 10_000,
  gzip: args.mode === "gzip",
  // A failure should end the test in seconds rather than back off for long.
  retryCount: 1,
  timeout: 10_000,
  logLevel: "error",
  errorHandler: (error) => {
    problems.push(`the SDK's errorHandler got ${describeAxiosError(error)}`);
  },
  beforeEnqueue: (event) => {
    enqueued.push(event);
    return event;
  },
});

// Every exchange is noted once, even when axios-retry sends a response through the chain again.
const noted = new WeakSet();
client.axiosInstance.interceptors.response.use(
  (response) => {
    note(response.config, response);
    return response;
  },
  (error) => {
    note(error.config, error.response, error);
    return Promise.reject(error);
  },
);

function note(config, response, error) {
  const key = response ?? error;
  if (!key || noted.has(key)) {
    return;
  }
  noted.add(key);
  const entry = {
    method: (config?.method ?? "").toUpperCase(),
    path: config?.url ? new URL(config.url).pathname : undefined,
    contentType: sentHeader(response ?? error, config, "content-type"),
    contentEncoding: sentHeader(response ?? error, config, "content-encoding"),
  };
  const body = decodeBody(config?.data);
  if (body.error) {
    problems.push(`could not read the SDK's request body: ${body.error}`);
  }
  entry.events = (body.value?.batch ?? []).map((event) => event.messageId);
  messages.push(...(body.value?.batch ?? []));
  if (response) {
    entry.status = response.status;
    if (response.status >= 400) {
      entry.answer = JSON.stringify(response.data).slice(0, 500);
      problems.push(`${entry.method} ${entry.path} answered ${response.status}: ${entry.answer}`);
    }
  } else {
    entry.error = describeAxiosError(error);
    problems.push(`${entry.method} ${entry.path} failed: ${entry.error}`);
  }
  requests.push(entry);
}

// The header as it went out: from the Node request when there is one, else from axios's config.
function sentHeader(source, config, name) {
  const value = source?.request?.getHeader?.(name);
  if (value !== undefined) {
    return String(value);
  }
  const headers = config?.headers ?? {};
  const found = Object.entries(headers).find(([key]) => key.toLowerCase() === name);
  return found ? String(found[1]) : undefined;
}

// The request body as JSON, whether gzip-compressed bytes, a JSON string or an object.
function decodeBody(data) {
  try {
    if (Buffer.isBuffer(data) || data instanceof Uint8Array) {
      const bytes = Buffer.from(data);
      const text = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
      return { value: JSON.parse(text.toString("utf8")) };
    }
    if (typeof data === "string") {
      return { value: JSON.parse(data) };
    }
    return { value: data ?? null };
  } catch (error) {
    return { error: describeError(error) };
  }
}

function describeAxiosError(error) {
  if (error?.response) {
    return `HTTP ${error.response.status} ${JSON.stringify(error.response.data).slice(0, 300)}`;
  }
  return describeError(error);
}

const calls = callsFor(args.tag);
const pending = calls.map(
  (call) =>
    new Promise((resolve) => {
      const done = (error) => {
        const outcome = { key: call.key, type: call.type };
        if (error) {
          outcome.error = describeAxiosError(error);
          problems.push(`${call.key}: the SDK reported ${outcome.error}`);
        }
        resolve(outcome);
      };
      sendCall(client, call, done);
    }),
);
// As the documentation says to do before a process exits: send what is queued.
try {
  await client.flush();
} catch (error) {
  problems.push(`flush failed: ${describeAxiosError(error)}`);
}
const outcomes = await settleWithin(pending, 2_000, (index) => {
  problems.push(`${calls[index].key}: the SDK never called back`);
  return { key: calls[index].key, type: calls[index].type, error: "no callback" };
});

// The SDK returns nothing from a call; its messageId is the one `beforeEnqueue` saw.
for (const outcome of outcomes) {
  const call = calls.find((c) => c.key === outcome.key);
  outcome.messageId = enqueued.find((event) => eventMatchesCall(event, call))?.messageId;
}
checkAcceptedOnce(outcomes, requests, problems);

finish(
  {
    library: { name: PACKAGE, version: installedVersion(PACKAGE) },
    mode: args.mode,
    tag: args.tag,
    calls: outcomes,
    messages,
    requests,
    problems,
  },
  args.writeKey,
);
