// chatview.js: the open conversation: its messages (a contiguous range of
// seqs, grown upwards with history as the user scrolls), the optimistic
// outbox, each own message's sent / delivered / read state, and the
// composer.

import { h, replace, $, timeLabel, sizeLabel, announce } from "./dom.js";
import { newID } from "./magpie.js";
import { imageViewer } from "./dialogs.js";

const PAGE = 50;
const CONTEXT = 5; // read messages shown above the first unread one
const MAX_REVEAL = 20; // pages of older messages loaded to reach a search hit

// Thread is what the page holds of one conversation.
class Thread {
  constructor() {
    this.msgs = new Map();   // seq -> message (from events, history and own acks)
    this.floor = 0;          // lowest seq loaded; 0: nothing loaded yet
    this.gapAbove = 0;       // seqs above this are not loaded yet (opened at the first unread); 0: none
    this.firstUnread = 0;    // where the unread divider goes; 0: none
    this.hasOlder = true;
    this.loading = false;
    this.outbox = new Map(); // clientMsgId -> {text, file, blob, meta, previewURL, state, error, after}
    this.draft = "";         // what was typed in the message box and not sent
    this.reads = new Map();  // seq -> {read_count, member_count, readers} (groups)
  }
}

export class ChatView {
  // The client changes when the user signs in again.
  get client() { return this.app.client; }

  constructor(app) {
    this.app = app;
    this.threads = new Map(); // conversation id, or "@name" for a new private chat
    this.key = null;          // the open thread
    this.els = new Map();     // row key -> <li>
    this.list = $("#msg-list");
    this.scroller = $("#messages");
    this.olderBtn = $("#load-older");
    this.scroller.addEventListener("scroll", () => {
      if (this.scroller.scrollTop < 60) this.loadOlder();
      this.stuck = this.atBottom(); // follow new messages while the reader is at the bottom
      if (this.stuck) this.loadNewer();
      this.updateJumps();
      this.app.markReadSoon(); // read up to what has been seen
    });
    this.olderBtn.addEventListener("click", () => this.loadOlder(true));
    this.scroller.addEventListener("keydown", (e) => this.onKey(e));
    this.newBelowBtn = $("#new-below");
    this.jumpUnreadBtn = $("#jump-unread");
    this.newBelowBtn.addEventListener("click", async () => {
      const t = this.key && this.thread(this.key);
      if (t?.gapAbove) await this.jumpToLatest();
      this.scroller.scrollTop = this.scroller.scrollHeight;
      $("#composer-text").focus();
    });
    this.jumpUnreadBtn.addEventListener("click", () => {
      const d = this.els.get("unread");
      if (d) this.scroller.scrollTop += d.getBoundingClientRect().top - this.scroller.getBoundingClientRect().top - 8;
      (this.list.querySelector("#unread-divider + li") || this.scroller).focus();
    });
    this.readsTimer = 0;
    this.blobs = new Map();   // file id -> Promise of a blob: URL (fetched once per page)
  }

  // reset forgets everything of the previous user.
  reset() {
    this.threads.clear();
    for (const p of this.blobs.values()) p.then((u) => URL.revokeObjectURL(u), () => {});
    this.blobs.clear();
  }

  // fileURL fetches a file with the Authorization header and resolves to a
  // blob: URL for <img src> and download links.
  fileURL(id) {
    let p = this.blobs.get(id);
    if (!p) {
      p = this.client.fileBlob(id).then((b) => URL.createObjectURL(b));
      p.catch(() => this.blobs.delete(id)); // try again next time
      this.blobs.set(id, p);
    }
    return p;
  }

  thread(key) {
    let t = this.threads.get(key);
    if (!t) { t = new Thread(); this.threads.set(key, t); }
    return t;
  }

  // open shows a conversation ("p_1_2", "g_3") or a new private chat ("@bob").
  async open(key) {
    if (this.key !== key) { this.list.replaceChildren(); this.els.clear(); }
    this.key = key;
    $("#chat-empty").hidden = true;
    const t = this.thread(key);
    const conv = key.startsWith("@") ? null : this.client.convs.get(key);
    // The divider marks the first unread message as the chat opens; it
    // stays put while the chat is open.
    t.firstUnread = conv && conv.lastSeq > conv.readSeq ? conv.readSeq + 1 : 0;
    if (!t.floor && !key.startsWith("@")) {
      this.render({ stick: true });
      await this.loadLatest(key);
    } else this.render({ unread: true });
    this.refreshGroupReads();
  }

  close() {
    this.key = null;
    this.newBelowBtn.hidden = this.jumpUnreadBtn.hidden = true;
    this.list.replaceChildren();
    this.els.clear();
    $("#chat-empty").hidden = false;
    this.olderBtn.hidden = true;
  }

