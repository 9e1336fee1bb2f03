// sidebar.js: the conversation list (unread counts, last message) and the
// online users, from which a private chat starts.

import { h, replace, $, timeLabel } from "./dom.js";
import { privateID } from "./magpie.js";
import { eventText, byAdmin } from "./chatview.js";

export class Sidebar {
  // The client changes when the user signs in again.
  get client() { return this.app.client; }

  constructor(app) {
    this.app = app;
    this.convList = $("#conv-list");
    this.onlineList = $("#online-list");
    this.online = [];
  }

  render() {
    const convs = this.client.convs.all()
      .filter((c) => !c.left && (c.id === this.app.current || (!c.hidden && (c.lastSeq > 0 || c.kind === "group"))))
      .sort((a, b) => (b.lastMessage?.sentAt || 0) - (a.lastMessage?.sentAt || 0) || b.lastSeq - a.lastSeq);
    const focused = document.activeElement?.dataset?.conv;
    const items = convs.map((c) => {
      const unread = c.unread;
      const preview = previewText(c, this.client.userId);
      const btn = h("button", {
        type: "button", "data-conv": c.id, "aria-current": c.id === this.app.current ? "true" : undefined,
        "aria-label": `${c.title}${c.kind === "group" ? " (group)" : ""}${unread ? `, ${unread} unread` : ""}`,
      },
      h("span", { class: "conv-title" }, c.kind === "group" ? "# " : "", c.title),
      unread ? h("span", { class: "badge", "data-unread": unread, "aria-hidden": "true" }, String(unread)) : null,
      h("span", { class: "conv-preview" }, preview));
      btn.addEventListener("click", () => this.app.openConversation(c.id, { focusComposer: true }));
      return h("li", {}, btn);
    });
    if (!items.length) items.push(h("li", { class: "empty" }, "No conversations yet."));
    replace(this.convList, items);
    if (focused) this.convList.querySelector(`[data-conv="${CSS.escape(focused)}"]`)?.focus();
  }

  // search shows my messages with every word of q (GET /v1/search), best
  // first; choosing one opens its chat at that message.
  async search(q) {
    const status = $("#search-status");
    $("#search-results").hidden = false;
    replace($("#search-list"));
    status.textContent = "Searching…";
    let page;
    try {
      page = await this.client.search(q, { limit: 20 });
    } catch (e) {
      status.textContent = "Could not search: " + e.message;
      return;
    }
    const n = page.hits.length;
    status.textContent = !n ? `No messages with “${q}”.` : `${n}${page.nextCursor ? "+" : ""} message${n === 1 ? "" : "s"} with “${q}”${page.nextCursor ? " (add words to narrow it)" : ""}.`;
    replace($("#search-list"), page.hits.map(({ message: m, highlights }) => {
      const conv = this.client.convs.get(m.conversationId);
      const who = m.senderId === this.client.userId ? "You" : m.sender;
      const btn = h("button", { type: "button", class: "hit", "data-conv": m.conversationId, "data-seq": m.seq },
        h("span", { class: "conv-title" }, conv.kind === "group" ? "# " : "", conv.title),
        h("span", { class: "hit-meta" }, ` ${who} · ${timeLabel(m.sentAt)}`),
        h("span", { class: "hit-text" }, marked(m.text, highlights)));
      btn.addEventListener("click", () => this.app.openHit(m));
      return h("li", {}, btn);
    }));
  }

  closeSearch() {
    $("#search-results").hidden = true;
    replace($("#search-list"));
    $("#search-q").value = "";
  }

  async refreshOnline() {
    try {
      this.online = await this.client.online();
    } catch {
      return; // offline: keep the last list
    }
    this.renderOnline();
  }

  // renderNotices lists the broadcasts and notifications this page got
  // (they are transient: the server keeps none, so a reload starts empty).
  renderNotices(notices) {
    $("#notices").hidden = !notices.length;
    replace($("#notice-list"), notices.map((n) => h("li", { class: "notice" },
      h("span", { class: "who" }, n.sender || "Server"), ": ", h("span", { class: "notice-text" }, n.text),
      h("time", { datetime: n.sentAt ? new Date(n.sentAt).toISOString() : undefined }, " · ", timeLabel(n.sentAt || Date.now())))));
  }

  // offline: who is online is unknown until the connection is back, so the
  // list says so instead of showing the last answer as if it were current.
  offline() {
    this.online = [];
    replace(this.onlineList, h("li", { class: "empty", "data-offline": "true" }, "Not connected: shown again once reconnected."));
  }

  renderOnline() {
    const others = this.online.filter((u) => u.userId !== this.client.userId).sort((a, b) => a.username.localeCompare(b.username));
    const items = others.map((u) => {
      const btn = h("button", { type: "button", "data-user": u.username, "aria-label": `Chat with ${u.username} (online)` },
        h("span", { class: "conv-title" }, h("span", { class: "dot", "aria-hidden": "true" }), u.username));
      btn.addEventListener("click", () => {
        const id = privateID(this.client.userId, u.userId);
        const c = this.client.convs.get(id);
        if (!c.peer) Object.assign(c, { peer: u.username, peerId: u.userId, kind: "private" });
        this.app.openConversation(id, { focusComposer: true });
      });
      return h("li", {}, btn);
    });
    if (!items.length) items.push(h("li", { class: "empty" }, "Nobody else is online."));
    replace(this.onlineList, items);
  }
}

// marked splits text into text nodes and <mark>s at the highlights (code
// point offsets, as GET /v1/search gives them).
export function marked(text, spans) {
  const cps = Array.from(text || "");
  const out = [];
  let at = 0;
  for (const { start, end } of spans) {
    if (start < at || end > cps.length || start >= end) continue;
    if (start > at) out.push(cps.slice(at, start).join(""));
    out.push(h("mark", {}, cps.slice(start, end).join("")));
    at = end;
  }
  if (at < cps.length) out.push(cps.slice(at).join(""));
  return out;
}

function previewText(c, me) {
  const m = c.lastMessage;
  if (!m) return "";
  const who = m.senderId === me ? "You: " : c.kind === "group" && m.sender ? m.sender + ": " : "";
  if (m.recalled) return who + (byAdmin(m) ? "removed by admin" : "message recalled");
  if (m.kind === "recall" && byAdmin(m)) return "A message was removed by admin";
  if (m.kind === "recall") return (m.senderId === me ? "You" : m.sender || "Someone") + " recalled a message";
  if (m.kind === "event" || m.kind === "notification") return eventText(m);
  if (m.file && !m.text) return who + "File: " + (m.file.name || "file");
  return who + (m.text || "");
}
