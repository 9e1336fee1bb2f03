// conversations.js: what the client knows about each conversation: the
// server's counters (last seq, my cursors, the peer's cursors) and the
// delivery bookkeeping of magpie.js (cursor, buffered messages, fills and
// receipts in flight). Plain data; magpie.js owns the rules.

// num turns protojson's 64-bit strings (and omitted zeroes) into numbers.
const num = (v) => (v === undefined || v === null || v === "" ? 0 : Number(v));

export class Conversation {
  constructor(id) {
    this.id = id;
    this.kind = id.startsWith("g_") ? "group" : id.startsWith("p_") ? "private" : "";
    this.name = "";          // groups
    this.peer = "";          // private chats: the other user's name
    this.peerId = 0;
    this.remark = "";        // private chats: my remark (alias) for a friend, from GET /v1/friends
    this.lastSeq = 0;
    this.deliveredSeq = 0;   // mine (any device)
    this.readSeq = 0;        // mine (any device)
    this.peerDeliveredSeq = 0;
    this.peerReadSeq = 0;
    this.pinned = false;
    this.muted = false;
    this.lastMessage = null;
    this.left = false;       // I left or was removed (group events)
    this.hiddenSeq = -1;     // I deleted the chat at this seq: out of the list until a newer message
    this.clearedSeq = 0;     // I cleared its history up to here (DELETE /v1/conversations/{id}?clear=true)
    // Delivery (magpie.js): every seq up to cursor was emitted or skipped.
    this.cursor = 0;
    this.baseline = 0;       // the cursor the first connection started from
    this.known = 0;          // highest seq known to exist
    this.pending = new Map(); // seq > cursor+1 -> {m, silent, source}
    this.filling = false;
    this.receiptWant = 0;
    this.receiptSent = 0;
    this.receiptBusy = false;
    this.readSentSeq = 0;
  }

  get unread() { return Math.max(0, this.lastSeq - Math.max(this.readSeq, this.clearedSeq)); }
  get hidden() { return this.lastSeq <= this.hiddenSeq; }
  get title() { return this.kind === "group" ? (this.name || this.id) : (this.remark || this.peer || this.id); }
}

export class Conversations {
  constructor() { this.byID = new Map(); }

  get(id) {
    let c = this.byID.get(id);
    if (!c) { c = new Conversation(id); this.byID.set(id, c); }
    return c;
  }

  has(id) { return this.byID.has(id); }
  all() { return [...this.byID.values()]; }

  // update merges known fields; counters only move forward.
  update(f) {
    const c = this.get(f.id);
    for (const k of ["kind", "name", "peer", "peerId", "lastMessage"]) if (f[k]) c[k] = f[k];
    for (const k of ["pinned", "muted"]) if (k in f) c[k] = !!f[k];
    for (const k of ["lastSeq", "deliveredSeq", "readSeq", "peerDeliveredSeq", "peerReadSeq", "clearedSeq"]) {
      if (f[k] > c[k]) c[k] = f[k];
    }
    c.known = Math.max(c.known, c.lastSeq);
    return c;
  }

  // applyState merges a ConversationState from sync or a push (protojson).
  applyState(s) {
    const c = this.update({
      id: s.conversation_id, kind: s.kind || "", name: s.name || "", peer: s.peer || "",
      lastSeq: num(s.last_seq), deliveredSeq: num(s.delivered_seq), readSeq: num(s.read_seq),
      peerDeliveredSeq: num(s.peer_delivered_seq), peerReadSeq: num(s.peer_read_seq),
    });
    c.pinned = !!s.pinned; // protojson omits false: a state always carries both flags
    c.muted = !!s.muted;
    return c;
  }

  // cursors is the sync request's view: conversation -> cursor.
  cursors() {
    const out = {};
    for (const c of this.byID.values()) if (c.cursor > 0) out[c.id] = c.cursor;
    return out;
  }
}