  // loadLatest reads the page below the delivery cursor; messages after it
  // arrive as events and join the same range.
  //
  // With more unread messages than a page, it reads from the first unread
  // one instead (and a few read ones above it for context): the reader
  // starts there and the messages above the page are loaded as they
  // scroll down (loadNewer), so nothing is marked read unseen.
  async loadLatest(id) {
    const t = this.thread(id);
    const conv = this.client.convs.get(id);
    const cursor = conv.cursor;
    if (!cursor) { t.floor = 1; t.hasOlder = false; this.render({ stick: true }); return; }
    t.loading = true;
    try {
      const read = conv.readSeq;
      if (cursor - read > PAGE) {
        const [above, unread] = await Promise.all([
          read ? this.client.history(id, { before: read + 1, limit: CONTEXT }) : { messages: [] },
          this.client.history(id, { after: read, limit: PAGE }),
        ]);
        const all = [...above.messages, ...unread.messages];
        for (const m of all) this.put(t, m);
        t.floor = all.length ? all[0].seq : read + 1;
        t.hasOlder = above.messages.length >= CONTEXT && t.floor > 1;
        const top = unread.messages.length ? unread.messages[unread.messages.length - 1].seq : cursor;
        t.gapAbove = top >= this.client.convs.get(id).cursor ? 0 : top;
      } else {
        const { messages } = await this.client.history(id, { before: cursor + 1, limit: PAGE });
        this.addHistory(t, messages, cursor + 1);
      }
    } catch (err) {
      this.app.toast("Could not load messages: " + err.message);
    } finally {
      t.loading = false;
    }
    if (this.key === id) this.render({ unread: true });
  }

  // loadNewer reads the next page above the loaded range, when the chat
  // was opened at its first unread message and the reader reached the end.
  async loadNewer() {
    const id = this.key;
    if (!id || id.startsWith("@")) return;
    const t = this.thread(id);
    if (t.loading || !t.gapAbove) return;
    t.loading = true;
    try {
      const { messages } = await this.client.history(id, { after: t.gapAbove, limit: PAGE });
      for (const m of messages) this.put(t, m);
      const top = messages.length ? messages[messages.length - 1].seq : t.gapAbove;
      t.gapAbove = messages.length < PAGE || top >= this.client.convs.get(id).cursor ? 0 : top;
    } catch (err) {
      this.app.toast("Could not load newer messages: " + err.message);
    } finally {
      t.loading = false;
    }
    if (this.key === id) this.render({});
    this.app.markReadSoon();
  }

  // jumpToLatest drops a partly loaded range and shows the latest page
  // (after the reader sends: their message is the newest).
  async jumpToLatest() {
    const id = this.key;
    const t = this.thread(id);
    if (!t.gapAbove) return;
    t.msgs.clear();
    t.floor = 0;
    t.gapAbove = 0;
    t.firstUnread = 0;
    this.list.replaceChildren();
    this.els.clear();
    await this.loadLatest(id);
    this.render({ stick: true });
  }

  // seenSeq is the highest seq whose row has been on screen: the open chat
  // is read up to it (not further: opening a chat with 300 unread and
  // showing 50 must not mark 300 read).
  seenSeq() {
    const bottom = this.scroller.getBoundingClientRect().bottom;
    const rows = this.list.querySelectorAll("li[data-seq]");
    for (let i = rows.length - 1; i >= 0; i--) {
      const r = rows[i].getBoundingClientRect();
      if (r.height && r.top < bottom - 4) return Number(rows[i].dataset.seq);
    }
    return 0;
  }

  async loadOlder(byButton = false) {
    const id = this.key;
    if (!id || id.startsWith("@")) return;
    const t = this.thread(id);
    if (t.loading || !t.hasOlder || !t.floor) return;
    t.loading = true;
    const before = this.scroller.scrollHeight - this.scroller.scrollTop;
    try {
      const { messages } = await this.client.history(id, { before: t.floor, limit: PAGE });
      this.addHistory(t, messages, t.floor);
    } catch (err) {
      this.app.toast("Could not load older messages: " + err.message);
    } finally {
      t.loading = false;
    }
    if (this.key !== id) return;
    this.render({});
    this.scroller.scrollTop = this.scroller.scrollHeight - before; // keep the reader's place
    if (byButton) (this.olderBtn.hidden ? this.scroller : this.olderBtn).focus();
  }

