// scheduled.js: sending a message later (POST /v1/messages with send_at:
// the server keeps it and sends it then, across restarts) and the list of
// my pending ones, each of which can be cancelled until it is sent, and of
// those refused at their time (with the reason), each dismissed the same way.

import { h, replace, $, timeLabel } from "./dom.js";
import { open, form, listDialog } from "./dialogs.js";

const HOUR = 3600_000;

// localInput formats ms as a datetime-local value (local time, seconds).
function localInput(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// sendLaterDialog schedules the message box's text for the open chat.
export function sendLaterDialog(app, opener) {
  const key = app.current;
  if (!key) return;
  const text = $("#composer-text").value.trim();
  open("Send later", form([
    h("label", { for: "sl-text" }, "Message"),
    h("textarea", { id: "sl-text", name: "text", rows: 3, maxlength: 16384, required: true, text }),
    h("label", { for: "sl-at" }, "Send at (your local time)"),
    h("input", { id: "sl-at", name: "at", type: "datetime-local", step: 1, required: true, value: localInput(Date.now() + HOUR) }),
  ], "Schedule", async (fd) => {
    const body = String(fd.get("text") || "").trim();
    if (!body) throw new Error("Write the message first.");
    const at = new Date(String(fd.get("at") || "")).getTime();
    if (!Number.isFinite(at)) throw new Error("Pick a date and time.");
    if (at <= Date.now()) throw new Error("Pick a time in the future.");
    const conv = key.startsWith("@") ? null : app.client.convs.get(key);
    const to = !conv ? { toUser: key.slice(1) } : conv.kind === "group" ? { toGroup: key } : { toUser: conv.peer };
    const r = await app.client.schedule({ ...to, text: body, sendAt: at });
    if (body === $("#composer-text").value.trim()) { app.setComposer(""); app.saveDraft(key, ""); }
    app.toast(`Scheduled for ${timeLabel(Number(r.send_at))}. Scheduled messages lists it.`);
    return $("#composer-text");
  }), opener);
}

// scheduledDialog lists my scheduled messages, soonest first: pending ones
// with Cancel, refused ones with the reason and Dismiss.
export async function scheduledDialog(app, opener) {
  const c = app.client;
  const err = h("p", { class: "error", role: "alert" });
  const list = h("ul", { class: "members", id: "scheduled-list", "aria-label": "Scheduled messages" }, h("li", {}, "Loading…"));
  const reload = async () => {
    const items = await c.scheduled();
    replace(list, !items.length ? h("li", { class: "empty" }, "Nothing is scheduled.") : items.map((s) => {
      const to = s.to_group ? "# " + (c.convs.get(s.to_group).title) : s.to_user;
      const refused = s.status === "refused";
      const cancel = refused
        ? h("button", { type: "button", "data-action": "dismiss", "aria-label": `Dismiss the refused message to ${to}` }, "Dismiss")
        : h("button", { type: "button", "data-action": "cancel", "aria-label": `Cancel the message to ${to} at ${timeLabel(s.send_at)}` }, "Cancel");
      cancel.addEventListener("click", async () => {
        err.textContent = "";
        try { await c.cancelScheduled(s.id); } catch (e) { err.textContent = e.message; }
        await reload().catch((e) => { err.textContent = e.message; });
        (list.querySelector("button") || $("#sched-close"))?.focus();
      });
      return h("li", { "data-scheduled": s.id, "data-status": refused ? "refused" : "pending", class: refused ? "sched-refused" : undefined },
        h("span", {}, h("strong", {}, to), ` · ${timeLabel(s.send_at)}: `, h("span", { class: "sched-text" }, s.text || (s.file_id ? "a file" : "")),
          refused ? h("span", { class: "sched-reason error" }, ` Refused${s.refused_at ? " " + timeLabel(s.refused_at) : ""}: ${s.reason || "refused"}`) : null),
        h("span", { class: "row" }, cancel));
    }));
  };
  const close = h("button", { type: "button", id: "sched-close" }, "Close");
  close.addEventListener("click", () => $("#dialog").close());
  open("Scheduled messages", [list, err, h("div", { class: "row" }, close)], opener);
  listDialog("scheduled", () => reload().catch((e) => { err.textContent = e.message; }));
  try { await reload(); } catch (e) { err.textContent = e.message; }
}
