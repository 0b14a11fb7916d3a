// Drives the web console of `actionkit console` (or `serve` with `server.console`) in headless
// Chromium, for console_browser.rs: the way a person uses it, with the keyboard where a person
// would.
//
// Steps: enter the token; the Destinations view lists the instance and the actions; in the
// Event Tester, paste an event and press Ctrl+Enter, and see the request with the API key
// redacted; in the Mapping editor, break the userId field's JSON and the trigger and see each
// error at its place (with its line and column), fix both, and copy the YAML, which must be
// on the clipboard. A screenshot is written after each step into `--screenshots`.
//
// Chromium is the system's (`$ACTIONKIT_CHROMIUM`, else `chromium` on PATH), run by
// playwright-core; no browser is ever downloaded, and every host but 127.0.0.1 resolves to
// nothing. The token is read from ACTIONKIT_CONSOLE_TOKEN, never from the command line.
//
// Standard output is one JSON object: the steps done, the YAML copied, the screenshots, and
// the problems seen (failed checks, console errors and warnings, page errors, failed requests,
// answers >= 400). Exit codes as in common.mjs.

import { constants } from "node:fs";
import { access, mkdir } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { parseArgs } from "node:util";

import { EXIT_NO_BROWSER, EXIT_USAGE, describeError, fail, importInstalled } from "./common.mjs";

const USAGE = `Usage: ACTIONKIT_CONSOLE_TOKEN=... node console.mjs --serve URL --screenshots DIR

  --serve URL        the server's base URL, e.g. http://127.0.0.1:8090
  --screenshots DIR  where to write one PNG per step`;

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
];

const EVENT = {
  type: "track",
  userId: "u-4711",
  event: "Order Completed",
  properties: { revenue: 42.5, currency: "EUR" },
};

let args;
try {
  ({ values: args } = parseArgs({
    options: { serve: { type: "string" }, screenshots: { type: "string" } },
    strict: true,
  }));
} catch (error) {
  fail(EXIT_USAGE, `${error.message}\n\n${USAGE}`);
}
const token = process.env.ACTIONKIT_CONSOLE_TOKEN;
if (!args.serve || !args.screenshots || !token) {
  fail(EXIT_USAGE, USAGE);
}
const { chromium } = await importInstalled("playwright-core");
const executablePath = await findChromium();
await mkdir(args.screenshots, { recursive: true });

const problems = [];
const report = { steps: [], screenshots: [], yaml: null, clipboard: null, problems };
const origin = new URL(args.serve).origin;

setTimeout(() => {
  problems.push("console.mjs gave up after 90 s");
  done();
}, 90_000).unref();

let browser;
try {
  browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin });
  const page = await context.newPage();
  watch(page);
  await run(page);
} catch (error) {
  problems.push(`the browser run failed: ${describeError(error)}`);
} finally {
  await browser?.close().catch(() => {});
}
done();

function done() {
  const text = JSON.stringify(report);
  for (const problem of problems) process.stderr.write(`problem: ${problem}\n`);
  process.stdout.write(`${text.split(token).join("[token]")}\n`, () => {
    process.exit(problems.length === 0 ? 0 : 1);
  });
}

function check(ok, what) {
  if (!ok) problems.push(what);
}