  // reveal scrolls the open chat to one of its messages (a search hit),
  // loading older pages until it is in the range; false if it is not there
  // after MAX_REVEAL pages (or not visible to this user).
  async reveal(seq) {
    const id = this.key;
    if (!id || id.startsWith("@")) return false;
    const t = this.thread(id);
    for (let i = 0; i < MAX_REVEAL && t.floor > seq && t.hasOlder && this.key === id; i++) {
      while (t.loading) await new Promise((r) => setTimeout(r, 50));
      await this.loadOlder();
    }
    const li = this.els.get("s" + seq);
    if (this.key !== id || !li) return false;
    li.scrollIntoView({ block: "center" });
    this.stuck = this.atBottom();
    li.classList.add("found");
    setTimeout(() => li.classList.remove("found"), 3000);
    li.focus(); // rows are focusable (tabindex -1, see rove)
    return true;
  }

  addHistory(t, messages, below) {
    for (const m of messages) this.put(t, m);
    const lowest = messages.length ? messages[0].seq : below;
    t.floor = t.floor ? Math.min(t.floor, lowest) : lowest;
    t.hasOlder = messages.length >= PAGE && t.floor > 1;
  }

  // put stores a message; recalls and edits change the message they name.
  put(t, m) {
    if (m.kind === "recall" || m.kind === "edit") {
      const target = t.msgs.get(m.refSeq);
      if (target && m.kind === "recall") Object.assign(target, { recalled: true, text: "", file: null, event: m.event || target.event });
      if (target && m.kind === "edit") Object.assign(target, { text: m.text, editedAt: m.sentAt });
    }
    const old = t.msgs.get(m.seq);
    if (old && (old.recalled || old.editedAt) && !m.recalled && !m.editedAt) return; // keep what we applied
    t.msgs.set(m.seq, m);
  }

  // onMessage takes a message event from the client.
  onMessage(m) {
    const t = this.thread(m.conversationId);
    if (m.kind === "event" && m.event) {
      const conv = this.client.convs.get(m.conversationId);
      const me = (m.event.usernames || []).includes(this.client.username) || (!(m.event.usernames || []).length && m.event.actor === this.client.username);
      if (me && ["left", "removed"].includes(m.event.type)) conv.left = true;
      if (m.event.type === "dissolved") conv.left = true;
      if (me && ["added", "joined", "created", "approved"].includes(m.event.type)) conv.left = false;
      if (m.event.type === "updated") {
        const name = updateFields(m.event.detail).name;
        if (typeof name === "string") this.app.groupRenamed(conv.id, name);
      }
    }
    this.put(t, m);
    if (t.floor === 0) t.floor = 0; // not loaded: history will include it
    const mine = m.senderId === this.client.userId;
    if (this.key === m.conversationId) {
      const follow = this.atBottom() || mine;
      if (!follow && m.kind !== "recall" && m.kind !== "edit") t.newBelow = (t.newBelow || 0) + 1;
      this.render({ stick: follow });
      if (!mine) announce(`${m.sender}: ${m.text || (m.file ? "sent a file" : "")}`);
    }
  }

  // send shows the message at once, then stores it with the server.
  send({ text, file, replyTo = 0 }) {
    const key = this.key;
    if (!key) return;
    const t = this.thread(key);
    const entry = { text, replyTo, file: file ? { name: file.name, contentType: file.type, size: file.size } : null, blob: file || null, state: "sending", sentAt: Date.now() };
    if (file && file.type.startsWith("image/")) entry.previewURL = URL.createObjectURL(file);
    const id = newID();
    t.outbox.set(id, entry);
    this.render({ stick: true });
    return this.deliver(key, id, entry);
  }

  // retry sends a failed message again, file included, under the same
  // client_msg_id (the server stores it once even if the first try got
  // through); a file uploaded before the failure is not uploaded again.
  retry(key, id) {
    const entry = this.thread(key).outbox.get(id);
    if (!entry || entry.state !== "failed") return;
    Object.assign(entry, { state: "sending", error: "" });
    this.render({});
    $("#composer-text").focus();
    return this.deliver(key, id, entry);
  }

  // discard drops a failed message from the view.
  discard(key, id) {
    const t = this.thread(key);
    const entry = t.outbox.get(id);
    if (!entry || entry.state !== "failed") return;
    t.outbox.delete(id);
    if (entry.previewURL) URL.revokeObjectURL(entry.previewURL);
    this.render({});
    $("#composer-text").focus();
  }

