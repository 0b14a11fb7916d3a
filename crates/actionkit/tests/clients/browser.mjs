// Drives Segment's analytics.js (`@segment/analytics-next`) in headless Chromium against
// `actionkit serve`, for serve_browser.rs.
//
// A small HTTP server of ours, on another 127.0.0.1 port than the server under test (so another
// origin, and every request to the server is a cross-origin one), serves the test page in
// page/, calls.mjs and the library's builds from node_modules. Chromium is the system's
// (`$ACTIONKIT_CHROMIUM`, else `chromium` on PATH), run by playwright-core with a fresh
// temporary profile; Playwright's own browser downloads are never used. Host names other than
// the loopback address resolve to nothing, so no request can leave the machine.
//
// Cases (`--mode`):
//   standard  dist/umd/index.js, `AnalyticsBrowser.load({writeKey, cdnURL: <server>})`: the
//             library fetches its settings from the server and posts each call to /v1/{i,t,g,p}
//             (text/plain with Basic auth, so each post is preceded by a CORS preflight)
//   batching  the same, with the batching delivery strategy: calls go to /v1/b together
//   snippet   Segment's snippet (our equivalent): a stub `window.analytics` with `_writeKey` and
//             `_cdn = <server>`, loading dist/umd/standalone.js from the page's server
//   inline    dist/umd/index.js with the settings given inline (`cdnSettings`)
//
// The page makes the four calls of calls.mjs. The script watches the network: a call counts as
// delivered when a request carrying its event got a 2xx answer from the server; it waits for
// all four (or a failure, or the timeout), then waits a little longer to see any late duplicate.
//
// Standard output is one JSON object: the library's name and version, the browser's version,
// the case, each call (with the messageId the library gave it and the answer it got), every
// message sent to the server, every request to the server or the page's server with its answer,
// the CORS preflights Chromium reported, and the problems seen: console errors and warnings,
// page errors, failed requests, answers >= 400, requests to any other host, calls not accepted
// exactly once. A screenshot of the page, with each call's delivery filled in, is written to
// `--screenshot`.

import { createServer } from "node:http";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { tmpdir } from "node:os";

import {
  CHROMIUM_ARGS,
  CLIENTS_DIR,
  describeError,
  ensureInstalled,
  findChromium,
  finish,
  importInstalled,
  installedVersion,
  readArguments,
  sleep,
} from "./common.mjs";
import { callsFor, eventMatchesCall } from "./calls.mjs";

const USAGE = `Usage: ACTIONKIT_WRITE_KEY=... node browser.mjs --serve URL --tag TAG --mode CASE [--screenshot PATH] [--timeout-ms MS]

  --serve URL        the server's base URL, e.g. http://127.0.0.1:8088
  --tag TAG          makes this run's ids unique (user "<TAG>-user", company "<TAG>-company")
  --mode CASE        standard | batching | snippet | inline
  --screenshot PATH  where to write a PNG of the page at the end
  --timeout-ms MS    how long to wait for the calls to be delivered (default 15000)

  The browser is $ACTIONKIT_CHROMIUM, else \`chromium\` on PATH.`;

const PACKAGE = "@segment/analytics-next";
const CASES = ["standard", "batching", "snippet", "inline"];

/** How long to keep watching after the last call was delivered, for late duplicates. */
const GRACE_MS = 600;

const args = readArguments(USAGE, CASES, {
  screenshot: { type: "string" },
  "timeout-ms": { type: "string", default: "15000" },
});
const timeoutMs = Number(args["timeout-ms"]);
const { chromium } = await importInstalled("playwright-core");
ensureInstalled(PACKAGE);
const executablePath = await findChromium();

const problems = [];
const exchanges = [];
const preflights = [];
const report = {
  library: { name: PACKAGE, version: installedVersion(PACKAGE) },
  driver: { name: "playwright-core", version: installedVersion("playwright-core") },
  browser: { executable: executablePath },
  case: args.mode,
  tag: args.tag,
  serve: args.serveUrl,
  calls: [],
  messages: [],
  requests: exchanges,
  preflights,
  problems,
};

