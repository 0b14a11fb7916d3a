// Drives the web console of `actionkit console` (or `serve` with `server.console`) in headless
// Chromium, for console_browser.rs: the way a person uses it, with the keyboard where a person
// would.
//
// Scenario `console` (`actionkit console`): enter the token; the Destinations view lists the
// instance and the actions; in the Event Tester, paste an event and press Ctrl+Enter, and see
// the request with the API key redacted; in the Mapping editor, break the userId field's JSON
// and the trigger and see each error at its place (with its line and column), fix both, and
// copy the YAML, which must be on the clipboard; the Delivery overview says there is no queue.
//
// Scenario `serve` (`actionkit serve`, whose destination refused some events until they were
// dead-lettered and is healthy again): send an event for real from the Event Tester after
// confirming, and see the destination's answer; in the Delivery overview see the failures,
// their reasons and the dead letters; show one, ask to replay it and decline with Escape, ask
// again and confirm with the keyboard; see it delivered and gone from the dead-letter queue.
//
// A screenshot is written after each step into `--screenshots`.
//
// Chromium is the system's (`$ACTIONKIT_CHROMIUM`, else `chromium` on PATH), run by
// playwright-core; no browser is ever downloaded, and every host but 127.0.0.1 resolves to
// nothing. The token is read from ACTIONKIT_CONSOLE_TOKEN, never from the command line.
//
// Standard output is one JSON object: the steps done, the YAML copied, the message id
// replayed, the screenshots, and the problems seen (failed checks, console errors and
// warnings, page errors, failed requests, answers >= 400). Exit codes as in common.mjs.

import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";

import {
  CHROMIUM_ARGS,
  EXIT_USAGE,
  describeError,
  fail,
  findChromium,
  importInstalled,
} from "./common.mjs";

const USAGE = `Usage: ACTIONKIT_CONSOLE_TOKEN=... node console.mjs --serve URL --screenshots DIR [--scenario NAME]

  --serve URL        the server's base URL, e.g. http://127.0.0.1:8090
  --screenshots DIR  where to write one PNG per step
  --scenario NAME    console (default: actionkit console) or serve (actionkit serve with failures)`;

const EVENT = {
  type: "track",
  userId: "u-4711",
  event: "Order Completed",
  properties: { revenue: 42.5, currency: "EUR" },
};

let args;
try {
  ({ values: args } = parseArgs({
    options: { serve: { type: "string" }, screenshots: { type: "string" }, scenario: { type: "string", default: "console" } },
    strict: true,
  }));
} catch (error) {
  fail(EXIT_USAGE, `${error.message}\n\n${USAGE}`);
}
const token = process.env.ACTIONKIT_CONSOLE_TOKEN;
if (!args.serve || !args.screenshots || !token || !["console", "serve"].includes(args.scenario)) {
  fail(EXIT_USAGE, USAGE);
}
const { chromium } = await importInstalled("playwright-core");
const executablePath = await findChromium();
await mkdir(args.screenshots, { recursive: true });

const problems = [];
const report = { steps: [], screenshots: [], yaml: null, clipboard: null, replayed: null, problems };
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
  await (args.scenario === "serve" ? runServe(page) : run(page));
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

/** Opens the console and enters the token, typed and submitted with Enter. */
async function connect(page) {
  await page.goto(`${origin}/console`, { waitUntil: "load" });
  await page.getByLabel("Console token").fill(token);
  await page.getByLabel("Console token").press("Enter");
  await page.locator("#token-status", { hasText: "Connected." }).waitFor({ timeout: 10_000 });
  await page.locator("#instances article").first().waitFor();
}

async function run(page) {
  await connect(page);
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
  await page.evaluate(() => window.scrollTo(0, 0));
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

  // Without serve the Delivery overview says there is no queue, and asks the server nothing.
  await page.locator("#tab-overview").click();
  await page.locator("#ov-noqueue").waitFor({ timeout: 5_000 });
  const notice = await page.locator("#ov-noqueue").innerText();
  check(notice.includes("No queue here") && notice.includes("actionkit serve"), `the no-queue notice: ${notice}`);
  check(!(await page.locator("#ov-body").isVisible()), "no counts or dead letters are shown");
  await shot(page, "overview-no-queue");
  report.steps.push("no queue");
}

/** The text of the overview's count cell `key` (for example `hour-delivered`) of the total row. */
async function total(page, key) {
  return (await page.locator(`#ov-instances tr.total td[data-count="${key}"]`).first().innerText()).split("\n")[0];
}