  async deliver(key, id, entry) {
    const t = this.thread(key);
    const conv = key.startsWith("@") ? null : this.client.convs.get(key);
    const to = key.startsWith("@") ? { toUser: key.slice(1) }
      : conv.kind === "group" ? { toGroup: key } : { toUser: conv.peer };
    try {
      if (entry.blob && !entry.meta) {
        entry.progress = 0;
        if (this.key === key) this.render({});
        entry.meta = await this.client.uploadFile(entry.blob, undefined, {
          onProgress: (sent, total) => {
            const pct = total ? Math.floor((100 * sent) / total) : 0;
            if (pct !== entry.progress) { entry.progress = pct; if (this.key === key) this.render({}); }
          },
        });
        delete entry.progress;
      }
      const ack = await this.client.send({ ...to, text: entry.text, file: entry.meta, replyTo: entry.replyTo, clientMsgId: id });
      t.outbox.delete(id);
      if (entry.previewURL) URL.revokeObjectURL(entry.previewURL);
      const dest = this.thread(ack.conversationId);
      this.put(dest, { ...this.client.convs.get(ack.conversationId).lastMessage });
      if (dest.gapAbove && this.key === ack.conversationId) this.jumpToLatest();
      if (key.startsWith("@")) {
        for (const [k, v] of t.outbox) dest.outbox.set(k, v);
        if (t.draft && !dest.draft) dest.draft = t.draft;
        this.threads.delete(key);
        if (this.key === key) await this.app.openConversation(ack.conversationId);
      } else if (this.key === key) this.render({ stick: true });
      this.app.renderSidebar();
      if (this.client.convs.get(ack.conversationId).kind === "group") this.refreshGroupReads();
    } catch (err) {
      // A failed message stays where it was written: after the newest
      // message of that moment, so it does not cover newer ones.
      Object.assign(entry, { state: "failed", error: err.message, after: Math.max(0, ...t.msgs.keys()) });
      if (this.key === key) this.render({});
      announce("Message not sent: " + err.message);
    }
  }

  atBottom() { return this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight < 80; }

  // render brings the list up to date, reusing rows by key. unread:
  // scroll to the unread divider if there is one (else to the bottom).
  render({ stick = false, unread = false }) {
    const key = this.key;
    if (!key) return;
    const t = this.thread(key);
    const conv = key.startsWith("@") ? null : this.client.convs.get(key);
    const rows = [];
    const own = (cid, e) => ["c" + cid, { ...e, refSeq: e.replyTo, clientMsgId: cid, senderId: this.client.userId, sender: this.client.username, outbox: true }];
    // Failed sends stay after the message that was newest when they failed;
    // sends in flight are the newest.
    const failed = [...t.outbox].filter(([, e]) => e.state === "failed").sort((a, b) => a[1].after - b[1].after);
    let fi = 0;
    let divided = false;
    if (t.floor) {
      for (const seq of [...t.msgs.keys()].sort((a, b) => a - b)) {
        const m = t.msgs.get(seq);
        if (seq < t.floor || (t.gapAbove && seq > t.gapAbove) || m.kind === "recall" || m.kind === "edit") continue;
        while (fi < failed.length && failed[fi][1].after < seq) rows.push(own(...failed[fi++]));
        if (t.firstUnread && seq >= t.firstUnread && !divided) {
          divided = true;
          if (m.senderId !== this.client.userId) rows.push(["unread", { divider: true }]);
        }
        rows.push(["s" + seq, m]);
      }
    }
    while (fi < failed.length) rows.push(own(...failed[fi++]));
    for (const [cid, e] of t.outbox) if (e.state !== "failed") rows.push(own(cid, e));
    rows.splice(0, rows.length, ...days(rows));
    const keep = new Set(rows.map(([k]) => k));
    for (const [k, el] of this.els) if (!keep.has(k)) { el.remove(); this.els.delete(k); }
    let prev = null;
    for (const [k, m] of rows) {
      // Rebuild a row only when what it shows changed.
      const sig = this.signature(m, conv);
      let el = this.els.get(k);
      // A row whose menu is open waits (closing the menu renders again):
      // rebuilding it would take the menu away under the user.
      if (!el || (el.dataset.sig !== sig && !el.querySelector(".msg-menu"))) {
        const fresh = this.row(m, conv);
        if (!m.divider && !m.daySep) this.rove(fresh);
        fresh.dataset.sig = sig;
        if (el) el.replaceWith(fresh);
        el = fresh;
        this.els.set(k, el);
      }
      if (prev ? prev.nextSibling !== el : this.list.firstChild !== el) {
        if (prev) prev.after(el); else this.list.prepend(el);
      }
      prev = el;
    }
    this.olderBtn.hidden = !(t.floor && t.hasOlder);
    const divider = this.els.get("unread");
    if (unread && divider) {
      this.scroller.scrollTop += divider.getBoundingClientRect().top - this.scroller.getBoundingClientRect().top - 8;
      this.stuck = this.atBottom();
    } else if (stick || unread) { this.scroller.scrollTop = this.scroller.scrollHeight; this.stuck = true; }
    this.updateJumps();
  }

