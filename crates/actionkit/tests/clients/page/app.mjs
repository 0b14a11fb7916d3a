// The test page's script: loads Segment's analytics.js (`@segment/analytics-next`) the way the
// chosen case says, makes the four calls of calls.mjs, and shows each call and what became of it.
//
// browser.mjs injects the configuration before the page loads, as `window.__actionkitE2E`:
// `{case, serveOrigin, writeKey, tag, libraryVersion}`. The page publishes its progress as
// `window.__actionkitPage` (`finished` once there is nothing more to wait for on the page), and
// browser.mjs fills the delivery column through `window.__actionkitShowDelivery` with the answers
// it saw the server give.

import { callsFor } from "/calls.mjs";

const config = window.__actionkitE2E;
const state = (window.__actionkitPage = {
  finished: false,
  loadState: "loading",
  loadError: null,
  calls: [],
});

/** The library's UMD build (npm form) and the standalone build the snippet loads. */
const UMD_SRC = "/vendor/analytics-next/index.js";
const snippetSrc = (writeKey) =>
  `/analytics.js/v1/${encodeURIComponent(writeKey)}/analytics.min.js`;

/** What each case passes to the library, besides the write key. */
function loadArguments(caseName) {
  const serveHost = new URL(config.serveOrigin).host;
  switch (caseName) {
    case "standard":
      // Only the settings' address points at the server; the library fetches
      // `<cdnURL>/v1/projects/<writeKey>/settings` and posts where they say.
      return [{ cdnURL: config.serveOrigin }, {}];
    case "batching":
      return [
        { cdnURL: config.serveOrigin },
        {
          integrations: {
            "Segment.io": {
              deliveryStrategy: { strategy: "batching", config: { size: 5, timeout: 300 } },
            },
          },
        },
      ];
    case "inline":
      // The settings given inline, so no settings request is made.
      return [
        {
          cdnSettings: {
            integrations: {
              "Segment.io": {
                apiKey: config.writeKey,
                apiHost: `${serveHost}/v1`,
                protocol: "http",
              },
            },
          },
        },
        {},
      ];
    default:
      throw new Error(`no such case: ${caseName}`);
  }
}

function $(id) {
  return document.getElementById(id);
}

function describe(error) {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** A short text for a call's arguments, as a person would read them. */
function summary(call) {
  switch (call.type) {
    case "identify":
      return `${call.userId} · ${call.traits.name}, ${call.traits.address.city}, logins ${call.traits.logins}`;
    case "track":
      return `${call.userId} · “${call.event}” ${call.properties.revenue} ${call.properties.currency}`;
    case "group":
      return `${call.groupId} · ${call.traits.name}, ${call.traits.employees} employees`;
    case "page":
      return `${call.userId} · ${call.category} / ${call.name}`;
    default:
      return "";
  }
}

function render() {
  $("case").textContent = config.case;
  $("page-origin").textContent = location.origin;
  $("serve-origin").textContent = config.serveOrigin;
  const build = config.case === "snippet" ? "dist/umd/standalone.js via the snippet" : "dist/umd/index.js";
  $("library").textContent = `@segment/analytics-next ${config.libraryVersion} (${build})`;
  const body = $("calls");
  body.replaceChildren();
  state.calls.forEach((entry, index) => {
    const row = document.createElement("tr");
    row.id = `call-${entry.key}`;
    const cells = [
      String(index + 1),
      `analytics.${entry.type}()`,
      summary(entry.call),
      entry.library,
      "waiting…",
    ];
    cells.forEach((text, column) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (column === 1 || column === 2) {
        cell.className = "mono";
      }
      if (column === 3) {
        cell.className = `status ${entry.libraryClass}`;
      }
      if (column === 4) {
        cell.className = "status wait";
        cell.dataset.delivery = "";
      }
      row.append(cell);
    });
    body.append(row);
  });
  renderLoadState();
}

function renderLoadState() {
  const node = $("load-state");
  node.textContent = state.loadError ? `failed: ${state.loadError}` : state.loadState;
  node.className = state.loadError ? "bad" : state.loadState === "loading" ? "wait" : "ok";
}

/** Shows what the library said of a call: a short status and, below it, a detail. */
function setLibraryResult(key, text, klass, detail) {
  const entry = state.calls.find((c) => c.key === key);
  entry.library = detail ? `${text} · ${detail}` : text;
  entry.libraryClass = klass;
  const cell = document.querySelector(`#call-${key} td:nth-child(4)`);
  if (cell) {
    fillStatus(cell, text, klass, detail);
  }
}

function fillStatus(cell, text, klass, detail) {
  cell.className = `status ${klass}`;
  cell.replaceChildren(text);
  if (detail) {
    const small = document.createElement("span");
    small.className = "detail";
    small.textContent = detail;
    cell.append(small);
  }
}

/** Loads the UMD build with a plain script tag, as a page using the npm package's dist would. */
function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(script);
  });
}

