// magpie.js: the Magpie client protocol for browsers and Node 20+ (and,
// with polyfills, React Native), as one dependency-free ES module (with
// codes.js and conversations.js). It speaks the JSON protocol of
// docs/protocol.md over WebSocket /v1/ws (subprotocol magpie.v1.json) and
// the HTTP API of docs/api.md. Types: magpie.d.ts; outside a browser see README-sdk.md.
// See docs/web.md for a tour.
//
//   import { Magpie } from "./magpie.js";
//   const m = new Magpie({ baseURL: "http://127.0.0.1:8080", username, password });
//   m.addEventListener("message", (e) => show(e.detail));
//   await m.start();                       // log in, connect, sync
//   const ack = await m.send({ toUser: "bob", text: "hi" });
//
// It needs fetch, EventTarget, CustomEvent, crypto.getRandomValues and a
// WebSocket class: opts.WebSocket, else globalThis.WebSocket (Node 20 has
// none without --experimental-websocket; Node 22 and browsers have one).
//
// Delivery follows the Go SDK (client/delivery.go): per conversation the
// client keeps a cursor, the highest seq such that every message up to it
// was emitted (or was this client's own send). A message at cursor+1 is
// emitted with any buffered ones after it; one at or below the cursor is a
// duplicate; one further ahead is buffered while history{after_seq: cursor}
// fills the gap. Live pushes, sync pages, gap fills and own acks all go
// through ingest(), so "message" events come in order, exactly once.
//
// The browser keeps no message store across page loads, so the first
// connection starts each conversation's cursor at a baseline (the last
// `window` messages, or the unread ones if there are more) instead of seq 0;
// older messages are read with history({before}). Later reconnects sync
// from the cursors.

import { Conversations } from "./conversations.js";
import { Codes, CodeActions } from "./codes.js";

// The code table is generated from proto/wire/codes.json (codes.js).
export { Codes };
const codeNames = Object.fromEntries(Object.entries(Codes).map(([k, v]) => [v, k]));

// MagpieError is any failure the server reported, over HTTP or the socket.
// action says what to do: "retry", "relogin", "reconnect" or "give_up".
export class MagpieError extends Error {
  constructor(code, message, { status = 0, retryAfterMs = 0 } = {}) {
    const num = typeof code === "number" ? code : (Codes[code] ?? 0);
    super(message || codeNames[num] || "error");
    this.name = "MagpieError";
    this.code = num;
    this.codeName = codeNames[num] || String(code);
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
  get action() { return CodeActions[this.code] ?? "give_up"; }
}

// ConnectionLost rejects requests whose connection closed before an answer.
export class ConnectionLost extends Error {
  constructor(why) { super("connection lost" + (why ? ": " + why : "")); this.name = "ConnectionLost"; }
}

export const State = Object.freeze({
  idle: "idle", connecting: "connecting", ready: "ready", reconnecting: "reconnecting", closed: "closed",
});

// newID makes a client_msg_id: printable ASCII, no spaces, well under 64 bytes.
export function newID() {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return "w-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
});

// num turns protojson's 64-bit strings (and omitted zeroes) into numbers.
// Seqs and ids stay far below 2^53 in practice.
export const num = (v) => (v === undefined || v === null || v === "" ? 0 : Number(v));

// The socket (protojson) names enums; the HTTP API's JSON numbers them.
const kinds = ["text", "file", "recall", "edit", "event", "notification"];
function kindName(k) {
  if (typeof k === "number") return kinds[k] || "text";
  return (k || "MESSAGE_KIND_TEXT").replace("MESSAGE_KIND_", "").toLowerCase();
}

// normMessage converts a wire Message into the shape events carry.
export function normMessage(m) {
  return {
    conversationId: m.conversation_id || "",
    seq: num(m.seq),
    senderId: num(m.sender_id),
    sender: m.sender || "",
    clientMsgId: m.client_msg_id || "",
    text: m.text || "",
    sentAt: num(m.sent_at),
    peer: m.peer || "",
    kind: kindName(m.kind),
    refSeq: num(m.ref_seq),
    file: m.file ? { id: m.file.id, name: m.file.name || "", contentType: m.file.content_type || "", size: num(m.file.size) } : null,
    event: m.event || null,
    transient: !!m.transient,
    editedAt: num(m.edited_at),
    recalled: !!m.recalled,
  };
}

