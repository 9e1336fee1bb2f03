// Browser end-to-end tests of the Magpie web client, driven by
// e2e/browser_test.go (go test -tags e2e ./e2e/ -run Browser).
//
// Environment: MAGPIE_URL (the server's http://host:port), ARTIFACTS (a
// directory for screenshots), CHROMIUM (default /usr/bin/chromium).
//
// The script talks to the Go test on stdout/stdin: it prints
// "STEP stop" / "STEP start" and waits for a line back once the server has
// stopped or started again. Each scenario prints one line
// "RESULT <name> pass|skip|fail <detail>"; the exit code is 1 if any failed.
// KEEP_GOING=1 runs the scenarios after a failure too (they share state, so
// later failures may only follow from the first).

import { chromium } from "playwright-core";
import { createInterface } from "node:readline";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { createHash, createHmac, randomBytes } from "node:crypto";

const BASE = (process.env.MAGPIE_URL || "").replace(/\/$/, "");
const ART = process.env.ARTIFACTS || "artifacts";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const T = 20000; // ms to wait for anything the UI should show
if (!BASE) { console.error("MAGPIE_URL is not set"); process.exit(2); }
mkdirSync(ART, { recursive: true });

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function step(name) {
  console.log("STEP " + name);
  const { value, done } = await lines.next();
  if (done || value.trim() !== "ok") throw new Error(`the Go test did not confirm step ${name}: ${value}`);
}

const log = (...a) => console.log("  ", ...a);
const shot = (page, name) => page.screenshot({ path: join(ART, name + ".png") });
const users = { alice: "alice-pw-1", bob: "bob-pw-22", carol: "carol-pw-333" };

// api calls the HTTP API as a user (Node's fetch, not the browser).
const tokens = {};
const JSONH = { "Content-Type": "application/json" }; // the API refuses Node's default text/plain
async function api(user, method, path, body) {
  if (!tokens[user]) {
    const r = await fetch(BASE + "/v1/login", { method: "POST", headers: JSONH, body: JSON.stringify({ username: user, password: users[user], device: "e2e-node" }) });
    if (!r.ok) throw new Error(`login ${user}: ${r.status} ${await r.text()}`);
    tokens[user] = (await r.json()).token;
  }
  const opts = { method, headers: { Authorization: "Bearer " + tokens[user] } };
  if (body instanceof FormData) opts.body = body;
  else if (body !== undefined) { opts.body = JSON.stringify(body); Object.assign(opts.headers, JSONH); }
  const r = await fetch(BASE + path, opts);
  const text = await r.text();
  let data = null;
  try { data = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, data, text };
}

// admin calls the signed admin API (the test's server runs with
// --admin-keys ADMIN_KEY:ADMIN_SECRET).
async function admin(path, body) {
  const raw = JSON.stringify(body);
  const ts = String(Math.floor(Date.now() / 1000));
  const nonce = randomBytes(16).toString("hex");
  const sha = createHash("sha256").update(raw).digest("hex");
  const sig = createHmac("sha256", process.env.ADMIN_SECRET || "").update(["POST", path, ts, nonce, sha].join("\n")).digest("hex");
  const r = await fetch(BASE + path, { method: "POST", body: raw, headers: { ...JSONH, "X-Magpie-Key": process.env.ADMIN_KEY || "", "X-Magpie-Timestamp": ts, "X-Magpie-Nonce": nonce, "X-Magpie-Signature": sig } });
  return { status: r.status, text: await r.text() };
}

// Page helpers.
const statusOf = (page, text) => page.locator("#msg-list li.msg", { hasText: text }).locator(".status").getAttribute("data-state");
async function waitStatus(page, text, want) {
  await page.waitForFunction(([t, w]) => [...document.querySelectorAll("#msg-list li.msg")]
    .some((li) => li.querySelector(".text")?.textContent === t && li.querySelector(".status")?.dataset.state === w), [text, want], { timeout: T, polling: 100 });
}
async function waitMessage(page, text) {
  await page.waitForFunction((t) => [...document.querySelectorAll("#msg-list li.msg .text")].some((e) => e.textContent === t), text, { timeout: T, polling: 100 });
}
const seqs = (page) => page.$$eval("#msg-list li[data-seq]", (els) => els.map((e) => Number(e.dataset.seq)));
const texts = (page) => page.$$eval("#msg-list li.msg .text", (els) => els.map((e) => e.textContent));
function contiguous(list, from, to) {
  const want = [];
  for (let s = from; s <= to; s++) want.push(s);
  return JSON.stringify(list) === JSON.stringify(want);
}
async function send(page, text) {
  await page.locator("#composer-text").fill(text);
  await page.locator("#composer-text").press("Enter");
}
async function openConv(page, title) {
  const exact = new RegExp("^(# )?" + title.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "$");
  await page.locator("#conv-list button").filter({ has: page.locator(".conv-title", { hasText: exact }) }).first().click({ timeout: T });
  await page.waitForFunction((t) => document.querySelector("#chat-title").textContent.includes(t), title, { timeout: T, polling: 100 });
}

// download clicks a download link and returns the saved file's text.
async function download(page, link) {
  const [d] = await Promise.all([page.waitForEvent("download", { timeout: T }), link.click()]);
  const chunks = [];
  for await (const c of await d.createReadStream()) chunks.push(c);
  return { name: d.suggestedFilename(), text: Buffer.concat(chunks).toString() };
}

const composer = (page) => page.locator("#composer-text").inputValue();
async function waitFocus(page, id) {
  await page.waitForFunction((i) => document.activeElement?.id === i, id, { timeout: T, polling: 100 })
    .catch(async () => { throw new Error(`focus on ${await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName)}, want #${id}`); });
}

