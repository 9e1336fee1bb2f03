// dialogs.js: new chat, new group and the group's members (invite, leave).
// A <dialog> opened with showModal traps focus and closes on Escape; focus
// returns to the button that opened it.

import { h, replace, $ } from "./dom.js";

// A dialog closed by its action may hand the focus on (the message box of
// the chat it opened: done(el)); cancelled, the focus returns to the opener.
export function open(title, content, opener) {
  const dlg = $("#dialog");
  replace(dlg, h("h2", { id: "dialog-title" }, title), content);
  delete dlg.dataset.handedOn;
  delete dlg.dataset.list;
  dlg.refreshList = null;
  dlg.addEventListener("close", () => { if (!dlg.dataset.handedOn) opener?.focus(); }, { once: true });
  dlg.showModal();
  dlg.querySelector("input, button")?.focus();
  return dlg;
}

// listDialog marks the open dialog as showing list ("friends",
// "scheduled", "members:<group id>"): a notice about it (notices.js) calls
// reload, which returns a promise.
export function listDialog(list, reload) {
  const dlg = $("#dialog");
  dlg.dataset.list = list;
  dlg.refreshList = reload;
}

// done closes the dialog and focuses el (the page behind a modal dialog is
// inert, so it can only take the focus once the dialog is closed).
export function done(el) {
  const dlg = $("#dialog");
  dlg.dataset.handedOn = "1";
  dlg.close();
  el?.focus();
}

export function form(fields, submitLabel, onSubmit) {
  const err = h("p", { class: "error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, submitLabel);
  const cancel = h("button", { type: "button" }, "Cancel");
  cancel.addEventListener("click", () => $("#dialog").close());
  const f = h("form", { method: "dialog" }, ...fields, err, h("div", { class: "row" }, submit, cancel));
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    err.textContent = "";
    try {
      const next = await onSubmit(new FormData(f));
      if (next instanceof HTMLElement) done(next);
      else if (next !== "keep-open") $("#dialog").close();
    } catch (e) {
      err.textContent = e.message;
    } finally {
      submit.disabled = false;
    }
  });
  return f;
}

const HOUR = 3600_000;
export const names = (s) => String(s || "").split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);

// deleteChatDialog takes the open chat out of my list until a new message
// arrives, and on request clears my history of it (the others keep theirs).
export function deleteChatDialog(app, id, opener) {
  const title = app.client.convs.get(id).title;
  open("Delete chat", form([
    h("p", {}, `“${title}” leaves your list until a new message arrives. Nobody else is told.`),
    h("label", { class: "check" }, h("input", { type: "checkbox", id: "dc-clear", name: "clear" }),
      " Also clear its history for me (the others keep theirs)"),
  ], "Delete chat", async (fd) => {
    await app.hideConversation(id, fd.get("clear") === "on");
    return $("#new-chat-btn");
  }), opener);
}

export function newChatDialog(app, opener) {
  open("New chat", form([
    h("label", { for: "nc-user" }, "Username"),
    h("input", { id: "nc-user", name: "user", required: true, autocomplete: "off", spellcheck: "false" }),
  ], "Open chat", async (fd) => {
    const user = String(fd.get("user") || "").trim();
    if (!user) throw new Error("Enter a username.");
    await app.openNewChat(user);
    return $("#composer-text");
  }), opener);
}

export function newGroupDialog(app, opener) {
  open("New group", form([
    h("label", { for: "ng-name" }, "Group name"),
    h("input", { id: "ng-name", name: "name", required: true, maxlength: 64, autocomplete: "off" }),
    h("label", { for: "ng-members" }, "Members (usernames, separated by commas)"),
    h("input", { id: "ng-members", name: "members", autocomplete: "off", spellcheck: "false" }),
  ], "Create group", async (fd) => {
    const name = String(fd.get("name") || "").trim();
    if (!name) throw new Error("Enter a name.");
    const g = await app.client.createGroup(name, names(fd.get("members")));
    await app.groupCreated(g);
    return $("#composer-text");
  }), opener);
}

// joinGroupDialog joins a group by its id: at once if it is open, as a
// request that its owner or an admin approves if it takes requests.
export function joinGroupDialog(app, opener) {
  open("Join a group", form([
    h("label", { for: "jg-id" }, "Group id (g_ and a number; the group's members can tell you)"),
    h("input", { id: "jg-id", name: "id", required: true, autocomplete: "off", spellcheck: "false", placeholder: "g_12" }),
  ], "Join", async (fd) => {
    const id = String(fd.get("id") || "").trim();
    if (!/^g_[0-9]+$/.test(id)) throw new Error("A group id is g_ and a number, like g_12.");
    const r = await app.client.joinGroup(id);
    if (r?.status === "requested") {
      app.toast(`Asked to join ${id}: its owner or an admin will answer.`);
      return $("#join-group-btn");
    }
    await app.groupCreated(r);
    return $("#composer-text");
  }), opener);
}