// normNotice turns a wire notice into the notice event's detail.
export function normNotice(n) {
  return {
    type: n.type || "",
    at: num(n.at),
    actorId: num(n.actor_id),
    actor: n.actor || "",
    groupId: n.group_id || "",
    groupName: n.group_name || "",
    scheduledId: num(n.scheduled_id),
    code: num(n.code),
    reason: n.reason || "",
    toUser: n.to_user || "",
    toGroup: n.to_group || "",
  };
}

// Magpie is one user's connection. Events (all CustomEvent, data in detail):
//   state    {state, error, retryInMs}     connection state changes
//   message  normMessage(...)              in order per conversation, once;
//                                          includes own sends from other devices
//   transient normMessage(...)             broadcasts and notifications (seq 0)
//   receipt  {conversationId, kind: "delivered"|"read", seq, userId, username}
//   conversation  the conversation's state (see conversations.js) changed
//   typing   {conversationId, userId, username, stopped}  another member is
//            typing (transient; show it for TYPING_SHOW_MS unless renewed)
//   session  {token, userId, username, device}  after a login
//   kick     {code, reason, reconnect}
//   notice   {type, at, actorId, actor, groupId, groupName, scheduledId,
//            code, reason, toUser, toGroup}  a change that concerns me
//            (docs/protocol.md "Notices"): transient, best effort; read the
//            HTTP list it names. Ignore a type you do not know.
export class Magpie extends EventTarget {
  constructor(opts = {}) {
    super();
    this.opts = {
      baseURL: opts.baseURL ?? (typeof location !== "undefined" ? location.origin : ""),
      platform: "web", window: 50, backoffMinMs: 500, backoffMaxMs: 15000, pageLimit: 100,
      ...opts,
    };
    this.session = opts.session || null; // {token, userId, username, device, gateway}
    this.password = opts.password || null;
    this.state = State.idle;
    this.convs = new Conversations();
    this.stats = { live: 0, sync: 0, fill: 0, duplicates: 0 };
    this._ws = null;
    this._nextID = 1;
    this._waiting = new Map(); // request id -> {resolve, reject}
    this._sending = new Set(); // client_msg_ids in flight from this client
    this._baselined = false;
    this._readyWaiters = [];
    this._abort = new AbortController();
  }

  get userId() { return this.session?.userId || 0; }
  get username() { return this.session?.username || ""; }

  // ---- HTTP API --------------------------------------------------------