// A hang guard: whatever happens, report and stop well before the Rust test gives up.
setTimeout(() => {
  problems.push(`browser.mjs gave up after ${timeoutMs + 30_000} ms`);
  finish(report, args.writeKey);
}, timeoutMs + 30_000).unref();

const pageServer = await startPageServer();
const pageOrigin = `http://127.0.0.1:${pageServer.address().port}`;
report.page = pageOrigin;
const profile = await mkdtemp(join(tmpdir(), "actionkit-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1180, height: 760 },
    timeout: 30_000,
  });
  await runCase(context);
} catch (error) {
  problems.push(`the browser run failed: ${describeError(error)}`);
} finally {
  await context?.close().catch(() => {});
  await rm(profile, { recursive: true, force: true }).catch(() => {});
  pageServer.close();
}
finish(report, args.writeKey);

/** Loads the page, waits for the calls to be delivered, fills in the page and screenshots it. */
async function runCase(context) {
  const page = context.pages()[0] ?? (await context.newPage());
  watch(context, page);
  await watchPreflights(context, page);
  await context.addInitScript((config) => {
    window.__actionkitE2E = config;
  }, {
    case: args.mode,
    serveOrigin: args.serveUrl,
    writeKey: args.writeKey,
    tag: args.tag,
    libraryVersion: report.library.version,
  });

  const calls = callsFor(args.tag);
  const started = Date.now();
  await page.goto(`${pageOrigin}/`, { waitUntil: "load", timeout: timeoutMs });

  // Until every call was accepted, the page gave up (the library did not load), or time is up.
  let pageState = null;
  while (Date.now() - started < timeoutMs) {
    pageState = await page.evaluate(() => window.__actionkitPage);
    if (pageState?.loadError) {
      break;
    }
    if (pageState?.finished && calls.every((call) => acceptedFor(call).length > 0)) {
      break;
    }
    await sleep(100);
  }
  await sleep(GRACE_MS);
  pageState = await page.evaluate(() => window.__actionkitPage);
  report.elapsedMs = Date.now() - started;

  if (pageState?.loadError) {
    problems.push(`the page reports the library did not load: ${pageState.loadError}`);
  } else if (!pageState?.finished) {
    problems.push(`the page did not finish its calls within ${timeoutMs} ms`);
  }

  const deliveries = {};
  for (const call of calls) {
    const fromPage = pageState?.calls?.find((c) => c.key === call.key) ?? {};
    const accepted = acceptedFor(call);
    const sent = sentFor(call);
    const messageId = fromPage.messageId ?? accepted[0]?.event.messageId ?? sent[0]?.event.messageId;
    const entry = {
      key: call.key,
      type: call.type,
      messageId,
      library: fromPage.library,
      error: fromPage.error,
      sent: sent.length,
      accepted: accepted.length,
    };
    report.calls.push(entry);
    if (accepted.length === 1) {
      const { exchange } = accepted[0];
      deliveries[call.key] = {
        ok: true,
        text: `accepted · HTTP ${exchange.status}`,
        detail: [
          `${exchange.method} ${exchange.path}`,
          preflightFor(exchange.path),
          fromPage.messageId ? undefined : messageId,
        ]
          .filter(Boolean)
          .join(" · "),
      };
    } else {
      const last = sent[sent.length - 1]?.exchange;
      const answer = last ? last.error ?? `HTTP ${last.status}` : "never sent";
      deliveries[call.key] = {
        ok: false,
        text: accepted.length === 0 ? "not accepted" : `accepted ${accepted.length} times`,
        detail: answer,
      };
      problems.push(
        `${call.key} (${messageId ?? "no messageId"}): accepted by the server ${accepted.length} times, not once; sent in ${sent.length} request(s), last answer: ${answer}`,
      );
    }
    if (fromPage.error) {
      problems.push(`${call.key}: the library reported ${fromPage.error}`);
    }
  }

  const seen = new Set();
  for (const exchange of exchanges) {
    for (const event of exchange.events ?? []) {
      if (!seen.has(event.messageId)) {
        seen.add(event.messageId);
        report.messages.push(event);
      }
    }
  }

  await page.evaluate(
    ([deliveries, problems]) => window.__actionkitShowDelivery(deliveries, problems),
    [deliveries, redactAll(problems)],
  );
  if (args.screenshot) {
    await mkdir(dirname(args.screenshot), { recursive: true });
    await page.screenshot({ path: args.screenshot, fullPage: true });
    report.screenshot = args.screenshot;
  }
}

