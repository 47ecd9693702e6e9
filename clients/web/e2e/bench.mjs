// The page's figures, for `cargo bench -p ferry --bench browser`: opens a pairing link in
// Debian's Chromium (headless), taps Join, and prints one JSON line per figure as it goes:
//
//   {"cold_ms": T}   from the tap on Join to the newest of the history's clips on screen
//   {"warm_ms": T}   the page opened again: from its navigation to the same screen, from what
//                    the browser kept
//   {"ready": i} … {"seen": i}   for each copy: ready, then the moment "latency i" shows (the
//                    caller copies it on another device between the two lines)
//
//   node bench.mjs URL NEWEST_TEXT COPIES

import { chromium } from "playwright-core";

const [url, newest, copies] = process.argv.slice(2);
if (!url || !newest || !copies) {
  console.error("usage: node bench.mjs URL NEWEST_TEXT COPIES");
  process.exit(2);
}

const say = (line) => console.log(JSON.stringify(line));

/** Resolves with the page's clock (ms since its navigation) once the history shows `text`. */
const shows = (page, text, timeout) =>
  page
    .waitForFunction(
      (text) =>
        [...document.querySelectorAll("#clips .clip .text")].some((t) => t.textContent === text)
          ? performance.now()
          : false,
      text,
      { timeout, polling: 5 },
    )
    .then((handle) => handle.jsonValue());

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
try {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  await page.goto(url);
  await page.locator("#join-button").waitFor({ timeout: 15000 });
  const joined = Date.now();
  await page.locator("#join-button").click();
  await shows(page, newest, 120000);
  say({ cold_ms: Date.now() - joined });
  // The pairing's socket closes before the page is opened again.
  await page.waitForFunction(() => document.body.dataset.relay === "closed", null, {
    timeout: 10000,
  });
  await page.reload();
  say({ warm_ms: await shows(page, newest, 60000) });
  // Live: the page listens on the relay before copies are made elsewhere.
  await page.waitForFunction(() => document.body.dataset.live === "on", null, { timeout: 15000 });
  for (let i = 0; i < Number(copies); i++) {
    say({ ready: i });
    await shows(page, `latency ${i}`, 30000);
    say({ seen: i });
  }
} finally {
  await browser.close();
}
