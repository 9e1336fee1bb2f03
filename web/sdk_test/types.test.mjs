// Checks that the hand-written ../magpie.d.ts matches ../magpie.js: every
// export is declared (and nothing else), as the right kind of thing; every
// public member of the exported classes is declared with as many
// parameters as it takes (and nothing that is not there); the code and
// state tables, the event names, the options and the message and
// conversation shapes agree. Needs no server. There is no TypeScript
// compiler here (no npm packages), so the file is parsed by hand.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as sdk from "../magpie.js";
import { Conversation } from "../conversations.js";

const src = readFileSync(new URL("../magpie.js", import.meta.url), "utf8");
const dts = stripComments(readFileSync(new URL("../magpie.d.ts", import.meta.url), "utf8"));

function stripComments(s) {
  return s.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/[^\n]*/g, "");
}

// block returns the text between the brace that opens at or after i and
// its matching close.
function block(s, i) {
  const open = s.indexOf("{", i);
  let depth = 0;
  for (let j = open; j < s.length; j++) {
    if (s[j] === "{") depth++;
    else if (s[j] === "}" && --depth === 0) return s.slice(open + 1, j);
  }
  throw new Error("unbalanced braces after " + s.slice(i, i + 40));
}

// members lists the declarations at the top level of a class or interface
// body: {name, getter, optional, params (count, or -1 for a field)}.
function members(body) {
  const out = [];
  let depth = 0;
  let stmt = "";
  for (const ch of body) {
    if (depth === 0 && (ch === ";" || ch === "\n")) {
      const t = stmt.trim();
      stmt = "";
      if (!t) continue;
      const m = /^(readonly\s+|static\s+)*(get\s+|set\s+)?(\w+)(\?)?\s*(<[^(]*>)?\s*([(:])/.exec(t);
      if (!m) throw new Error("cannot parse member: " + t);
      out.push({ name: m[3], getter: !!m[2], optional: !!m[4], params: m[6] === "(" ? paramCount(t.slice(t.indexOf("("))) : -1 });
      continue;
    }
    if ("{(<[".includes(ch)) depth++;
    if ("})>]".includes(ch) && !(ch === ">" && stmt.endsWith("="))) depth--;
    stmt += ch;
  }
  if (stmt.trim()) throw new Error("unterminated member: " + stmt);
  return out;
}

// paramCount counts the top-level parameters of "(a, {b, c} = {}, d) ...".
function paramCount(s) {
  let depth = 0;
  let n = 0;
  let any = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if ("{([<".includes(ch)) { depth++; if (depth === 1) continue; }
    if ("})]>".includes(ch) && !(ch === ">" && s[i - 1] === "=")) { depth--; if (depth === 0) break; }
    if (depth === 1 && ch === ",") n++;
    else if (depth >= 1 && !/\s/.test(ch)) any = true;
  }
  return any ? n + 1 : 0;
}

// declared: value declarations ("export declare class|const|function").
const declared = new Map();
for (const m of dts.matchAll(/^export declare (class|const|function) (\w+)/gm)) {
  assert.ok(!declared.has(m[2]) || m[1] === "function", `${m[2]} declared twice`);
  declared.set(m[2], { kind: m[1], at: m.index });
}
const types = new Map();
for (const m of dts.matchAll(/^export (interface|type) (\w+)/gm)) types.set(m[2], m.index);
const iface = (name) => {
  assert.ok(types.has(name), `interface ${name} is declared`);
  return members(block(dts, types.get(name)));
};
const isClass = (v) => typeof v === "function" && /^class\b/.test(Function.prototype.toString.call(v));

test("every export of magpie.js is declared, as what it is, and nothing else", () => {
  const exported = Object.keys(sdk).sort();
  assert.deepEqual([...declared.keys()].sort(), exported);
  for (const name of exported) {
    const want = isClass(sdk[name]) ? "class" : typeof sdk[name] === "function" ? "function" : "const";
    assert.equal(declared.get(name).kind, want, name);
  }
  for (const name of types.keys()) assert.ok(!(name in sdk), `${name} is a type, but magpie.js exports a value of that name`);
});

test("functions are declared with their parameters", () => {
  for (const [name, d] of declared) {
    if (d.kind !== "function") continue;
    const decl = dts.slice(d.at, dts.indexOf(";", d.at));
    const fn = sdk[name].toString();
    const js = fn.startsWith("function") ? fn.slice(fn.indexOf("(")) : fn.startsWith("(") ? fn : "(" + fn.slice(0, fn.indexOf("=>")) + ")";
    assert.equal(paramCount(decl.slice(decl.indexOf("("))), paramCount(js), name);
  }
});

// The instance each class's members are read from.
const instances = {
  Magpie: () => new sdk.Magpie({ baseURL: "http://127.0.0.1:1" }),
  MagpieError: () => new sdk.MagpieError("not_found"),
  ConnectionLost: () => new sdk.ConnectionLost("test"),
};

test("every public member of the exported classes is declared, and every declared one exists", () => {
  for (const [name, d] of declared) {
    if (d.kind !== "class") continue;
    assert.ok(instances[name], `the test knows how to make a ${name}`);
    const obj = instances[name]();
    const cls = sdk[name];
    const decl = members(block(dts, d.at)).filter((m) => m.name !== "constructor");
    const declNames = new Set(decl.map((m) => m.name));
    const own = Object.getOwnPropertyNames(cls.prototype).filter((k) => k !== "constructor" && !k.startsWith("_"));
    const fields = Object.keys(obj).filter((k) => !k.startsWith("_"));
    for (const k of [...own, ...fields]) assert.ok(declNames.has(k), `${name}.${k} is not declared`);
    for (const m of decl) {
      if (m.optional) continue; // set only in some cases (kickReconnect)
      assert.ok(m.name in obj, `${name}.${m.name} is declared but does not exist`);
      const pd = Object.getOwnPropertyDescriptor(cls.prototype, m.name);
      assert.equal(m.getter, !!pd?.get, `${name}.${m.name}: getter in one file only`);
      if (m.params >= 0 && !m.getter && Object.hasOwn(cls.prototype, m.name)) {
        assert.equal(typeof obj[m.name], "function", `${name}.${m.name} is declared as a method`);
        const fn = obj[m.name].toString();
        assert.equal(m.params, paramCount(fn.slice(fn.indexOf("("))), `${name}.${m.name}: parameter count`);
      } else if (m.params < 0 && !m.getter) {
        assert.notEqual(typeof obj[m.name], "function", `${name}.${m.name} is a method, declared as a field`);
      }
    }
  }
});

test("Codes and State are declared entry by entry", () => {
  for (const name of ["Codes", "State"]) {
    const body = block(dts, declared.get(name).at);
    const entries = Object.fromEntries([...body.matchAll(/(\w+):\s*("?)(\w+)\2;/g)].map((m) => [m[1], m[2] ? m[3] : Number(m[3])]));
    assert.deepEqual(entries, { ...sdk[name] }, name);
  }
});

test("the event map names every event magpie.js emits, and no other", () => {
  const emitted = new Set([...src.matchAll(/this\.emit\("(\w+)"/g)].map((m) => m[1]));
  assert.ok(emitted.size >= 8, "found the emits");
  assert.deepEqual(iface("MagpieEventMap").map((m) => m.name).sort(), [...emitted].sort());
});

test("MagpieOptions declares every option magpie.js reads, and no other", () => {
  const read = new Set([...src.matchAll(/\bopts\.(\w+)/g)].map((m) => m[1]));
  assert.deepEqual(iface("MagpieOptions").map((m) => m.name).sort(), [...read].sort());
});

test("Message has the fields of normMessage, Session those of login", () => {
  assert.deepEqual(iface("Message").map((m) => m.name).sort(), Object.keys(sdk.normMessage({})).sort());
  // login() builds the session from these fields.
  const built = /this\.session = \{ (token: .*) \};$/m.exec(src);
  assert.ok(built, "login's session literal");
  const keys = built[1].split(/,\s*(?=\w+:)/).map((kv) => kv.split(":")[0].trim());
  assert.deepEqual(iface("Session").map((m) => m.name).sort(), keys.sort());
});

test("Conversation declares the public state of conversations.js", () => {
  // Delivery bookkeeping that only magpie.js touches stays undeclared.
  const internal = new Set(["pending", "filling", "receiptWant", "receiptSent", "receiptBusy", "readSentSeq", "nameAsked"]);
  const c = new Conversation("p_1_2");
  const decl = iface("Conversation");
  for (const m of decl) assert.ok(m.name in c, `Conversation.${m.name} is declared but does not exist`);
  const names = new Set(decl.map((m) => m.name));
  for (const k of [...Object.keys(c), ...Object.getOwnPropertyNames(Conversation.prototype)]) {
    if (k === "constructor" || internal.has(k)) continue;
    assert.ok(names.has(k), `Conversation.${k} is not declared`);
  }
});

test("the parser reads what it should (it must not pass by reading nothing)", () => {
  assert.ok(declared.size >= 11);
  const magpie = members(block(dts, declared.get("Magpie").at));
  assert.ok(magpie.length > 50, `Magpie members: ${magpie.length}`);
  assert.equal(magpie.find((m) => m.name === "send").params, 1);
  assert.equal(magpie.find((m) => m.name === "http").params, 4);
  assert.equal(paramCount("(a, { b = 1, c } = {}, d = [1, 2]) {"), 3);
  assert.equal(paramCount("() => x"), 0);
  assert.equal(paramCount("(x: Record<string, number>, y?: () => void): void"), 2);
});

test("package.json: magpie-im, an ES module with its types, every file it needs, no dependencies", async () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  assert.equal(pkg.name, "magpie-im");
  assert.equal(pkg.type, "module");
  for (const k of ["dependencies", "devDependencies", "peerDependencies", "optionalDependencies", "bundleDependencies"]) {
    assert.equal(pkg[k], undefined, `package.json has ${k}`);
  }
  assert.equal(pkg.main, "./magpie.js");
  assert.equal(pkg.types, "./magpie.d.ts");
  assert.deepEqual(pkg.exports["."], { types: "./magpie.d.ts", default: "./magpie.js" });
  assert.ok(pkg.scripts?.test, "a test script");
  // files: everything magpie.js imports (transitively), the types and the README.
  const need = new Set(["magpie.d.ts", "README-sdk.md"]);
  const walk = (file) => {
    if (need.has(file)) return;
    need.add(file);
    const text = readFileSync(new URL("../" + file, import.meta.url), "utf8");
    for (const m of text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+"\.\/([\w.-]+)"/gm)) walk(m[1]);
  };
  walk("magpie.js");
  assert.ok(need.has("conversations.js") && need.has("codes.js"), "found magpie.js's imports");
  assert.deepEqual([...pkg.files].sort(), [...need].sort());
  for (const f of pkg.files) readFileSync(new URL("../" + f, import.meta.url)); // each exists
  // The package resolves by its name from inside itself, to the SDK.
  const self = await import("magpie-im");
  assert.equal(self.Magpie, sdk.Magpie);
});
