// Tests of the JavaScript SDK (../magpie.js) against a real server, under
// Node. `go test ./web -run TestSDKUnderNode` starts the server and runs
// these with MAGPIE_TEST_URL (its HTTP API) and MAGPIE_TEST_CONTROL (POST
// /cut drops every WebSocket connection and refuses new ones, POST /heal
// lets them in again). Each run registers its own users.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Magpie, MagpieError, State, Codes, privateID } from "../magpie.js";

const baseURL = process.env.MAGPIE_TEST_URL;
const control = process.env.MAGPIE_TEST_CONTROL;
if (!baseURL || !control) {
  throw new Error("MAGPIE_TEST_URL and MAGPIE_TEST_CONTROL are not set: run `go test ./web -run TestSDKUnderNode` " +
    "(or `npm test` in web/), which starts a server and a proxy and runs these tests");
}

// The WebSocket class comes in as an option, as a Node 20 or React Native
// app would pass one; CountingWS also counts the dials.
let dials = 0;
class CountingWS extends globalThis.WebSocket {
  constructor(url, protocols) { super(url, protocols); dials++; }
}

const run = Date.now().toString(36).slice(-6);
const name = (who) => `${who}-${run}`;
const clients = [];
function client(who, opts = {}) {
  const m = new Magpie({ baseURL, username: name(who), password: "pw-" + name(who), WebSocket: CountingWS, ...opts });
  clients.push(m);
  return m;
}
after(() => { for (const m of clients) m.close(); });

// events records a client's events of one type.
function events(m, type) {
  const got = [];
  m.addEventListener(type, (e) => got.push(e.detail));
  return got;
}

// until polls cond (every 10 ms, up to 10 s); it never asserts a duration.
async function until(what, cond) {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("timed out waiting for " + what);
}

const post = (path) => fetch(control + path, { method: "POST" }).then((r) => assert.equal(r.status, 204, path));

let alice, bob, conv;

test("register and login: a session with token, user id and name", async () => {
  for (const who of ["alice", "bob"]) {
    const r = await new Magpie({ baseURL }).register(name(who), "pw-" + name(who));
    assert.equal(r.username, name(who));
  }
  alice = client("alice", { device: "node-a" });
  bob = client("bob", { device: "node-b" });
  const sessions = events(alice, "session");
  const s = await alice.login();
  assert.ok(s.token.length > 20, "a token");
  assert.ok(s.userId > 0);
  assert.equal(s.username, name("alice"));
  assert.equal(s.device, "node-a");
  assert.match(s.gateway.ws, /^ws:\/\/.*\/v1\/ws$/);
  assert.equal(alice.userId, s.userId);
  assert.deepEqual(sessions, [s]);
});

test("a wrong password surfaces as invalid_credentials (401)", async () => {
  const m = new Magpie({ baseURL });
  await assert.rejects(m.login(name("alice"), "wrong-password"), (err) => {
    assert.ok(err instanceof MagpieError);
    assert.equal(err.code, Codes.invalid_credentials);
    assert.equal(err.codeName, "invalid_credentials");
    assert.equal(err.status, 401);
    assert.equal(err.action, "give_up");
    return true;
  });
  // start() gives up on it too: it rejects and the client is closed.
  const c = client("alice", { password: "wrong-password" });
  await assert.rejects(c.start(), (err) => err instanceof MagpieError && err.code === Codes.invalid_credentials);
  assert.equal(c.state, State.closed);
});

test("connect: start() dials the gateway through the WebSocket option and syncs", async () => {
  const states = events(bob, "state");
  const before = dials;
  await Promise.all([alice.start(), bob.start()]);
  assert.equal(alice.state, State.ready);
  assert.equal(bob.state, State.ready);
  assert.equal(dials - before, 2, "one dial each, through opts.WebSocket");
  assert.deepEqual(states.map((s) => s.state), [State.connecting, State.ready]);
  const online = await alice.online();
  assert.ok(Array.isArray(online));
});

test("send and receive between two clients; the ack carries the seq", async () => {
  const got = events(bob, "message");
  const first = await alice.send({ toUser: name("bob"), text: "hello bob" });
  conv = privateID(alice.userId, bob.userId);
  assert.equal(first.conversationId, conv);
  assert.equal(first.seq, 1);
  assert.equal(first.duplicate, false);
  assert.ok(first.sentAt > 0);
  await until("bob's message", () => got.length === 1);
  assert.equal(got[0].text, "hello bob");
  assert.equal(got[0].seq, first.seq);
  assert.equal(got[0].sender, name("alice"));
  assert.equal(got[0].senderId, alice.userId);
  assert.equal(got[0].clientMsgId, first.clientMsgId);

  // A reply, then a repeat of alice's send under the same client_msg_id:
  // the server answers with the original seq and stores nothing new.
  const reply = await bob.send({ toUser: name("alice"), text: "hi alice" });
  assert.equal(reply.seq, 2);
  const again = await alice.send({ toUser: name("bob"), text: "hello bob", clientMsgId: first.clientMsgId });
  assert.equal(again.seq, first.seq);
  assert.equal(again.duplicate, true);
  const third = await alice.send({ toUser: name("bob"), text: "third" });
  assert.equal(third.seq, 3);
  await until("the third message", () => got.some((m) => m.seq === 3));
  // bob's own reply is not an event on his client, and the repeat is none either.
  assert.deepEqual(got.map((m) => [m.seq, m.text]), [[1, "hello bob"], [3, "third"]]);
  assert.equal(bob.convs.get(conv).cursor, 3);
});