/** "preflight 204" when Chromium sent a CORS preflight for `path`, else nothing. */
function preflightFor(path) {
  const preflight = preflights.find((p) => p.path === path && p.status !== undefined);
  return preflight ? `preflight ${preflight.status}` : undefined;
}

function redactAll(texts) {
  return texts.map((text) => text.split(args.writeKey).join("[write key]"));
}

/** The requests carrying `call`'s event that the server answered with a 2xx. */
function acceptedFor(call) {
  return sentFor(call).filter(({ exchange }) => exchange.status >= 200 && exchange.status < 300);
}

/** Every request to the server carrying `call`'s event, with the event as sent. */
function sentFor(call) {
  const out = [];
  for (const exchange of exchanges) {
    for (const event of exchange.events ?? []) {
      if (eventMatchesCall(event, call)) {
        out.push({ exchange, event });
      }
    }
  }
  return out;
}

/** Notes every request, answer, failure, console message and page error. */
function watch(context, page) {
  const byRequest = new Map();
  context.on("request", (request) => {
    const url = new URL(request.url());
    if (url.protocol === "data:") {
      return;
    }
    const where =
      url.origin === args.serveUrl ? "server" : url.origin === pageOrigin ? "page server" : null;
    const exchange = {
      to: where ?? url.origin,
      method: request.method(),
      path: url.pathname,
      resourceType: request.resourceType(),
      contentType: request.headers()["content-type"],
      authorization: request.headers().authorization ? "Basic [redacted]" : undefined,
    };
    if (!where) {
      problems.push(`a request went to another host: ${request.method()} ${url.href}`);
    }
    if (where === "server" && request.method() === "POST") {
      exchange.events = eventsIn(request.postData(), exchange);
    }
    exchanges.push(exchange);
    byRequest.set(request, exchange);
  });
  context.on("requestfinished", async (request) => {
    const exchange = byRequest.get(request);
    const response = await request.response().catch(() => null);
    if (!exchange || !response) {
      return;
    }
    exchange.status = response.status();
    const allowOrigin = response.headers()["access-control-allow-origin"];
    if (allowOrigin) {
      exchange.allowOrigin = allowOrigin;
    }
    if (exchange.status >= 400) {
      exchange.answer = (await response.text().catch(() => "")).slice(0, 400);
      problems.push(
        `${exchange.method} ${exchange.path} on the ${exchange.to} answered ${exchange.status}: ${exchange.answer}`,
      );
    }
  });
  context.on("requestfailed", (request) => {
    const exchange = byRequest.get(request);
    const error = request.failure()?.errorText ?? "failed";
    if (exchange) {
      exchange.error = error;
    }
    const url = new URL(request.url());
    problems.push(`${request.method()} ${url.pathname} (${url.origin}) failed: ${error}`);
  });
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") {
      const at = message.location()?.url ? ` (at ${new URL(message.location().url).pathname})` : "";
      problems.push(`console ${message.type()}: ${message.text()}${at}`);
    }
  });
  page.on("pageerror", (error) => {
    problems.push(`page error: ${describeError(error)}`);
  });
}

/**
 * Notes the CORS preflights Chromium sends before the library's posts (Playwright does not
 * report them as requests), through a DevTools session on the page.
 */
