// The Ferry page: what needs a browser (the relay's WebSocket, IndexedDB, Web Crypto, the
// screen); everything Ferry decides is in the WebAssembly (clients/web/src).

import init, {
  checkCode,
  Device,
  Joining,
  Paired,
  relayEvent,
  relayPublish,
  relaySubscribe,
} from "./ferry_web.js";

/** How often the pairing frames go out again while the other side may have missed them. */
const REPUBLISH_MS = 2000;
/** Silence after which nobody holds the code any more (the other side republishes every 2 s). */
const NOBODY_MS = 4500;
/** How long the whole exchange may take. */
const EXCHANGE_MS = 120000;
/** How long the last frames get to go out before the socket closes. */
const FLUSH_MS = 1500;
/** How often a page in view looks for news that no relay message announced. */
const POLL_MS = 60000;
/** The longest wait before the relay's socket is opened again. */
const RECONNECT_MAX_MS = 30000;
/** The most clips listed at once. */
const SHOWN = 200;

const $ = (id) => document.getElementById(id);

function show(id) {
  for (const section of document.querySelectorAll("main > section, #loading")) {
    section.hidden = section.id !== id;
  }
}

/** Shows "Forget this browser": whenever this browser keeps something, readable or not. */
function offerForget() {
  $("forget-area").hidden = false;
}

/** Writes `message` into `element` as a sentence, with `commands` set as code. */
function sentence(element, message) {
  element.replaceChildren();
  let text = message.charAt(0).toUpperCase() + message.slice(1);
  if (!/[.!?]$/.test(text)) text += ".";
  text.split("`").forEach((part, i) => {
    if (i % 2 === 0) {
      element.append(part);
    } else {
      const code = document.createElement("code");
      code.textContent = part;
      element.append(code);
    }
  });
}

/** Shows `message` as what went wrong. */
function fail(message) {
  sentence($("failure"), message);
  $("failure").hidden = false;
}

// ---- What this browser keeps: IndexedDB, sealed under a key that cannot leave it ----

const DB = "ferry";
const STORE = "kept";

function database() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function stored(mode, act) {
  const db = await database();
  try {
    return await new Promise((resolve, reject) => {
      const transaction = db.transaction(STORE, mode);
      const request = act(transaction.objectStore(STORE));
      transaction.oncomplete = () => resolve(request.result);
      transaction.onerror = () => reject(transaction.error);
      transaction.onabort = () => reject(transaction.error);
    });
  } finally {
    db.close();
  }
}

const read = (key) => stored("readonly", (store) => store.get(key));
const write = (key, value) => stored("readwrite", (store) => store.put(value, key));

/** The AES-GCM key that seals what this browser keeps: made here, never extractable. */
async function sealingKey() {
  let key = await read("sealing-key");
  if (!key) {
    key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
      "encrypt",
      "decrypt",
    ]);
    await write("sealing-key", key);
  }
  return key;
}

/** Seals `plain` under the sealing key, keeps it under `name`, and overwrites `plain`. */
async function keepSealed(name, plain) {
  const key = await sealingKey();
  const iv = crypto.getRandomValues(new Uint8Array(12));
  try {
    const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, plain);
    await write(name, { iv, sealed: new Uint8Array(sealed) });
  } finally {
    plain.fill(0);
  }
}

/** What keepSealed kept under `name`, opened (the caller overwrites it once read); null when
 * nothing is kept there; throws when it cannot be opened. */
async function keptSealed(name) {
  const kept = await read(name);
  if (!kept) return null;
  const key = await read("sealing-key");
  return new Uint8Array(
    await crypto.subtle.decrypt({ name: "AES-GCM", iv: kept.iv }, key, kept.sealed),
  );
}

const keep = (paired) => keepSealed("device", paired.export());

async function kept() {
  let plain;
  try {
    plain = await keptSealed("device");
  } catch {
    throw new Error(
      'What this browser kept cannot be opened any more. Choose "Forget this browser", ' +
        "remove it on another device (ferry devices remove), and pair again.",
    );
  }
  if (!plain) return null;
  try {
    return Paired.import(plain);
  } finally {
    plain.fill(0);
  }
}

function forget() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.deleteDatabase(DB);
    request.onsuccess = () => resolve();
    request.onerror = () => reject(request.error);
    // The deletion waits for them; it completes once they are closed.
    request.onblocked = () => reject(new Error("another tab of this page is open: close it"));
  });
}

// ---- Pairing through the relay that serves this page ----

function relayUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/v1/ws`;
}

/** The host of a relay URL (ws://, wss://, http:// or https://), or null. */
function hostOf(url) {
  try {
    return new URL(url.replace(/^ws/, "http")).host;
  } catch {
    return null;
  }
}

/** Runs one pairing attempt with `code`; resolves with what the other device gave. */
function pair(code, name, say) {
  const joining = new Joining(code, name);
  const named = joining.relay();
  if (named && hostOf(named) !== location.host) {
    return Promise.reject(
      new Error(
        `This code is for the relay at ${named}, and this page comes from ${location.host}: ` +
          "open the page that relay serves, or the link the other device gives you.",
      ),
    );
  }
  const topic = joining.topic();
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(relayUrl());
    const timers = [];
    let finished = false;
    // Once the settings are in, nothing the relay says changes the outcome.
    let settled = false;
    const publish = (frame) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(relayPublish(topic, frame));
    };
    const publishAll = () => {
      for (const frame of joining.outgoing()) publish(frame);
    };
    // Ends the attempt; once the settings are in, only the settling itself does.
    const end = (error, paired, settling = false) => {
      if (finished || (settled && !settling)) return;
      finished = true;
      timers.forEach(clearTimeout);
      clearInterval(republish);
      // The last frames (the outcome, or why this side ended) go out before the socket closes.
      const started = Date.now();
      const flush = setInterval(() => {
        if (socket.bufferedAmount === 0 || Date.now() - started > FLUSH_MS) {
          clearInterval(flush);
          socket.close();
        }
      }, 50);
      if (error) reject(Object.assign(error, { confirmed: joining.confirmed() }));
      else resolve(paired);
    };
    const republish = setInterval(publishAll, REPUBLISH_MS);
    timers.push(
      setTimeout(() => {
        publish(joining.cancel());
        end(new Error("The other device stopped answering. Run ferry pair there again."));
      }, EXCHANGE_MS),
    );
    socket.onopen = () => {
      socket.send(relaySubscribe(topic));
      publishAll();
      say("Waiting for the other device…");
      // The other side republishes every two seconds: silence from now on means nobody.
      timers.push(
        setTimeout(() => {
          if (joining.answered()) return;
          publish(joining.cancel());
          // The code is over: a new one comes from the other device.
          end(
            Object.assign(
              new Error(
                "No device answered this code: it expired, was used already, or its ferry " +
                  "pair ended. Run ferry pair --browser again on the other device and open the " +
                  "new link.",
              ),
              { over: true },
            ),
          );
        }, NOBODY_MS),
      );
    };
    socket.onerror = () =>
      end(new Error(`The relay at ${location.host} cannot be reached. Check the connection.`));
    socket.onclose = () => {
      document.body.dataset.relay = "closed";
      end(new Error("The relay closed the connection. Try again."));
    };
    socket.onmessage = async (message) => {
      if (finished || settled || typeof message.data !== "string") return;
      let event;
      try {
        event = relayEvent(message.data);
      } catch {
        return;
      }
      if (!event) return;
      if (event.kind === "error") {
        if (event.code === "crowded") {
          end(new Error("Someone else is using this code. Run ferry pair again for a new one."));
        } else if (event.code === "too_many_pairings") {
          end(
            new Error(
              "The relay refused: too many pairings from this network at once. Wait a " +
                "minute and try again.",
            ),
          );
        }
        return;
      }
      if (event.topic !== topic) return;
      let paired;
      try {
        paired = joining.receive(event.data);
      } catch (error) {
        // What this side had left to say (why it refused the settings), then why it ended.
        publishAll();
        const last = joining.lastFrame();
        if (last) publish(last);
        // The exchange itself ended (a wrong code, the other side gave up): the code is over.
        end(Object.assign(error, { over: true }));
        return;
      }
      if (joining.sendNow()) publishAll();
      if (!paired) {
        if (joining.confirmed()) say("Code confirmed; receiving the settings…");
        return;
      }
      settled = true;
      try {
        await keep(paired);
        // Asked, not promised: a browser may still clear a site's storage under pressure.
        await navigator.storage?.persist?.();
        joining.finish(true, "");
        publishAll();
        end(null, paired, true);
      } catch (error) {
        joining.finish(false, `the browser could not keep the settings: ${error.message}`);
        publishAll();
        end(error, null, true);
      }
    };
  });
}

// ---- The history: read from the bucket, kept current by the relay's news ----

/** The origin this page's security policy last kept it from reaching. */
let blocked = null;
document.addEventListener("securitypolicyviolation", (event) => {
  try {
    blocked = new URL(event.blockedURI).origin;
  } catch {
    blocked = event.blockedURI;
  }
});

/** How long ago `ms` (since the epoch) was, in words. */
function age(ms) {
  const seconds = Math.max(0, (Date.now() - ms) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

function toast(text) {
  const shown = $("toast");
  shown.textContent = text;
  shown.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (shown.hidden = true), 1800);
}

/** Puts `text` on this browser's clipboard; where the browser does not allow it, selects it. */
async function copy(text, element) {
  try {
    await navigator.clipboard.writeText(text);
    element.classList.add("copied");
    setTimeout(() => element.classList.remove("copied"), 600);
    toast("Copied");
  } catch {
    const range = document.createRange();
    range.selectNodeContents(element.querySelector(".text"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    toast("Selected: this browser lets the page copy only over HTTPS");
  }
}

/** This browser as a device: its history on screen, current while the page is open. */
class Shown {
  constructor(paired) {
    this.device = new Device(paired);
    this.read = false;
    this.stopped = false;
    // Reading and sending take turns: one at a time, in order.
    this.queue = Promise.resolve();
    this.refreshQueued = false;
    $("search").oninput = () => this.render();
    $("send-form").onsubmit = (event) => {
      event.preventDefault();
      this.sendText($("send-text").value);
    };
    $("paste").onclick = async () => {
      try {
        $("send-text").value = await navigator.clipboard.readText();
      } catch {
        toast("This browser does not let the page read the clipboard: paste into the box");
      }
    };
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && !this.stopped) this.refresh();
    });
    addEventListener("online", () => this.refresh());
    this.poll = setInterval(() => {
      if (!document.hidden) this.refresh();
    }, POLL_MS);
    this.start(paired);
  }

  /** Shows what this browser kept of the history at once (offline too), then listens for news
   * and reads what is new (nothing reads before what was kept is back). */
  async start(paired) {
    try {
      const kept = await keptSealed("history");
      if (kept) {
        this.read = this.device.restore(kept);
        kept.fill(0);
        this.render();
      }
    } catch {
      // Unreadable: read everything again.
    }
    this.listen(paired);
    this.refresh();
  }

  /** Runs `task` after what is queued: the device reads or sends one thing at a time. */
  exclusive(task) {
    const run = this.queue.then(() => (this.stopped ? undefined : task()));
    this.queue = run.catch(() => {});
    return run;
  }

  /** Keeps what this browser knows (sealed), after what is queued; said when the browser
   * refuses (a full disk): the next opening then reads the history from the bucket again, and
   * what waited to be sent would be lost. */
  keep() {
    return this.exclusive(() => this.keepNow());
  }

  async keepNow() {
    try {
      await keepSealed("history", this.device.export());
    } catch (error) {
      const status = $("sync-status");
      status.classList.add("bad");
      sentence(
        status,
        `this browser did not keep what the page holds (${error.message || error}): what waits ` +
          "to be sent is lost if the page closes now",
      );
    }
  }

  /** Records `text` as a clip and sends it to the bucket. */
  async sendText(text) {
    try {
      this.device.copyText(text);
    } catch (error) {
      toast(error.message);
      return;
    }
    $("send-text").value = "";
    this.render();
    await this.keep();
    await this.flush();
  }

  /** Pins or unpins a clip, and sends it. */
  async pin(id, pinned) {
    try {
      this.device.setPinned(id, pinned);
    } catch (error) {
      toast(error.message);
      return;
    }
    this.render();
    await this.keep();
    await this.flush();
  }

  /** Sends what waits to be sent, and announces it on the relay. */
  flush() {
    return this.exclusive(async () => {
      if (this.device.pending() === 0) return;
      const status = $("sync-status");
      try {
        const sent = await this.device.send();
        for (const [topic, data] of sent.hints) {
          if (this.socket?.readyState === WebSocket.OPEN) {
            this.socket.send(relayPublish(topic, data));
          }
        }
        status.classList.remove("bad");
        status.textContent = "";
        await this.keepNow();
        toast("Sent");
        document.body.dataset.sent = Number(document.body.dataset.sent ?? 0) + 1;
      } catch (error) {
        status.classList.add("bad");
        sentence(
          status,
          `not sent yet (${error.message || error}); it goes out when the page tries again`,
        );
      }
    });
  }

  /** Stops reading and listening, and lets go of the keys (this browser forgot them). */
  stop() {
    this.stopped = true;
    clearInterval(this.poll);
    this.socket?.close();
    $("clips").replaceChildren();
    this.queue.then(() => this.device.free());
  }

  /** Reads what is new (a read already waiting to run covers any news until it starts). */
  refresh() {
    if (this.stopped || this.refreshQueued) return this.queue;
    this.refreshQueued = true;
    return this.exclusive(async () => {
      this.refreshQueued = false;
      await this.pass();
    });
  }

  async pass() {
    const status = $("sync-status");
    // Said until the first pass ends; what a pass said stays while the next one runs.
    if (!this.read && !status.textContent) status.textContent = "Reading your history…";
    try {
      const read = await this.device.sync();
      if (this.stopped) return;
      this.read = true;
      status.classList.toggle("bad", read.problems.length > 0);
      status.textContent = "";
      if (read.problems.length > 0) {
        const more = read.problems.length > 1 ? ` (and ${read.problems.length - 1} more)` : "";
        sentence(status, read.problems[0] + more);
      }
      if (read.ops || read.snapshots || read.setAside) await this.keepNow();
      // What waited (the page was closed, or the bucket out of reach) goes out now.
      if (this.device.pending() > 0) this.flush();
    } catch (error) {
      if (this.stopped) return;
      let message = error.message || String(error);
      if (blocked && blocked === this.device.storageOrigin()) {
        message =
          `this page may not connect to the bucket at ${blocked}: the relay that serves it ` +
          `allows it with \`--web-connect ${blocked}\` (ask its operator)`;
      }
      status.classList.add("bad");
      sentence(status, message);
    }
    this.render();
    this.subscribe();
    // How many passes ended, for whoever watches the page (its tests).
    document.body.dataset.passes = Number(document.body.dataset.passes ?? 0) + 1;
  }

  render() {
    const query = $("search").value;
    const clips = this.device.history(query, SHOWN);
    const list = $("clips");
    list.replaceChildren(
      ...clips.map((clip) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "clip";
        const text = document.createElement("span");
        text.className = "text";
        text.textContent =
          clip.kind === "text" ? clip.text : clip.kind === "image" ? "An image" : "A file";
        const meta = document.createElement("span");
        meta.className = "meta";
        meta.textContent = `${clip.device} · ${age(clip.at)}${clip.pinned ? " · pinned" : ""}`;
        button.append(text, meta);
        if (clip.kind === "text") button.onclick = () => copy(clip.text, button);
        else button.disabled = true;
        const pin = document.createElement("button");
        pin.type = "button";
        pin.className = "pin";
        pin.textContent = clip.pinned ? "Unpin" : "Pin";
        pin.setAttribute("aria-pressed", String(clip.pinned));
        pin.onclick = () => this.pin(clip.id, !clip.pinned);
        item.append(button, pin);
        return item;
      }),
    );
    const empty = $("empty");
    empty.hidden = clips.length > 0 || !this.read;
    empty.textContent = query.trim()
      ? "Nothing in the history matches."
      : "Nothing copied yet: copy something on one of your devices and it shows here.";
    const aside = this.device.setAside();
    $("set-aside").hidden = aside.length === 0;
    $("set-aside").replaceChildren(
      ...aside.map(({ name, reason }) => {
        const item = document.createElement("li");
        item.textContent = `Set aside, not shown: ${name} (${reason})`;
        return item;
      }),
    );
  }

  /** Listens on the relay that serves this page for the repository's news, when its devices
   * announce there; otherwise the page looks every minute while in view. */
  listen(paired) {
    const named = paired.relay();
    const live = $("paired-live");
    if (!named || hostOf(named) !== location.host) {
      live.textContent = named
        ? `every minute (your devices announce news on ${hostOf(named)}, not on this page's relay)`
        : "every minute (your devices use no relay)";
      return;
    }
    this.topics = new Set();
    let wait = 1000;
    const open = () => {
      const socket = new WebSocket(relayUrl());
      this.socket = socket;
      socket.onopen = () => {
        wait = 1000;
        this.topics = new Set();
        this.subscribe();
        live.textContent = "live, through the relay";
        document.body.dataset.live = "on";
        // What was announced while the socket was closed.
        this.refresh();
      };
      socket.onmessage = (message) => {
        if (typeof message.data !== "string") return;
        let event;
        try {
          event = relayEvent(message.data);
        } catch {
          return;
        }
        if (event?.kind === "message" && this.device.news(event.topic, event.data)) {
          this.refresh();
        }
      };
      socket.onclose = () => {
        if (this.stopped) return;
        live.textContent = "the relay cannot be reached: trying again";
        document.body.dataset.live = "off";
        setTimeout(open, wait);
        wait = Math.min(wait * 2, RECONNECT_MAX_MS);
      };
    };
    open();
  }

  /** Subscribes to the topics of the hour (they change once a day). */
  subscribe() {
    if (this.socket?.readyState !== WebSocket.OPEN) return;
    for (const topic of this.device.listenTopics()) {
      if (this.topics.has(topic)) continue;
      this.socket.send(relaySubscribe(topic));
      this.topics.add(topic);
    }
  }
}