  // updateJumps shows "New messages ↓" while messages arrived below the
  // reader (or the range above is not loaded yet), and "↑ First unread"
  // while the unread divider is above the view.
  updateJumps() {
    const t = this.key && this.thread(this.key);
    if (!t) { this.newBelowBtn.hidden = this.jumpUnreadBtn.hidden = true; return; }
    const bottom = this.atBottom();
    if (bottom && !t.gapAbove) t.newBelow = 0;
    this.newBelowBtn.hidden = bottom || !(t.newBelow || t.gapAbove);
    this.newBelowBtn.textContent = t.newBelow ? `${t.newBelow} new message${t.newBelow === 1 ? "" : "s"} ↓` : "New messages ↓";
    const d = this.els.get("unread");
    this.jumpUnreadBtn.hidden = !d || d.getBoundingClientRect().bottom > this.scroller.getBoundingClientRect().top;
  }

  // rove makes a row one focus stop reached with ↑/↓ (onKey), not with
  // Tab: its buttons and links join the tab order only while the row has
  // the focus. So Tab and Shift+Tab cross the whole list in one step
  // instead of jumping to a link in some message far up (and scrolling
  // there), and a long chat is not hundreds of tab stops.
  rove(li) {
    li.tabIndex = -1;
    const inner = () => li.querySelectorAll("a, button");
    for (const el of inner()) el.tabIndex = -1;
    li.addEventListener("focusin", () => { for (const el of inner()) el.tabIndex = 0; });
    li.addEventListener("focusout", (e) => {
      if (!li.contains(e.relatedTarget)) for (const el of inner()) el.tabIndex = -1;
    });
  }

  // onKey: ↑/↓ in the message list move between messages; from the list
  // itself they start at the lowest message on screen.
  onKey(e) {
    if ((e.key !== "ArrowUp" && e.key !== "ArrowDown") || e.target.closest(".msg-menu")) return;
    const rows = [...this.list.querySelectorAll(":scope > li[tabindex]")];
    const cur = e.target.closest("#msg-list > li[tabindex]");
    let i;
    if (cur) i = rows.indexOf(cur) + (e.key === "ArrowUp" ? -1 : 1);
    else if (e.target === this.scroller) {
      const bottom = this.scroller.getBoundingClientRect().bottom;
      i = rows.findLastIndex((r) => r.getBoundingClientRect().top < bottom - 4);
    } else return;
    if (i < 0 || i >= rows.length) return;
    e.preventDefault();
    rows[i].focus();
  }

  // imageLoaded keeps the view at the bottom when an image grows the list.
  imageLoaded() {
    if (!this.stuck) return;
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.app.markReadSoon();
  }

  signature(m, conv) {
    if (m.divider) return "divider";
    if (m.daySep) return "day|" + m.daySep;
    const mine = m.senderId === this.client.userId;
    let st = "";
    if (mine && !m.outbox && conv) {
      st = conv.kind === "group" ? JSON.stringify(this.thread(conv.id).reads.get(m.seq) || null)
        : m.seq <= conv.peerReadSeq ? "r" : m.seq <= conv.peerDeliveredSeq ? "d" : "s";
    }
    return [m.seq, m.state || "", m.progress ?? "", m.text || "", !!m.recalled, byAdmin(m), m.editedAt || 0, m.file?.id || "", m.previewURL || "", st, m.cont ? 1 : 0, this.quoteSig(m)].join("|");
  }

  row(m, conv) {
    if (m.divider) return h("li", { class: "unread-divider", id: "unread-divider", role: "separator" }, "Unread messages");
    if (m.daySep) return h("li", { class: "day", role: "separator" }, m.daySep);
    if (m.kind === "event" || m.kind === "notification") {
      return h("li", { class: "system", "data-seq": m.seq }, eventText(m), " · ", timeLabel(m.sentAt));
    }
    const mine = m.senderId === this.client.userId;
    const group = conv?.kind === "group";
    const body = [];
    if (group && !mine && !m.cont) body.push(h("div", { class: "who" }, m.sender));
    if (isReply(m)) body.push(this.quoteView(m));
    if (m.recalled) body.push(h("div", { class: "text recalled", "data-removed-by-admin": byAdmin(m) ? "true" : undefined }, byAdmin(m) ? "removed by admin" : "message recalled"));
    if (m.file) body.push(this.fileView(m));
    if (m.text) body.push(h("div", { class: "text" }, ...linkify(m.text, this.client.username)));
    const meta = [h("time", { datetime: m.sentAt ? new Date(m.sentAt).toISOString() : undefined }, timeLabel(m.sentAt))];
    if (m.editedAt) meta.push(h("span", {}, "edited"));
    if (mine) meta.push(...this.statusView(m, conv));
    const li = h("li", {
      class: m.cont ? "msg cont" : "msg", "data-seq": m.seq || undefined, "data-client-id": m.clientMsgId || undefined,
      "data-mine": mine ? "true" : "false", "aria-label": `${mine ? "You" : m.sender}${m.seq ? ", message " + m.seq : ""}`,
    });
    if (m.seq && !m.outbox && !m.recalled && (m.kind === "text" || m.kind === "file")) meta.push(this.menuButton(li, m, mine));
    li.append(...body, h("div", { class: "meta" }, ...meta));
    return li;
  }