async function shot(page, name) {
  const path = join(args.screenshots, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  report.screenshots.push(path);
}

function watch(page) {
  page.on("console", (msg) => {
    if (["error", "warning"].includes(msg.type())) problems.push(`console ${msg.type()}: ${msg.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${describeError(error)}`));
  page.on("requestfailed", (req) => problems.push(`request failed: ${req.method()} ${req.url()} ${req.failure()?.errorText}`));
  page.on("response", (res) => {
    if (res.status() >= 400) problems.push(`answer ${res.status()} to ${res.request().method()} ${res.url()}`);
  });
}

async function run(page) {
  await page.goto(`${origin}/console`, { waitUntil: "load" });

  // The token, typed and submitted with Enter.
  await page.getByLabel("Console token").fill(token);
  await page.getByLabel("Console token").press("Enter");
  await page.locator("#token-status", { hasText: "Connected." }).waitFor({ timeout: 10_000 });
  await page.locator("#instances article").first().waitFor();
  const instances = await page.locator("#instances").innerText();
  check(instances.includes("userpilot") && instances.includes("[redacted]"), `the instance with its key redacted: ${instances.slice(0, 300)}`);
  check((await page.locator("#destinations details").count()) >= 3, "the destination's actions are listed");
  await page.locator("#destinations details").first().click();
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, "destinations");
  report.steps.push("destinations");

  // The Event Tester, reached with the keyboard: the tabs move with the arrow keys.
  await page.locator("#tab-destinations").focus();
  await page.keyboard.press("ArrowRight");
  check(await page.locator("#view-tester").isVisible(), "ArrowRight shows the Event Tester");
  const event = page.getByLabel("Event (JSON); the mapping editor previews against it too");
  await event.fill(JSON.stringify(EVENT, null, 2));
  await event.press("Control+Enter");
  const matched = page.locator("#test-results details.mapping.ok");
  await matched.first().waitFor({ timeout: 10_000 });
  const result = await matched.first().innerText();
  check(result.includes("POST") && result.includes("/v1/track"), `the request line: ${result.slice(0, 400)}`);
  check(result.includes("Token [redacted]"), "the authorization header is redacted");
  check(result.includes('"event_name": "Order Completed"'), "the JSON body has the event name");
  check(!result.includes(token), "the token is not on the page");
  await page.locator("#test-results details.mapping.no").first().click();
  const whyNot = await page.locator("#test-results details.mapping.no").first().innerText();
  check(whyNot.includes("is false: the event has"), `why a trigger did not match: ${whyNot.slice(0, 300)}`);
  await shot(page, "event-tester");
  report.steps.push("event tester");

  // The mapping editor: Track Event of the instance.
  await page.locator("#tab-editor").click();
  await page.getByLabel("Action").selectOption("trackEvent");
  const yaml = page.locator("#yaml");
  await waitFor(async () => (await yaml.inputValue()).includes("trackEvent"), "the YAML of Track Event");

  // Break the userId field's JSON and the trigger: each error shows at its place.
  const userId = page.locator("#field-userId");
  await userId.fill('{"@path" "$.userId"}');
  const trigger = page.getByLabel("Trigger (FQL)");
  await trigger.fill('type = "track" and');
  const fieldError = page.locator("#err-field-userId");
  await fieldError.filter({ hasText: "line 1, column 10" }).waitFor({ timeout: 10_000 });
  await page.locator("#err-trigger", { hasText: "column 19" }).waitFor({ timeout: 10_000 });
  check((await userId.getAttribute("aria-invalid")) === "true", "the broken field is marked invalid");
  check((await trigger.getAttribute("aria-invalid")) === "true", "the broken trigger is marked invalid");
  check(await page.locator("#copy-yaml").isDisabled(), "no YAML to copy while there are errors");
  await shot(page, "mapping-error");
  report.steps.push("mapping error");

  // Fix both; the preview shows the request and the YAML can be copied.
  await userId.fill('{"@path": "$.userId"}');
  await trigger.fill('type = "track" and event = "Order Completed"');
  await waitFor(async () => (await yaml.inputValue()).includes('userId: {"@path":"$.userId"}'), "the fixed YAML");
  await waitFor(async () => (await fieldError.innerText()) === "", "the field error to go");
  check((await page.locator("#val-field-userId").innerText()).includes('"u-4711"'), "the field shows its mapped value");
  check((await page.locator("#preview").innerText()).includes("/v1/track"), "the preview shows the request");
  await page.locator("#copy-yaml").focus();
  await page.keyboard.press("Enter");
  await page.locator("#copy-status", { hasText: "Copied to the clipboard." }).waitFor({ timeout: 5_000 });
  report.yaml = await yaml.inputValue();
  report.clipboard = await page.evaluate(() => navigator.clipboard.readText());
  check(report.clipboard === report.yaml, "the clipboard holds the YAML");
  await shot(page, "mapping-fixed");
  report.steps.push("mapping fixed");
}

async function waitFor(condition, what, ms = 10_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** `$ACTIONKIT_CHROMIUM`, else the first `chromium` on PATH; exits 4 when there is none. */
async function findChromium() {
  const override = process.env.ACTIONKIT_CHROMIUM;
  const candidates = override
    ? [override]
    : (process.env.PATH ?? "").split(delimiter).filter(Boolean).map((dir) => join(dir, "chromium"));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here; try the next one.
    }
  }
  fail(EXIT_NO_BROWSER, "no `chromium` on PATH: install Debian's chromium package or set ACTIONKIT_CHROMIUM");
}