// ---- The screens ----

/** The history on screen, once paired. */
let shown = null;

/** Whether this page holds, for as long as it is open, the lock that makes it this browser's one
 * copy of the device (two tabs writing as one device would claim the same operations); false
 * when another tab holds it. Asked once. */
let onlyTabHeld = null;
function onlyTab() {
  if (!navigator.locks) return Promise.resolve(true);
  onlyTabHeld ??= new Promise((resolve) => {
    navigator.locks.request("ferry-device", { ifAvailable: true }, (lock) => {
      resolve(Boolean(lock));
      // Held until the page closes.
      return lock ? new Promise(() => {}) : undefined;
    });
  });
  return onlyTabHeld;
}

async function showPaired(paired) {
  $("paired-title").textContent = `This browser is paired as ${paired.name()}`;
  $("paired-by").textContent = paired.by();
  $("paired-store").textContent = paired.store();
  $("paired-key").textContent = paired.keyId();
  show("paired");
  offerForget();
  if (!(await onlyTab())) {
    $("send-form").hidden = true;
    fail("Ferry is open in another tab of this browser: use that one, or close it and reload this one");
    return;
  }
  try {
    shown = new Shown(paired);
  } catch (error) {
    fail(error.message || String(error));
  }
}

function showJoin(text) {
  let code;
  try {
    code = checkCode(text);
  } catch (error) {
    show("unpaired");
    fail(`The link's pairing code does not work: ${error.message}`);
    return;
  }
  $("code").textContent = code;
  const platform = navigator.userAgentData?.platform;
  $("name").value = platform ? `${platform} (browser)` : "phone (browser)";
  show("join");
  const button = $("join-button");
  const status = $("join-status");
  button.onclick = async () => {
    button.disabled = true;
    $("failure").hidden = true;
    const name = $("name").value.trim() || "browser";
    try {
      const paired = await pair(code, name, (text) => (status.textContent = text));
      // The code is used up: it leaves the address bar, and a reload does not offer it again.
      history.replaceState(null, "", location.pathname + location.search);
      await showPaired(paired);
    } catch (error) {
      status.textContent = "";
      fail(error.message);
      if (error.confirmed || error.over) {
        history.replaceState(null, "", location.pathname + location.search);
      } else {
        // Nothing was used up: the same code may be tried again.
        button.textContent = "Try again";
        button.disabled = false;
      }
    }
  };
}