  // quoted is what a reply shows of the message it answers: its sender and
  // text if the page has it loaded.
  quoted(m) {
    const o = this.key && this.thread(this.key).msgs.get(m.refSeq);
    if (!o) return { who: "", text: `message ${m.refSeq}` };
    const who = o.senderId === this.client.userId ? "You" : o.sender;
    const text = o.recalled ? (byAdmin(o) ? "removed by admin" : "message recalled") : o.text || (o.file ? "File: " + o.file.name : "");
    return { who, text: text.length > 120 ? text.slice(0, 120) + "…" : text };
  }

  // quotedOf is what the reply bar shows of the message being answered.
  quotedOf(m) {
    const who = m.senderId === this.client.userId ? "You" : m.sender;
    const text = m.text || (m.file ? "File: " + m.file.name : "");
    return { who, text: text.length > 80 ? text.slice(0, 80) + "…" : text };
  }

  quoteSig(m) {
    if (!isReply(m)) return "";
    const q = this.quoted(m);
    return q.who + ":" + q.text;
  }

  // quoteView is the reply's quote of the message it answers; choosing it
  // shows that message (loading older pages if need be).
  quoteView(m) {
    const q = this.quoted(m);
    const b = h("button", { type: "button", class: "quote", "data-action": "quote", "data-ref": m.refSeq, "aria-label": `In reply to ${q.who ? q.who + ": " : ""}${q.text}. Show it` },
      q.who ? h("span", { class: "who" }, q.who) : null, h("span", { class: "quote-text" }, q.text));
    b.addEventListener("click", async () => { if (!(await this.reveal(m.refSeq))) this.app.toast(`Message ${m.refSeq} could not be shown.`); });
    return b;
  }

  // menuButton opens the actions of a message: reply, and for my own edit
  // (text) and recall (both within the server's --recall-window; outside
  // it the server's refusal is shown).
  menuButton(li, m, mine) {
    const btn = h("button", { type: "button", class: "reads more", "data-action": "menu", "aria-haspopup": "menu", "aria-expanded": "false", "aria-label": `Actions for message ${m.seq}` }, "⋯");
    const key = this.key;
    btn.addEventListener("click", () => {
      const open = li.querySelector(".msg-menu");
      if (open) { open.remove(); btn.setAttribute("aria-expanded", "false"); setTimeout(() => this.render({}), 0); return; }
      const dismiss = () => { menu.remove(); btn.setAttribute("aria-expanded", "false"); setTimeout(() => this.render({}), 0); };
      const close = () => { dismiss(); btn.focus(); };
      const items = [];
      const rp = h("button", { type: "button", role: "menuitem", "data-action": "reply" }, "Reply");
      rp.addEventListener("click", () => { dismiss(); this.app.startReply(m, this.quotedOf(m)); });
      if (mine && m.text) {
        const ed = h("button", { type: "button", role: "menuitem", "data-action": "edit" }, "Edit");
        ed.addEventListener("click", () => { dismiss(); this.app.startEdit(m); });
        items.push(ed);
      }
      items.push(rp);
      const rc = h("button", { type: "button", role: "menuitem", "data-action": "recall" }, "Recall");
      rc.addEventListener("click", () => {
        if (!rc.dataset.confirm) { rc.dataset.confirm = "1"; rc.textContent = "Recall for everyone? Press again"; return; }
        close();
        this.client.recall(key, m.seq).catch((err) => this.app.toast("Could not recall: " + err.message));
      });
      if (mine) items.push(rc);
      const menu = h("div", { class: "msg-menu", role: "menu", "aria-label": `Message ${m.seq}` }, ...items);
      menu.addEventListener("keydown", (e) => { if (e.key === "Escape") { e.stopPropagation(); close(); } });
      li.append(menu);
      btn.setAttribute("aria-expanded", "true");
      items[0].focus();
    });
    return btn;
  }

