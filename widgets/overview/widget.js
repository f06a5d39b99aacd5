// Experiments overview (promptlooper/ui/overview.py): rows keyed by experiment and patched in
// place; the search box and the sort order belong to this page only.
const COLS = [
  ["project", "project"], ["name", "experiment"], ["status", "status"], ["done", "progress"],
  ["runs", "runs"], ["best", "best score"], ["updated", "updated"],
];

export default {
  render({ model, el }) {
    el.classList.add("pl-root", "pl-overview");
    let sortKey = "updated", desc = true, query = "";
    const search = h("input", { type: "search", class: "pl-search", placeholder: "search experiments…",
      oninput: (e) => { query = e.target.value.trim().toLowerCase(); draw(); } });
    const count = h("span", { class: "pl-count" });
    const head = h("tr", {}, ...COLS.map(([key, label]) => h("th", { "data-key": key, title: `sort by ${label}`,
      onclick: () => { desc = sortKey === key ? !desc : key !== "project" && key !== "name"; sortKey = key; draw(); } },
      h("span", { text: label }), h("span", { class: "pl-arrow" }))));
    const body = h("tbody");
    const empty = h("p", { class: "pl-empty" });
    el.append(h("div", { class: "pl-toolbar" }, search, count), h("table", { class: "pl-table" }, h("thead", {}, head), body), empty);
    const rowsByKey = new Map();

    function makeRow(key) {
      const link = h("a", { class: "pl-link" });
      const badge = h("span", { class: "pl-badge" });
      const fill = h("div", { class: "pl-bar-fill" });
      const barText = h("span", { class: "pl-bar-text" });
      const cells = { project: h("td"), name: h("td", {}, link), status: h("td", {}, badge),
        done: h("td", { class: "pl-progress" }, h("div", { class: "pl-bar" }, fill), barText),
        runs: h("td", { class: "pl-num" }), best: h("td", { class: "pl-num" }), updated: h("td", { class: "pl-time" }) };
      const tr = h("tr", { "data-key": key }, ...COLS.map(([k]) => cells[k]));
      return { tr, cells, link, badge, fill, barText };
    }

    function draw() {
      const all = model.get("rows") || [];
      const prefix = model.get("link") || "";
      const rows = all.filter((r) => !query || `${r.project}/${r.name} ${r.status}`.toLowerCase().includes(query));
      const value = (r) => (sortKey === "done" ? (r.total ? r.done / r.total : -1) : r[sortKey] ?? -Infinity);
      rows.sort((a, b) => { const x = value(a), y = value(b); return (x < y ? -1 : x > y ? 1 : 0) * (desc ? -1 : 1); });
      const live = new Set(all.map((r) => r.key));
      for (const [key, row] of rowsByKey) if (!live.has(key)) { row.tr.remove(); rowsByKey.delete(key); }
      rows.forEach((r, i) => {
        let row = rowsByKey.get(r.key);
        if (!row) { row = makeRow(r.key); rowsByKey.set(r.key, row); }
        setText(row.cells.project, r.project);
        setText(row.link, r.name);
        const href = prefix + r.key.split("/").map(encodeURIComponent).join("/");
        if (row.link.getAttribute("href") !== href) row.link.setAttribute("href", href);
        setText(row.badge, r.status || "–");
        row.badge.className = `pl-badge pl-status-${(r.status || "none").replace(/[^a-z]/g, "")}`;
        const pct = r.total ? Math.min(100, (100 * r.done) / r.total) : 0;
        row.fill.style.width = `${pct.toFixed(1)}%`;
        setText(row.barText, r.total ? `${r.done} / ${r.total}` : "–");
        setText(row.cells.runs, String(r.runs));
        setText(row.cells.best, r.best == null ? "–" : r.best.toFixed(3));
        setText(row.cells.updated, r.updated.replace("T", " "));
        if (body.children[i] !== row.tr) body.insertBefore(row.tr, body.children[i] || null);
      });
      for (const [, row] of rowsByKey) if (!rows.some((r) => r.key === row.tr.dataset.key)) row.tr.remove();
      for (const th of head.children) setText(th.lastChild, th.dataset.key === sortKey ? (desc ? " ▼" : " ▲") : "");
      setText(count, `${rows.length} of ${all.length} experiments`);
      setText(empty, all.length ? (rows.length ? "" : "No experiment matches the search.")
        : "No experiments yet: run a sweep (promptlooper run FILE) and this page follows it.");
      empty.hidden = rows.length > 0;
    }
    draw();
    model.on("change:rows", draw);
    return () => model.off("change:rows", draw);
  },
};
