// Opens a pairing link in Debian's Chromium (headless), taps Join, and prints as one JSON line
// what the page then shows: { paired, title, by, store, failure }. Screenshots of the page at
// phone and desktop size go to SHOTS_DIR.
//
//   node pair.mjs URL SHOTS_DIR [--reload]
//
// With --reload, the page is opened again afterwards (still paired, nothing asked).

import { chromium } from "playwright-core";

const [url, shots, ...flags] = process.argv.slice(2);
if (!url || !shots) {
  console.error("usage: node pair.mjs URL SHOTS_DIR [--reload]");
  process.exit(2);
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
  if (joining) {
    await page.locator("#join-button").click();
    const done = page.locator("#paired:not([hidden]), #failure:not([hidden])");
    await done.first().waitFor({ state: "visible", timeout: 60000 });
  }
  const said = async (page) => ({
    paired: await page.locator("#paired").isVisible(),
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
