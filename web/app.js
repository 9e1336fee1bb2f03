// app.js: the Magpie web client's entry point. It signs in, owns the
// Magpie connection (magpie.js) and wires it to the sidebar, the chat view
// and the dialogs. One browser is one device: the session lives in
// localStorage, so every tab shares it and each tab holds its own
// connection (the server pushes one tab's sends to the others).

import { Magpie, Codes, State, privateID, TYPING_EVERY_MS, TYPING_SHOW_MS } from "./magpie.js";
import { $, h, announce } from "./dom.js";
import { ChatView } from "./chatview.js";
import { Sidebar } from "./sidebar.js";
import { newChatDialog, newGroupDialog, membersDialog, deleteChatDialog, joinGroupDialog } from "./dialogs.js";
import { friendsDialog } from "./friends.js";
import { sendLaterDialog, scheduledDialog } from "./scheduled.js";
import { onNotice } from "./notices.js";

const SESSION_KEY = "magpie.session";
const DEVICE_KEY = "magpie.device";
const NOTIFY_KEY = "magpie.notify";
const DRAFT_PREFIX = "magpie.draft.";
const THEME_KEY = "magpie.theme"; // "light" or "dark"; absent: as the system is
const THEMES = ["system", "dark", "light"];
const MAX_NOTICES = 50; // broadcasts and notifications kept in the list (this page only: they are not stored)

class App {
  constructor() {
    this.client = null;
    this.current = null; // open conversation id, or "@name"
    this.chat = new ChatView(this);
    this.sidebar = new Sidebar(this);
    this.renderQueued = false;
    this.onlineTimer = 0;
    this.notices = []; // broadcasts and server notifications (seq 0), newest first
    this.typers = new Map(); // conversation id -> Map(username -> timer): who is typing there
    this.typingSent = null;  // {id, at}: my last typing notice
  }

  boot() {
    this.wire();
    let saved = null;
    try { saved = JSON.parse(localStorage.getItem(SESSION_KEY) || "null"); } catch { /* ignore */ }
    if (saved?.token) this.startClient({ session: saved });
    else this.showAuth();
    window.addEventListener("storage", (e) => {
      if (e.key !== SESSION_KEY) return;
      const s = e.newValue ? JSON.parse(e.newValue) : null;
      if (!s) {
        // Only a sign-out of the session this tab uses ends it.
        let old = null;
        try { old = JSON.parse(e.oldValue || "null"); } catch { /* ignore */ }
        if (this.client && old?.token && old.token === this.client.session?.token) {
          this.client.close();
          this.client = null;
          this.showAuth("Signed out in another tab.");
        }
        return;
      }
      if (!this.client || (this.client.state === State.closed && s.token !== this.client.session?.token)) this.startClient({ session: s });
    });
  }

  device() {
    let d = localStorage.getItem(DEVICE_KEY);
    if (!d) {
      d = "web-" + crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
      localStorage.setItem(DEVICE_KEY, d);
    }
    return d;
  }

