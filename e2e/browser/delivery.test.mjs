// Unit tests of web/magpie.js's delivery rules (in order, once, gaps
// filled), without a server: requests are answered by a stub. Run with
// `node --test` in e2e/browser; e2e/browser_test.go runs them too.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Magpie, State } from "../../web/magpie.js";

const msg = (seq, extra = {}) => ({ conversationId: "p_1_2", seq, senderId: 2, sender: "bob", text: `m${seq}`, kind: "text", ...extra });

// client returns a ready client whose history requests are served from
// `server` (seq -> message) and a list of the seqs it emitted.
function client(server = new Map()) {
  const c = new Magpie({ baseURL: "http://x", session: { token: "t", userId: 1, username: "alice" } });
  c.state = State.ready;
  const emitted = [];
  const requests = [];
  c.addEventListener("message", (e) => emitted.push(e.detail.seq));
  c.request = async (body) => {
    requests.push(body);
    if (body.history) {
      const after = Number(body.history.after_seq || 0);
      const msgs = [...server.values()].filter((m) => m.seq > after).sort((a, b) => a.seq - b.seq).slice(0, body.history.limit)
        .map((m) => ({ conversation_id: m.conversationId, seq: String(m.seq), sender_id: String(m.senderId), sender: m.sender, text: m.text, client_msg_id: m.clientMsgId || "" }));
      return { history_result: { messages: msgs } };
    }
    return { ok: {} };
  };
  return { c, emitted, requests };
}
const settle = () => new Promise((r) => setTimeout(r, 10));

test("in order and out of order arrive once, in order", async () => {
  const { c, emitted } = client();
  c._ingest([msg(1), msg(3)], "live");
  c._ingest([msg(2), msg(2), msg(1)], "live");
  await settle();
  assert.deepEqual(emitted, [1, 2, 3]);
  assert.equal(c.convs.get("p_1_2").cursor, 3);
  assert.equal(c.stats.duplicates, 2);
});

test("a gap is filled from history", async () => {
  const server = new Map([1, 2, 3, 4, 5].map((s) => [s, msg(s)]));
  const { c, emitted, requests } = client(server);
  c._ingest([msg(1)], "live");
  c._ingest([msg(5)], "live"); // 2..4 were lost
  await settle();
  assert.deepEqual(emitted, [1, 2, 3, 4, 5]);
  assert.equal(requests.filter((r) => r.history).length >= 1, true);
  assert.equal(requests.find((r) => r.history).history.after_seq, "1");
});

test("messages the server does not have for this user are skipped", async () => {
  const server = new Map([7, 8].map((s) => [s, msg(s, { conversationId: "g_1" })]));
  const { c, emitted } = client(server);
  c._ingest([msg(8, { conversationId: "g_1" })], "live"); // joined at 7
  await settle();
  assert.deepEqual(emitted, [7, 8]);
});

test("own sends advance the cursor without an event; other devices' sends are events", async () => {
  const { c, emitted } = client();
  c._sending.add("mine-1");
  c._ingest([msg(1, { senderId: 1, clientMsgId: "mine-1" })], "sync");
  c._ingest([msg(2, { senderId: 1, clientMsgId: "other-tab" })], "live");
  await settle();
  assert.deepEqual(emitted, [2]);
  assert.equal(c.convs.get("p_1_2").cursor, 2);
});

test("delivered receipts report the newest cursor", async () => {
  const { c, requests } = client();
  c._ingest([msg(1), msg(2), msg(3)], "live");
  await settle();
  const receipts = requests.filter((r) => r.receipt).map((r) => r.receipt.seq);
  assert.deepEqual(receipts, ["3"]);
});

// wsURL runs in a page: location is the page's. An https page must dial
// wss:// (browsers refuse ws:// from https), whatever the server advertised.
test("an https page dials wss", () => {
  const saved = globalThis.location;
  try {
    const cases = [
      // page, advertised, want
      ["https://localhost:8443/", "wss://127.0.0.1:8443/v1/ws", "wss://localhost:8443/v1/ws"],
      ["https://chat.example.com/", "wss://chat.example.com/v1/ws", "wss://chat.example.com/v1/ws"],
      ["https://chat.example.com/", "ws://chat.example.com/v1/ws", "wss://chat.example.com/v1/ws"],
      ["https://chat.example.com/", undefined, "wss://chat.example.com/v1/ws"],
      ["http://127.0.0.1:8080/", "ws://127.0.0.1:8080/v1/ws", "ws://127.0.0.1:8080/v1/ws"],
    ];
    for (const [page, ws, want] of cases) {
      globalThis.location = new URL(page);
      const c = new Magpie({ baseURL: "", session: { token: "t", userId: 1, username: "alice", gateway: ws ? { ws } : undefined } });
      assert.equal(c.wsURL(), want, `page ${page}, advertised ${ws}`);
    }
  } finally {
    globalThis.location = saved;
  }
});