async function runServe(page) {
  await connect(page);

  // A real send from the Event Tester, confirmed in its dialog.
  await page.locator("#tab-tester").click();
  const event = page.getByLabel("Event (JSON); the mapping editor previews against it too");
  await event.fill(JSON.stringify({ type: "identify", userId: "u-4711", traits: { name: "Ada Lovelace", plan: "pro" } }, null, 2));
  await event.press("Control+Enter");
  const sendButton = page.getByRole("button", { name: "Send to userpilot for real…" });
  await sendButton.waitFor({ timeout: 10_000 });
  await sendButton.click();
  const dialog = page.getByRole("dialog", { name: "Send for real to userpilot?" });
  await dialog.waitFor({ timeout: 5_000 });
  const asked = await dialog.innerText();
  check(asked.includes("/v1/identify") && asked.includes("real credentials"), `the send dialog names the request: ${asked}`);
  await dialog.getByRole("button", { name: "Send 1 request" }).click();
  const answers = page.locator("#send-userpilot-answers");
  await answers.locator(".answer").first().waitFor({ timeout: 10_000 });
  const answer = await answers.innerText();
  check(answer.includes("HTTP 202") && answer.includes("delivered"), `the destination's answer: ${answer}`);
  check(!answer.includes(token), "the token is not on the page");
  await answers.scrollIntoViewIfNeeded();
  await shot(page, "real-send");
  report.steps.push("real send");

  // The Delivery overview, reached with the arrow keys: counts, failures and dead letters.
  await page.locator("#tab-tester").focus();
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("ArrowRight");
  check(await page.locator("#view-overview").isVisible(), "ArrowRight twice shows the Delivery overview");
  await page.locator("#ov-instances tr.total").first().waitFor({ timeout: 10_000 });
  const dead = Number(await total(page, "hour-dead_lettered"));
  const retried = Number(await total(page, "hour-retried"));
  const delivered = Number(await total(page, "hour-delivered"));
  check(dead === 3, `three events dead-lettered in the last hour, found ${dead}`);
  check(retried > 0, `retries counted before they were dead-lettered, found ${retried}`);
  check(delivered === 1, `one event delivered before the replay, found ${delivered}`);
  const failures = await page.locator("#ov-failures").innerText();
  check(failures.includes("dead-lettered") && failures.includes("503"), `recent failures with their reasons: ${failures.slice(0, 400)}`);
  check(failures.includes("trackEvent") && failures.includes("identifyUser"), "the failures name their actions");
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, "overview");
  await page.locator("#failures-heading").evaluate((heading) => heading.scrollIntoView({ block: "start" }));
  await shot(page, "overview-failures");
  report.steps.push("overview failures");

  // The dead-letter queue: three entries; show the oldest.
  const rows = page.locator("#dlq-list tbody tr");
  await waitFor(async () => (await rows.count()) === 3, "three dead letters listed");
  const firstRow = rows.first();
  report.replayed = (await firstRow.locator("td").nth(4).innerText()).trim();
  await firstRow.getByRole("button", { name: /^Show delivery/ }).click();
  const detail = page.locator("#dlq-detail article");
  await detail.waitFor({ timeout: 5_000 });
  check(await page.evaluate(() => document.activeElement?.id === "dlq-detail-heading"), "the shown dead letter takes the focus");
  const shown = await detail.innerText();
  check(shown.includes(report.replayed) && shown.includes("max age exceeded"), `the dead letter with its reason: ${shown.slice(0, 400)}`);
  check(shown.includes('"messageId"') && !shown.includes("writeKey"), "the stored event is shown, without a write key");
  await page.locator("#dlq-heading").evaluate((heading) => heading.scrollIntoView({ block: "start" }));
  await shot(page, "dead-letter");
  report.steps.push("dead letter shown");

  // Replay: the dialog opens with Cancel focused; Escape declines and nothing happens.
  await detail.getByRole("button", { name: "Replay this event" }).click();
  const confirm = page.getByRole("dialog", { name: "Replay 1 dead letter?" });
  await confirm.waitFor({ timeout: 5_000 });
  check(await page.evaluate(() => document.activeElement?.id === "confirm-cancel"), "Cancel has the focus first");
  await page.keyboard.press("Escape");
  await confirm.waitFor({ state: "hidden", timeout: 5_000 });
  check((await rows.count()) === 3, "declining replays nothing");
  await detail.getByRole("button", { name: "Replay this event" }).click();
  await confirm.waitFor({ timeout: 5_000 });
  await shot(page, "replay-confirm");
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement?.id === "confirm-ok"), "Tab reaches the Replay button");
  await page.keyboard.press("Enter");
  await page.locator("#dlq-status", { hasText: "Replayed 1 dead letter." }).waitFor({ timeout: 10_000 });
  report.steps.push("replay confirmed");

  // The replayed event is delivered: counted, and gone from the dead-letter queue.
  await waitFor(async () => (await total(page, "hour-delivered")) === "2", "the replayed event counted as delivered", 20_000);
  await waitFor(async () => (await rows.count()) === 2, "two dead letters left", 20_000);
  const left = await page.locator("#dlq-list").innerText();
  check(!left.includes(report.replayed), "the replayed event left the dead-letter queue");
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, "replayed");
  report.steps.push("replayed delivered");
}

async function waitFor(condition, what, ms = 10_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