test("history: pages oldest first, after and before a seq", async () => {
  const all = await bob.history(conv);
  assert.deepEqual(all.messages.map((m) => [m.seq, m.text]), [[1, "hello bob"], [2, "hi alice"], [3, "third"]]);
  assert.equal(all.lastSeq, 3);
  const before = await bob.history(conv, { before: 3, limit: 1 });
  assert.deepEqual(before.messages.map((m) => m.seq), [2]);
  const afterOne = await alice.history(conv, { after: 1 });
  assert.deepEqual(afterOne.messages.map((m) => m.seq), [2, 3]);
});

test("an error code surfaces as a MagpieError: sending to nobody is not_found", async () => {
  await assert.rejects(alice.send({ toUser: "nobody-" + run, text: "hello?" }), (err) => {
    assert.ok(err instanceof MagpieError, String(err));
    assert.equal(err.codeName, "not_found");
    assert.equal(err.code, Codes.not_found);
    assert.equal(err.action, "give_up");
    return true;
  });
  await assert.rejects(alice.lookupUser("nobody-" + run), (err) => err instanceof MagpieError && err.code === Codes.not_found && err.status === 404);
  assert.equal(alice.state, State.ready, "a refused request leaves the connection up");
});

test("notices: a friend request and its acceptance arrive as notice events with their fields", async () => {
  const toBob = events(bob, "notice"), toAlice = events(alice, "notice");
  assert.equal((await alice.requestFriend(name("bob"))).status, "requested");
  await until("bob's notice", () => toBob.length === 1);
  assert.equal(toBob[0].type, "friend.requested");
  assert.equal(toBob[0].actor, name("alice"));
  assert.equal(toBob[0].actorId, alice.userId);
  assert.ok(toBob[0].at > 0);
  assert.equal(toBob[0].groupId, "");
  assert.equal(toBob[0].scheduledId, 0);
  await bob.answerFriend(name("alice"), true);
  await until("alice's notice", () => toAlice.length === 1);
  assert.equal(toAlice[0].type, "friend.accepted");
  assert.equal(toAlice[0].actor, name("bob"));
  assert.equal(toAlice[0].actorId, bob.userId);
  // Never to the one who made the change.
  assert.deepEqual(toBob.map((n) => n.type), ["friend.requested"]);
});

test("reconnect: a cut connection comes back and resumes from the cursor", async () => {
  const got = events(bob, "message");
  const states = events(bob, "state");
  const cursor = bob.convs.get(conv).cursor;
  const { sync, live, duplicates } = { ...bob.stats };
  await post("/cut");
  await until("bob to notice", () => bob.state === State.reconnecting);
  // Three messages while bob is away (over HTTP: alice's socket is cut too).
  for (const text of ["away 1", "away 2", "away 3"]) {
    await alice.http("POST", "/v1/messages", { to_user: name("bob"), text, client_msg_id: `${run}-${text.replace(" ", "-")}` });
  }
  await post("/heal");
  bob.reconnectNow();
  await until("bob ready again", () => bob.state === State.ready);
  await until("the three messages", () => got.length >= 3);
  assert.deepEqual(got.map((m) => [m.seq, m.text]), [[cursor + 1, "away 1"], [cursor + 2, "away 2"], [cursor + 3, "away 3"]]);
  assert.equal(bob.convs.get(conv).cursor, cursor + 3);
  // They came from the sync that starts each connection, from the
  // cursor: nothing before it again, nothing live.
  assert.equal(bob.stats.sync - sync, 3);
  assert.equal(bob.stats.live, live);
  assert.equal(bob.stats.duplicates, duplicates);
  assert.ok(states.some((s) => s.state === State.reconnecting && s.error), "the reconnecting state says why");
  // And the connection works for live messages again.
  await until("alice ready again", () => alice.state === State.ready);
  const ack = await alice.send({ toUser: name("bob"), text: "back" });
  await until("the live message", () => got.length === 4);
  assert.equal(got[3].seq, ack.seq);
});

test("without a WebSocket class start() rejects with the reason; the option alone is enough", async () => {
  const WS = globalThis.WebSocket;
  const global = Object.getOwnPropertyDescriptor(globalThis, "WebSocket");
  delete globalThis.WebSocket;
  try {
    assert.equal(typeof globalThis.WebSocket, "undefined");
    const none = new Magpie({ baseURL, username: name("bob"), password: "pw-" + name("bob"), device: "node-none" });
    await assert.rejects(none.start(), (err) => err instanceof TypeError && /no WebSocket class/.test(err.message));
    // With the class passed in, no global is needed (Node 20 without the flag).
    const carol = client("bob", { device: "node-c", WebSocket: WS });
    await carol.start();
    assert.equal(carol.state, State.ready);
  } finally {
    Object.defineProperty(globalThis, "WebSocket", global);
  }
});
