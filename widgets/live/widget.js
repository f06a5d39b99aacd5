// Live sweep view: draws the state built by promptlooper/ui/live.py; sends nothing.
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = String(v);
    else el.setAttribute(k, v);
  }
  for (const c of children) if (c != null) el.append(c);
  return el;
}

// replaceChildren() prints a null child as the text "null": optional parts are dropped instead
const put = (node, ...kids) => node.replaceChildren(...kids.filter((k) => k != null && k !== false));

function stat(label, value, cls) {
  return h("div", { class: `pl-stat ${cls || ""}` },
    h("div", { class: "pl-stat-label", text: label }),
    h("div", { class: "pl-stat-value", text: value ?? "–" }));
}

export default {
  render({ model, el }) {
    el.classList.add("pl-root", "pl-live");
    const draw = () => {
      const s = model.get("state") || {};
      const d = s.display || {};
      const pct = Math.max(0, Math.min(100, 100 * (Number(s.fraction) || 0)));
      const status = String(s.status || "unknown");
      put(el, 
        h("div", { class: "pl-live-head" },
          h("span", { class: "pl-live-exp", text: s.experiment || "" }),
          h("span", { class: `pl-badge pl-status-${status.replace(/[^a-z]/g, "")}`, text: d.status || status })),
        h("div", { class: "pl-bar", role: "progressbar", "aria-valuenow": pct.toFixed(0) },
          h("div", { class: "pl-bar-fill", style: `width: ${pct.toFixed(1)}%` })),
        h("div", { class: "pl-stats" },
          stat("progress", d.progress, "pl-progress"),
          stat("tokens", d.tokens),
          stat("cost", d.cost),
          stat("cache hits", d.cache),
          stat("rate", d.rate),
          stat("ETA", d.eta, "pl-eta"),
          stat("failed", d.failed),
          stat("current best", d.best, "pl-best")),
        d.best_params ? h("div", { class: "pl-best-params", text: d.best_params }) : null,
      );
    };
    draw();
    model.on("change:state", draw);
    return () => model.off("change:state", draw);
  },
};
