// Shared DOM helpers of every PromptLooper widget.
//
// anywidget imports a widget's `_esm` string from a blob: URL, so a widget cannot import a sibling
// file (a relative specifier has no base to resolve against). promptlooper/ui/_assets.py therefore
// puts this file in front of each widget's module when it builds the widget's `_esm`: the names
// below are plain top-level declarations of that one module, used by every widget.js.
//
// Views are built once and patched: `setText` / `setAttr` / `setClass` write only when the value
// changed, and `keyed` keeps one element per key, so scroll, focus, typed text and the element a
// click lands on survive every live update.

// h("div", { class: "x", text: "y", onclick: fn, title: "z" }, ...children): one element.
// A null / false prop or child is left out (replaceChildren would print it as "null").
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = String(v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c != null && c !== false) el.append(c);
  return el;
}

// replaceChildren() prints a null child as the text "null": optional parts are dropped instead
const put = (node, ...kids) => node.replaceChildren(...kids.filter((k) => k != null && k !== false));

const text = (v) => (v == null ? "" : String(v));

function setText(el, value) {
  const t = text(value);
  if (el.textContent !== t) el.textContent = t;
}

function setAttr(el, name, value) {
  const v = text(value);
  if (!v) { if (el.hasAttribute(name)) el.removeAttribute(name); } else if (el.getAttribute(name) !== v) el.setAttribute(name, v);
}

function setClass(el, cls) {
  if (el.className !== cls) el.className = cls;
}

// keyed(parent, items, keyOf, create, update): make parent's children one element per item, in
// order. An element is created once per key (create(item)), patched on every call
// (update(element, item)) and removed when its key leaves; elements already in place are not
// moved, so the browser keeps their focus, selection and scroll.
function keyed(parent, items, keyOf, create, update) {
  const old = parent.__plKeyed || new Map();
  const next = new Map();
  for (const item of items) {
    const key = String(keyOf(item));
    if (next.has(key)) continue; // one element per key, the first item wins
    let node = old.get(key);
    if (!node) node = create(item);
    update(node, item);
    next.set(key, node);
  }
  for (const [key, node] of old) if (!next.has(key)) node.remove();
  for (const child of [...parent.children]) if (!child.__plKey && child.parentNode === parent) child.remove();
  let cursor = parent.firstElementChild;
  for (const [key, node] of next) {
    node.__plKey = key;
    if (node === cursor) cursor = cursor.nextElementSibling;
    else parent.insertBefore(node, cursor);
  }
  parent.__plKeyed = next;
}

// The export buttons: Python builds the file (``download``: name, MIME type, text, a counter);
// the page saves it once per counter, never again when a notebook is reopened.
function exportButtons(model, send) {
  let last = (model.get("download") || {}).n || 0;
  const save = () => {
    const d = model.get("download") || {};
    if (!d.n || d.n === last) return;
    last = d.n;
    const a = h("a", { href: URL.createObjectURL(new Blob([d.text], { type: d.mime })), download: d.name });
    document.body.append(a);
    a.click();
    a.remove();
  };
  model.on("change:download", save);
  const node = h("span", { class: "pl-export" }, "export ", ...["csv", "json", "report"].map((fmt) =>
    h("button", { class: `pl-btn pl-export-${fmt}`, text: fmt.toUpperCase(), onclick: () => send({ action: "export", fmt }) })));
  node.dispose = () => model.off("change:download", save);
  return node;
}