// gradientPNG makes a small RGB PNG without a library.
function gradientPNG(w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
  const crc = (buf) => { let c = 0xffffffff; for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 2;
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const o = y * (w * 3 + 1) + 1 + x * 3;
    raw[o] = 29 + x; raw[o + 1] = 53 + y * 2; raw[o + 2] = 200;
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

const results = [];
function result(name, state, detail = "") {
  results.push({ name, state });
  console.log(`RESULT ${name} ${state} ${detail}`.trim());
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const dialogs = []; // any alert() would mean injected script ran
const tokenURLs = []; // a session token must never ride in a URL
function watch(page, who) {
  page.on("request", (r) => { if (/access_token|token=/i.test(r.url())) tokenURLs.push(`${who}: ${r.url()}`); });
  page.on("dialog", (d) => { dialogs.push(`${who}: ${d.message()}`); d.dismiss().catch(() => {}); });
  page.on("pageerror", (e) => console.log(`   [${who} page error] ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error" && !/status of 40[349]|ERR_CONNECTION_REFUSED/.test(m.text())) console.log(`   [${who} console] ${m.text()}`); });
  return page;
}
const ctxA = await browser.newContext({ viewport: { width: 1100, height: 720 } });
const ctxB = await browser.newContext({ viewport: { width: 1100, height: 720 } });
const alice = watch(await ctxA.newPage(), "alice");
const bob = watch(await ctxB.newPage(), "bob");
let alice2, phonePage;

const scenarios = [
  ["register_and_login", async () => {
    await bob.goto(BASE + "/");
    await shot(bob, "01-sign-in");
    // Names are checked before they reach the server; the error is text.
    await bob.fill("#auth-user", "<b>x</b>");
    await bob.fill("#auth-pass", "whatever1");
    await bob.click("#register-btn");
    await bob.waitForFunction(() => document.querySelector("#auth-error").textContent.length > 0, null, { timeout: T, polling: 100 });
    if (await bob.locator("#auth-error b").count()) throw new Error("markup in the error");
    for (const [page, name] of [[bob, "bob"], [alice, "alice"]]) {
      if (page !== bob) await page.goto(BASE + "/");
      await page.fill("#auth-user", name);
      await page.fill("#auth-pass", users[name]);
      await page.click("#register-btn");
      await page.waitForSelector("body[data-conn=ready]", { timeout: T });
    }
    const r = await fetch(BASE + "/v1/users", { method: "POST", headers: JSONH, body: JSON.stringify({ username: "carol", password: users.carol }) });
    if (r.status !== 201) throw new Error("register carol: " + r.status);
  }],

  ["long_username", async () => {
    // A name over 32 characters is refused with a reason, not cut to 32.
    const ctx = await browser.newContext();
    const p = watch(await ctx.newPage(), "long-name");
    try {
      await p.goto(BASE + "/");
      const long = "a_rather_long_username_of_forty_chars_x";
      await p.fill("#auth-user", long);
      if (await p.locator("#auth-user").inputValue() !== long) throw new Error("the field cut the name to " + await p.locator("#auth-user").inputValue());
      await p.fill("#auth-pass", "long-pw-1");
      await p.click("#register-btn");
      await p.locator("#auth-error", { hasText: `at most 32 characters; this one has ${long.length}` }).waitFor({ timeout: T });
      if (await p.locator("#app-view").isVisible()) throw new Error("signed up anyway");
      const r = await fetch(BASE + "/v1/login", { method: "POST", headers: JSONH, body: JSON.stringify({ username: long.slice(0, 32), password: "long-pw-1" }) });
      if (r.status !== 401) throw new Error(`an account for the cut name exists: login ${r.status}`);
    } finally {
      await ctx.close();
    }
  }],

  ["private_chat_receipts", async () => {
    // Online now shows contacts only (--online-visibility contacts, the
    // default): bob, a stranger, is not there until they are friends.
    await alice.locator("#online-list .empty", { hasText: "Nobody else is online." }).waitFor({ timeout: T });
    if (await alice.locator('#online-list button[data-user="bob"]').count()) throw new Error("a stranger is listed online");
    const req = await api("alice", "POST", "/v1/friends/requests", { username: "bob" });
    if (req.status !== 201) throw new Error(`alice asks bob: ${req.status} ${req.text}`);
    // The server's notice shows in bob's page at once (notices.js).
    await bob.locator('.notice-toast[data-notice="friend.requested"]', { hasText: "alice wants to be your friend" }).waitFor({ timeout: T });
    const acc = await api("bob", "POST", "/v1/friends/requests/alice/accept");
    if (acc.status !== 200) throw new Error(`bob accepts: ${acc.status} ${acc.text}`);
    await alice.locator('.notice-toast[data-notice="friend.accepted"]', { hasText: "bob is now your friend" }).waitFor({ timeout: T });
    await alice.evaluate(() => window.magpieApp.sidebar.refreshOnline());
    // Alice starts the chat from the online list (bob signed in first).
    await alice.locator('#online-list button[data-user="bob"]').click({ timeout: T });
    if (!(await alice.evaluate(() => document.activeElement?.id === "composer-text"))) throw new Error("composer not focused after opening a chat");
    await send(alice, "hello bob");
    await waitStatus(alice, "hello bob", "delivered"); // bob's page stored it, chat not open
    if (await statusOf(alice, "hello bob") === "read") throw new Error("read before bob opened the chat");
    await bob.locator('#conv-list button[data-conv] .badge[data-unread="1"]').waitFor({ timeout: T });
    await shot(bob, "02-unread");
    await openConv(bob, "alice");
    await waitMessage(bob, "hello bob");
    await waitStatus(alice, "hello bob", "read");
    await bob.locator('#conv-list .badge').waitFor({ state: "detached", timeout: T });
    await send(bob, "hi alice, all good?");
    await waitMessage(alice, "hi alice, all good?");
    await waitStatus(bob, "hi alice, all good?", "read"); // alice has the chat open
    // carol is offline: her message stays "sent" (stored, with a seq).
    await alice.click("#new-chat-btn");
    await alice.fill("#nc-user", "carol");
    await alice.press("#nc-user", "Enter");
    // The dialog looks carol up first: type once her chat is open.
    await alice.waitForFunction(() => document.querySelector("#chat-title").textContent === "carol" && !document.querySelector("#dialog").open, null, { timeout: T, polling: 100 });
    await send(alice, "carol, are you there?");
    await waitStatus(alice, "carol, are you there?", "sent");
    await openConv(alice, "bob");
    await shot(alice, "03-chat");
  }],

  ["drafts_per_chat", async () => {
    // What is typed for bob stays with bob's chat; carol's chat has its own box.
    await openConv(alice, "bob");
    await alice.locator("#composer-text").fill("draft for bob");
    await openConv(alice, "carol");
    if (await composer(alice) !== "") throw new Error(`carol's chat shows the draft ${JSON.stringify(await composer(alice))}`);
    await send(alice, "only for carol");
    await waitStatus(alice, "only for carol", "sent");
    await openConv(alice, "bob");
    if (await composer(alice) !== "draft for bob") throw new Error(`bob's draft is ${JSON.stringify(await composer(alice))}`);
    await alice.locator("#composer-text").press("Enter");
    await waitMessage(bob, "draft for bob");
    if (await composer(alice) !== "") throw new Error("the box kept the sent draft");
    await openConv(alice, "carol");
    if ((await texts(alice)).includes("draft for bob")) throw new Error("bob's draft went to carol");
    await openConv(alice, "bob");
  }],

  ["dialog_focus", async () => {
    // Opening a chat from the dialog puts the focus in its message box;
    // cancelling returns it to the button that opened the dialog.
    await alice.click("#new-chat-btn");
    await alice.fill("#nc-user", "carol");
    await alice.press("#nc-user", "Enter");
    await alice.waitForFunction(() => document.querySelector("#chat-title").textContent === "carol", null, { timeout: T, polling: 100 });
    await waitFocus(alice, "composer-text");
    await alice.click("#new-chat-btn");
    await alice.keyboard.press("Escape");
    await waitFocus(alice, "new-chat-btn");
    await openConv(alice, "bob");
  }],

  ["new_chat_checks_name", async () => {
    // New chat refuses a name nobody has, and opens an existing one under
    // its own spelling.
    await alice.click("#new-chat-btn");
    await alice.fill("#nc-user", "nobody_here");
    await alice.press("#nc-user", "Enter");
    await alice.locator("#dialog .error", { hasText: "There is no user named nobody_here." }).waitFor({ timeout: T });
    if (!(await alice.locator("#dialog").evaluate((d) => d.open))) throw new Error("the dialog closed");
    if ((await alice.locator("#chat-title").textContent()).includes("nobody_here")) throw new Error("a chat with nobody_here opened");
    await alice.fill("#nc-user", "CAROL");
    await alice.press("#nc-user", "Enter");
    await alice.waitForFunction(() => document.querySelector("#chat-title").textContent === "carol", null, { timeout: T, polling: 100 });
    await waitMessage(alice, "only for carol"); // the existing chat, not a new one
    await openConv(alice, "bob");
  }],

  ["html_is_text", async () => {
    const evil = "<img src=x onerror=alert(1)>";
    const evil2 = "<script>alert(2)</script><b>bold?</b>";
    await send(alice, evil);
    await send(alice, evil2);
    for (const t of [evil, evil2]) await waitMessage(bob, t);
    for (const p of [alice, bob]) {
      const n = await p.locator("#msg-list img, #msg-list script, #msg-list b, #conv-list b, #conv-list img").count();
      if (n) throw new Error(`${n} elements made from message text`);
    }
    if (!(await texts(bob)).includes(evil)) throw new Error("text not shown literally");
    if (dialogs.length) throw new Error("a dialog opened: " + dialogs.join("; "));
  }],

  ["multi_device_tabs", async () => {
    alice2 = watch(await ctxA.newPage(), "alice-tab2");
    await alice2.goto(BASE + "/");
    await alice2.waitForSelector("body[data-conn=ready]", { timeout: T });
    await openConv(alice2, "bob");
    await waitMessage(alice2, "hi alice, all good?");
    const a1 = await texts(alice), a2 = await texts(alice2);
    if (JSON.stringify(a1) !== JSON.stringify(a2)) throw new Error(`tabs differ:\n${a1}\n${a2}`);
    await send(alice2, "sent from tab 2");
    await waitMessage(alice, "sent from tab 2");
    const mine = await alice.locator("#msg-list li.msg", { hasText: "sent from tab 2" }).getAttribute("data-mine");
    if (mine !== "true") throw new Error("tab 1 does not show tab 2's message as mine");
    await waitMessage(bob, "sent from tab 2");
    await waitStatus(alice, "sent from tab 2", "read");
    await waitStatus(alice2, "sent from tab 2", "read");
    // Tab 2 looks at carol; bob writes; tab 1 (on bob) reads it; tab 2's unread count follows.
    await openConv(alice2, "carol");
    await send(bob, "read me once");
    await waitMessage(alice, "read me once");
    await alice2.waitForFunction(() => {
      const b = document.querySelector('#conv-list button[data-conv] .badge');
      return !b;
    }, null, { timeout: T });
  }],

  ["history_scroll", async () => {
    const N = 130;
    const t0 = Date.now();
    for (let i = 1; i <= N; i++) {
      const r = await api("bob", "POST", "/v1/messages", { to_user: "alice", text: `bulk ${i}`, client_msg_id: `bulk-${i}` });
      if (r.status !== 200) throw new Error("send: " + r.text);
    }
    log(`${N} messages sent over HTTP in ${Date.now() - t0} ms`);
    await waitMessage(alice, `bulk ${N}`);
    // A fresh tab loads the latest page only, then more as it scrolls up.
    await alice2.reload();
    await alice2.waitForSelector("body[data-conn=ready]", { timeout: T });
    await openConv(alice2, "bob");
    await waitMessage(alice2, `bulk ${N}`);
    const first = await seqs(alice2);
    if (first.length > 60) throw new Error(`loaded ${first.length} messages at once`);
    for (let i = 0; i < 10 && await alice2.locator("#load-older").isVisible(); i++) {
      const before = (await seqs(alice2)).length;
      await alice2.locator("#messages").evaluate((el) => { el.scrollTop = 0; el.dispatchEvent(new Event("scroll")); });
      await alice2.waitForFunction((n) => document.querySelectorAll("#msg-list li[data-seq]").length > n || document.querySelector("#load-older").hidden, before, { timeout: T, polling: 100 });
    }
    const all = await seqs(alice2);
    const last = all[all.length - 1];
    if (!contiguous(all, 1, last)) throw new Error(`not 1..${last} exactly once: ${all.join(",")}`);
    if (!(await texts(alice2)).includes("hello bob")) throw new Error("the first message is missing");
    log(`history: ${first.length} first, ${all.length} after scrolling`);
  }],

  ["typing_indicator", async () => {
    // bob sees "alice is typing…" while she types, not once she empties
    // the box or sends; nothing of it is stored.
    await openConv(alice, "bob");
    await openConv(bob, "alice");
    const typing = (p) => p.locator("#typing").evaluate((el) => (el.hidden ? "" : el.textContent));
    const waitTyping = (p, want) => p.waitForFunction((w) => { const el = document.querySelector("#typing"); return (el.hidden ? "" : el.textContent) === w; }, want, { timeout: T, polling: 100 })
      .catch(async () => { throw new Error(`typing line ${JSON.stringify(await typing(p))}, want ${JSON.stringify(want)}`); });
    await alice.locator("#composer-text").fill("I am wri");
    await waitTyping(bob, "alice is typing…");
    if (await typing(alice)) throw new Error("alice sees her own typing: " + await typing(alice));
    await alice.locator("#composer-text").fill("");
    await waitTyping(bob, "");
    await alice.locator("#composer-text").fill("typed and sent");
    await waitTyping(bob, "alice is typing…");
    await alice.locator("#composer-text").press("Enter");
    await waitMessage(bob, "typed and sent");
    await waitTyping(bob, "");
    const r = await api("bob", "GET", "/v1/conversations/" + await alice.evaluate(() => window.magpieApp.current) + "/messages?before_seq=100000&limit=3");
    if (r.data.messages.some((m) => /I am wri/.test(m.text))) throw new Error("a typing notice was stored");
  }],

  ["search_box", async () => {
    // Search finds an old message by its words (highlighted), and choosing
    // the hit opens its chat scrolled to it, loading the older pages.
    await alice.fill("#search-q", "HELLO bob");
    await alice.press("#search-q", "Enter");
    const hit = alice.locator("#search-list button.hit", { hasText: "hello bob" });
    await hit.first().waitFor({ timeout: T });
    const marks = await hit.first().locator("mark").allTextContents();
    if (JSON.stringify(marks) !== JSON.stringify(["hello", "bob"])) throw new Error("highlights " + JSON.stringify(marks));
    if (!/messages? with “HELLO bob”/.test(await alice.locator("#search-status").textContent())) throw new Error("status: " + await alice.locator("#search-status").textContent());
    await openConv(alice, "carol"); // the hit must switch chats
    await hit.first().click();
    await alice.waitForFunction(() => document.querySelector("#chat-title").textContent === "bob", null, { timeout: T, polling: 100 });
    const found = alice.locator("#msg-list li.msg.found", { hasText: "hello bob" });
    await found.waitFor({ timeout: T });
    const inView = await found.evaluate((li) => {
      const r = li.getBoundingClientRect(), s = document.querySelector("#messages").getBoundingClientRect();
      return r.top >= s.top && r.bottom <= s.bottom;
    });
    if (!inView) throw new Error("the hit is not scrolled into view");
    if (!(await alice.evaluate(() => document.activeElement?.classList.contains("found")))) throw new Error("focus is not on the hit");
    await shot(alice, "05-search");
    await alice.fill("#search-q", "zzqx nothing");
    await alice.press("#search-q", "Enter");
    await alice.locator("#search-status", { hasText: "No messages with “zzqx nothing”." }).waitFor({ timeout: T });
    if (await alice.locator("#search-list li").count()) throw new Error("hits for nothing");
    // A refused query says why (the server's reason).
    await alice.fill("#search-q", "a b c d e f g h i");
    await alice.press("#search-q", "Enter");
    await alice.locator("#search-status", { hasText: "Could not search" }).waitFor({ timeout: T });
    await alice.click("#search-close");
    if (await alice.locator("#search-results").isVisible()) throw new Error("the results stayed open");
    await waitFocus(alice, "search-q");
  }],

  ["delete_chat", async () => {
    // Delete chat takes carol's chat out of alice's list until carol
    // writes again; with "clear" alice then sees only the new message,
    // while carol keeps the whole history.
    await openConv(alice, "carol");
    await alice.click("#delete-chat-btn");
    await alice.locator("#dc-clear").check();
    await alice.locator("#dialog button.primary", { hasText: "Delete chat" }).click();
    await alice.locator("#conv-list .conv-title", { hasText: /^carol$/ }).waitFor({ state: "detached", timeout: T });
    await waitFocus(alice, "new-chat-btn");
    if ((await alice.locator("#chat-title").textContent()) !== "No conversation selected") throw new Error("the deleted chat stayed open");
    const listed = (await api("alice", "GET", "/v1/conversations")).data.conversations.map((c) => c.peer);
    if (listed.includes("carol")) throw new Error("the server still lists carol's chat for alice: " + listed);
    const r = await api("carol", "POST", "/v1/messages", { to_user: "alice", text: "are you back?", client_msg_id: "back-1" });
    if (r.status !== 200) throw new Error("carol's send: " + r.text);
    await openConv(alice, "carol"); // back in the list
    await waitMessage(alice, "are you back?");
    const shown = await texts(alice);
    if (shown.length !== 1) throw new Error("after clearing alice sees " + JSON.stringify(shown));
    const theirs = await api("carol", "GET", "/v1/conversations/" + r.data.conversation_id + "/messages?before_seq=100000&limit=10");
    if (!theirs.data.messages.some((m) => m.text === "only for carol")) throw new Error("alice's clear took carol's history");
    await openConv(alice, "bob");
  }],

  ["shift_tab_keeps_place", async () => {
    // Shift+Tab from the message box goes to the message list and then to
    // "Load older messages" without scrolling to the top (which loads more).
    await alice2.reload();
    await alice2.waitForSelector("body[data-conn=ready]", { timeout: T });
    await openConv(alice2, "bob");
    await waitMessage(alice2, "bulk 130");
    await alice2.locator("#load-older").waitFor({ timeout: T });
    const rows = (await seqs(alice2)).length;
    const where = () => alice2.evaluate(() => {
      const s = document.querySelector("#messages"), a = document.activeElement, r = a.getBoundingClientRect();
      return { id: a.id || a.tagName, atBottom: s.scrollHeight - s.scrollTop - s.clientHeight < 80,
        onScreen: r.bottom > 0 && r.top < innerHeight && r.width > 0, rows: document.querySelectorAll("#msg-list li[data-seq]").length };
    });
    await alice2.focus("#composer-text");
    for (const want of ["messages", "load-older"]) {
      await alice2.keyboard.press("Shift+Tab");
      const w = await where();
      if (w.id !== want || !w.atBottom || !w.onScreen || w.rows !== rows) throw new Error(`after Shift+Tab (want #${want}): ${JSON.stringify(w)}, ${rows} rows before`);
    }
  }],

  ["unread_divider", async () => {
    // 300 unread: the chat opens at the first unread message under a
    // divider, and only what was on screen is marked read; the rest loads
    // and is read as the reader scrolls down.
    const conv = (await api("alice", "GET", "/v1/conversations")).data.conversations.find((c) => c.peer === "carol");
    const read0 = conv.read_seq;
    for (let i = 1; i <= 300; i++) {
      const r = await api("carol", "POST", "/v1/messages", { to_user: "alice", text: `unread ${i}`, client_msg_id: `unread-${i}` });
      if (r.status !== 200) throw new Error("send: " + r.text);
    }
    await alice.locator(`#conv-list button[data-conv="${conv.id}"] .badge[data-unread="300"]`).waitFor({ timeout: T });
    await openConv(alice, "carol");
    await alice.locator("#unread-divider").waitFor({ timeout: T });
    const first = await alice.evaluate(() => {
      const d = document.querySelector("#unread-divider"), s = document.querySelector("#messages");
      const r = d.getBoundingClientRect(), sr = s.getBoundingClientRect();
      return { next: d.nextElementSibling?.querySelector(".text")?.textContent, onScreen: r.top >= sr.top - 1 && r.bottom <= sr.bottom + 1 };
    });
    if (first.next !== "unread 1" || !first.onScreen) throw new Error("the divider: " + JSON.stringify(first));
    await alice.waitForFunction(([id, r]) => window.magpieApp.client.convs.get(id).readSeq > r, [conv.id, read0], { timeout: T, polling: 100 });
    const readNow = await alice.evaluate((id) => window.magpieApp.client.convs.get(id).readSeq, conv.id);
    if (readNow > read0 + 50) throw new Error(`opening the chat marked ${readNow - read0} of 300 read`);
    await alice.locator(`#conv-list button[data-conv="${conv.id}"] .badge`).waitFor({ timeout: T });
    for (let i = 0; i < 20 && await alice.evaluate(() => !!window.magpieApp.chat.thread(window.magpieApp.current).gapAbove); i++) {
      const before = (await seqs(alice)).length;
      await alice.locator("#messages").evaluate((el) => { el.scrollTop = el.scrollHeight; el.dispatchEvent(new Event("scroll")); });
      await alice.waitForFunction((n) => document.querySelectorAll("#msg-list li[data-seq]").length > n || !window.magpieApp.chat.thread(window.magpieApp.current).gapAbove, before, { timeout: T, polling: 100 });
    }
    await waitMessage(alice, "unread 300");
    await alice.locator("#messages").evaluate((el) => { el.scrollTop = el.scrollHeight; el.dispatchEvent(new Event("scroll")); });
    await alice.locator(`#conv-list button[data-conv="${conv.id}"] .badge`).waitFor({ state: "detached", timeout: T });
    // Scrolled past the divider, "↑ First unread" brings it back.
    await alice.locator("#jump-unread").waitFor({ timeout: T });
    await alice.click("#jump-unread");
    await alice.waitForFunction(() => {
      const d = document.querySelector("#unread-divider").getBoundingClientRect(), s = document.querySelector("#messages").getBoundingClientRect();
      return d.top >= s.top - 1 && d.bottom <= s.bottom + 1;
    }, null, { timeout: T, polling: 100 });
    await alice.locator("#jump-unread").waitFor({ state: "hidden", timeout: T });
    const all = await seqs(alice);
    if (!contiguous(all, all[0], conv.last_seq + 300)) throw new Error(`not contiguous: ${all[0]}..${all[all.length - 1]} (${all.length})`);
    await openConv(alice, "bob");
  }],

  ["recall_edit_menu", async () => {
    // A recall shows in the list's preview in words, not as a blank.
    await openConv(alice, "bob");
    const sent = await api("bob", "POST", "/v1/messages", { to_user: "alice", text: "bob will recall this", client_msg_id: "recall-me-1" });
    await waitMessage(alice, "bob will recall this");
    const rc = await api("bob", "POST", `/v1/conversations/${sent.data.conversation_id}/messages/${sent.data.seq}/recall`, {});
    if (rc.status !== 200) throw new Error("recall: " + rc.text);
    const preview = (page, id) => page.locator(`#conv-list button[data-conv="${id}"] .conv-preview`);
    await preview(alice, sent.data.conversation_id).filter({ hasText: "bob recalled a message" }).waitFor({ timeout: T })
      .catch(async () => { throw new Error("preview: " + JSON.stringify(await preview(alice, sent.data.conversation_id).textContent())); });
    await alice.locator(`#msg-list li[data-seq="${sent.data.seq}"] .recalled`).waitFor({ timeout: T });
    // Edit from the message's menu, by keyboard: Shift+Tab to the list,
    // ↑ to the message, Tab to its menu.
    await send(alice, "to be edited");
    await waitStatus(alice, "to be edited", "read");
    await alice.focus("#composer-text");
    await alice.keyboard.press("Shift+Tab");
    await alice.keyboard.press("ArrowUp");
    const focused = await alice.evaluate(() => document.activeElement.querySelector?.(".text")?.textContent);
    if (focused !== "to be edited") throw new Error("↑ from the list focused " + focused);
    await alice.keyboard.press("Tab");
    await alice.keyboard.press("Enter");
    const item = await alice.evaluate(() => document.activeElement?.dataset.action);
    if (item !== "edit") throw new Error("the menu's first item is " + item);
    await alice.keyboard.press("Enter");
    if (await composer(alice) !== "to be edited") throw new Error("editing shows " + await composer(alice));
    await alice.locator("#composer-text").fill("edited by alice");
    await alice.keyboard.press("Enter");
    for (const p of [alice, bob]) {
      await p.locator("#msg-list li.msg", { hasText: "edited by alice" }).locator(".meta", { hasText: "edited" }).waitFor({ timeout: T });
    }
    if (await composer(alice) !== "") throw new Error("the box kept the edit");
    // Recall from the menu (two presses).
    await send(alice, "to be recalled");
    await waitMessage(bob, "to be recalled");
    const row = alice.locator("#msg-list li.msg", { hasText: "to be recalled" });
    await row.locator('[data-action="menu"]').click();
    await row.locator('[data-action="recall"]').click();
    await row.locator('[data-action="recall"]').click();
    await bob.locator("#msg-list li.msg .recalled").last().waitFor({ timeout: T });
    await bob.waitForFunction(() => ![...document.querySelectorAll("#msg-list .text")].some((e) => e.textContent === "to be recalled"), null, { timeout: T, polling: 100 });
    await preview(bob, sent.data.conversation_id).filter({ hasText: "alice recalled a message" }).waitFor({ timeout: T });
    await preview(alice, sent.data.conversation_id).filter({ hasText: "You recalled a message" }).waitFor({ timeout: T });
  }],

  ["notifications_and_title", async () => {
    // The tab's title counts unread messages; notifications are opt-in and
    // then show a message from a chat that is not open. (The page's
    // Notification is wrapped to record what the client shows.)
    await ctxA.grantPermissions(["notifications"], { origin: BASE });
    await ctxA.addInitScript(() => {
      const Real = window.Notification;
      window.__notes = [];
      window.Notification = class extends Real {
        constructor(title, opts) { super(title, opts); window.__notes.push({ title, body: opts?.body, tag: opts?.tag }); }
      };
    });
    // (A draft outlives the reload.)
    await openConv(alice2, "bob");
    await alice2.locator("#composer-text").fill("kept over a reload");
    await alice2.reload();
    await alice2.waitForSelector("body[data-conn=ready]", { timeout: T });
    await openConv(alice2, "bob");
    if (await composer(alice2) !== "kept over a reload") throw new Error("the draft after a reload: " + JSON.stringify(await composer(alice2)));
    await alice2.locator("#composer-text").fill("");
    await alice2.waitForFunction(() => document.title === "Magpie", null, { timeout: T, polling: 100 });
    await api("carol", "POST", "/v1/messages", { to_user: "alice", text: "before opting in", client_msg_id: "notify-1" });
    await alice2.waitForFunction(() => document.title === "(1) Magpie", null, { timeout: T, polling: 100 })
      .catch(async () => { throw new Error("title: " + await alice2.title()); });
    if ((await alice2.evaluate(() => window.__notes.length)) !== 0) throw new Error("notified before opting in");
    if (await alice2.locator("#notify-btn").getAttribute("aria-pressed") !== "false") throw new Error("notifications on by default");
    await alice2.click("#notify-btn");
    await alice2.locator('#notify-btn[aria-pressed="true"]').waitFor({ timeout: T });
    await api("carol", "POST", "/v1/messages", { to_user: "alice", text: "after opting in", client_msg_id: "notify-2" });
    await alice2.waitForFunction(() => window.__notes.some((n) => n.title === "carol" && n.body === "after opting in"), null, { timeout: T, polling: 100 });
    await alice2.waitForFunction(() => document.title === "(2) Magpie", null, { timeout: T, polling: 100 });
    // Nothing for the chat that is open and seen.
    await send(bob, "bob in the open chat");
    await waitMessage(alice2, "bob in the open chat");
    if (await alice2.evaluate(() => window.__notes.some((n) => n.body === "bob in the open chat"))) throw new Error("notified for the open chat");
    await openConv(alice2, "carol");
    await alice2.locator("#messages").evaluate((el) => { el.scrollTop = el.scrollHeight; el.dispatchEvent(new Event("scroll")); });
    await alice2.waitForFunction(() => document.title === "Magpie", null, { timeout: T, polling: 100 });
    await alice2.click("#notify-btn");
    await alice2.locator('#notify-btn[aria-pressed="false"]').waitFor({ timeout: T });
    await openConv(alice2, "bob");
  }],

  ["jumps_links_days", async () => {
    // Scrolled up, a new message shows "1 new message ↓", which goes back
    // down; links are links (http and https only); a day separator heads
    // the messages of today.
    await openConv(alice, "bob");
    await alice.locator("#messages").evaluate((el) => { el.scrollTop = el.scrollHeight / 2; el.dispatchEvent(new Event("scroll")); });
    await send(bob, "see https://example.com/a?b=1&c=<2>. and javascript:alert(3)");
    await alice.locator("#new-below", { hasText: "1 new message ↓" }).waitFor({ timeout: T });
    await alice.click("#new-below");
    await alice.locator("#new-below").waitFor({ state: "hidden", timeout: T });
    const at = await alice.locator("#messages").evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 80);
    if (!at) throw new Error("not at the bottom after New messages ↓");
    const row = alice.locator("#msg-list li.msg", { hasText: "see https://example.com" });
    const links = await row.locator("a.link").evaluateAll((as) => as.map((a) => [a.getAttribute("href"), a.textContent, a.target, a.rel]));
    if (JSON.stringify(links) !== JSON.stringify([["https://example.com/a?b=1&c=", "https://example.com/a?b=1&c=", "_blank", "noopener noreferrer nofollow"]]))
      throw new Error("links: " + JSON.stringify(links));
    if (await row.locator(".text").textContent() !== "see https://example.com/a?b=1&c=<2>. and javascript:alert(3)") throw new Error("the text changed");
    const days = await alice.locator("#msg-list li.day").allTextContents();
    if (!days.includes("Today")) throw new Error("day separators: " + days.join(", "));
  }],

  ["group", async () => {
    const probe = await api("alice", "GET", "/v1/groups");
    if (probe.status !== 200) throw new Error(`GET /v1/groups: ${probe.status} ${probe.text}`);
    const name = "<b>team</b> & co";
    await alice.click("#new-group-btn");
    await alice.fill("#ng-name", name);
    await alice.fill("#ng-members", "bob");
    await alice.press("#ng-members", "Enter");
    await alice.waitForFunction((n) => document.querySelector("#chat-title").textContent === "# " + n, name, { timeout: T, polling: 100 });
    await waitFocus(alice, "composer-text");
    await send(alice, "hello group");
    await waitStatus(alice, "hello group", "sent");
    await bob.locator("#conv-list button", { hasText: name }).click({ timeout: T });
    await waitMessage(bob, "hello group");
    await alice.locator('#msg-list li.msg .reads[data-reads="1"]').waitFor({ timeout: T });
    await send(bob, "hello from bob in the group");
    await waitMessage(alice, "hello from bob in the group");
    if (await alice.locator("#conv-list b, #chat-title b").count()) throw new Error("group name rendered as markup");
    await shot(alice, "04-group");
    // Members: alice invites carol; bob leaves.
    await alice.click("#members-btn");
    await alice.locator('#dialog [data-member="bob"]').waitFor({ timeout: T });
    await alice.fill("#gm-invite", "carol");
    await alice.press("#gm-invite", "Enter");
    await alice.locator('#dialog [data-member="carol"]').waitFor({ timeout: T });
    await shot(alice, "05-group-members");
    await alice.keyboard.press("Escape");
    await bob.click("#members-btn");
    await bob.locator("#leave-btn").click();
    await bob.locator("#leave-btn").click();
    await bob.locator("#conv-list button", { hasText: name }).waitFor({ state: "detached", timeout: T });
    const g = await api("alice", "GET", "/v1/groups");
    const id = g.data.groups.find((x) => x.name === name)?.id;
    const full = await api("alice", "GET", `/v1/groups/${id}`);
    const members = (full.data.members || []).map((m) => m.username).sort();
    if (JSON.stringify(members) !== JSON.stringify(["alice", "carol"])) throw new Error("members after leave: " + members);
    await openConv(alice, "bob");
  }],

  ["group_admin", async () => {
    // A rename reads as words in the timeline and renames the header and
    // the list on every page; the owner hands the group on when leaving.
    await alice.click("#new-group-btn");
    await alice.fill("#ng-name", "rename me");
    await alice.fill("#ng-members", "bob");
    await alice.press("#ng-members", "Enter");
    // The dialog closes once the chat has loaded; typing before that goes nowhere (the page is inert).
    await alice.waitForFunction(() => document.querySelector("#chat-title").textContent === "# rename me" && !document.querySelector("#dialog").open, null, { timeout: T, polling: 100 });
    await send(alice, "admin test");
    await openConv(bob, "rename me");
    await waitMessage(bob, "admin test");
    // Muting: bob's send is refused while he is muted, and his retry goes
    // through once he is not; then everyone is muted and unmuted.
    await alice.click("#members-btn");
    await alice.locator('#dialog [data-member="bob"] [data-action="mute"]').click();
    await alice.locator('#dialog [data-member="bob"][data-muted="true"]').waitFor({ timeout: T });
    await send(bob, "while muted");
    const mutedRow = bob.locator("#msg-list li.msg", { hasText: "while muted" });
    await mutedRow.locator('.status[data-state="failed"]').waitFor({ timeout: T });
    await alice.locator('#dialog [data-member="bob"] [data-action="unmute"]').click();
    await alice.locator('#dialog [data-member="bob"]:not([data-muted])').waitFor({ timeout: T });
    await mutedRow.locator('[data-action="retry"]').click();
    await waitMessage(alice, "while muted");
    await alice.click("#mute-all-btn");
    await alice.locator('#mute-all-btn[data-muted="true"]').waitFor({ timeout: T });
    await send(bob, "everyone is muted");
    const allRow = bob.locator("#msg-list li.msg", { hasText: "everyone is muted" });
    await allRow.locator('.status[data-state="failed"]').waitFor({ timeout: T });
    await allRow.locator('[data-action="discard"]').click();
    await alice.click("#mute-all-btn");
    await alice.locator('#mute-all-btn[data-muted="false"]').waitFor({ timeout: T });
    await alice.locator("#gm-policy").selectOption("open");
    await alice.locator('#gm-policy[data-saved="open"]').waitFor({ timeout: T });
    await alice.keyboard.press("Escape");
    const renamed = "renamed <i>x</i>";
    await alice.click("#members-btn");
    await alice.fill("#gm-name", renamed);
    await alice.press("#gm-name", "Enter");
    for (const p of [alice, bob]) {
      await p.waitForFunction((n) => document.querySelector("#chat-title").textContent === "# " + n, renamed, { timeout: T, polling: 100 })
        .catch(async () => { throw new Error("header: " + await p.locator("#chat-title").textContent()); });
      await p.locator("#msg-list li.system", { hasText: `alice renamed the group to “${renamed}”` }).waitFor({ timeout: T });
      await p.locator("#conv-list .conv-title", { hasText: renamed }).waitFor({ timeout: T });
    }
    const raw = await bob.locator("#msg-list li.system, #conv-list .conv-preview").allTextContents();
    if (raw.some((x) => x.includes("{"))) throw new Error("raw JSON shown: " + raw.join(" | "));
    // The owner leaves: the dialog makes bob the owner first.
    await alice.locator("#leave-btn").click();
    await alice.locator("#leave-btn", { hasText: "make bob the owner" }).waitFor({ timeout: T });
    await alice.locator("#gm-new-owner").selectOption("bob");
    await alice.locator("#leave-btn").click();
    await alice.locator("#conv-list .conv-title", { hasText: renamed }).waitFor({ state: "detached", timeout: T });
    await waitFocus(alice, "new-chat-btn");
    await bob.locator("#msg-list li.system", { hasText: "bob is now the owner" }).waitFor({ timeout: T });
    await bob.locator("#msg-list li.system", { hasText: "alice left" }).waitFor({ timeout: T });
    const gid = await bob.evaluate(() => window.magpieApp.current);
    const g = await api("bob", "GET", `/v1/groups/${gid}`);
    if (g.data.owner !== "bob" || g.data.members.length !== 1) throw new Error("after the owner left: " + g.text);
    // Now alone, bob dissolves it.
    await bob.click("#members-btn");
    await bob.locator('#dialog [data-member="bob"][data-role="owner"]').waitFor({ timeout: T });
    await bob.locator("#dissolve-btn").click();
    await bob.locator("#dissolve-btn").click();
    await bob.locator("#conv-list .conv-title", { hasText: renamed }).waitFor({ state: "detached", timeout: T });
    const after = await api("bob", "POST", "/v1/messages", { to_group: gid, text: "still there?", client_msg_id: "after-dissolve" });
    if (after.status < 400) throw new Error("sending to a dissolved group: " + after.status);
    await openConv(alice, "bob");
  }],

  ["files", async () => {
    const fd = new FormData();
    fd.append("file", new Blob(["probe"], { type: "text/plain" }), "probe.txt");
    const probe = await api("alice", "POST", "/v1/files", fd);
    if (probe.status !== 201) throw new Error(`POST /v1/files: ${probe.status} ${probe.text}`);
    // A PNG and a text file, sent from alice's page to bob.
    await openConv(bob, "alice");
    await alice.locator("#file-input").setInputFiles({ name: "magpie.png", mimeType: "image/png", buffer: gradientPNG(96, 64) });
    await alice.locator("#file-input").setInputFiles({ name: "notes <1>.txt", mimeType: "text/plain", buffer: Buffer.from("some notes\n") });
    await bob.waitForFunction(() => [...document.querySelectorAll("#msg-list img.inline")].some((i) => i.complete && i.naturalWidth === 96), null, { timeout: T, polling: 100 });
    const link = bob.locator("#msg-list a[download]", { hasText: "notes" }).last();
    await link.waitFor({ timeout: T });
    const got = await download(bob, link);
    if (got.text !== "some notes\n") throw new Error("download gave " + JSON.stringify(got));
    // The pages fetch files with the Authorization header (blob: URLs);
    // the server takes no token in the URL.
    if (tokenURLs.length) throw new Error("a token in a URL: " + tokenURLs.join(" "));
    if (!(await bob.locator("#msg-list img.inline").last().getAttribute("src")).startsWith("blob:")) throw new Error("the image is not a blob: URL");
    const byQuery = await fetch(`${BASE}/v1/files/${probe.data.id}?access_token=${tokens.alice}`);
    if (byQuery.status !== 401) throw new Error(`GET /v1/files/{id}?access_token= answered ${byQuery.status}`);
    const byHeader = await api("alice", "GET", `/v1/files/${probe.data.id}`);
    if (byHeader.status !== 200 || byHeader.text !== "probe") throw new Error(`GET /v1/files/{id} with the header: ${byHeader.status}`);
    if (await bob.locator("#msg-list a[download] *:not(img)").count()) throw new Error("markup in a file name");
    await bob.locator("#conv-list .badge").waitFor({ state: "detached", timeout: T }); // images loaded, still at the bottom: read
    await shot(bob, "06-files");
  }],

  ["failed_file_retry", async () => {
    // An upload that fails leaves a "not sent" message; retry sends the
    // file with its caption, and a failed message stays below the messages
    // that were there before it, not on top of newer ones.
    await openConv(bob, "alice");
    await alice.route("**/v1/files", (r) => r.abort());
    await alice.locator("#composer-text").fill("caption with a file");
    await alice.locator("#file-input").setInputFiles({ name: "retry.txt", mimeType: "text/plain", buffer: Buffer.from("retried\n") });
    const failedRow = alice.locator("#msg-list li.msg", { has: alice.locator('.status[data-state="failed"]') });
    await failedRow.waitFor({ timeout: T });
    await send(bob, "newer than the failure");
    await waitMessage(alice, "newer than the failure");
    const order = await texts(alice);
    if (order.indexOf("caption with a file") > order.indexOf("newer than the failure")) throw new Error("the failed message covers a newer one: " + order.slice(-3));
    await alice.unroute("**/v1/files");
    await failedRow.locator('[data-action="retry"]').click();
    const got = bob.locator("#msg-list li.msg", { hasText: "caption with a file" }).locator("a[download]", { hasText: "retry.txt" });
    await got.waitFor({ timeout: T });
    const body = (await download(bob, got)).text;
    if (body !== "retried\n") throw new Error("retried file has " + JSON.stringify(body));
    await waitStatus(alice, "caption with a file", "read");
    // A failed message can be discarded.
    await alice.route("**/v1/files", (r) => r.abort());
    await alice.locator("#composer-text").fill("discard me");
    await alice.locator("#file-input").setInputFiles({ name: "gone.txt", mimeType: "text/plain", buffer: Buffer.from("x") });
    await failedRow.waitFor({ timeout: T });
    await failedRow.locator('[data-action="discard"]').click();
    await failedRow.waitFor({ state: "detached", timeout: T });
    await alice.unroute("**/v1/files");
    if ((await texts(alice)).includes("discard me")) throw new Error("the discarded message is still shown");
  }],

  ["paste_drop_viewer_dark", async () => {
    // A file dropped on the chat is sent, with an upload progress bar
    // while it goes (the upload is held back to see it).
    await openConv(alice, "bob");
    await openConv(bob, "alice");
    let release;
    const gate = new Promise((r) => { release = r; });
    await alice.route("**/v1/files", async (r) => { await gate; await r.continue(); });
    await alice.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(["dropped\n"], "dropped.txt", { type: "text/plain" }));
      document.querySelector("#messages").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await alice.locator("#msg-list progress.upload").waitFor({ timeout: T });
    release();
    const dropped = bob.locator("#msg-list a[download]", { hasText: "dropped.txt" });
    await dropped.waitFor({ timeout: T });
    await alice.unroute("**/v1/files");
    if ((await download(bob, dropped)).text !== "dropped\n") throw new Error("the dropped file differs");
    await alice.locator("#msg-list progress.upload").waitFor({ state: "detached", timeout: T });
    // An image pasted into the message box goes with the typed caption.
    await alice.locator("#composer-text").fill("pasted caption");
    await alice.locator("#composer-text").evaluate((el, bytes) => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(bytes)], "pasted.png", { type: "image/png" }));
      el.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
    }, [...gradientPNG(96, 64)]);
    if (await composer(alice) !== "") throw new Error("the caption stayed in the box");
    const pasted = bob.locator("#msg-list li.msg", { hasText: "pasted caption" }).locator("img.inline");
    await bob.waitForFunction(() => [...document.querySelectorAll("#msg-list li.msg")].some((li) => li.textContent.includes("pasted caption") && li.querySelector("img.inline")?.naturalWidth === 96), null, { timeout: T, polling: 100 });
    // The image viewer: large, with a download, Escape returns to the image.
    await pasted.click();
    await bob.waitForFunction(() => document.querySelector("#dialog.viewer")?.open && document.querySelector(".viewer-img")?.naturalWidth === 96, null, { timeout: T, polling: 100 });
    await shot(bob, "06b-image-viewer");
    await bob.keyboard.press("Escape");
    await bob.waitForFunction(() => !document.querySelector("#dialog").open && document.activeElement?.dataset.file, null, { timeout: T, polling: 100 });
    // Dark mode follows the system setting.
    const dark = await browser.newContext({ colorScheme: "dark", viewport: { width: 1100, height: 720 } });
    try {
      const p = watch(await dark.newPage(), "dark");
      await p.goto(BASE + "/");
      const bg = await p.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
      const [r, g, b] = bg.match(/\d+/g).map(Number);
      if (r + g + b > 150) throw new Error("not dark: " + bg);
      await shot(p, "06c-dark-sign-in");
    } finally {
      await dark.close();
    }
  }],

  ["broadcasts_listed", async () => {
    // A broadcast shows as a toast and stays in the Notices list.
    if (await alice.locator("#notices").isVisible()) throw new Error("a Notices list with nothing in it");
    const r = await api("bob", "POST", "/v1/messages", { broadcast: true, text: "maintenance at 17:00", client_msg_id: "bc-1" });
    if (r.status !== 200) throw new Error("broadcast: " + r.status + " " + r.text);
    for (const p of [alice, alice2]) {
      await p.locator("#notice-list li", { hasText: "bob: maintenance at 17:00" }).waitFor({ timeout: T });
    }
    await alice.locator(".toast", { hasText: "maintenance at 17:00" }).waitFor({ state: "detached", timeout: T });
    if (!(await alice.locator("#notice-list li", { hasText: "maintenance at 17:00" }).isVisible())) throw new Error("the notice went with its toast");
    // @mentions of the reader stand out.
    await send(bob, "hey @alice and @carol");
    await waitMessage(alice, "hey @alice and @carol");
    const marks = await alice.locator("#msg-list li.msg", { hasText: "hey @alice and @carol" }).locator(".mention").evaluateAll((els) => els.map((e) => [e.textContent, e.classList.contains("me")]));
    if (JSON.stringify(marks) !== JSON.stringify([["@alice", true], ["@carol", false]])) throw new Error("mentions: " + JSON.stringify(marks));
  }],

  ["scheduled_messages", async () => {
    // Send later: the message box's text is scheduled from the dialog; the
    // list shows what is pending and cancels it; a due one reaches bob.
    await openConv(alice, "bob");
    const at = (ms) => alice.locator("#sl-at").evaluate((el, ms) => {
      const d = new Date(Date.now() + ms);
      const p = (n) => String(n).padStart(2, "0");
      el.value = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
    }, ms);
    await alice.locator("#composer-text").fill("cancel me <b>later</b>");
    await alice.click("#later-btn");
    if (await alice.locator("#sl-text").inputValue() !== "cancel me <b>later</b>") throw new Error("the dialog lacks the typed text");
    await at(3600_000);
    await alice.locator("#dialog button[type=submit]").click();
    await waitFocus(alice, "composer-text");
    if (await composer(alice) !== "") throw new Error("the scheduled text stayed in the box");
    await alice.click("#scheduled-btn");
    const row = alice.locator('#scheduled-list li[data-scheduled]', { hasText: "cancel me <b>later</b>" });
    await row.waitFor({ timeout: T });
    if (!(await row.textContent()).includes("bob")) throw new Error("the list does not say to whom: " + await row.textContent());
    if (await alice.locator("#scheduled-list b").count()) throw new Error("scheduled text rendered as markup");
    await row.locator('[data-action="cancel"]').click();
    await alice.locator("#scheduled-list .empty", { hasText: "Nothing is scheduled." }).waitFor({ timeout: T });
    const pending = await api("alice", "GET", "/v1/messages/scheduled");
    if (pending.status !== 200 || pending.data.scheduled.length) throw new Error("still pending after cancel: " + pending.text);
    await alice.keyboard.press("Escape");
    await waitFocus(alice, "scheduled-btn");
    // A time in the past is refused in the dialog.
    await alice.click("#later-btn");
    await alice.fill("#sl-text", "too late");
    await at(-60_000);
    await alice.locator("#dialog button[type=submit]").click();
    await alice.locator("#dialog .error", { hasText: "in the future" }).waitFor({ timeout: T });
    // One due in 3 s is sent as alice, to bob and to her own page.
    await alice.fill("#sl-text", "sent later");
    await at(3000);
    await alice.locator("#dialog button[type=submit]").click();
    await alice.locator(".toast", { hasText: "Scheduled for" }).last().waitFor({ timeout: T });
    await waitMessage(bob, "sent later");
    await waitMessage(alice, "sent later");
    const h = await api("bob", "GET", `/v1/conversations/${await alice.evaluate(() => window.magpieApp.current)}/messages?before_seq=1000000&limit=20`);
    if (h.data.messages.some((m) => m.text.startsWith("cancel me"))) throw new Error("the cancelled message was sent");
  }],

  ["friends_remarks_groups_policy", async () => {
    // A remark (alias) and a group for bob, set in Friends: the chat is
    // listed and titled by the remark; the add policy; a request answered.
    await alice.click("#friends-btn");
    const bobRow = alice.locator('#fr-list li[data-friend="bob"]');
    await bobRow.waitFor({ timeout: T });
    if (await alice.locator("#fr-policy").inputValue() !== "approve") throw new Error("policy: " + await alice.locator("#fr-policy").inputValue());
    await bobRow.locator('[data-action="edit"]').click();
    await waitFocus(alice, `fr-remark-${await alice.evaluate(() => window.magpieApp.client.convs.all().find((c) => c.peer === "bob").peerId)}`);
    await alice.keyboard.type("Bobby <b>");
    await bobRow.locator('input[name="group"]').fill("Work");
    await bobRow.locator('input[name="group"]').press("Enter");
    const inWork = alice.locator('#fr-list section[data-group="Work"] li[data-friend="bob"] .fr-name');
    await inWork.waitFor({ timeout: T });
    if (await inWork.textContent() !== "Bobby <b> (bob)") throw new Error("friend row: " + await inWork.textContent());
    await alice.locator("#conv-list .conv-title", { hasText: /^Bobby <b>$/ }).waitFor({ timeout: T });
    const f = await api("alice", "GET", "/v1/friends");
    const fb = f.data.friends.find((x) => x.username === "bob");
    if (fb.remark !== "Bobby <b>" || fb.group !== "Work") throw new Error("stored: " + JSON.stringify(fb));
    // Nobody may add alice: carol's request is refused.
    await alice.locator("#fr-policy").selectOption("nobody");
    await alice.locator("#dialog [role=status]", { hasText: "Saved: nobody" }).waitFor({ timeout: T });
    const refused = await api("carol", "POST", "/v1/friends/requests", { username: "alice" });
    if (refused.status !== 403) throw new Error("policy nobody, carol's request: " + refused.status);
    await alice.locator("#fr-policy").selectOption("approve");
    await alice.locator("#dialog [role=status]", { hasText: "Saved: anyone may ask" }).waitFor({ timeout: T });
    const asked = await api("carol", "POST", "/v1/friends/requests", { username: "alice" });
    if (asked.status !== 201 || asked.data.status !== "requested") throw new Error("carol's request: " + asked.text);
    await alice.keyboard.press("Escape");
    await waitFocus(alice, "friends-btn");
    await alice.keyboard.press("Enter");
    await alice.locator('#fr-requests li[data-request="carol"] [data-action="accept"]').click({ timeout: T });
    await alice.locator('#fr-list section[data-group=""] li[data-friend="carol"]').waitFor({ timeout: T });
    // Clearing the remark gives the chat its name back.
    await bobRow.locator('[data-action="edit"]').click();
    await bobRow.locator('input[name="remark"]').fill("");
    await bobRow.locator('input[name="group"]').fill("");
    await bobRow.locator('input[name="group"]').press("Enter");
    await alice.locator('#fr-list section[data-group=""] li[data-friend="bob"]:not([data-remark])').waitFor({ timeout: T });
    await alice.keyboard.press("Escape");
    await alice.locator("#conv-list .conv-title", { hasText: /^bob$/ }).waitFor({ timeout: T });
  }],

  ["group_join_requests", async () => {
    // A group that takes requests: bob asks from Join group, alice (the
    // owner) approves him in Members; carol's request is denied.
    await alice.click("#new-group-btn");
    await alice.fill("#ng-name", "by request");
    await alice.press("#ng-name", "Enter");
    await alice.waitForFunction(() => document.querySelector("#chat-title").textContent === "# by request" && !document.querySelector("#dialog").open, null, { timeout: T, polling: 100 });
    const gid = await alice.evaluate(() => window.magpieApp.current);
    await alice.click("#members-btn");
    await alice.locator("#gm-policy").selectOption("approval");
    await alice.locator('#gm-policy[data-saved="approval"]').waitFor({ timeout: T });
    await alice.locator("#gm-requests .empty", { hasText: "No one is waiting." }).waitFor({ timeout: T });
    await alice.keyboard.press("Escape");
    await bob.click("#join-group-btn");
    await bob.fill("#jg-id", gid);
    await bob.press("#jg-id", "Enter");
    await bob.locator(".toast", { hasText: `Asked to join ${gid}` }).waitFor({ timeout: T });
    await waitFocus(bob, "join-group-btn");
    const carol = await api("carol", "POST", `/v1/groups/${gid}/join`);
    if (carol.status !== 202) throw new Error("carol's join: " + carol.status + " " + carol.text);
    await alice.click("#members-btn");
    await alice.locator('#gm-requests li[data-request="bob"] [data-action="approve"]').click({ timeout: T });
    await alice.locator('#dialog [data-member="bob"]').waitFor({ timeout: T });
    await alice.locator('#gm-requests li[data-request="carol"] [data-action="reject"]').click({ timeout: T });
    await alice.locator('#gm-requests li[data-request="carol"]').waitFor({ state: "detached", timeout: T });
    await alice.keyboard.press("Escape");
    await bob.locator("#conv-list .conv-title", { hasText: "by request" }).waitFor({ timeout: T });
    const rq = await api("alice", "GET", `/v1/groups/${gid}/requests`);
    const g = await api("alice", "GET", `/v1/groups/${gid}`);
    const members = g.data.members.map((m) => m.username).sort();
    if (rq.data.requests.length || JSON.stringify(members) !== '["alice","bob"]') throw new Error(`after answering: requests ${rq.text}, members ${members}`);
    await alice.locator("#msg-list li.system", { hasText: "bob" }).waitFor({ timeout: T });
    await openConv(alice, "bob");
    await openConv(bob, "alice");
  }],

  ["admin_removal", async () => {
    // A moderator's removal (POST /v1/admin/messages/remove) reads
    // "removed by admin" where a recall reads "message recalled".
    await send(bob, "remove me, admin");
    await waitMessage(alice, "remove me, admin");
    const seq = Number(await alice.locator("#msg-list li.msg", { hasText: "remove me, admin" }).getAttribute("data-seq"));
    const conv = await alice.evaluate(() => window.magpieApp.current);
    const r = await admin("/v1/admin/messages/remove", { conversation_id: conv, seq });
    if (r.status !== 200) throw new Error("admin remove: " + r.status + " " + r.text);
    for (const p of [alice, bob]) {
      await p.locator(`#msg-list li.msg[data-seq="${seq}"] .recalled[data-removed-by-admin]`, { hasText: "removed by admin" }).waitFor({ timeout: T });
      if (await p.locator("#msg-list li.msg .text", { hasText: "remove me, admin" }).count()) throw new Error("the removed text is still shown");
    }
    await alice.locator(`#conv-list button[data-conv="${conv}"] .conv-preview`, { hasText: "A message was removed by admin" }).waitFor({ timeout: T });
    // A page loaded afresh reads it from history the same way.
    if (alice2) await alice2.reload();
    else { alice2 = watch(await ctxA.newPage(), "alice-tab2"); await alice2.goto(BASE + "/"); }
    await alice2.waitForSelector("body[data-conn=ready]", { timeout: T });
    await openConv(alice2, "bob");
    await alice2.locator(`#msg-list li.msg[data-seq="${seq}"] .recalled`, { hasText: "removed by admin" }).waitFor({ timeout: T });
  }],

  ["replies", async () => {
    // Reply from a message's menu: the reply quotes what it answers on
    // both pages (ref_seq on the server), and the quote shows the original.
    await openConv(alice, "bob");
    await openConv(bob, "alice");
    await send(bob, "which day <i>works</i>?");
    await waitMessage(alice, "which day <i>works</i>?");
    const origSeq = Number(await alice.locator("#msg-list li.msg", { hasText: "which day <i>works</i>?" }).getAttribute("data-seq"));
    const orig = alice.locator(`#msg-list li.msg[data-seq="${origSeq}"]`); // the reply quotes its text too
    await orig.locator('[data-action="menu"]').click();
    const items = await orig.locator(".msg-menu button").evaluateAll((els) => els.map((e) => e.dataset.action));
    if (JSON.stringify(items) !== '["reply"]') throw new Error("the menu of bob's message: " + items);
    await alice.keyboard.press("Enter"); // the menu's first item has the focus
    await alice.locator("#reply-label", { hasText: "Replying to bob: which day <i>works</i>?" }).waitFor({ timeout: T });
    await waitFocus(alice, "composer-text");
    await send(alice, "Tuesday");
    if (await alice.locator("#reply-bar").isVisible()) throw new Error("the reply bar stayed after sending");
    for (const [p, who] of [[alice, "bob"], [bob, "You"]]) {
      await waitMessage(p, "Tuesday");
      const q = p.locator("#msg-list li.msg", { hasText: "Tuesday" }).locator(".quote");
      await q.waitFor({ timeout: T });
      const got = [await q.locator(".who").textContent(), await q.locator(".quote-text").textContent(), await q.getAttribute("data-ref")];
      if (JSON.stringify(got) !== JSON.stringify([who, "which day <i>works</i>?", String(origSeq)])) throw new Error("quote: " + JSON.stringify(got));
    }
    if (await alice.locator("#msg-list i").count()) throw new Error("quoted text rendered as markup");
    const conv = await alice.evaluate(() => window.magpieApp.current);
    const h = await api("bob", "GET", `/v1/conversations/${conv}/messages?before_seq=1000000&limit=5`);
    const reply = h.data.messages.find((m) => m.text === "Tuesday");
    if (reply?.ref_seq !== origSeq) throw new Error("stored reply: " + JSON.stringify(reply));
    // Escape drops a reply before it is sent.
    await orig.locator('[data-action="menu"]').click();
    await orig.locator('[data-action="reply"]').click();
    await alice.locator("#reply-bar").waitFor({ timeout: T });
    await alice.keyboard.press("Escape");
    await alice.locator("#reply-bar").waitFor({ state: "hidden", timeout: T });
    await send(alice, "not a reply");
    await waitMessage(bob, "not a reply");
    if (await bob.locator("#msg-list li.msg", { hasText: "not a reply" }).locator(".quote").count()) throw new Error("a cancelled reply was sent as one");
    // The quote takes the reader to the original.
    await bob.locator("#msg-list li.msg", { hasText: "Tuesday" }).locator(".quote").click();
    await bob.waitForFunction((s) => document.activeElement?.dataset?.seq === String(s), origSeq, { timeout: T, polling: 100 });
  }],

  ["theme_toggle", async () => {
    // Theme: system → dark → light → system, kept across a reload; the
    // choice wins over the system's setting.
    const dark = () => alice.evaluate(() => { const [r, g, b] = getComputedStyle(document.documentElement).backgroundColor.match(/\d+/g).map(Number); return r + g + b < 150; });
    if (await dark()) throw new Error("dark before choosing it in a light system");
    await alice.click("#theme-btn");
    await alice.locator("#theme-btn", { hasText: "Theme: dark" }).waitFor({ timeout: T });
    if (!(await dark())) throw new Error("Theme: dark is not dark");
    await alice.reload();
    await alice.waitForSelector("body[data-conn=ready]", { timeout: T });
    if (!(await dark()) || (await alice.locator("#theme-btn").textContent()) !== "Theme: dark") throw new Error("the theme did not outlive a reload");
    await shot(alice, "06d-dark-toggle");
    await alice.click("#theme-btn");
    await alice.locator("#theme-btn", { hasText: "Theme: light" }).waitFor({ timeout: T });
    if (await dark()) throw new Error("Theme: light is dark");
    await alice.click("#theme-btn");
    await alice.locator("#theme-btn", { hasText: "Theme: system" }).waitFor({ timeout: T });
    if (await alice.evaluate(() => document.documentElement.dataset.theme !== undefined || localStorage.getItem("magpie.theme") !== null)) throw new Error("system theme still stored");
    const sys = await browser.newContext({ colorScheme: "dark", viewport: { width: 800, height: 600 } });
    try {
      const p = watch(await sys.newPage(), "dark-system");
      await p.goto(BASE + "/");
      await p.evaluate(() => localStorage.setItem("magpie.theme", "light"));
      await p.reload();
      await p.locator("#theme-btn", { hasText: "Theme: light" }).waitFor({ state: "attached", timeout: T });
      const [r, g, b] = (await p.evaluate(() => getComputedStyle(document.documentElement).backgroundColor)).match(/\d+/g).map(Number);
      if (r + g + b < 600) throw new Error("Theme: light on a dark system is not light");
    } finally {
      await sys.close();
    }
    await openConv(alice, "bob");
  }],

  ["phone_layout", async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 780 }, isMobile: true, hasTouch: true });
    const p = phonePage = watch(await phone.newPage(), "bob-phone");
    await p.goto(BASE + "/");
    await p.fill("#auth-user", "bob");
    await p.fill("#auth-pass", users.bob);
    await p.click("#login-btn");
    await p.waitForSelector("body[data-conn=ready]", { timeout: T });
    await shot(p, "07-phone-list");
    await openConv(p, "alice");
    await waitMessage(p, "bulk 130");
    if (await p.locator(".sidebar").isVisible()) throw new Error("the list and the chat share a phone screen");
    const wide = await p.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    if (wide) throw new Error("the page scrolls sideways on a phone");
    await shot(p, "08-phone-chat");
    await p.click("#back-btn");
    await p.locator(".sidebar").waitFor({ state: "visible" });
    await phone.close();
    phonePage = null;
  }],

  ["live_notices", async () => {
    // The server's notices: carol's friend request shows in bob's page as a
    // toast and in his open Friends dialog; a scheduled message of alice's,
    // refused at its time (carol removed her from the group), shows in her
    // open Scheduled list with the reason, and Dismiss drops it.
    await bob.click("#friends-btn");
    await bob.locator("#fr-list").waitFor({ timeout: T });
    if (await bob.locator('#fr-requests li[data-request="carol"]').count()) throw new Error("a request from carol before she asked");
    const asked = await api("carol", "POST", "/v1/friends/requests", { username: "bob" });
    if (asked.status !== 201 || asked.data.status !== "requested") throw new Error("carol's request: " + asked.text);
    await bob.locator('.notice-toast[data-notice="friend.requested"]', { hasText: "carol wants to be your friend" }).waitFor({ timeout: T });
    await bob.locator('#fr-requests li[data-request="carol"]').waitFor({ timeout: T }); // the open dialog reloaded
    await bob.keyboard.press("Escape");
    await bob.locator('.notice-toast[data-notice="friend.requested"]', { hasText: "carol" }).locator('[data-action="open"]').click({ timeout: T });
    await bob.locator('#fr-requests li[data-request="carol"] [data-action="decline"]').click({ timeout: T });
    await bob.locator('#fr-requests li[data-request="carol"]').waitFor({ state: "detached", timeout: T });
    await bob.keyboard.press("Escape");
    await shot(bob, "08b-friend-notice");

    const g = await api("carol", "POST", "/v1/groups", { name: "notice <i>team</i>", members: ["alice"] });
    if (g.status !== 201) throw new Error("carol's group: " + g.status + " " + g.text);
    const gid = g.data.id;
    await alice.locator('.notice-toast[data-notice="group.added"]', { hasText: "carol added you to notice <i>team</i>" }).waitFor({ timeout: T });
    if (await alice.locator(".notice-toast i").count()) throw new Error("a group name rendered as markup");
    const sc = await api("alice", "POST", "/v1/messages", { to_group: gid, text: "never sent", send_at: Date.now() + 4000, client_msg_id: "notice-sched-1" });
    if (sc.status !== 200 && sc.status !== 201) throw new Error("schedule: " + sc.status + " " + sc.text);
    await alice.click("#scheduled-btn");
    const row = alice.locator('#scheduled-list li[data-scheduled]', { hasText: "never sent" });
    await row.locator('[data-action="cancel"]').waitFor({ timeout: T });
    const rm = await api("carol", "DELETE", `/v1/groups/${gid}/members/alice`);
    if (rm.status !== 204) throw new Error("carol removes alice: " + rm.status + " " + rm.text);
    await alice.locator('.notice-toast[data-notice="group.removed"]', { hasText: "carol removed you from" }).waitFor({ timeout: T });
    // At its time: refused, and the open list shows it so without a reopen.
    await alice.locator('#scheduled-list li[data-status="refused"]', { hasText: "never sent" }).waitFor({ timeout: T });
    await alice.locator('.notice-toast[data-notice="scheduled.refused"]', { hasText: "was refused" }).waitFor({ timeout: T });
    const reason = await row.locator(".sched-reason").textContent();
    const listed = (await api("alice", "GET", "/v1/messages/scheduled")).data.scheduled.find((x) => x.text === "never sent");
    if (listed?.status !== "refused" || !reason.includes(listed.reason)) throw new Error(`listed ${JSON.stringify(listed)}, shown ${JSON.stringify(reason)}`);
    await shot(alice, "08c-scheduled-refused");
    await row.locator('[data-action="dismiss"]').click();
    await alice.locator("#scheduled-list .empty", { hasText: "Nothing is scheduled." }).waitFor({ timeout: T });
    if ((await api("alice", "GET", "/v1/messages/scheduled")).data.scheduled.length) throw new Error("still listed after Dismiss");
    await alice.keyboard.press("Escape");
  }],

  ["keyboard_and_aria", async () => {
    // Tab moves from the message box to the attach and send buttons; Enter sends.
    await alice.focus("#composer-text");
    await alice.keyboard.type("typed with the keyboard");
    await alice.keyboard.press("Enter");
    await waitMessage(bob, "typed with the keyboard");
    await alice.keyboard.press("Tab");
    const next = await alice.evaluate(() => document.activeElement?.id || document.activeElement?.getAttribute("aria-label"));
    if (!["attach-btn", "file-input"].includes(next)) throw new Error("Tab from the message box went to " + next);
    const named = await alice.$$eval("button, input, textarea", (els) => els.filter((e) => e.offsetParent !== null)
      .filter((e) => !(e.getAttribute("aria-label") || e.labels?.length || e.textContent.trim())).map((e) => e.outerHTML));
    if (named.length) throw new Error("controls without a name: " + named.join(" "));
    const live = await alice.locator("#announcer[aria-live]").count();
    if (!live) throw new Error("no live region");
    await send(bob, "announce me");
    await alice.waitForFunction(() => document.querySelector("#announcer").textContent.includes("announce me"), null, { timeout: T, polling: 100 });
  }],

  ["reconnect_after_restart", async () => {
    const lastBefore = Math.max(...await seqs(alice));
    await step("stop");
    await alice.waitForSelector("body[data-conn=reconnecting]", { timeout: T });
    await alice.locator("#conn-banner", { hasText: "Connection lost" }).waitFor({ timeout: T });
    // Nobody is shown online while the page cannot know.
    await alice.locator('#online-list [data-offline="true"]').waitFor({ timeout: T });
    if (await alice.locator("#online-list button[data-user]").count()) throw new Error("the online list is stale while offline");
    // The banner counts down to the next attempt: one deadline shows two
    // different numbers of seconds (watched in the page, so a slow test
    // process cannot miss it).
    const counted = await alice.evaluate(() => new Promise((resolve) => {
      const c = document.querySelector("#conn-countdown");
      const seen = new Map();
      const check = () => {
        const d = c.dataset.deadline;
        if (!d || d === "0") return;
        const lefts = seen.get(d) || new Set();
        lefts.add(c.textContent);
        seen.set(d, lefts);
        if (lefts.size >= 2) { obs.disconnect(); resolve([...lefts]); }
      };
      const obs = new MutationObserver(check);
      obs.observe(c, { attributes: true, childList: true, characterData: true, subtree: true });
      check();
    }));
    if (!counted.every((x) => /^Next attempt in \d+ s\.$/.test(x))) throw new Error("countdown: " + counted.join(" | "));
    await shot(alice, "09-reconnecting");
    // "Reconnect now" tries at once: the wait ends long before its deadline.
    const now = await alice.evaluate(() => new Promise((resolve) => {
      const c = document.querySelector("#conn-countdown"), btn = document.querySelector("#reconnect-btn");
      const attempt = () => {
        const d = Number(c.dataset.deadline);
        if (btn.hidden || d - Date.now() < 1000) return false;
        const obs = new MutationObserver(() => {
          if (Number(c.dataset.deadline) !== d) { obs.disconnect(); resolve({ deadline: d, endedAt: Date.now() }); }
        });
        obs.observe(c, { attributes: true });
        btn.click();
        return true;
      };
      if (!attempt()) { const iv = setInterval(() => { if (attempt()) clearInterval(iv); }, 50); }
    }));
    if (now.endedAt >= now.deadline) throw new Error(`Reconnect now did not try at once: ${JSON.stringify(now)}`);
    await step("start");
    // Sent while alice's pages are still away (they retry with backoff).
    tokens.bob = null;
    const sent = [];
    for (let i = 1; i <= 5; i++) {
      const r = await api("bob", "POST", "/v1/messages", { to_user: "alice", text: `while away ${i}`, client_msg_id: `away-${i}` });
      if (r.status !== 200) throw new Error("send after restart: " + r.text);
      sent.push(r.data.seq);
    }
    for (const p of [alice, alice2]) {
      await p.waitForSelector("body[data-conn=ready]", { timeout: 40000 });
      await openConv(p, "bob").catch(() => {});
      await waitMessage(p, "while away 5");
    }
    // Recalls and edits have seqs but no rows of their own (they change
    // the message they name).
    const changes = await alice.evaluate(() => [...window.magpieApp.chat.thread(window.magpieApp.current).msgs.values()]
      .filter((m) => m.kind === "recall" || m.kind === "edit").map((m) => m.seq));
    const all = [...await seqs(alice), ...changes].sort((a, b) => a - b);
    const from = all[0];
    if (!contiguous(all, from, sent[sent.length - 1])) throw new Error(`gap or duplicate after reconnect: ${all.join(",")}`);
    for (let i = 1; i <= 5; i++) {
      const n = await alice.locator("#msg-list li.msg .text", { hasText: new RegExp(`^while away ${i}$`) }).count();
      if (n !== 1) throw new Error(`"while away ${i}" shown ${n} times`);
    }
    const stats = await alice.evaluate(() => window.magpieApp.client.stats);
    log(`alice's client after restart: seqs ${lastBefore} -> ${sent[sent.length - 1]}, stats ${JSON.stringify(stats)}`);
    // And the connection works both ways again.
    await send(alice, "back online");
    await waitMessage(bob, "back online");
    await waitStatus(alice, "back online", "read");
    await shot(alice, "10-after-reconnect");
  }],
];