/** Runs the case with `AnalyticsBrowser.load` from the UMD build. */
async function runNpmForm(calls) {
  await loadScript(UMD_SRC);
  const { AnalyticsBrowser } = window.AnalyticsNext;
  const [settings, options] = loadArguments(config.case);
  const analytics = AnalyticsBrowser.load({ writeKey: config.writeKey, ...settings }, options);
  // The calls are made at once, before loading finishes, as an app does; the library buffers
  // them. A failed load never settles them, so each waits for the load's failure too.
  const loadFailed = Promise.resolve(analytics).then(
    () => {
      state.loadState = "loaded";
      renderLoadState();
      return new Promise(() => {});
    },
    (error) => {
      state.loadError = describe(error);
      renderLoadState();
      throw error;
    },
  );
  const pending = calls.map((call) => {
    let made;
    switch (call.type) {
      case "identify":
        made = analytics.identify(call.userId, call.traits);
        break;
      case "track":
        made = analytics.track(call.event, call.properties);
        break;
      case "group":
        made = analytics.group(call.groupId, call.traits);
        break;
      case "page":
        made = analytics.page(call.category, call.name, call.properties);
        break;
    }
    return Promise.race([made, loadFailed]).then(
      (ctx) => {
        const entry = state.calls.find((c) => c.key === call.key);
        entry.messageId = ctx.event.messageId;
        const failed = ctx.failedDelivery?.();
        if (failed) {
          entry.error = describe(failed.reason);
          setLibraryResult(call.key, "failed", "bad", entry.error);
        } else {
          setLibraryResult(call.key, "done", "ok", ctx.event.messageId);
        }
      },
      (error) => {
        const entry = state.calls.find((c) => c.key === call.key);
        entry.error = describe(error);
        setLibraryResult(call.key, "not sent", "bad", "the library did not load");
      },
    );
  });
  await Promise.all(pending);
}

/**
 * Runs the case with Segment's snippet: a stub `window.analytics` that queues calls until the
 * library replaces it, told the write key and where to fetch settings (`_cdn`), which then adds
 * the standalone build's script tag. This is our own equivalent of the snippet's code.
 */
function runSnippet(calls) {
  const queue = (window.analytics = []);
  const methods = [
    "trackSubmit", "trackClick", "trackLink", "trackForm", "pageview", "identify", "reset",
    "group", "track", "ready", "alias", "debug", "page", "screen", "once", "off", "on",
    "addSourceMiddleware", "addIntegrationMiddleware", "setAnonymousId",
    "addDestinationMiddleware", "register",
  ];
  // The calls that carry the page's context as it was when they were made.
  const withPageContext = ["track", "screen", "alias", "group", "page", "identify"];
  queue.invoked = true;
  queue.methods = methods;
  for (const method of methods) {
    queue[method] = (...args) => {
      if (window.analytics.initialized) {
        return window.analytics[method](...args);
      }
      if (withPageContext.includes(method)) {
        const canonical = document.querySelector("link[rel='canonical']");
        args.push({
          __t: "bpc",
          c: canonical?.getAttribute("href") ?? undefined,
          p: location.pathname,
          u: location.href,
          s: location.search,
          t: document.title,
          r: document.referrer,
        });
      }
      queue.push([method, ...args]);
      return queue;
    };
  }
  queue.load = (writeKey, options) => {
    const script = document.createElement("script");
    script.async = true;
    script.setAttribute("data-global-segment-analytics-key", "analytics");
    script.src = snippetSrc(writeKey);
    script.onerror = () => {
      state.loadError = `could not load ${script.src}`;
      renderLoadState();
      state.finished = true;
    };
    document.head.prepend(script);
    queue._loadOptions = options;
  };
  queue._writeKey = config.writeKey;
  queue._cdn = config.serveOrigin;
  queue.SNIPPET_VERSION = "5.2.0";
  queue.load(config.writeKey);

  for (const call of calls) {
    switch (call.type) {
      case "identify":
        window.analytics.identify(call.userId, call.traits);
        break;
      case "track":
        window.analytics.track(call.event, call.properties);
        break;
      case "group":
        window.analytics.group(call.groupId, call.traits);
        break;
      case "page":
        window.analytics.page(call.category, call.name, call.properties);
        break;
    }
    setLibraryResult(call.key, "queued in the snippet", "wait");
  }
  window.analytics.ready(() => {
    state.loadState = "loaded";
    renderLoadState();
    for (const call of calls) {
      setLibraryResult(call.key, "handed to the library", "ok");
    }
    state.finished = true;
  });
}

/** Called by browser.mjs with the delivery of each call, as seen on the network. */
window.__actionkitShowDelivery = (deliveries, problems) => {
  for (const [key, { ok, text, detail }] of Object.entries(deliveries)) {
    const cell = document.querySelector(`#call-${key} td:nth-child(5)`);
    if (cell) {
      fillStatus(cell, text, ok ? "ok" : "bad", detail);
    }
  }
  const banner = $("banner");
  const delivered = Object.values(deliveries).filter((d) => d.ok).length;
  const total = Object.keys(deliveries).length;
  if (problems.length === 0 && delivered === total) {
    banner.textContent = `All ${total} calls were accepted by the server, each exactly once, with no error on the page.`;
    banner.className = "ok";
  } else {
    banner.textContent = `${delivered} of ${total} calls accepted; ${problems.length} problem(s):`;
    banner.className = "bad";
  }
  const list = $("problems");
  list.replaceChildren(
    ...problems.slice(0, 12).map((text) => {
      const item = document.createElement("li");
      item.textContent = text;
      return item;
    }),
  );
};

async function main() {
  const calls = callsFor(config.tag);
  state.calls = calls.map((call) => ({
    key: call.key,
    type: call.type,
    call,
    library: "not called yet",
    libraryClass: "wait",
  }));
  render();
  try {
    if (config.case === "snippet") {
      runSnippet(calls);
    } else {
      await runNpmForm(calls);
      state.finished = true;
    }
  } catch (error) {
    state.loadError = describe(error);
    renderLoadState();
    state.finished = true;
  }
}

main();
