// dialogs.js: new chat, new group and the group's members (invite, leave).
// A <dialog> opened with showModal traps focus and closes on Escape; focus
// returns to the button that opened it.

import { h, replace, $ } from "./dom.js";

// A dialog closed by its action may hand the focus on (the message box of
// the chat it opened: done(el)); cancelled, the focus returns to the opener.
function open(title, content, opener) {
  const dlg = $("#dialog");
  replace(dlg, h("h2", { id: "dialog-title" }, title), content);
  delete dlg.dataset.handedOn;
  dlg.addEventListener("close", () => { if (!dlg.dataset.handedOn) opener?.focus(); }, { once: true });
  dlg.showModal();
  dlg.querySelector("input, button")?.focus();
  return dlg;
}

// done closes the dialog and focuses el (the page behind a modal dialog is
// inert, so it can only take the focus once the dialog is closed).
export function done(el) {
  const dlg = $("#dialog");
  dlg.dataset.handedOn = "1";
  dlg.close();
  el?.focus();
}

function form(fields, submitLabel, onSubmit) {
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

const names = (s) => String(s || "").split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);

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

export async function membersDialog(app, id, opener) {
  const list = h("ul", { class: "members", "aria-label": "Members" }, h("li", {}, "Loading…"));
  const err = h("p", { class: "error", role: "alert" });
  const invite = form([
    h("label", { for: "gm-invite" }, "Invite (usernames, separated by commas)"),
    h("input", { id: "gm-invite", name: "users", autocomplete: "off", spellcheck: "false" }),
  ], "Invite", async (fd) => {
    const g = await app.client.invite(id, names(fd.get("users")));
    show(g);
    invite.reset();
    return "keep-open"; // so the new members are seen
  });
  const leave = h("button", { type: "button", id: "leave-btn" }, "Leave group");
  leave.addEventListener("click", async () => {
    if (!leave.dataset.confirm) { // two steps instead of confirm(), which blocks the page
      leave.dataset.confirm = "1";
      leave.textContent = "Really leave? Press again";
      return;
    }
    try {
      await app.client.leave(id);
      $("#dialog").close();
      app.leftGroup(id);
    } catch (e) {
      err.textContent = e.message;
    }
  });
  const show = (g) => {
    replace(list, (g.members || []).map((m) => h("li", { "data-member": m.username },
      h("span", {}, m.username), h("span", { class: "role" }, m.role || "member"))));
    $("#dialog-title").textContent = `${g.name} · ${g.member_count ?? (g.members || []).length} members`;
  };
  open("Members", [list, err, invite, h("div", { class: "row" }, leave)], opener);
  try {
    show(await app.client.group(id));
  } catch (e) {
    err.textContent = e.message;
  }
}