async function watchPreflights(context, page) {
  const session = await context.newCDPSession(page);
  const preflightsById = new Map();
  const urlsById = new Map();
  session.on("Network.requestWillBeSent", (event) => {
    const url = new URL(event.request.url);
    urlsById.set(event.requestId, `${event.request.method} ${url.pathname}`);
    if (event.initiator?.type !== "preflight") {
      return;
    }
    const entry = { method: event.request.method, path: url.pathname, to: url.origin };
    preflightsById.set(event.requestId, entry);
    preflights.push(entry);
  });
  session.on("Network.responseReceived", (event) => {
    const entry = preflightsById.get(event.requestId);
    if (entry) {
      entry.status = event.response.status;
      const headers = Object.fromEntries(
        Object.entries(event.response.headers).map(([k, v]) => [k.toLowerCase(), v]),
      );
      entry.allowOrigin = headers["access-control-allow-origin"];
      entry.allowMethods = headers["access-control-allow-methods"];
      entry.allowHeaders = headers["access-control-allow-headers"];
    }
  });
  session.on("Network.loadingFailed", (event) => {
    const entry = preflightsById.get(event.requestId);
    if (entry) {
      entry.error = event.errorText;
    }
    // Chromium reports a CORS refusal on the request the preflight was for.
    if (event.corsErrorStatus) {
      const { corsError, failedParameter } = event.corsErrorStatus;
      const what = urlsById.get(event.requestId) ?? "a request";
      problems.push(
        `CORS refused ${what}: ${corsError}${failedParameter ? ` (${failedParameter})` : ""}`,
      );
    }
  });
  await session.send("Network.enable");
  const version = await session.send("Browser.getVersion").catch(() => null);
  report.browser.version = version?.product;
}

/** The events in a body the library posted: a batch's items, or the one event. */
function eventsIn(body, exchange) {
  if (!body) {
    return [];
  }
  try {
    const parsed = JSON.parse(body);
    if (parsed && typeof parsed.writeKey === "string") {
      exchange.bodyHasWriteKey = true;
    }
    const events = Array.isArray(parsed?.batch) ? parsed.batch : parsed?.type ? [parsed] : [];
    return events.map((event) => {
      const { writeKey, ...rest } = event;
      return writeKey === undefined ? rest : { ...rest, writeKey: "[redacted]" };
    });
  } catch (error) {
    problems.push(`a body posted to the server is not JSON: ${describeError(error)}`);
    return [];
  }
}

/** The page's server: the test page, calls.mjs and the library's two builds, nothing else. */
async function startPageServer() {
  const umd = join(CLIENTS_DIR, "node_modules", PACKAGE, "dist", "umd");
  const routes = [
    [/^\/(index\.html)?$/, join(CLIENTS_DIR, "page", "index.html")],
    [/^\/app\.mjs$/, join(CLIENTS_DIR, "page", "app.mjs")],
    [/^\/calls\.mjs$/, join(CLIENTS_DIR, "calls.mjs")],
    [/^\/vendor\/analytics-next\/index\.js$/, join(umd, "index.js")],
    // Where Segment's snippet looks for the library: /analytics.js/v1/<writeKey>/analytics.min.js.
    [/^\/analytics\.js\/v1\/[^/]+\/analytics\.min\.js$/, join(umd, "standalone.js")],
  ];
  const server = createServer(async (request, response) => {
    const path = new URL(request.url, "http://page").pathname;
    const file = routes.find(([pattern]) => pattern.test(path))?.[1];
    if (request.method !== "GET" || !file) {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    try {
      const body = await readFile(file);
      const type = file.endsWith(".html")
        ? "text/html; charset=utf-8"
        : "text/javascript; charset=utf-8";
      response.writeHead(200, { "content-type": type, "cache-control": "no-store" }).end(body);
    } catch (error) {
      response.writeHead(500, { "content-type": "text/plain" }).end(`${describeError(error)}\n`);
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}
