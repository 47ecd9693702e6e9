// Opens a pairing link in Debian's Chromium (headless), taps Join, and prints as one JSON line
// what the page then shows: { paired, title, by, store, failure }. Screenshots of the page at
// phone and desktop size go to SHOTS_DIR.
//
//   node pair.mjs URL SHOTS_DIR [--reload] [--history FIRST [--then SECOND] [--send TEXT]
//                                            [--pin TEXT] [--second-tab]
//                                            [--offline-reload BUCKET_ORIGIN]]
//
// With --reload, the page is opened again afterwards (still paired, nothing asked).
// With --history, once paired it waits for the clip FIRST in the history and prints the line
// {"shown": ms} (ms: from Join to FIRST on screen); then waits for SECOND to appear without a
// reload (the caller copies it elsewhere once it reads that line), taps it, and reads the
// browser's clipboard back: { history: { first, second_ms, clipboard, texts, setAside } }.
// With --send, TEXT is then typed and sent from the page; with --pin, the clip TEXT is pinned
// there ({ history: { sent, pinned } }), each once the page says it went out. With --second-tab,
// the page is opened in a second tab, which says why it does not run ({ history: { secondTab } }).
// With --offline-reload, the page is then opened again with the bucket out of reach:
// { history: { offline: { texts, status } } } (what it kept, and what it says).

import { chromium } from "playwright-core";

const [url, shots, ...flags] = process.argv.slice(2);
if (!url || !shots) {
  console.error("usage: node pair.mjs URL SHOTS_DIR [--reload] [--history FIRST [--then SECOND]]");
  process.exit(2);
}
const option = (name) => {
  const at = flags.indexOf(name);
  return at >= 0 ? flags[at + 1] : undefined;
};
const first = option("--history");
const second = option("--then");

/** The texts of the clips listed, newest first. */
const texts = (page) => page.locator("#clips .clip .text").allTextContents();

/** Waits until the history lists `text`; the ms it took. */
async function waitForClip(page, text, timeout) {
  const started = Date.now();
  await page.waitForFunction(
    (text) =>
      [...document.querySelectorAll("#clips .clip .text")].some((t) => t.textContent === text),
    text,
    { timeout, polling: 20 },
  );
  return Date.now() - started;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const problems = [];
try {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], {
    origin: new URL(url).origin,
  });
  const page = await context.newPage();
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  await page.goto(url);
  // The Join screen, or at once a failure (a code that cannot work).
  await page.waitForFunction(() => document.getElementById("loading").hidden, null, {
    timeout: 15000,
  });
  await page.screenshot({ path: `${shots}/join-phone.png`, fullPage: true });
  const joining = await page.locator("#join-button").isVisible();
  const joined = Date.now();
  if (joining) {
    await page.locator("#join-button").click();
    const done = page.locator("#paired:not([hidden]), #failure:not([hidden])");
    await done.first().waitFor({ state: "visible", timeout: 60000 });
  }
  const said = async (page) => {
    if (await page.locator("#paired").isVisible()) {
      // The first reading of the history ended, one way or the other.
      await page.waitForFunction(() => document.body.dataset.passes, null, { timeout: 15000 });
    }
    return await showing(page);
  };
  const showing = async (page) => ({
    paired: await page.locator("#paired").isVisible(),
    status: await page.locator("#sync-status").textContent(),
    title: await page.locator("#paired-title").textContent(),
    by: await page.locator("#paired-by").textContent(),
    store: await page.locator("#paired-store").textContent(),
    failure: (await page.locator("#failure").isVisible())
      ? await page.locator("#failure").textContent()
      : null,
    address: page.url(),
  });
  const result = await said(page);
  result.joining = joining;
  // The page's last words to the other device (its outcome, or why it ended) go out before its
  // socket closes; the browser is not closed before.
  if (joining) {
    await page.waitForFunction(() => document.body.dataset.relay === "closed", null, {
      timeout: 10000,
    });
  }
  if (first && result.paired) {
    await waitForClip(page, first, 30000);
    console.log(JSON.stringify({ shown: Date.now() - joined }));
    await page.screenshot({ path: `${shots}/history-phone.png`, fullPage: true });
    const history = { first: true };
    if (second) {
      history.second_ms = await waitForClip(page, second, 20000);
      await page.getByText(second, { exact: true }).click();
      await page.locator("#toast:not([hidden])").waitFor({ timeout: 5000 });
      history.toast = await page.locator("#toast").textContent();
      history.clipboard = await page.evaluate(() => navigator.clipboard.readText());
    }
    // What the page sends waits for the page to say it went out (`data-sent` counts sends).
    const sends = () => page.evaluate(() => Number(document.body.dataset.sent ?? 0));
    const sent = async (before) =>
      page.waitForFunction((n) => Number(document.body.dataset.sent ?? 0) > n, before, {
        timeout: 20000,
      });
    const send = option("--send");
    if (send) {
      const before = await sends();
      await page.locator("#send-text").fill(send);
      await page.locator("#send").click();
      await sent(before);
      history.sent = await waitForClip(page, send, 5000).then(() => true);
    }
    const pin = option("--pin");
    if (pin) {
      const before = await sends();
      const row = page.locator("#clips li", { has: page.getByText(pin, { exact: true }) });
      await row.locator("button.pin").click();
      await sent(before);
      history.pinned = await row.locator("button.pin").getAttribute("aria-pressed");
    }
    await page.screenshot({ path: `${shots}/sent-phone.png`, fullPage: true });
    history.texts = await texts(page);
    history.setAside = await page.locator("#set-aside li").allTextContents();
    history.status = await page.locator("#sync-status").textContent();
    if (flags.includes("--second-tab")) {
      // The page opened again beside itself: one tab is the device, the other says so.
      const other = await context.newPage();
      await other.goto(`${new URL(url).origin}/app/`);
      await other.waitForFunction(() => document.getElementById("loading").hidden, null, {
        timeout: 15000,
      });
      await other.locator("#failure:not([hidden])").waitFor({ timeout: 15000 });
      history.secondTab = await other.locator("#failure").textContent();
      await other.close();
    }
    const offline = option("--offline-reload");
    if (offline) {
      // The bucket out of reach, the page opened again: it shows what it kept.
      await page.route(`${offline}/**`, (route) => route.abort("internetdisconnected"));
      await page.reload();
      await page.waitForFunction(() => document.body.dataset.passes, null, { timeout: 15000 });
      history.offline = {
        texts: await texts(page),
        status: await page.locator("#sync-status").textContent(),
      };
      await page.screenshot({ path: `${shots}/offline-phone.png`, fullPage: true });
    }
    result.history = history;
  }
  await page.screenshot({ path: `${shots}/after-phone.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: `${shots}/after-desktop.png`, fullPage: true });
  if (flags.includes("--reload")) {
    await page.reload();
    // The page has decided what to show once "Starting…" is gone.
    await page.waitForFunction(() => document.getElementById("loading").hidden, null, {
      timeout: 15000,
    });
    result.reloaded = await said(page);
  }
  result.problems = problems;
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
