// friends.js: my friends dialog: who may add me (the add policy), friend
// requests both ways, and each friend's remark (an alias only I see, used
// as the chat's name) and group (a category), listed by group.

import { h, replace, $ } from "./dom.js";
import { open, form, listDialog } from "./dialogs.js";
import { privateID } from "./magpie.js";

const POLICIES = [["approve", "Anyone may ask; I approve"], ["anyone", "Anyone, at once"], ["nobody", "Nobody"]];

export async function friendsDialog(app, opener) {
  const c = app.client;
  const err = h("p", { class: "error", role: "alert" });
  const status = h("p", { class: "hint", role: "status" });
  const act = async (fn) => {
    err.textContent = "";
    try { await fn(); } catch (e) { err.textContent = e.message; }
  };

  const policy = h("select", { id: "fr-policy" }, POLICIES.map(([v, label]) => h("option", { value: v }, label)));
  policy.addEventListener("change", () => act(async () => {
    await c.setFriendPolicy(policy.value);
    status.textContent = "Saved: " + POLICIES.find(([v]) => v === policy.value)[1].toLowerCase() + ".";
  }));
  const add = form([
    h("label", { for: "fr-add" }, "Add a friend (username)"),
    h("input", { id: "fr-add", name: "user", required: true, autocomplete: "off", spellcheck: "false" }),
  ], "Add friend", async (fd) => {
    const user = String(fd.get("user") || "").trim();
    if (!user) throw new Error("Enter a username.");
    const r = await c.requestFriend(user);
    status.textContent = r?.status === "friends" ? `You and ${user} are friends.` : `Asked ${user}; waiting for an answer.`;
    add.reset();
    await reload();
    return "keep-open";
  });
  add.querySelector("button:not([type=submit])")?.remove(); // the dialog's Close does it
  const requests = h("ul", { class: "members", id: "fr-requests", "aria-label": "Friend requests" });
  const list = h("div", { id: "fr-list" }, h("p", {}, "Loading…"));
  const groupNames = h("datalist", { id: "fr-groups" });

  const reload = async () => show(await c.friends());
  const show = (f) => {
    policy.value = f.policy || "approve";
    app.applyFriends(f);
    const incoming = (f.incoming || []).map((r) => {
      const yes = h("button", { type: "button", "data-action": "accept", "aria-label": `Accept ${r.username}` }, "Accept");
      const no = h("button", { type: "button", "data-action": "decline", "aria-label": `Decline ${r.username}` }, "Decline");
      yes.addEventListener("click", () => act(async () => { await c.answerFriend(r.username, true); await reload(); }));
      no.addEventListener("click", () => act(async () => { await c.answerFriend(r.username, false); await reload(); }));
      return h("li", { "data-request": r.username }, h("span", {}, `${r.username} asks to be your friend`), h("span", { class: "row" }, yes, no));
    });
    const outgoing = (f.outgoing || []).map((r) => h("li", { "data-outgoing": r.username }, h("span", {}, `Waiting for ${r.username}`)));
    replace(requests, incoming, outgoing);
    requests.hidden = !incoming.length && !outgoing.length;

    const byGroup = new Map();
    for (const fr of f.friends || []) {
      const g = fr.group || "";
      if (!byGroup.has(g)) byGroup.set(g, []);
      byGroup.get(g).push(fr);
    }
    const groups = [...byGroup.keys()].sort((a, b) => (a ? 0 : 1) - (b ? 0 : 1) || a.localeCompare(b));
    replace(groupNames, groups.filter(Boolean).map((g) => h("option", { value: g })));
    replace(list, !groups.length ? h("p", { class: "empty" }, "No friends yet.") : groups.map((g) => h("section", { class: "fr-group", "data-group": g },
      h("h3", {}, g || "No group"),
      h("ul", { class: "members" }, byGroup.get(g).sort((a, b) => (a.remark || a.username).localeCompare(b.remark || b.username)).map(friendRow)))));
  };
  const friendRow = (fr) => {
    const label = fr.remark ? `${fr.remark} (${fr.username})` : fr.username;
    const chat = h("button", { type: "button", "data-action": "chat", "aria-label": `Chat with ${label}` }, "Chat");
    chat.addEventListener("click", () => {
      const id = privateID(c.userId, Number(fr.user_id));
      const conv = c.convs.get(id);
      if (!conv.peer) Object.assign(conv, { peer: fr.username, peerId: Number(fr.user_id), kind: "private" });
      $("#dialog").dataset.handedOn = "1";
      $("#dialog").close();
      app.openConversation(id, { focusComposer: true });
    });
    const edit = h("button", { type: "button", "data-action": "edit", "aria-expanded": "false", "aria-label": `Remark and group of ${fr.username}` }, "Edit");
    const li = h("li", { "data-friend": fr.username, "data-remark": fr.remark || undefined },
      h("span", { class: "fr-name" }, label), h("span", { class: "row" }, chat, edit));
    edit.addEventListener("click", () => {
      const shown = li.querySelector("form");
      if (shown) { shown.remove(); edit.setAttribute("aria-expanded", "false"); edit.focus(); return; }
      const rid = `fr-remark-${fr.user_id}`, gid = `fr-group-${fr.user_id}`;
      const f = h("form", { class: "fr-edit" },
        h("label", { for: rid }, `Remark for ${fr.username} (only you see it)`),
        h("input", { id: rid, name: "remark", maxlength: 64, value: fr.remark || "", autocomplete: "off" }),
        h("label", { for: gid }, "Group"),
        h("input", { id: gid, name: "group", maxlength: 32, value: fr.group || "", list: "fr-groups", autocomplete: "off" }),
        h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, "Save")));
      f.addEventListener("submit", (e) => {
        e.preventDefault();
        const fd = new FormData(f);
        act(async () => {
          await c.updateFriend(fr.username, { remark: String(fd.get("remark")).trim(), group: String(fd.get("group")).trim() });
          status.textContent = `Saved ${fr.username}.`;
          await reload();
          list.querySelector(`[data-friend="${CSS.escape(fr.username)}"] [data-action="edit"]`)?.focus();
        });
      });
      li.append(f);
      edit.setAttribute("aria-expanded", "true");
      f.querySelector("input").focus();
    });
    return li;
  };

  const close = h("button", { type: "button", id: "fr-close" }, "Close");
  close.addEventListener("click", () => $("#dialog").close());
  open("Friends", [
    h("div", { class: "row" }, h("label", { for: "fr-policy" }, "Who may add me"), policy),
    add, status, err, requests, groupNames, list, h("div", { class: "row" }, close),
  ], opener);
  listDialog("friends", () => act(reload));
  await act(reload);
}