  statusView(m, conv) {
    if (m.outbox) {
      const st = m.state === "failed" ? "failed" : "sending";
      const out = [h("span", { class: "status", "data-state": st, title: m.error || undefined }, st === "failed" ? "⚠ not sent" : "… sending")];
      if (st === "sending" && m.progress !== undefined) {
        out.unshift(h("progress", { class: "upload", max: 100, value: m.progress, "aria-label": `Uploading ${m.file?.name || "file"}: ${m.progress}%` }));
      }
      if (st === "failed") {
        const key = this.key;
        const retry = h("button", { type: "button", class: "reads", "data-action": "retry", "aria-label": "Retry sending this message" }, "retry");
        retry.addEventListener("click", () => this.retry(key, m.clientMsgId));
        const discard = h("button", { type: "button", class: "reads", "data-action": "discard", "aria-label": "Discard this message" }, "discard");
        discard.addEventListener("click", () => this.discard(key, m.clientMsgId));
        out.push(retry, discard);
      }
      return out;
    }
    if (conv?.kind === "group") {
      const out = [h("span", { class: "status", "data-state": "sent" }, "✓ sent")];
      const r = this.thread(conv.id).reads.get(m.seq);
      if (r) {
        const b = h("button", { type: "button", class: "reads", "data-reads": r.read_count, title: (r.readers || []).join(", ") || "nobody yet" },
          `read by ${r.read_count || 0} of ${r.member_count || 0}`);
        b.addEventListener("click", () => this.app.toast("Read by: " + ((r.readers || []).join(", ") || "nobody yet")));
        out.push(b);
      }
      return out;
    }
    const state = conv && m.seq <= conv.peerReadSeq ? "read" : conv && m.seq <= conv.peerDeliveredSeq ? "delivered" : "sent";
    const label = { sent: "✓ sent", delivered: "✓✓ delivered", read: "✓✓ read" }[state];
    return [h("span", { class: "status", "data-state": state }, label)];
  }

  fileView(m) {
    const f = m.file;
    const img = (src, alt) => {
      const el = h("img", { class: "inline", src, alt });
      el.addEventListener("load", () => this.imageLoaded(), { once: true });
      return el;
    };
    if (m.previewURL) return img(m.previewURL, f.name);
    if (!f.id) return h("div", { class: "file" }, "File: ", f.name);
    if ((f.contentType || "").startsWith("image/")) {
      const el = img(undefined, f.name || "image");
      const a = h("a", { "data-file": f.id, "aria-label": `View ${f.name || "image"}` }, el);
      a.addEventListener("click", (e) => { e.preventDefault(); if (el.src) imageViewer(el.src, f.name, a); });
      this.fileURL(f.id).then((u) => { el.src = u; a.href = u; },
        (err) => a.replaceWith(h("div", { class: "file" }, `Image ${f.name || ""} could not be loaded: ${err.message}`)));
      return a;
    }
    // The file is fetched when the link is first used, then the link
    // points at its blob: URL and the browser saves it.
    const a = h("a", { href: "#", download: f.name || "file", class: "file", "data-file": f.id },
      "Download ", f.name || "file", f.size ? ` (${sizeLabel(f.size)})` : "");
    a.addEventListener("click", async (ev) => {
      if (a.dataset.ready) return;
      ev.preventDefault();
      try {
        a.href = await this.fileURL(f.id);
        a.dataset.ready = "1";
        a.click();
      } catch (err) {
        this.app.toast("Could not download " + (f.name || "the file") + ": " + err.message);
      }
    });
    return a;
  }

  // refreshGroupReads asks for read counts of the latest own messages of the
  // open group (debounced: receipts come in bursts).
  refreshGroupReads() {
    clearTimeout(this.readsTimer);
    this.readsTimer = setTimeout(async () => {
      const id = this.key;
      if (!id || this.client.convs.get(id).kind !== "group") return;
      const t = this.thread(id);
      const mine = [...t.msgs.values()].filter((m) => m.senderId === this.client.userId && m.kind !== "event").map((m) => m.seq).sort((a, b) => b - a).slice(0, 10);
      for (const seq of mine) {
        try { t.reads.set(seq, await this.client.reads(id, seq)); } catch { /* endpoint missing or not a member */ }
      }
      if (this.key === id) this.render({});
    }, 300);
  }

  visibleLastSeq() {
    if (!this.key || this.key.startsWith("@")) return 0;
    return this.client.convs.get(this.key).cursor;
  }
}

// days puts a separator (Today, Yesterday, or the date) where the day
// changes, and marks a message that follows one of the same sender within
// five minutes as a continuation (no repeated name, less space). An unread
// divider goes after the day's separator, right above its message.
// byAdmin says a recall (or the message it recalled) was a moderator's
// removal (POST /v1/admin/messages/remove), not the sender's own.
export const byAdmin = (m) => m?.event?.type === "removed_by_admin";

// isReply: a text or file message whose ref_seq names the message it answers.
const isReply = (m) => (m.kind === "text" || m.kind === "file" || m.outbox) && m.refSeq > 0;

