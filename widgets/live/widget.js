// Live sweep view: draws the state built by promptlooper/ui/live.py; sends nothing.
// Built once and patched: the numbers change about once a second during a sweep, and a rebuilt
// panel would flicker, drop a text selection and reset any tooltip being read.
const STATS = [["progress", "progress", "pl-progress"], ["tokens", "tokens"], ["cost", "cost"], ["cache", "cache hits"],
  ["rate", "rate"], ["eta", "ETA", "pl-eta"], ["failed", "failed"], ["best", "current best", "pl-best"]];

export default {
  render({ model, el }) {
    el.classList.add("pl-root", "pl-live");
    const exp = h("span", { class: "pl-live-exp" });
    const badge = h("span", { class: "pl-badge" });
    const fill = h("div", { class: "pl-bar-fill" });
    const bar = h("div", { class: "pl-bar", role: "progressbar" }, fill);
    const values = {};
    const stats = h("div", { class: "pl-stats" }, ...STATS.map(([key, label, cls]) => {
      values[key] = h("div", { class: "pl-stat-value" });
      return h("div", { class: `pl-stat ${cls || ""}` }, h("div", { class: "pl-stat-label", text: label }), values[key]);
    }));
    const bestParams = h("div", { class: "pl-best-params" });
    put(el, h("div", { class: "pl-live-head" }, exp, badge), bar, stats, bestParams);
    const draw = () => {
      const s = model.get("state") || {};
      const d = s.display || {};
      const pct = Math.max(0, Math.min(100, 100 * (Number(s.fraction) || 0)));
      const status = String(s.status || "unknown");
      setText(exp, s.experiment);
      const cls = `pl-badge pl-status-${status.replace(/[^a-z]/g, "")}`;
      if (badge.className !== cls) badge.className = cls;
      setText(badge, d.status || status);
      bar.setAttribute("aria-valuenow", pct.toFixed(0));
      fill.style.width = `${pct.toFixed(1)}%`;
      for (const [key] of STATS) setText(values[key], d[key] ?? "–");
      setText(bestParams, d.best_params);
      bestParams.hidden = !d.best_params;
    };
    draw();
    model.on("change:state", draw);
    return () => model.off("change:state", draw);
  },
};
