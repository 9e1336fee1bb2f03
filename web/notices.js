// notices.js: the server's live notices (docs/protocol.md "Notices"): a
// friend request, a friend accepted, a join request, added to or removed
// from a group, a scheduled message refused. Each is shown as a small toast
// line with a button that opens the list it concerns, and the list is
// reloaded if its dialog is open. A notice only says "look now": the lists
// (HTTP) stay the record, so nothing here is kept. Unknown types are ignored.

import { h, $, announce } from "./dom.js";
import { friendsDialog } from "./friends.js";
import { membersDialog } from "./dialogs.js";
import { scheduledDialog } from "./scheduled.js";

const SHOW_MS = 12000; // a notice toast stays this long unless closed
const MAX_SHOWN = 4;   // at most this many at once; the oldest goes

// describe returns {text, list, action, open} for a known notice, or null.
// list names the dialog that shows what changed (see refreshIfOpen).
export function describe(app, n) {
  const who = n.actor || "someone";
  const group = n.groupName || n.groupId;
  switch (n.type) {
    case "friend.requested":
      return { text: `${who} wants to be your friend`, list: "friends", action: "Friends", open: () => friendsDialog(app, $("#friends-btn")) };
    case "friend.accepted":
      return { text: `${who} is now your friend`, list: "friends", action: "Friends", open: () => friendsDialog(app, $("#friends-btn")) };
    case "group.join_requested":
      return { text: `${who} asks to join ${group}`, list: "members:" + n.groupId, action: "Join requests", open: () => membersDialog(app, n.groupId, $("#join-group-btn")) };
    case "group.added":
      return { text: `${who} added you to ${group}`, list: "members:" + n.groupId };
    case "group.removed":
      return { text: `${who} removed you from ${group}`, list: "members:" + n.groupId };
    case "scheduled.refused": {
      const to = n.toUser || (n.toGroup ? "# " + (app.client.convs.has(n.toGroup) ? app.client.convs.get(n.toGroup).title : n.toGroup) : "someone");
      return { text: `Your scheduled message to ${to} was refused: ${n.reason || "refused"}`, list: "scheduled", action: "Scheduled", open: () => scheduledDialog(app, $("#scheduled-btn")) };
    }
    default:
      return null;
  }
}

// onNotice shows n and reloads what it changed.
export function onNotice(app, n) {
  const d = describe(app, n);
  if (!d) return;
  if (n.type.startsWith("friend.")) {
    const c = app.client;
    c.friends().then((f) => { if (c === app.client) app.applyFriends(f); }, () => {});
  }
  refreshIfOpen(d.list);
  show(d, n.type);
}

// refreshIfOpen reloads the dialog if it shows list (set by the dialogs
// with listDialog, dialogs.js).
function refreshIfOpen(list) {
  const dlg = $("#dialog");
  if (dlg.open && dlg.dataset.list === list) dlg.refreshList?.().catch(() => {});
}

function show(d, type) {
  announce(d.text);
  let box = $("#notice-toasts");
  if (!box) { box = h("div", { id: "notice-toasts", class: "notice-toasts" }); document.body.append(box); }
  const close = h("button", { type: "button", class: "nt-close", "aria-label": "Dismiss this notice" }, "×");
  const t = h("div", { class: "notice-toast", role: "status", "data-notice": type }, h("span", { class: "nt-text" }, d.text));
  if (d.open) {
    const b = h("button", { type: "button", "data-action": "open" }, d.action);
    b.addEventListener("click", () => { t.remove(); d.open(); });
    t.append(b);
  }
  t.append(close);
  close.addEventListener("click", () => t.remove());
  box.append(t);
  while (box.children.length > MAX_SHOWN) box.firstElementChild.remove();
  setTimeout(() => t.remove(), SHOW_MS);
}