  // raw: resolve with the body as a Blob instead of parsed JSON.
  async http(method, path, body, { auth = true, raw = false, retried = false } = {}) {
    const headers = {};
    let payload;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
    if (auth) {
      if (!this.session) await this.login();
      headers.Authorization = "Bearer " + this.session.token;
    }
    const res = await fetch(this.opts.baseURL + path, { method, headers, body: payload });
    if (res.status === 204) return null;
    if (res.ok && raw) return res.blob();
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      const e = data?.error || {};
      const err = new MagpieError(e.code || (res.status === 404 ? "not_found" : "internal"),
        e.message || res.statusText, { status: res.status, retryAfterMs: e.retry_after_ms || 0 });
      if (auth && !retried && err.code === Codes.unauthenticated && this.password) {
        this.session = null;
        return this.http(method, path, body, { auth, raw, retried: true });
      }
      throw err;
    }
    return data;
  }

  register(username, password) {
    return this.http("POST", "/v1/users", { username, password }, { auth: false });
  }

  // login exchanges the username and password for a token. The password
  // stays in memory so the client can log in again when the token expires.
  async login(username = this.opts.username, password = this.password) {
    if (!username || !password) throw new MagpieError("unauthenticated", "not logged in");
    const body = { username, password, platform: this.opts.platform };
    if (this.opts.device) body.device = this.opts.device;
    const r = await this.http("POST", "/v1/login", body, { auth: false });
    this.opts.username = username;
    this.password = password;
    this.session = { token: r.token, userId: num(r.user_id), username: r.username, device: r.device, gateway: r.gateway || {} };
    this.emit("session", this.session);
    return this.session;
  }

  async logout() {
    try { if (this.session) await this.http("POST", "/v1/logout", undefined, { retried: true }); } finally { this.close(); this.session = null; this.password = null; }
  }

  online() { return this.request({ online: {} }).then((r) => (r.online_result?.users || []).map((u) => ({ userId: num(u.user_id), username: u.username, devices: u.devices || [] }))); }
  // lookupUser resolves with {user_id, username} of an existing user (the
  // name as spelled at sign-up); rejects with not_found otherwise.
  lookupUser(name) { return this.http("GET", `/v1/users/${encodeURIComponent(name)}`); }
  conversationsHTTP() { return this.http("GET", "/v1/conversations"); }
  // hideConversation takes a conversation out of my list until a new
  // message arrives; with clear, my history of it is cleared too (mine only).
  hideConversation(id, clear = false) { return this.http("DELETE", `/v1/conversations/${encodeURIComponent(id)}${clear ? "?clear=true" : ""}`); }
  // search finds my messages with every word of q (GET /v1/search):
  // {hits: [{message, highlights: [{start, end}]}], next_cursor}; messages
  // are normalised like message events, highlights are code point offsets.
  async search(q, { conversationId = "", limit = 0, cursor = "" } = {}) {
    const p = new URLSearchParams({ q });
    if (conversationId) p.set("conversation_id", conversationId);
    if (limit) p.set("limit", String(limit));
    if (cursor) p.set("cursor", cursor);
    const r = await this.http("GET", "/v1/search?" + p);
    return { hits: (r.hits || []).map((x) => ({ message: normMessage(x.message), highlights: x.highlights || [] })), nextCursor: r.next_cursor || "" };
  }
  // typing tells the other members that I am typing (or stopped): sent
  // once, never retried (a late notice is worse than none). Send it at most
  // every TYPING_EVERY_MS while typing; the server refuses floods.
  typing(conversationId, stopped = false) { return this.request({ typing: { conversation_id: conversationId, stopped } }); }
  createGroup(name, members, joinPolicy) { return this.http("POST", "/v1/groups", { name, members, ...(joinPolicy ? { join_policy: joinPolicy } : {}) }); }
  groups() { return this.http("GET", "/v1/groups"); }
  group(id) { return this.http("GET", `/v1/groups/${encodeURIComponent(id)}`); }
  invite(id, usernames) { return this.http("POST", `/v1/groups/${encodeURIComponent(id)}/members`, { usernames }); }
  leave(id) { return this.http("POST", `/v1/groups/${encodeURIComponent(id)}/leave`); }
  updateGroup(id, fields) { return this.http("PATCH", `/v1/groups/${encodeURIComponent(id)}`, fields); }
  dissolveGroup(id) { return this.http("DELETE", `/v1/groups/${encodeURIComponent(id)}`); }
  transferOwner(id, username) { return this.http("POST", `/v1/groups/${encodeURIComponent(id)}/owner`, { username }); }
  setRole(id, username, role) { return this.http("PUT", `/v1/groups/${encodeURIComponent(id)}/members/${encodeURIComponent(username)}/role`, { role }); }
  muteMember(id, username, until) { return this.http("PUT", `/v1/groups/${encodeURIComponent(id)}/members/${encodeURIComponent(username)}/mute`, { until }); }
  removeMember(id, username) { return this.http("DELETE", `/v1/groups/${encodeURIComponent(id)}/members/${encodeURIComponent(username)}`); }
  joinGroup(id) { return this.http("POST", `/v1/groups/${encodeURIComponent(id)}/join`); }
  joinRequests(id) { return this.http("GET", `/v1/groups/${encodeURIComponent(id)}/requests`).then((r) => r?.requests || []); }
  answerJoin(id, username, approve) { return this.http("POST", `/v1/groups/${encodeURIComponent(id)}/requests/${encodeURIComponent(username)}/${approve ? "approve" : "reject"}`); }
  // Friends (HTTP): the remark and group are mine alone; the policy says who may add me.
  friends() { return this.http("GET", "/v1/friends"); }
  requestFriend(username) { return this.http("POST", "/v1/friends/requests", { username }); }
  answerFriend(username, accept) { return this.http("POST", `/v1/friends/requests/${encodeURIComponent(username)}/${accept ? "accept" : "decline"}`); }
  removeFriend(username) { return this.http("DELETE", `/v1/friends/${encodeURIComponent(username)}`); }
  updateFriend(username, fields) { return this.http("PATCH", `/v1/friends/${encodeURIComponent(username)}`, fields); }
  setFriendPolicy(policy) { return this.http("PUT", "/v1/friends/policy", { policy }); }
  // Scheduled messages (HTTP): stored now, sent at sendAt (Unix ms) with a fresh seq.
  schedule({ toUser, toGroup, text, sendAt, clientMsgId = newID() }) {
    return this.http("POST", "/v1/messages", { ...(toGroup ? { to_group: toGroup } : { to_user: toUser }), text, send_at: sendAt, client_msg_id: clientMsgId });
  }
  scheduled() { return this.http("GET", "/v1/messages/scheduled").then((r) => r?.scheduled || []); }
  cancelScheduled(id) { return this.http("DELETE", `/v1/messages/scheduled/${encodeURIComponent(id)}`); }
  // recall and edit change a message of yours (within the server's
  // --recall-window); the change arrives as a message event like any other.
  recall(conversationId, seq) { return this.http("POST", `/v1/conversations/${encodeURIComponent(conversationId)}/messages/${seq}/recall`, { client_msg_id: newID() }); }
  edit(conversationId, seq, text) { return this.http("POST", `/v1/conversations/${encodeURIComponent(conversationId)}/messages/${seq}/edit`, { text, client_msg_id: newID() }); }
  reads(conversationId, seq) { return this.http("GET", `/v1/conversations/${encodeURIComponent(conversationId)}/messages/${seq}/reads`); }
  // uploadFile stores a file (POST /v1/files) and resolves with its
  // metadata. onProgress(sent, total) is called while the body goes out
  // (fetch cannot report that, so it uses XMLHttpRequest where there is one).
  async uploadFile(file, name, { onProgress } = {}) {
    const fd = new FormData();
    fd.append("file", file, name || file.name || "file");
    if (!onProgress || typeof XMLHttpRequest === "undefined") return this.http("POST", "/v1/files", fd);
    if (!this.session) await this.login();
    const send = (token) => new Promise((resolve, reject) => {
      const x = new XMLHttpRequest();
      x.open("POST", this.opts.baseURL + "/v1/files");
      x.setRequestHeader("Authorization", "Bearer " + token);
      x.upload.addEventListener("progress", (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size));
      x.addEventListener("load", () => {
        let data = null;
        try { data = JSON.parse(x.responseText); } catch { /* not JSON */ }
        if (x.status >= 200 && x.status < 300) { resolve(data); return; }
        const e = data?.error || {};
        reject(new MagpieError(e.code || "internal", e.message || x.statusText, { status: x.status, retryAfterMs: e.retry_after_ms || 0 }));
      });
      x.addEventListener("error", () => reject(new TypeError("upload failed: network error")));
      x.addEventListener("abort", () => reject(new TypeError("upload aborted")));
      x.send(fd);
    });
    try {
      return await send(this.session.token);
    } catch (err) {
      if (!(err instanceof MagpieError && err.code === Codes.unauthenticated && this.password)) throw err;
      await this.login();
      return send(this.session.token);
    }
  }
  // fileBlob downloads a file with the Authorization header, as a Blob; a
  // page shows it with URL.createObjectURL (the server takes no token in
  // the URL, where it would land in history and logs).
  fileBlob(id) { return this.http("GET", `/v1/files/${encodeURIComponent(id)}`, undefined, { raw: true }); }

  // ---- the long connection ---------------------------------------------

  // start logs in if needed, connects and syncs; it resolves once ready and
  // keeps the connection up (with backoff) until close(). It rejects if the
  // first attempt fails with an error that retrying cannot fix.
  start() {
    if (this._running) return this.ready();
    if (!this._webSocketClass()) {
      return Promise.reject(new TypeError("magpie: no WebSocket class: pass new Magpie({ WebSocket }) " +
        "or run where globalThis.WebSocket exists (Node 22+, or Node 20 with --experimental-websocket)"));
    }
    this._running = true;
    this._abort = new AbortController();
    const first = this.ready();
    this._loop();
    return first;
  }

  // ready resolves when the client is connected and synced.
  ready() {
    if (this.state === State.ready) return Promise.resolve();
    if (this.state === State.closed) return Promise.reject(this._closedErr || new Error("closed"));
    return new Promise((resolve, reject) => this._readyWaiters.push({ resolve, reject }));
  }

  // reconnectNow ends the wait before the next connection attempt.
  reconnectNow() { this._nap?.abort(); }

  close(err) {
    this._running = false;
    this._abort.abort();
    this._nap?.abort();
    this._closedErr = err || null;
    this._ws?.close(1000);
    this._setState(State.closed, err);
  }

  async _loop() {
    for (let attempt = 0; this._running; attempt++) {
      let why;
      try {
        this._setState(attempt === 0 && this.state !== State.reconnecting ? State.connecting : State.reconnecting, null);
        const lost = await this._connectOnce();
        attempt = -1; // connected: the next failure starts the backoff over
        why = await lost;
      } catch (err) {
        why = err;
      }
      if (!this._running) return;
      // A draining gateway sends us elsewhere: the token we hold asks for
      // a live one (GET /v1/gateway), with no new login.
      if (why?.kickCode === Codes.draining) this._reroute = true;
      if (why instanceof MagpieError) {
        // Without the password, another holder of the session (a tab
        // that logged in again) may have a newer token: opts.freshSession.
        const fresh = this.opts.freshSession?.();
        const newer = fresh?.token && fresh.token !== this.session?.token ? fresh : null;
        if (why.code === Codes.replaced) {
          // Never log in again with the password here: two tabs would
          // take the device from each other forever.
          if (!newer) { this.close(why); return; }
          this.session = newer;
        } else if (why.action === "relogin") {
          this.session = newer;
          if (!this.password && !newer) { this.close(why); return; }
        } else if (why.action === "give_up") { this.close(why); return; }
      }
      const base = Math.min(this.opts.backoffMaxMs, this.opts.backoffMinMs * 2 ** Math.max(0, attempt));
      let delay = base / 2 + Math.random() * base / 2;
      if (why?.retryAfterMs > delay) delay = why.retryAfterMs;
      this._setState(State.reconnecting, why, Math.round(delay));
      this._nap = new AbortController();
      await sleep(delay, this._nap.signal);
      this._nap = null;
    }
  }

  // _webSocketClass is opts.WebSocket, else the global one (null if none).
  _webSocketClass() { return this.opts.WebSocket || globalThis.WebSocket || null; }

  // wsURL is the WebSocket URL to dial: opts.wsURL, else the gateway the
  // login named, else baseURL's /v1/ws.
  wsURL() {
    if (this.opts.wsURL) return this.opts.wsURL;
    let u = this.session?.gateway?.ws;
    const inPage = typeof location !== "undefined";
    const base = this.opts.baseURL || (inPage ? location.origin : "");
    if (!u && base) u = new URL(base).origin.replace(/^http/, "ws") + "/v1/ws";
    if (!u) throw new TypeError("magpie: no WebSocket URL: the login named no gateway and there is no baseURL");
    // A single node advertises loopback; a page opened as localhost (or
    // through a proxy) must dial its own origin or the Origin check fails.
    // Outside a page (Node, React Native) no Origin is sent: dial as given.
    const page = inPage ? new URL(base) : null;
    if (page) {
      const g = new URL(u);
      const loop = (h) => h === "localhost" || h.startsWith("127.") || h === "[::1]";
      if (loop(g.hostname) && (g.host !== page.host) && (loop(page.hostname) || g.port === (page.port || ""))) {
        g.host = page.host;
      }
      if (page.protocol === "https:") g.protocol = "wss:";
      u = g.toString();
    }
    return u;
  }

  // _connectOnce dials, authenticates and syncs. It resolves with a promise
  // that settles (with the reason) when the connection is lost.
  async _connectOnce() {
    if (!this.session) await this.login();
    if (this._reroute) {
      const r = await this.http("GET", "/v1/gateway");
      this._reroute = false;
      if (r?.gateway && this.session) {
        this.session = { ...this.session, gateway: r.gateway };
        this.emit("session", this.session);
      }
    }
    if (!this._baselined) await this._baseline();
    const WS = this._webSocketClass();
    if (!WS) throw new TypeError("magpie: no WebSocket class (opts.WebSocket or globalThis.WebSocket)");
    const ws = new WS(this.wsURL(), "magpie.v1.json");
    this._ws = ws;
    let lostResolve;
    const lost = new Promise((r) => { lostResolve = r; });
    let lostWhy = null;
    const opened = new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new ConnectionLost("cannot connect"));
    });
    ws.onmessage = (ev) => {
      let env;
      try { env = JSON.parse(ev.data); } catch { return; }
      if (env.kick) {
        const k = env.kick;
        lostWhy = new MagpieError(num(k.code), k.reason || "kicked");
        lostWhy.kickReconnect = !!k.reconnect;
        this.emit("kick", { code: num(k.code), reason: k.reason || "", reconnect: !!k.reconnect });
        return;
      }
      this._onEnvelope(env);
    };
    ws.onclose = (ev) => {
      if (this._ws === ws) this._ws = null;
      clearInterval(this._pinger);
      const err = new ConnectionLost(ev.reason || "closed (" + ev.code + ")");
      for (const w of this._waiting.values()) w.reject(err);
      this._waiting.clear();
      // A kick that says reconnect is not the end, whatever its code.
      if (lostWhy?.kickReconnect) lostWhy = Object.assign(new ConnectionLost(lostWhy.message), { retryAfterMs: 0, kickCode: lostWhy.code });
      lostResolve(lostWhy || err);
    };
    await opened;
    const ok = await this.request({ auth: { token: this.session.token } }, ws);
    const hb = num(ok.auth_ok?.heartbeat_seconds) || 30;
    this._pinger = setInterval(() => {
      this.request({ ping: { time: String(Date.now()) } }, ws).catch(() => {});
    }, Math.max(1000, hb * 1000 / 2));
    await this._sync(ws);
    this._setState(State.ready, null);
    this._resume();
    return lost;
  }

  // _baseline sets the first cursors from the conversation list, so a new
  // page does not download every conversation from the start.
  async _baseline() {
    const r = await this.conversationsHTTP();
    for (const c of r.conversations || []) {
      const st = this.convs.update({
        id: c.id, kind: c.kind || "", name: c.name || "", peer: c.peer || "", peerId: num(c.peer_id),
        lastSeq: num(c.last_seq), deliveredSeq: num(c.delivered_seq), readSeq: num(c.read_seq),
        peerDeliveredSeq: num(c.peer_delivered_seq), peerReadSeq: num(c.peer_read_seq),
        pinned: !!c.pinned, muted: !!c.muted, clearedSeq: num(c.cleared_seq),
        lastMessage: c.last_message ? normMessage({ ...c.last_message, peer: c.peer }) : null,
      });
      const unreadFrom = Math.max(0, st.lastSeq - this.opts.window, st.readSeq, st.clearedSeq);
      st.cursor = Math.max(st.cursor, Math.min(unreadFrom, st.lastSeq));
      st.baseline = st.cursor;
      this.emit("conversation", st);
    }
    this._baselined = true;
  }

  // request sends one envelope body and resolves with the answer envelope,
  // or rejects with MagpieError / ConnectionLost.
  request(body, ws = this._ws) {
    if (!ws || ws.readyState !== 1) return Promise.reject(new ConnectionLost("not connected"));
    const id = this._nextID++;
    return new Promise((resolve, reject) => {
      this._waiting.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id: String(id), ...body }));
    });
  }

  // call is request() that waits for the connection and retries what the
  // server says to retry; a lost connection waits for the next one.
  async call(body) {
    for (let attempt = 0; ; attempt++) {
      if (this.state === State.closed) throw this._closedErr || new Error("closed");
      await this.ready();
      try {
        return await this.request(body);
      } catch (err) {
        if (err instanceof ConnectionLost) continue;
        if (err instanceof MagpieError && err.action === "retry") {
          await sleep(Math.max(err.retryAfterMs, Math.min(5000, 200 * 2 ** attempt)), this._abort.signal);
          continue;
        }
        if (err instanceof MagpieError && (err.action === "relogin" || err.action === "reconnect")) {
          this._ws?.close(4000, err.codeName);
          continue;
        }
        throw err;
      }
    }
  }

  _onEnvelope(env) {
    const id = num(env.id);
    if (id) {
      const w = this._waiting.get(id);
      if (!w) return;
      this._waiting.delete(id);
      if (env.error) w.reject(new MagpieError(num(env.error.code), env.error.message, { retryAfterMs: num(env.error.retry_after_ms) }));
      else w.resolve(env);
      return;
    }
    if (env.message) {
      const m = normMessage(env.message);
      if (m.transient || !m.seq) { this.emit("transient", m); return; }
      this.stats.live++;
      this._ingest([m], "live");
    } else if (env.receipt) {
      this._onReceipt(env.receipt);
    } else if (env.conversation) {
      const st = this.convs.applyState(env.conversation, this.userId);
      this.emit("conversation", st);
    } else if (env.typing) {
      const t = env.typing;
      this.emit("typing", { conversationId: t.conversation_id, userId: num(t.user_id), username: t.username || "", stopped: !!t.stopped });
    } else if (env.notice) {
      this.emit("notice", normNotice(env.notice));
    }
  }

  _onReceipt(r) {
    const rc = {
      conversationId: r.conversation_id, kind: r.kind === "RECEIPT_KIND_READ" ? "read" : "delivered",
      seq: num(r.seq), userId: num(r.user_id), username: r.username || "",
    };
    const st = this.convs.get(rc.conversationId);
    if (rc.userId === this.userId) { // my other device
      if (rc.kind === "read") st.readSeq = Math.max(st.readSeq, rc.seq);
      st.deliveredSeq = Math.max(st.deliveredSeq, rc.seq);
    } else if (st.kind !== "group") {
      if (rc.kind === "read") st.peerReadSeq = Math.max(st.peerReadSeq, rc.seq);
      st.peerDeliveredSeq = Math.max(st.peerDeliveredSeq, rc.seq);
    }
    this.emit("receipt", rc);
    this.emit("conversation", st);
  }

  async _sync(ws) {
    const cur = this.convs.cursors();
    for (;;) {
      const cursors = Object.entries(cur).map(([conversation_id, seq]) => ({ conversation_id, seq: String(seq) }));
      const r = await this.request({ sync: { cursors, limit: 500 } }, ws);
      const res = r.sync_result || {};
      for (const s of res.conversations || []) this.emit("conversation", this.convs.applyState(s, this.userId));
      const msgs = (res.messages || []).map(normMessage);
      this.stats.sync += msgs.length;
      this._ingest(msgs, "sync");
      const firsts = new Map();
      for (const m of msgs) if (!firsts.has(m.conversationId)) firsts.set(m.conversationId, m.seq);
      for (const [id, first] of firsts) this._skipMissing(id, cur[id] || 0, first);
      let progressed = false;
      for (const m of msgs) if (m.seq > (cur[m.conversationId] || 0)) { cur[m.conversationId] = m.seq; progressed = true; }
      if (!res.more || !progressed) return;
    }
  }

  _resume() {
    for (const st of this.convs.all()) { this._maybeFill(st); this._maybeReceipt(st); }
  }

  // _ingest takes messages from any source; fromSelf marks this client's
  // own acks, which advance the cursor without an event.
  _ingest(msgs, source, fromSelf = false) {
    const touched = new Map();
    for (const m of msgs) {
      if (!m.conversationId || !m.seq) continue;
      const st = this.convs.get(m.conversationId);
      st.known = Math.max(st.known, m.seq);
      st.lastSeq = Math.max(st.lastSeq, m.seq);
      if (!st.peer && m.peer && st.kind !== "group") st.peer = m.peer;
      if (st.kind === "group" && !st.name) this._groupName(st);
      if (m.seq <= st.cursor || st.pending.has(m.seq)) { this.stats.duplicates++; continue; }
      const silent = fromSelf || (m.senderId === this.userId && this._sending.has(m.clientMsgId));
      if (!touched.has(st.id)) touched.set(st.id, st.cursor);
      st.pending.set(m.seq, { m, silent, source });
    }
    for (const [id, before] of touched) this._advance(this.convs.get(id), before);
  }

  _advance(st, before) {
    for (;;) {
      const p = st.pending.get(st.cursor + 1);
      if (!p) break;
      st.pending.delete(st.cursor + 1);
      st.cursor++;
      const m = p.m;
      if (m.senderId === this.userId) st.readSeq = Math.max(st.readSeq, m.seq); // sending reads
      if (!p.silent) {
        st.lastMessage = m;
        this.emit("message", m);
      }
    }
    if (st.cursor > before) {
      st.receiptWant = Math.max(st.receiptWant, st.cursor);
      this._maybeReceipt(st);
      this.emit("conversation", st);
    }
    this._maybeFill(st);
  }

  // _skipMissing: an answer for seqs after `after` that starts above
  // after+1 means the server has nothing in between for this user (before
  // they joined a group); waiting for those would stall the conversation.
  _skipMissing(id, after, first) {
    const st = this.convs.get(id);
    if (st.cursor !== after || first <= after + 1) return;
    st.cursor = first - 1;
    for (const seq of st.pending.keys()) if (seq <= st.cursor) st.pending.delete(seq);
    this._advance(st, after);
  }

  _maybeFill(st) {
    if (st.filling || (st.pending.size === 0 && st.known <= st.cursor) || this.state !== State.ready) return;
    st.filling = true;
    this._fill(st);
  }

  async _fill(st) {
    try {
      for (;;) {
        const after = st.cursor;
        if (st.pending.size === 0 && st.known <= after) return;
        const r = await this.request({ history: { conversation_id: st.id, after_seq: String(after), limit: this.opts.pageLimit } });
        const msgs = (r.history_result?.messages || []).map(normMessage);
        this.stats.fill += msgs.length;
        this._ingest(msgs, "fill");
        if (msgs.length) this._skipMissing(st.id, after, msgs[0].seq);
        if (st.cursor === after) { st.known = st.cursor; return; } // nothing more
      }
    } catch {
      // Lost connection or refused: the next sync or live message retries.
    } finally {
      st.filling = false;
    }
  }

  _maybeReceipt(st) {
    if (st.receiptBusy || st.receiptWant <= st.receiptSent || this.state !== State.ready) return;
    st.receiptBusy = true;
    (async () => {
      try {
        while (st.receiptWant > st.receiptSent) {
          const want = st.receiptWant;
          await this.request({ receipt: { conversation_id: st.id, kind: "RECEIPT_KIND_DELIVERED", seq: String(want) } });
          st.receiptSent = Math.max(st.receiptSent, want);
          st.deliveredSeq = Math.max(st.deliveredSeq, want);
        }
      } catch {
        // retried after the next sync
      } finally {
        st.receiptBusy = false;
      }
    })();
  }

  // _groupName looks up the name of a group first seen in a message.
  async _groupName(st) {
    if (st.nameAsked) return;
    st.nameAsked = true;
    try {
      const g = await this.group(st.id);
      if (g?.name) { st.name = g.name; this.emit("conversation", st); }
    } catch {
      st.nameAsked = false; // try again with the next message
    }
  }

  // markRead moves this user's read cursor (every device sees the unread
  // count drop; the peer sees "read").
  async markRead(conversationId, seq) {
    const st = this.convs.get(conversationId);
    if (!seq || seq <= st.readSentSeq) return;
    st.readSentSeq = seq;
    st.readSeq = Math.max(st.readSeq, seq);
    this.emit("conversation", st);
    try {
      await this.call({ receipt: { conversation_id: conversationId, kind: "RECEIPT_KIND_READ", seq: String(seq) } });
    } catch (err) {
      st.readSentSeq = 0;
      throw err;
    }
  }

  // send stores a message and resolves with the ack {conversationId, seq,
  // clientMsgId, sentAt, duplicate} once the server committed it. Lost
  // connections and retryable errors resend with the same client_msg_id
  // (the server answers a repeat with the original seq), so a message is
  // stored once however often it is retried. Rejects with MagpieError for
  // errors that retrying cannot fix (not a member, too large, …).
  async send({ toUser, toGroup, text = "", fileId, file, replyTo = 0, clientMsgId = newID() }) {
    if (file?.id) fileId = file.id; // file: the upload's answer, kept on the message
    const body = { client_msg_id: clientMsgId, text };
    if (toGroup) body.to_group = toGroup; else body.to_user = toUser;
    if (fileId) body.file_id = fileId;
    if (replyTo) body.reply_to = replyTo;
    this._sending.add(clientMsgId);
    try {
      const r = await this.call({ send: body });
      const a = r.send_ack || {};
      const ack = { conversationId: a.conversation_id, seq: num(a.seq), clientMsgId, sentAt: num(a.sent_at), duplicate: !!a.duplicate };
      const st = this.convs.get(ack.conversationId);
      if (toUser && !st.peer) st.peer = toUser;
      if (!st.kind) st.kind = toGroup ? "group" : "private";
      const m = {
        conversationId: ack.conversationId, seq: ack.seq, senderId: this.userId, sender: this.username, clientMsgId, text,
        sentAt: ack.sentAt, kind: fileId ? "file" : "text", peer: st.peer, refSeq: replyTo,
        file: fileId ? { id: fileId, name: file?.name || "", contentType: file?.content_type || file?.contentType || "", size: num(file?.size) } : null,
        event: null, transient: false, editedAt: 0, recalled: false,
      };
      this._ingest([m], "ack", true);
      st.lastMessage = m;
      this.emit("conversation", st);
      return ack;
    } finally {
      this._sending.delete(clientMsgId);
    }
  }

  // history reads a page of a conversation, oldest first: {before} for the
  // latest messages below a seq, {after} for those above one. It does not
  // move cursors or emit events.
  async history(conversationId, { before = 0, after = 0, limit = 50 } = {}) {
    const q = { conversation_id: conversationId, limit };
    if (before) q.before_seq = String(before);
    if (after) q.after_seq = String(after);
    const r = await this.call({ history: q });
    return { messages: (r.history_result?.messages || []).map(normMessage), lastSeq: num(r.history_result?.last_seq) };
  }

  _setState(state, error, retryInMs = 0) {
    const changed = state !== this.state;
    this.state = state;
    if (state === State.ready) { for (const w of this._readyWaiters.splice(0)) w.resolve(); }
    if (state === State.closed) { for (const w of this._readyWaiters.splice(0)) w.reject(error || new Error("closed")); }
    if (changed || error || retryInMs) this.emit("state", { state, error: error || null, retryInMs });
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }
}

// privateID is the conversation id of two users' private chat.
// Typing notices: a typing client repeats one every TYPING_EVERY_MS; a
// receiver shows one for TYPING_SHOW_MS unless renewed (client.TypingShowFor
// in the Go SDK).
export const TYPING_EVERY_MS = 3000;
export const TYPING_SHOW_MS = 6000;

export const privateID = (a, b) => `p_${Math.min(a, b)}_${Math.max(a, b)}`;
