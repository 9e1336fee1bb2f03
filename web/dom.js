// dom.js: the one way this client builds DOM. User content only ever goes
// in through text nodes and setAttribute, never parsed as markup, so a message
// like <img src=x onerror=…> is shown as the characters it is.

// h builds an element: h("li", {class: "msg", "data-seq": 3}, "text", child).
// Attributes named on* are refused: handlers are attached with listeners.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (/^on/i.test(k)) throw new Error("dom: event handler attributes are not allowed: " + k);
    if (k === "text") el.textContent = String(v);
    else if (k === "hidden" || k === "disabled") el[k] = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// replace empties el and puts children in.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

export const $ = (sel, root = document) => root.querySelector(sel);

export function timeLabel(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  const now = new Date();
  const opts = d.toDateString() === now.toDateString()
    ? { hour: "2-digit", minute: "2-digit" }
    : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
  return d.toLocaleString(undefined, opts);
}

export function sizeLabel(n) {
  if (n < 1024) return n + " B";
  if (n < 1 << 20) return (n / 1024).toFixed(1) + " KB";
  return (n / (1 << 20)).toFixed(1) + " MB";
}

// announce reads text to screen readers through the page's live region.
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.append(h("p", {}, text));
  while (region.childElementCount > 5) region.firstElementChild.remove();
}