function days(rows) {
  const out = [];
  const used = new Set();
  let prevDay = "";
  let prev = null;
  let divider = null;
  for (const row of rows) {
    const [k, m] = row;
    if (m.divider) { divider = row; continue; }
    const at = m.sentAt || Date.now();
    const day = new Date(at).toDateString();
    if (day !== prevDay && !used.has(day)) {
      used.add(day);
      out.push(["d" + day, { daySep: dayLabel(at) }]);
      prev = null;
    }
    prevDay = day;
    if (divider) { out.push(divider); divider = null; prev = null; }
    const isMsg = m.kind !== "event" && m.kind !== "notification";
    const cont = isMsg && prev && prev.senderId === m.senderId && at - (prev.sentAt || at) < 5 * 60_000;
    out.push([k, cont ? { ...m, cont: true } : m]);
    prev = isMsg ? m : null;
  }
  if (divider) out.push(divider);
  return out;
}

function dayLabel(ms) {
  const d = new Date(ms);
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (d.toDateString() === today.toDateString()) return "Today";
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  return d.toLocaleDateString(undefined, { weekday: "long", month: "long", day: "numeric", year: d.getFullYear() === today.getFullYear() ? undefined : "numeric" });
}

// linkify turns http(s) URLs in a text into links (text nodes and <a>
// elements only; anything else stays text). Trailing punctuation is not
// part of the link.
function linkify(text, me) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(/\bhttps?:\/\/[^\s<>"'`]+/gi)) {
    let url = m[0].replace(/[.,;:!?)\]}]+$/, "");
    let ok = false;
    try { ok = ["http:", "https:"].includes(new URL(url).protocol); } catch { /* not a URL */ }
    if (!ok) continue;
    out.push(...mentions(text.slice(last, m.index), me), h("a", { href: url, target: "_blank", rel: "noopener noreferrer nofollow", class: "link" }, url));
    last = m.index + url.length;
  }
  out.push(...mentions(text.slice(last), me));
  return out.filter((x) => x !== "");
}

// mentions marks @name in a text (a span, "me" when it names the reader).
function mentions(text, me) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(/(^|[^A-Za-z0-9_@-])@([A-Za-z0-9_-]{2,32})(?![A-Za-z0-9_-])/g)) {
    const at = m.index + m[1].length;
    const mine = !!me && m[2].toLowerCase() === me.toLowerCase();
    out.push(text.slice(last, at), h("span", { class: mine ? "mention me" : "mention" }, "@" + m[2]));
    last = at + 1 + m[2].length;
  }
  out.push(text.slice(last));
  return out;
}

// updateFields reads an "updated" event's detail: the changed settings as
// JSON ({"name": …, "join_policy": …, "muted_until": …}).
function updateFields(detail) {
  try {
    const f = JSON.parse(detail || "{}");
    return f && typeof f === "object" ? f : {};
  } catch {
    return {};
  }
}

function updatedText(detail) {
  const f = updateFields(detail);
  const parts = [];
  if (typeof f.name === "string") parts.push(`renamed the group to “${f.name}”`);
  if (typeof f.join_policy === "string") parts.push(`set who may join to “${f.join_policy}”`);
  if ("muted_until" in f) parts.push(f.muted_until ? `muted the group until ${timeLabel(Number(f.muted_until))}` : "unmuted the group");
  if (typeof f.notice === "string") parts.push(f.notice ? `set the notice to “${f.notice}”` : "cleared the notice");
  if (typeof f.intro === "string") parts.push("changed the introduction");
  if (typeof f.avatar_url === "string") parts.push("changed the avatar");
  if ("max_members" in f) parts.push(f.max_members ? `limited the group to ${Number(f.max_members)} members` : "lifted the group's own member limit");
  return parts.join(", ") || "changed the group";
}

export function eventText(m) {
  const e = m.event;
  if (!e) return m.text || "notice";
  const who = (e.usernames || []).join(", ");
  const actor = e.actor || "someone";
  switch (e.type) {
    case "created": return `${actor} created the group${e.detail ? " " + e.detail : ""}`;
    case "joined": return `${who || actor} joined`;
    case "added": return `${actor} added ${who}`;
    case "approved": return `${actor} let ${who} join`;
    case "left": return `${who || actor} left`;
    case "removed": return `${actor} removed ${who}`;
    case "role": return `${actor} made ${who} ${e.detail || ""}`.trim();
    case "muted": return `${actor} muted ${who || "the group"}`;
    case "unmuted": return `${actor} unmuted ${who || "the group"}`;
    case "updated": return `${actor} ${updatedText(e.detail)}`;
    case "dissolved": return `${actor} dissolved the group`;
    case "owner": return `${who} is now the owner`;
    default: return `${actor}: ${e.type}${e.detail ? " " + e.detail : ""}`;
  }
}
