// Group-by view: a bar per value (mean with its 95% interval as a whisker, and n) and, for two
// variables, the pivot table; promptlooper/ui/groupby_view.py computes both with wb.group_by.
// Bars are keyed by their label, so a regrouping that keeps a value keeps its element.

export default {
  render({ model, el }) {
    el.classList.add("pl-root", "pl-groupby");
    const send = (msg) => model.send(msg);
    const first = h("select", { class: "pl-by1" });
    const second = h("select", { class: "pl-by2" });
    const metric = h("select", { class: "pl-metric" });
    const regroup = () => send({ action: "group", by: [first.value, second.value].filter(Boolean), metric: metric.value });
    for (const s of [first, second, metric]) s.addEventListener("change", regroup);
    const chart = h("div", { class: "pl-bars" });
    const pivot = h("table", { class: "pl-pivot" });
    const error = h("div", { class: "pl-error" });
    const exports = exportButtons(model, send);
    put(el, h("div", { class: "pl-toolbar" }, h("label", {}, "group by ", first), h("label", {}, " × ", second),
      h("label", {}, " metric ", metric), exports), chart, pivot, error);
    const options = (sel, values) => keyed(sel, values.map((v) => ({ v })), (o) => o.v, (o) => h("option", { value: o.v }), (n, o) => setText(n, o.v || "—"));
    const draw = () => {
      const by = model.get("by") || [];
      options(first, model.get("choices") || []);
      options(second, ["", ...(model.get("choices") || [])]);
      options(metric, model.get("metrics") || []);
      first.value = by[0] || "";
      second.value = by[1] || "";
      metric.value = model.get("metric");
      keyed(chart, model.get("bars") || [], (b) => b.key, () => {
        const bar = h("div", { class: "pl-bar" });
        const whisker = h("div", { class: "pl-whisker" });
        return h("div", { class: "pl-bar-row" }, h("span", { class: "pl-bar-label" }),
          h("div", { class: "pl-track" }, bar, whisker), h("span", { class: "pl-bar-value" }));
      }, (row, b) => {
        setText(row.children[0], b.key);
        setAttr(row.children[0], "title", b.key);
        const [bar, whisker] = row.children[1].children;
        bar.style.width = `${(100 * b.x).toFixed(2)}%`;
        whisker.hidden = b.low == null;
        if (b.low != null) { whisker.style.left = `${(100 * b.low).toFixed(2)}%`; whisker.style.width = `${(100 * (b.high - b.low)).toFixed(2)}%`; }
        setText(row.children[2], `${b.mean} (n=${b.n})`);
      });
      const p = model.get("pivot") || {};
      pivot.hidden = !p.rows;
      if (p.rows) {
        put(pivot, h("thead", {}, h("tr", {}, h("th", { text: `${p.down} ↓ · ${p.across} →` }), ...p.columns.map((c) => h("th", { text: c })))),
          h("tbody", {}, ...p.rows.map((r, i) => h("tr", {}, h("th", { text: r }), ...p.cells[i].map((c) => h("td", { text: c }))))));
      }
      setText(error, model.get("error"));
      error.hidden = !model.get("error");
    };
    draw();
    const keys = ["choices", "metrics", "by", "metric", "bars", "pivot", "error"];
    for (const k of keys) model.on(`change:${k}`, draw);
    return () => { for (const k of keys) model.off(`change:${k}`, draw); exports.dispose(); };
  },
};
