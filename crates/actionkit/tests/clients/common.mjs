// What the three client scripts share: arguments, the write key from the environment, the
// exit codes and the one JSON report each prints.
//
// Exit codes: 0 when no problem was seen, 1 when one was (each is listed under `problems`),
// 2 on a usage error, 3 when node_modules is missing (run `npm ci` in this folder) and 4 when
// the browser is missing (the browser scripts only).

import { constants, existsSync, readFileSync } from "node:fs";
import { access } from "node:fs/promises";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

/** This folder, where package.json and node_modules live. */
export const CLIENTS_DIR = dirname(fileURLToPath(import.meta.url));

/** The environment variable the write key is read from; it never goes on a command line. */
export const WRITE_KEY_VAR = "ACTIONKIT_WRITE_KEY";

export const EXIT_OK = 0;
export const EXIT_PROBLEMS = 1;
export const EXIT_USAGE = 2;
export const EXIT_NO_MODULES = 3;
export const EXIT_NO_BROWSER = 4;

/**
 * The arguments the system's Chromium is started with by every browser script: headless, no
 * first-run or background traffic, and every host but 127.0.0.1 failing to resolve, so that the
 * local servers are reached and nothing else is.
 */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
  "--disable-quic",
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
];

/** `$ACTIONKIT_CHROMIUM`, else the first `chromium` on PATH; exits 4 when there is none. */
export async function findChromium() {
  const override = process.env.ACTIONKIT_CHROMIUM;
  const candidates = override
    ? [override]
    : (process.env.PATH ?? "")
        .split(delimiter)
        .filter(Boolean)
        .map((dir) => join(dir, "chromium"));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here; try the next one.
    }
  }
  fail(
    EXIT_NO_BROWSER,
    override
      ? `ACTIONKIT_CHROMIUM=${override} is not an executable`
      : "no `chromium` on PATH: install Debian's chromium package or set ACTIONKIT_CHROMIUM",
  );
}

/**
 * Reads `--serve URL --tag TAG --mode MODE` (plus `extra` options) and the write key. Prints
 * the usage and exits 2 when something is missing or `--mode` is not one of `modes`.
 */
export function readArguments(usage, modes, extra = {}) {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        serve: { type: "string" },
        tag: { type: "string" },
        mode: { type: "string", default: modes[0] },
        help: { type: "boolean", default: false },
        ...extra,
      },
      strict: true,
    }));
  } catch (error) {
    fail(EXIT_USAGE, `${error.message}\n\n${usage}`);
  }
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    process.exit(EXIT_OK);
  }
  if (!values.serve || !values.tag) {
    fail(EXIT_USAGE, `--serve and --tag are required\n\n${usage}`);
  }
  if (!modes.includes(values.mode)) {
    fail(EXIT_USAGE, `--mode must be one of ${modes.join(", ")}\n\n${usage}`);
  }
  const writeKey = process.env[WRITE_KEY_VAR];
  if (!writeKey) {
    fail(EXIT_USAGE, `${WRITE_KEY_VAR} is not set\n\n${usage}`);
  }
  let serve;
  try {
    serve = new URL(values.serve);
  } catch (error) {
    fail(EXIT_USAGE, `--serve is not a URL: ${error.message}`);
  }
  return { ...values, serveUrl: serve.origin, writeKey };
}

/** Exits 3, with the command that installs it, when `name` is not in node_modules. */
export function ensureInstalled(name) {
  if (!existsSync(join(CLIENTS_DIR, "node_modules", name, "package.json"))) {
    fail(
      EXIT_NO_MODULES,
      `${name} is not installed: run \`npm ci --prefix crates/actionkit/tests/clients\``,
    );
  }
}

/** Imports `name` from node_modules, or exits 3 with the command that installs it. */
export async function importInstalled(name) {
  ensureInstalled(name);
  return import(name);
}

/** The version of an installed package, from its package.json. */
export function installedVersion(name) {
  const text = readFileSync(join(CLIENTS_DIR, "node_modules", name, "package.json"), "utf8");
  return JSON.parse(text).version;
}

/**
 * Replaces every occurrence of the write key (and of its Basic-auth form) in a JSON-able
 * value, so that reports and test output never show it.
 */
export function redact(value, writeKey) {
  const secrets = [writeKey, Buffer.from(`${writeKey}:`).toString("base64")];
  const scrub = (text) =>
    secrets.reduce((out, secret) => out.split(secret).join("[write key]"), text);
  return JSON.parse(scrub(JSON.stringify(value ?? null)));
}

/**
 * Prints `report` (with `problems` filled in) as one line of JSON, redacted, and exits 0 when
 * there was no problem, 1 otherwise. A problem seen several times (a library retrying, say) is
 * listed once with its count. Each problem also goes to standard error.
 */
export function finish(report, writeKey) {
  const safe = redact(report, writeKey);
  safe.problems = countRepeats(safe.problems);
  for (const problem of safe.problems) {
    process.stderr.write(`problem: ${problem}\n`);
  }
  process.stdout.write(`${JSON.stringify(safe)}\n`, () => {
    process.exit(safe.problems.length === 0 ? EXIT_OK : EXIT_PROBLEMS);
  });
}

/** `texts` in first-seen order without repeats, each repeated one with "(seen N times)". */
function countRepeats(texts) {
  const counts = new Map();
  for (const text of texts) {
    counts.set(text, (counts.get(text) ?? 0) + 1);
  }
  return [...counts].map(([text, n]) => (n === 1 ? text : `${text} (seen ${n} times)`));
}

/** Prints `message` to standard error and exits with `code`. */
export function fail(code, message) {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Waits for each of `promises`, giving up on those still pending `ms` milliseconds after the
 * call; `late(index)` supplies the value of each one given up on.
 */
export async function settleWithin(promises, ms, late) {
  const gaveUp = Symbol("gave up");
  let timer;
  const expiry = new Promise((resolve) => {
    timer = setTimeout(() => resolve(gaveUp), ms);
  });
  const values = await Promise.all(promises.map((p) => Promise.race([p, expiry])));
  clearTimeout(timer);
  return values.map((value, index) => (value === gaveUp ? late(index) : value));
}

/** A short, single-line form of an error or any thrown value. */
export function describeError(error) {
  if (error instanceof Error) {
    const cause = error.cause ? ` (cause: ${describeError(error.cause)})` : "";
    return `${error.name}: ${error.message}${cause}`;
  }
  return String(error);
}

/**
 * Adds a problem for every call whose message was not accepted (a 2xx answer) in exactly one of
 * `requests`, each of which lists the messageIds it carried in `events`.
 */
export function checkAcceptedOnce(outcomes, requests, problems) {
  for (const outcome of outcomes) {
    const accepted = requests.filter(
      (r) => r.status >= 200 && r.status < 300 && r.events?.includes(outcome.messageId),
    ).length;
    if (accepted !== 1) {
      problems.push(`${outcome.key} (${outcome.messageId}) was accepted ${accepted} times, not once`);
    }
  }
}