  wire() {
    const form = $("#auth-form");
    form.addEventListener("submit", (e) => { e.preventDefault(); this.signIn(false); });
    $("#register-btn").addEventListener("click", () => this.signIn(true));
    $("#logout-btn").addEventListener("click", () => this.signOut());
    $("#new-chat-btn").addEventListener("click", (e) => newChatDialog(this, e.currentTarget));
    $("#new-group-btn").addEventListener("click", (e) => newGroupDialog(this, e.currentTarget));
    $("#join-group-btn").addEventListener("click", (e) => joinGroupDialog(this, e.currentTarget));
    $("#friends-btn").addEventListener("click", (e) => friendsDialog(this, e.currentTarget));
    $("#scheduled-btn").addEventListener("click", (e) => scheduledDialog(this, e.currentTarget));
    $("#later-btn").addEventListener("click", (e) => sendLaterDialog(this, e.currentTarget));
    $("#theme-btn").addEventListener("click", () => this.setTheme(THEMES[(THEMES.indexOf(this.theme()) + 1) % THEMES.length]));
    this.setTheme(this.theme());
    $("#members-btn").addEventListener("click", (e) => membersDialog(this, this.current, e.currentTarget));
    $("#delete-chat-btn").addEventListener("click", (e) => deleteChatDialog(this, this.current, e.currentTarget));
    $("#back-btn").addEventListener("click", () => {
      $("#app-view").dataset.pane = "list";
      this.sidebar.convList.querySelector(`[data-conv="${CSS.escape(this.current || "")}"]`)?.focus();
    });
    const text = $("#composer-text");
    $("#composer").addEventListener("submit", (e) => { e.preventDefault(); this.submit(); });
    text.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.submit(); }
      if (e.key === "Escape" && this.editing) { e.preventDefault(); this.stopEditing(); }
      else if (e.key === "Escape" && this.replying) { e.preventDefault(); this.stopReply(); }
    });
    $("#edit-cancel").addEventListener("click", () => this.stopEditing());
    $("#reply-cancel").addEventListener("click", () => this.stopReply());
    text.addEventListener("input", () => {
      text.rows = Math.min(6, text.value.split("\n").length);
      if (!this.editing && this.current) { this.saveDraft(this.current, text.value); this.noteTyping(text.value); }
    });
    $("#search-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const q = $("#search-q").value.trim();
      if (q && this.client) this.sidebar.search(q);
    });
    $("#search-close").addEventListener("click", () => { this.sidebar.closeSearch(); $("#search-q").focus(); });
    $("#attach-btn").addEventListener("click", () => $("#file-input").click());
    // Files pasted into the message box or dropped on the chat are sent
    // like attached ones, with what is typed as the caption.
    text.addEventListener("paste", (e) => {
      const files = [...(e.clipboardData?.files || [])];
      if (!files.length) return;
      e.preventDefault();
      this.sendFiles(files);
    });
    const chat = $("#chat");
    chat.addEventListener("dragover", (e) => {
      if (!this.current || ![...(e.dataTransfer?.types || [])].includes("Files")) return;
      e.preventDefault();
      chat.dataset.drop = "true";
    });
    chat.addEventListener("dragleave", (e) => { if (!chat.contains(e.relatedTarget)) delete chat.dataset.drop; });
    chat.addEventListener("drop", (e) => {
      delete chat.dataset.drop;
      const files = [...(e.dataTransfer?.files || [])];
      if (!files.length || !this.current) return;
      e.preventDefault();
      this.sendFiles(files);
    });
    $("#file-input").addEventListener("change", (e) => {
      const file = e.target.files?.[0];
      if (file) { this.chat.send({ text: text.value.trim(), file, replyTo: this.takeReply() }); this.setComposer(""); }
      e.target.value = "";
      text.focus();
    });
    $("#reconnect-btn").addEventListener("click", () => this.client?.reconnectNow());
    $("#notify-btn").addEventListener("click", () => this.toggleNotifications());
    this.showNotifyState();
    document.addEventListener("visibilitychange", () => this.markReadSoon());
    window.addEventListener("focus", () => this.markReadSoon());
  }

  async signIn(register) {
    const user = $("#auth-user").value.trim();
    const pass = $("#auth-pass").value;
    const err = $("#auth-error");
    err.textContent = "";
    const userErr = user.length > 32 ? `Usernames have at most 32 characters; this one has ${user.length}.`
      : user.length < 2 ? "Usernames have at least 2 characters."
        : !/^[A-Za-z0-9_-]+$/.test(user) ? "Usernames are letters A–Z, digits, _ or - only." : "";
    if (userErr) { err.textContent = userErr; $("#auth-user").focus(); return; }
    const passBytes = new TextEncoder().encode(pass).length;
    if (pass.length < 6) { err.textContent = "Passwords have at least 6 characters."; $("#auth-pass").focus(); return; }
    if (passBytes > 256) { err.textContent = `Passwords have at most 256 bytes; this one has ${passBytes}.`; $("#auth-pass").focus(); return; }
    const c = new Magpie({ username: user, password: pass, device: this.device() });
    try {
      if (register) await c.register(user, pass);
      await c.login();
    } catch (e) {
      err.textContent = e.code === Codes.conflict ? "That username is taken." : e.code === Codes.invalid_credentials ? "Wrong username or password." : e.message;
      return;
    }
    $("#auth-pass").value = "";
    this.startClient({ client: c });
  }

  startClient({ session, client }) {
    this.client?.close();
    const c = client || new Magpie({ session, device: this.device() });
    c.opts.freshSession = () => { try { return JSON.parse(localStorage.getItem(SESSION_KEY) || "null"); } catch { return null; } };
    this.client = c;
    this.current = null;
    this.setComposer("");
    this.chat.reset();
    this.notices = [];
    this.sidebar.renderNotices(this.notices);
    for (const m of this.typers.values()) for (const timer of m.values()) clearTimeout(timer);
    this.typers.clear();
    this.typingSent = null;
    this.showTyping();
    this.sidebar.closeSearch();
    this.chat.close();
    if (c.session) this.saveSession(c.session);
    c.addEventListener("session", (e) => this.saveSession(e.detail));
    c.addEventListener("state", (e) => this.onState(c, e.detail));
    c.addEventListener("typing", (e) => this.onTyping(e.detail));
    c.addEventListener("message", (e) => {
      this.typed(e.detail.conversationId, e.detail.sender, true); // a message ends its sender's typing
      this.chat.onMessage(e.detail);
      if (c.state === State.ready) this.notify(e.detail); // not for what a reconnect syncs in bulk
      if (e.detail.conversationId === this.current) this.markReadSoon();
      this.renderSidebar();
    });
    c.addEventListener("conversation", (e) => {
      if (e.detail.id === this.current) { this.showTitle(); this.chat.render({}); }
      this.renderSidebar();
    });
    c.addEventListener("receipt", (e) => {
      if (e.detail.conversationId === this.current && c.convs.get(this.current).kind === "group") this.chat.refreshGroupReads();
    });
    c.addEventListener("notice", (e) => { if (c === this.client) onNotice(this, e.detail); });
    c.addEventListener("transient", (e) => {
      this.notices.unshift(e.detail);
      this.notices.length = Math.min(this.notices.length, MAX_NOTICES);
      this.sidebar.renderNotices(this.notices);
      this.toast(`${e.detail.sender || "Server"}: ${e.detail.text}`);
    });
    this.showApp(c);
    c.start().catch(() => { /* onState shows why */ });
  }

  saveSession(s) {
    localStorage.setItem(SESSION_KEY, JSON.stringify({ token: s.token, userId: s.userId, username: s.username, device: s.device, gateway: s.gateway }));
    $("#me-name").textContent = s.username;
  }

  onState(c, { state, error, retryInMs }) {
    if (c !== this.client) return;
    document.body.dataset.conn = state;
    const banner = $("#conn-banner");
    banner.dataset.state = state;
    clearTimeout(this.bannerTimer);
    this.countdown(0);
    if (state !== State.ready) this.sidebar.offline();
    if (state === State.ready) {
      if (!banner.hidden) {
        this.bannerText("Connected.");
        this.bannerTimer = setTimeout(() => { banner.hidden = true; }, 1500);
      }
      this.sidebar.refreshOnline();
      c.friends().then((f) => { if (c === this.client) this.applyFriends(f); }, () => {});
      clearInterval(this.onlineTimer);
      this.onlineTimer = setInterval(() => this.sidebar.refreshOnline(), 10000);
      this.renderSidebar();
      if (this.current && !this.current.startsWith("@") && !this.chat.thread(this.current).floor) this.chat.open(this.current);
      this.markReadSoon();
    } else if (state === State.reconnecting) {
      banner.hidden = false;
      this.bannerText("Connection lost. Reconnecting…");
      if (retryInMs) this.countdown(Date.now() + retryInMs);
    } else if (state === State.connecting) {
      banner.hidden = false;
      this.bannerText("Connecting…");
    } else if (state === State.closed) {
      clearInterval(this.onlineTimer);
      banner.hidden = true;
      if (error) {
        const s = c.opts.freshSession();
        if (s?.token && s.token !== c.session?.token) { this.startClient({ session: s }); return; }
        if (this.client === c) this.client = null;
        if (s?.token === c.session?.token) localStorage.removeItem(SESSION_KEY);
        this.showAuth(error.code === Codes.unauthenticated || error.code === Codes.session_expired ? "Your session expired. Please sign in again." : `Signed out: ${error.message}`);
      }
    }
  }

  // bannerText says what the connection does; the live region reads it
  // once (the countdown beside it is not read out every second).
  bannerText(text) {
    if ($("#conn-text").textContent !== text) $("#conn-text").textContent = text;
  }

  // countdown shows the seconds to the next attempt (deadline: ms since
  // the epoch; 0 hides it) with a button that tries at once.
  countdown(deadline) {
    clearInterval(this.countdownTimer);
    const el = $("#conn-countdown");
    $("#reconnect-btn").hidden = !deadline;
    el.dataset.deadline = String(deadline);
    const tick = () => {
      const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      el.dataset.left = String(left);
      el.textContent = deadline ? `Next attempt in ${left} s.` : "";
      if (!left) clearInterval(this.countdownTimer);
    };
    tick();
    if (deadline) this.countdownTimer = setInterval(tick, 250);
  }

  showAuth(message = "") {
    $("#app-view").hidden = true;
    $("#auth-view").hidden = false;
    $("#conn-banner").hidden = true;
    document.body.dataset.conn = "closed";
    $("#auth-error").textContent = message;
    $("#auth-user").focus();
  }

  showApp(c) {
    $("#auth-view").hidden = true;
    $("#app-view").hidden = false;
    $("#app-view").dataset.pane = "list";
    $("#me-name").textContent = c.username || c.opts.username || "";
    $("#composer").hidden = true;
    $("#members-btn").hidden = true;
    $("#delete-chat-btn").hidden = true;
    $("#chat-title").textContent = "No conversation selected";
    this.renderSidebar();
    $("#new-chat-btn").focus();
  }

  async signOut() {
    const c = this.client;
    const mine = `${DRAFT_PREFIX}${c?.userId || 0}.`;
    for (const k of Object.keys(localStorage)) if (k.startsWith(mine)) localStorage.removeItem(k);
    this.client = null;
    localStorage.removeItem(SESSION_KEY);
    try { await c?.logout(); } catch { /* the session may already be gone */ }
    this.showAuth("Signed out.");
  }

  renderSidebar() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    setTimeout(() => {
      this.renderQueued = false;
      if (!this.client) return;
      this.sidebar.render();
      // The tab's title counts unread messages (muted chats too: the count
      // is what the list shows).
      const unread = this.client.convs.all().filter((c) => !c.left).reduce((n, c) => n + c.unread, 0);
      document.title = unread ? `(${unread}) Magpie` : "Magpie";
    }, 16); // not rAF: hidden tabs keep their list current
  }

  // The theme follows the system (prefers-color-scheme) until the Theme
  // button picks light or dark; the choice is kept per browser.
  theme() {
    const t = localStorage.getItem(THEME_KEY);
    return THEMES.includes(t) ? t : "system";
  }

  setTheme(t) {
    if (t === "system") { localStorage.removeItem(THEME_KEY); delete document.documentElement.dataset.theme; }
    else { localStorage.setItem(THEME_KEY, t); document.documentElement.dataset.theme = t; }
    $("#theme-btn").textContent = `Theme: ${t}`;
  }

  // applyFriends keeps my remarks (aliases) on the private chats: a chat
  // with a friend I gave a remark is listed and titled by it.
  applyFriends(f) {
    const c = this.client;
    if (!c || !f) return;
    const remarks = new Map((f.friends || []).map((fr) => [privateID(c.userId, Number(fr.user_id)), fr.remark || ""]));
    for (const conv of c.convs.all()) if (conv.kind === "private") conv.remark = remarks.get(conv.id) || "";
    for (const [id, remark] of remarks) if (remark) c.convs.get(id).remark = remark;
    this.showTitle();
    this.renderSidebar();
  }

  // Notifications are opt-in (the button asks the browser's permission)
  // and remembered per browser in localStorage.
  notifyOn() {
    return typeof Notification !== "undefined" && Notification.permission === "granted" && localStorage.getItem(NOTIFY_KEY) === "1";
  }

  async toggleNotifications() {
    if (typeof Notification === "undefined") { this.toast("This browser has no notifications."); return; }
    if (this.notifyOn()) {
      localStorage.removeItem(NOTIFY_KEY);
    } else {
      const p = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
      if (p === "granted") localStorage.setItem(NOTIFY_KEY, "1");
      else this.toast("Notifications are blocked for this site in the browser's settings.");
    }
    this.showNotifyState();
  }

  showNotifyState() {
    const on = this.notifyOn();
    const b = $("#notify-btn");
    b.setAttribute("aria-pressed", on ? "true" : "false");
    b.textContent = on ? "Notifications: on" : "Notifications: off";
  }

  // notify shows a message from someone else that the user cannot see:
  // the tab is hidden or another chat is open. One tag per message, so
  // several tabs of one browser show it once.
  notify(m) {
    if (!this.notifyOn() || m.senderId === this.client.userId || m.kind === "event" || m.kind === "recall" || m.kind === "edit") return;
    const conv = this.client.convs.get(m.conversationId);
    if (conv.muted) return;
    if (document.visibilityState === "visible" && m.conversationId === this.current) return;
    const title = conv.kind === "group" ? `${m.sender} in ${conv.title}` : m.sender;
    try {
      const n = new Notification(title, { body: m.text || (m.file ? "sent a file: " + m.file.name : ""), tag: `${m.conversationId}:${m.seq}` });
      n.addEventListener("click", () => { window.focus(); this.openConversation(m.conversationId, { focusComposer: true }); n.close(); });
    } catch { /* some browsers only notify from a service worker */ }
  }

  // openHit opens the chat of a search hit at the message.
  async openHit(m) {
    await this.openConversation(m.conversationId);
    if (this.current === m.conversationId && !(await this.chat.reveal(m.seq))) this.toast(`Message ${m.seq} could not be shown.`);
  }

  // noteTyping tells the open chat's other members that I am typing, at
  // most every TYPING_EVERY_MS, and that I stopped when the box is emptied.
  // Only in a conversation the server has (a new chat has none until its
  // first message).
  noteTyping(value) {
    const c = this.client;
    const id = this.current;
    if (!c || !id || id.startsWith("@") || c.state !== State.ready) return;
    if (!c.convs.get(id).lastSeq) return;
    const now = Date.now();
    if (value.trim()) {
      if (this.typingSent?.id === id && now - this.typingSent.at < TYPING_EVERY_MS) return;
      this.typingSent = { id, at: now };
      c.typing(id).catch(() => {}); // best effort
    } else if (this.typingSent?.id === id) {
      this.typingSent = null;
      c.typing(id, true).catch(() => {});
    }
  }

  onTyping({ conversationId, username, stopped }) {
    this.typed(conversationId, username, stopped);
  }

  // typed records that username is typing in a conversation (for
  // TYPING_SHOW_MS unless renewed) or stopped.
  typed(id, username, stopped) {
    let m = this.typers.get(id);
    if (!m) {
      if (stopped) return;
      m = new Map();
      this.typers.set(id, m);
    }
    clearTimeout(m.get(username));
    if (stopped) m.delete(username);
    else m.set(username, setTimeout(() => { m.delete(username); this.showTyping(); }, TYPING_SHOW_MS));
    this.showTyping();
  }

  // showTyping says under the open chat who is typing in it.
  showTyping() {
    const el = $("#typing");
    const names = [...(this.typers.get(this.current)?.keys() || [])].sort();
    const text = !names.length ? ""
      : names.length === 1 ? `${names[0]} is typing…`
        : names.length === 2 ? `${names[0]} and ${names[1]} are typing…`
          : `${names.length} people are typing…`;
    if (el.textContent !== text) el.textContent = text;
    el.hidden = !text;
  }

  async openConversation(id, { focusComposer = false } = {}) {
    this.switchDraft(id);
    this.current = id;
    this.showTyping();
    const conv = id.startsWith("@") ? null : this.client.convs.get(id);
    this.showTitle();
    $("#members-btn").hidden = conv?.kind !== "group";
    $("#delete-chat-btn").hidden = !conv?.lastSeq;
    $("#composer").hidden = false;
    $("#app-view").dataset.pane = "chat";
    this.renderSidebar();
    const opened = this.chat.open(id);
    if (focusComposer) $("#composer-text").focus();
    await opened;
    this.markReadSoon();
  }

  // openNewChat opens the private chat with a user who exists (asked with
  // GET /v1/users/{name}), under the name as they spell it.
  async openNewChat(user) {
    if (user.toLowerCase() === this.client.username.toLowerCase()) throw new Error("That is you.");
    if (!/^[A-Za-z0-9_-]{2,32}$/.test(user)) throw new Error("Usernames are 2–32 letters, digits, _ or -.");
    let u;
    try {
      u = await this.client.lookupUser(user);
    } catch (e) {
      if (e.code === Codes.not_found) throw new Error(`There is no user named ${user}.`);
      throw e;
    }
    const id = privateID(this.client.userId, Number(u.user_id));
    const c = this.client.convs.get(id);
    if (!c.peer) Object.assign(c, { peer: u.username, peerId: Number(u.user_id), kind: "private" });
    await this.openConversation(id, { focusComposer: true });
  }

  async groupCreated(g) {
    this.client.convs.update({ id: g.id, kind: "group", name: g.name });
    await this.openConversation(g.id, { focusComposer: true });
  }

  // showTitle puts the open conversation's name in the header.
  showTitle() {
    const id = this.current;
    if (!id) return;
    const conv = id.startsWith("@") ? null : this.client.convs.get(id);
    $("#chat-title").textContent = conv ? (conv.kind === "group" ? "# " + conv.title : conv.title) : id.slice(1);
  }

  // groupRenamed shows a group's new name everywhere (the rename's own
  // event arrives too, and says the same).
  groupRenamed(id, name) {
    if (!name) return;
    this.client.convs.get(id).name = name;
    if (id === this.current) this.showTitle();
    this.renderSidebar();
  }

  // hideConversation deletes the open chat from my list (DELETE
  // /v1/conversations/{id}): it comes back with the next message; with
  // clear, only what comes after it is shown.
  async hideConversation(id, clear) {
    const r = await this.client.hideConversation(id, clear);
    const conv = this.client.convs.get(id);
    conv.hiddenSeq = Number(r?.hidden_seq ?? conv.lastSeq);
    if (clear) {
      conv.clearedSeq = Math.max(conv.clearedSeq, conv.hiddenSeq);
      conv.lastMessage = null;
      this.chat.threads.delete(id);
      try { localStorage.removeItem(this.draftKey(id)); } catch { /* ignore */ }
    }
    if (this.current === id) this.closeChat();
    else this.renderSidebar();
  }

  leftGroup(id) {
    this.client.convs.get(id).left = true;
    this.chat.threads.delete(id);
    this.closeChat();
  }

  // closeChat shows no conversation.
  closeChat() {
    this.current = null;
    this.setComposer("");
    this.chat.close();
    $("#composer").hidden = true;
    $("#members-btn").hidden = true;
    $("#delete-chat-btn").hidden = true;
    $("#chat-title").textContent = "No conversation selected";
    $("#app-view").dataset.pane = "list";
    this.renderSidebar();
    $("#new-chat-btn").focus();
  }

  // startEdit puts one of my messages in the message box; Enter saves it
  // (POST …/edit), Escape or Cancel editing gives the draft back.
  startEdit(m) {
    if (this.editing) this.stopEditing();
    this.stopReply(false);
    this.editing = { id: this.current, seq: m.seq, draft: $("#composer-text").value };
    $("#edit-bar").hidden = false;
    $("#edit-label").textContent = `Editing message ${m.seq}: Enter saves, Escape cancels`;
    this.setComposer(m.text || "");
    $("#composer-text").focus();
  }

  stopEditing() {
    const e = this.editing;
    if (!e) return;
    this.editing = null;
    $("#edit-bar").hidden = true;
    this.setComposer(e.draft);
    $("#composer-text").focus();
  }

  // startReply answers a message: the next one sent in this chat carries
  // its seq (reply_to); a bar says what it answers until it is sent or
  // cancelled (Escape, Cancel reply).
  startReply(m, { who, text }) {
    if (this.editing) this.stopEditing();
    this.replying = { id: this.current, seq: m.seq };
    $("#reply-bar").hidden = false;
    $("#reply-label").textContent = `Replying to ${who}: ${text}`;
    $("#composer-text").focus();
  }

  stopReply(focus = true) {
    if (!this.replying) return;
    this.replying = null;
    $("#reply-bar").hidden = true;
    if (focus) $("#composer-text").focus();
  }

  // takeReply is the seq the next message in the open chat answers (0:
  // none), and ends the reply.
  takeReply() {
    const r = this.replying;
    this.stopReply(false);
    return r && r.id === this.current ? r.seq : 0;
  }

  // sendFiles sends each file as a message; the caption (and a reply) goes with the first.
  sendFiles(files) {
    const text = $("#composer-text");
    const caption = this.editing ? "" : text.value.trim();
    const replyTo = this.editing ? 0 : this.takeReply();
    files.forEach((file, i) => this.chat.send({ text: i === 0 ? caption : "", file, replyTo: i === 0 ? replyTo : 0 }));
    if (caption) { this.setComposer(""); this.saveDraft(this.current, ""); }
    text.focus();
  }

  submit() {
    const text = $("#composer-text");
    const value = text.value.trim();
    if (this.editing) {
      const { id, seq } = this.editing;
      if (!value) return;
      this.stopEditing();
      this.client.edit(id, seq, value).catch((err) => this.toast("Could not edit: " + err.message));
      return;
    }
    if (!value || !this.current) return;
    this.setComposer("");
    this.saveDraft(this.current, "");
    this.typingSent = null; // the message itself ends the others' "typing…"
    this.chat.send({ text: value, replyTo: this.takeReply() });
    text.focus();
  }

  // switchDraft keeps what was typed in the open chat as that chat's draft
  // and shows the draft of the chat being opened: one message box serves
  // every chat, so a draft must never follow the user to another one.
  switchDraft(id) {
    if (id === this.current) return;
    if (this.editing) this.stopEditing();
    this.stopReply(false);
    const text = $("#composer-text");
    if (this.current && !this.chat.threads.has(this.current)) return; // "@name" became its conversation: the box keeps its text
    if (this.current) this.saveDraft(this.current, text.value);
    if (this.typingSent && this.typingSent.id === this.current) this.noteTyping(""); // I left that chat: stopped
    this.setComposer(id ? this.loadDraft(id) : "");
  }

  // Drafts outlive a reload: localStorage, per user and conversation,
  // removed when sent or emptied, and all of them at sign-out.
  draftKey(id) { return `${DRAFT_PREFIX}${this.client?.userId || 0}.${id}`; }

  saveDraft(id, value) {
    this.chat.thread(id).draft = value;
    if (id.startsWith("@")) return;
    try {
      if (value) localStorage.setItem(this.draftKey(id), value);
      else localStorage.removeItem(this.draftKey(id));
    } catch { /* storage full or off: the draft lives in this page only */ }
  }

  loadDraft(id) {
    if (id.startsWith("@")) return this.chat.thread(id).draft || "";
    return localStorage.getItem(this.draftKey(id)) ?? this.chat.thread(id).draft ?? "";
  }

  setComposer(value) {
    const text = $("#composer-text");
    text.value = value;
    text.rows = Math.max(1, Math.min(6, value.split("\n").length));
  }

  // markReadSoon reports the open conversation read when the user can see it.
  markReadSoon() {
    clearTimeout(this.readTimer);
    this.readTimer = setTimeout(() => {
      const c = this.client;
      const id = this.current;
      if (!c || !id || id.startsWith("@") || document.visibilityState !== "visible" || c.state !== State.ready) return;
      const conv = c.convs.get(id);
      const upto = Math.min(conv.cursor, this.chat.seenSeq());
      if (upto > conv.readSeq) c.markRead(id, upto).catch(() => {});
    }, 150);
  }

  toast(text) {
    announce(text);
    const t = h("div", { class: "toast", role: "status" }, text);
    document.body.append(t);
    setTimeout(() => t.remove(), 4000);
  }
}

const app = new App();
window.magpieApp = app; // for debugging and the browser tests
app.boot();