async function main() {
  if (!window.isSecureContext || !crypto.subtle) {
    show("insecure");
    return;
  }
  await init();
  $("forget").onclick = async () => {
    const sure = confirm(
      "Forget this browser? Everything Ferry keeps here is deleted; to use Ferry here again, " +
        "pair it again.",
    );
    if (!sure) return;
    try {
      shown?.stop();
      shown = null;
      await forget();
      show("unpaired");
      $("forget").disabled = true;
      $("forget-status").textContent =
        "Nothing of Ferry is left in this browser. It knew the sync key and the storage's " +
        "credentials: to shut it out for good, remove it on one of your devices (ferry devices " +
        "remove), or, if it never sent anything, run ferry key rotate --new-credentials there.";
    } catch (error) {
      fail(`This browser could not forget everything yet: ${error.message}.`);
    }
  };
  let paired;
  try {
    paired = await kept();
  } catch (error) {
    show("");
    fail(error.message);
    offerForget();
    return;
  }
  const fragment = new URLSearchParams(location.hash.slice(1));
  const code = fragment.get("pair");
  if (paired) {
    await showPaired(paired);
    if (code) {
      history.replaceState(null, "", location.pathname + location.search);
      fail(
        `This browser is already paired as ${paired.name()}, so the link's code was not ` +
          'used. To pair it again, choose "Forget this browser" first, then open a new link.',
      );
    }
  } else if (code) {
    showJoin(code);
  } else {
    show("unpaired");
  }
}

// A new link opened in this tab changes only the fragment: the page starts again to take it.
addEventListener("hashchange", () => location.reload());

main().catch((error) => {
  show("");
  fail(error.message || String(error));
});