// imageViewer shows an image large, with its name and a download link;
// Escape or Close returns to the image that opened it.
export function imageViewer(url, name, opener) {
  const close = h("button", { type: "button", id: "viewer-close" }, "Close");
  close.addEventListener("click", () => $("#dialog").close());
  const dlg = open(name || "Image", [
    h("img", { class: "viewer-img", src: url, alt: name || "image" }),
    h("div", { class: "row" }, h("a", { href: url, download: name || "image", class: "file", id: "viewer-download" }, "Download"), close),
  ], opener);
  dlg.classList.add("viewer");
  dlg.addEventListener("close", () => dlg.classList.remove("viewer"), { once: true });
  close.focus();
}

// membersDialog lists a group's members and, by the caller's role, lets
// them rename the group, invite, change roles, remove members, hand the
// ownership on, leave and dissolve. The owner cannot just leave (the server
// refuses): leaving asks for the new owner first, or, for a group of one,
// dissolves it.
export async function membersDialog(app, id, opener) {
  const me = app.client.username;
  const list = h("ul", { class: "members", "aria-label": "Members" }, h("li", {}, "Loading…"));
  const err = h("p", { class: "error", role: "alert" });
  let group = null;
  const act = async (fn) => {
    err.textContent = "";
    try { await fn(); } catch (e) { err.textContent = e.message; }
  };
  const reload = async () => { show(await app.client.group(id)); await showRequests(); };

  const rename = form([
    h("label", { for: "gm-name" }, "Group name"),
    h("input", { id: "gm-name", name: "name", maxlength: 64, autocomplete: "off", required: true }),
  ], "Rename", async (fd) => {
    const name = String(fd.get("name") || "").trim();
    if (!name) throw new Error("Enter a name.");
    const g = await app.client.updateGroup(id, { name });
    app.groupRenamed(id, g.name);
    show(g);
    return "keep-open";
  });
  const invite = form([
    h("label", { for: "gm-invite" }, "Invite (usernames, separated by commas)"),
    h("input", { id: "gm-invite", name: "users", autocomplete: "off", spellcheck: "false" }),
  ], "Invite", async (fd) => {
    const g = await app.client.invite(id, names(fd.get("users")));
    show(g);
    invite.reset();
    return "keep-open"; // so the new members are seen
  });

  const newOwner = h("select", { id: "gm-new-owner", name: "owner" });
  const transfer = h("button", { type: "button", id: "transfer-btn" }, "Make owner");
  transfer.addEventListener("click", () => act(async () => {
    if (!newOwner.value) throw new Error("There is no other member to make the owner.");
    await app.client.transferOwner(id, newOwner.value);
    await reload();
  }));
  // Owner and admins: who may join, and muting everyone (but themselves).
  const policy = h("select", { id: "gm-policy", name: "join_policy" },
    h("option", { value: "invite" }, "By invitation"), h("option", { value: "approval" }, "By request, approved by admins"),
    h("option", { value: "open" }, "Anyone with the id"));
  policy.addEventListener("change", () => act(async () => { show(await app.client.updateGroup(id, { join_policy: policy.value })); await showRequests(); }));
  const muteAll = h("button", { type: "button", id: "mute-all-btn" }, "Mute everyone 1 h");
  muteAll.addEventListener("click", () => act(async () => {
    const on = (group?.muted_until || 0) > Date.now();
    show(await app.client.updateGroup(id, { muted_until: on ? 0 : Date.now() + HOUR }));
  }));
  const adminRow = h("div", { class: "row admin-row", hidden: true },
    h("label", { for: "gm-policy" }, "Joining"), policy, muteAll);
  // Owner and admins answer join requests (join policy "approval").
  const requests = h("ul", { class: "members", id: "gm-requests", "aria-label": "Join requests" });
  const requestsBox = h("section", { class: "join-requests", hidden: true, "aria-labelledby": "gm-requests-h" },
    h("h3", { id: "gm-requests-h" }, "Join requests"), requests);
  const showRequests = async () => {
    const role = myRole();
    if (role === "member") { requestsBox.hidden = true; return; }
    const rs = await app.client.joinRequests(id);
    requestsBox.hidden = !rs.length && group?.join_policy !== "approval";
    replace(requests, !rs.length ? h("li", { class: "empty" }, "No one is waiting.") : rs.map((r) => {
      const yes = h("button", { type: "button", "data-action": "approve", "aria-label": `Let ${r.username} join` }, "Approve");
      const no = h("button", { type: "button", "data-action": "reject", "aria-label": `Turn ${r.username} down` }, "Deny");
      const answer = (ok) => act(async () => { await app.client.answerJoin(id, r.username, ok); await reload(); (requests.querySelector("button") || leave).focus(); });
      yes.addEventListener("click", () => answer(true));
      no.addEventListener("click", () => answer(false));
      return h("li", { "data-request": r.username }, h("span", {}, r.username), h("span", { class: "row" }, yes, no));
    }));
  };
  const ownerRow = h("div", { class: "row owner-row", hidden: true },
    h("label", { for: "gm-new-owner" }, "New owner"), newOwner, transfer);

  // Two steps instead of confirm(), which blocks the page.
  const twoStep = (btn, ask, run) => btn.addEventListener("click", () => {
    if (!btn.dataset.confirm) { btn.dataset.confirm = "1"; btn.textContent = ask(); return; }
    delete btn.dataset.confirm;
    act(run);
  });
  const gone = () => { done(null); app.leftGroup(id); };
  const leave = h("button", { type: "button", id: "leave-btn" }, "Leave group");
  twoStep(leave, () => {
    if (myRole() !== "owner") return "Really leave? Press again";
    if (!others().length) return "You are the only member: leaving dissolves the group. Press again";
    return `Leave and make ${newOwner.value} the owner? Press again`;
  }, async () => {
    if (myRole() === "owner") {
      if (!others().length) { await app.client.dissolveGroup(id); gone(); return; }
      await app.client.transferOwner(id, newOwner.value);
    }
    await app.client.leave(id);
    gone();
  });
  const dissolve = h("button", { type: "button", id: "dissolve-btn", class: "danger", hidden: true }, "Dissolve group");
  twoStep(dissolve, () => "Dissolve for everyone? Press again", async () => { await app.client.dissolveGroup(id); gone(); });

  const myRole = () => (group?.members || []).find((m) => m.username === me)?.role || "member";
  const others = () => (group?.members || []).filter((m) => m.username !== me);
  const memberButtons = (m) => {
    const mine = myRole();
    if (m.username === me || m.role === "owner" || mine === "member" || (mine === "admin" && m.role !== "member")) return [];
    const out = [];
    if (mine === "owner") {
      const to = m.role === "admin" ? "member" : "admin";
      const b = h("button", { type: "button", "data-action": "role", "aria-label": `Make ${m.username} ${to === "admin" ? "an admin" : "a member"}` }, to === "admin" ? "Make admin" : "Make member");
      b.addEventListener("click", () => act(async () => { await app.client.setRole(id, m.username, to); await reload(); }));
      out.push(b);
    }
    const muted = (m.muted_until || 0) > Date.now();
    const mu = h("button", { type: "button", "data-action": muted ? "unmute" : "mute", "aria-label": muted ? `Unmute ${m.username}` : `Mute ${m.username} for an hour` }, muted ? "Unmute" : "Mute 1 h");
    mu.addEventListener("click", () => act(async () => { await app.client.muteMember(id, m.username, muted ? 0 : Date.now() + HOUR); await reload(); }));
    out.push(mu);
    const rm = h("button", { type: "button", "data-action": "remove", "aria-label": `Remove ${m.username}` }, "Remove");
    twoStep(rm, () => `Remove ${m.username}? Press again`, async () => { await app.client.removeMember(id, m.username); await reload(); });
    out.push(rm);
    return out;
  };
  const show = (g) => {
    group = g;
    replace(list, (g.members || []).map((m) => h("li", { "data-member": m.username, "data-role": m.role || "member", "data-muted": (m.muted_until || 0) > Date.now() ? "true" : undefined },
      h("span", {}, m.username), h("span", { class: "role" }, (m.role || "member") + ((m.muted_until || 0) > Date.now() ? ", muted" : "")), h("span", { class: "row" }, ...memberButtons(m)))));
    $("#dialog-title").textContent = `${g.name} · ${g.member_count ?? (g.members || []).length} members`;
    const role = myRole();
    rename.hidden = adminRow.hidden = role === "member";
    policy.value = policy.dataset.saved = g.join_policy || "invite";
    const allMuted = (g.muted_until || 0) > Date.now();
    muteAll.textContent = allMuted ? "Unmute everyone" : "Mute everyone 1 h";
    muteAll.dataset.muted = allMuted ? "true" : "false";
    if (!rename.contains(document.activeElement)) rename.querySelector("input").value = g.name;
    ownerRow.hidden = dissolve.hidden = role !== "owner";
    const keep = newOwner.value;
    const cands = others().sort((a, b) => (a.role === "admin" ? 0 : 1) - (b.role === "admin" ? 0 : 1));
    replace(newOwner, cands.map((m) => h("option", { value: m.username }, m.username)));
    if (cands.some((m) => m.username === keep)) newOwner.value = keep;
    transfer.disabled = !cands.length;
  };
  open("Members", [list, err, rename, adminRow, requestsBox, invite, ownerRow, h("div", { class: "row" }, leave, dissolve)], opener);
  listDialog("members:" + id, () => act(reload));
  await act(reload);
}
