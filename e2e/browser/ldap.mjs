// A directory user signs in from the web client: driven by
// e2e/browser_ldap_test.go against a server with --auth local,ldap and a
// seeded slapd. carol exists only in the directory; bob registers locally.
//
// Environment: MAGPIE_URL, ARTIFACTS, CHROMIUM, CAROL_PASS (carol's
// directory password). Prints "PASS" and exits 0, or the error and exits 1.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const BASE = (process.env.MAGPIE_URL || "").replace(/\/$/, "");
const ART = process.env.ARTIFACTS || "artifacts";
const CAROL_PASS = process.env.CAROL_PASS || "";
const T = 20000;
if (!BASE || !CAROL_PASS) { console.error("MAGPIE_URL and CAROL_PASS must be set"); process.exit(2); }
mkdirSync(ART, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const pages = {};
async function open(name) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const p = pages[name] = await ctx.newPage();
  p.on("pageerror", (e) => console.log(`   [${name} page error] ${e.message}`));
  await p.goto(BASE + "/");
  return p;
}
async function signIn(p, user, pass, button) {
  await p.fill("#auth-user", user);
  await p.fill("#auth-pass", pass);
  await p.click(button);
}
async function waitMessage(p, text) {
  await p.waitForFunction((t) => [...document.querySelectorAll("#msg-list li.msg .text")].some((e) => e.textContent === t), text, { timeout: T, polling: 100 });
}
async function send(p, text) {
  await p.locator("#composer-text").fill(text);
  await p.locator("#composer-text").press("Enter");
}

let code = 0;
try {
  const bob = await open("bob");
  await signIn(bob, "bob", "bob-pw-22", "#register-btn");
  await bob.waitForSelector("body[data-conn=ready]", { timeout: T });

  // A wrong directory password is refused on the form.
  const carol = await open("carol");
  await signIn(carol, "carol", "wrong-pass-1", "#login-btn");
  await carol.locator("#auth-error", { hasText: "Wrong username or password." }).waitFor({ timeout: T });
  if (await carol.locator("#app-view").isVisible()) throw new Error("signed in with a wrong directory password");

  // The directory's password signs carol in: no registration.
  await signIn(carol, "carol", CAROL_PASS, "#login-btn");
  await carol.waitForSelector("body[data-conn=ready]", { timeout: T });
  await carol.screenshot({ path: join(ART, "ldap-01-signed-in.png") });

  await carol.click("#new-chat-btn");
  await carol.fill("#nc-user", "bob");
  await carol.press("#nc-user", "Enter");
  await carol.waitForFunction(() => document.querySelector("#chat-title").textContent === "bob" && !document.querySelector("#dialog").open, null, { timeout: T, polling: 100 });
  await send(carol, "hello from the directory");

  const exact = /^carol$/;
  await bob.locator("#conv-list button").filter({ has: bob.locator(".conv-title", { hasText: exact }) }).first().click({ timeout: T });
  await waitMessage(bob, "hello from the directory");
  await send(bob, "welcome, carol");
  await waitMessage(carol, "welcome, carol");
  await carol.screenshot({ path: join(ART, "ldap-02-chat.png") });
  console.log("PASS");
} catch (err) {
  code = 1;
  console.log("FAIL " + (err.stack || String(err)));
  for (const [n, p] of Object.entries(pages)) {
    const why = await p.evaluate(() => document.querySelector("#auth-error")?.textContent).catch(() => "");
    console.log(`   [${n}] sign-in error: ${JSON.stringify(why)}`);
    await p.screenshot({ path: join(ART, `FAILED-ldap-${n}.png`) }).catch(() => {});
  }
}
await browser.close();
process.exit(code);