let failed = false; const KEEP_GOING = process.env.KEEP_GOING === "1";
// ONLY=a,b runs those scenarios (after the two that sign the users in and
// make them friends), to try a change quickly; the others report skip.
const ONLY = process.env.ONLY ? new Set(["register_and_login", "private_chat_receipts", ...process.env.ONLY.split(",")]) : null;
for (const [name, fn] of scenarios) {
  if (failed && !KEEP_GOING) { result(name, "skip", "an earlier scenario failed"); continue; }
  if (ONLY && !ONLY.has(name)) { result(name, "skip", "not in ONLY"); continue; }
  const t0 = Date.now();
  try {
    const r = await fn();
    if (Array.isArray(r) && r[0] === "skip") result(name, "skip", r[1]);
    else result(name, "pass", `(${Date.now() - t0} ms)`);
  } catch (err) {
    failed = true;
    result(name, "fail", (err.stack || String(err)).replace(/\n/g, "\\n"));
    for (const [p, n] of [[alice, "alice"], [bob, "bob"], [alice2, "alice-tab2"], [phonePage, "bob-phone"]]) {
      if (!p || p.isClosed()) continue;
      const dump = await p.evaluate(() => {
        const c = window.magpieApp?.client;
        if (!c) return "no client; sign-in error: " + document.querySelector("#auth-error")?.textContent;
        return JSON.stringify({ state: c.state, visibility: document.visibilityState, stats: c.stats, rows: document.querySelectorAll("#msg-list li").length,
          convs: c.convs.all().map((x) => ({ id: x.id, cursor: x.cursor, known: x.known, lastSeq: x.lastSeq, pending: x.pending.size, filling: x.filling, read: x.readSeq })) });
      }).catch((e) => "evaluate failed: " + e.message);
      console.log(`   [${n} at failure] ${dump}`);
      await shot(p, `FAILED-${name}-${n}`).catch(() => {});
    }
  }
}
await browser.close();
const count = (s) => results.filter((r) => r.state === s).length;
console.log(`browser: ${count("pass")} passed, ${count("fail")} failed, ${count("skip")} skipped`);
process.exit(failed ? 1 : 0);
