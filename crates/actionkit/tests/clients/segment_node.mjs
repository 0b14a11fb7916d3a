// Sends identify, track, group and page through Segment's Node library
// (`@segment/analytics-node`) to `actionkit serve`, for serve_node_clients.rs.
//
// The library is configured as its documentation shows, with `host` set to the server; it posts
// `{batch, sentAt}` to `<host>/v1/batch`. It gets a fetch function of ours as its `httpClient`,
// which calls the real `fetch` and notes each request and answer, so the report can say what
// went over the wire.
//
// Standard output is one JSON object: the library's name and version, every call with the
// messageId the library gave it and the outcome its callback reported, every message as sent,
// every request with its answer, and the problems seen (a callback or `error` event with an
// error, an answer >= 400, a failed request, a message not accepted exactly once).

import {
  checkAcceptedOnce,
  describeError,
  finish,
  importInstalled,
  installedVersion,
  readArguments,
  settleWithin,
} from "./common.mjs";
import { callsFor, sendCall } from "./calls.mjs";

const USAGE = `Usage: ACTIONKIT_WRITE_KEY=... node segment_node.mjs --serve URL --tag TAG [--mode batch|single]

  --serve URL  the server's base URL, e.g. http://127.0.0.1:8088
  --tag TAG    makes this run's ids unique (user "<TAG>-user", company "<TAG>-company")
  --mode batch   the library's default batching: all four calls in one request at closeAndFlush
  --mode single  flushAt 1: one request per call`;

const PACKAGE = "@segment/analytics-node";

const args = readArguments(USAGE, ["batch", "single"]);
const { Analytics } = await importInstalled(PACKAGE);

const problems = [];
const requests = [];
const messages = [];

// The library's HTTP client: the platform's fetch, with each exchange noted.
async function recordingFetch(url, init) {
  const entry = {
    method: init?.method ?? "GET",
    path: new URL(url).pathname,
    contentType: headerOf(init?.headers, "content-type"),
  };
  requests.push(entry);
  try {
    const body = JSON.parse(init?.body ?? "null");
    entry.events = Array.isArray(body?.batch) ? body.batch.map((e) => e.messageId) : [];
    for (const event of body?.batch ?? []) {
      messages.push(event);
    }
  } catch (error) {
    problems.push(`the library sent a body that is not JSON: ${describeError(error)}`);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    entry.error = describeError(error);
    problems.push(`${entry.method} ${entry.path} failed: ${entry.error}`);
    throw error;
  }
  entry.status = response.status;
  if (response.status >= 400) {
    entry.answer = (await response.clone().text()).slice(0, 500);
    problems.push(`${entry.method} ${entry.path} answered ${response.status}: ${entry.answer}`);
  }
  return response;
}

function headerOf(headers, name) {
  if (!headers) {
    return undefined;
  }
  if (typeof headers.get === "function") {
    return headers.get(name) ?? undefined;
  }
  const found = Object.entries(headers).find(([key]) => key.toLowerCase() === name);
  return found?.[1];
}

const analytics = new Analytics({
  writeKey: args.writeKey,
  host: args.serveUrl,
  flushAt: args.mode === "single" ? 1 : 15,
  // The test ends the run with closeAndFlush; the timer should not split the batch.
  flushInterval: 10_000,
  // A failure should end the test in seconds rather than back off for minutes.
  maxRetries: 2,
  httpRequestTimeout: 10_000,
  httpClient: recordingFetch,
});
analytics.on("error", (error) => {
  problems.push(`the library reported an error: ${describeError(error?.reason ?? error)}`);
});

const calls = callsFor(args.tag);
const pending = calls.map(
  (call) =>
    new Promise((resolve) => {
      const done = (error, ctx) => {
        const outcome = { key: call.key, type: call.type, messageId: ctx?.event?.messageId };
        if (error) {
          outcome.error = describeError(error);
          problems.push(`${call.key}: the library reported ${outcome.error}`);
        }
        resolve(outcome);
      };
      sendCall(analytics, call, done);
    }),
);
// As the documentation says to do before a process exits: send what is queued and stop.
try {
  await analytics.closeAndFlush({ timeout: 20_000 });
} catch (error) {
  problems.push(`closeAndFlush failed: ${describeError(error)}`);
}
const outcomes = await settleWithin(pending, 2_000, (index) => {
  problems.push(`${calls[index].key}: the library never called back`);
  return { key: calls[index].key, type: calls[index].type, error: "no callback" };
});

// Every call's message must have been accepted (a 2xx answer) in exactly one request.
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
