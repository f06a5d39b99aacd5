// Compare view: two experiments' leaderboards side by side over their shared samples, and a
// paired comparison of the two configurations picked (one per side); promptlooper/ui/compare_view.py
// computes everything through the facade.
//
// Built once and patched: each side's rows are keyed by configuration id, so a refresh keeps the
// picked rows and the reader's scroll.
function side(name, send) {
  const title = h("div", { class: "pl-side-title" });
  const body = h("tbody", {});
  const table = h("table", { class: "pl-board" }, h("thead", {}, h("tr", {},
    ...["#", "config", "parameters", "score", "95% CI", "n", "in both"].map((t) => h("th", { text: t })))), body);
  const node = h("div", { class: `pl-side pl-side-${name}` }, title, table);
  node.patch = (label, rows, picked) => {
    setText(title, label);
    keyed(body, rows, (r) => r.key, (r) => {
      const tr = h("tr", { class: "pl-row", onclick: () => send({ action: "pick", side: name, config_id: tr.__key }) },
        ...Array.from({ length: 7 }, () => h("td", {})));
      return tr;
    }, (tr, r) => {
      tr.__key = r.key;
      setClass(tr, `pl-row${picked === r.key ? " pl-picked" : ""}`);
      [r.rank, r.config, r.params, r.score, r.ci, r.n, r.in_both ? "✓" : ""].forEach((v, i) => setText(tr.children[i], v));
    });
  };
  return node;
}

export default {
  render({ model, el }) {
    el.classList.add("pl-root", "pl-compare");
    const send = (msg) => model.send(msg);
    const summary = h("div", { class: "pl-summary" });
    const against = h("select", { class: "pl-against", onchange: (e) => send({ action: "against", name: e.target.value }) });
    const related = h("label", { class: "pl-related" }, "compare with ", against);
    const a = side("a", send);
    const b = side("b", send);
    const pair = h("div", { class: "pl-pair" });
    const hint = h("div", { class: "pl-hint", text: "Click a configuration on each side for a paired comparison over the shared samples." });
    const error = h("div", { class: "pl-error" });
    const exports = exportButtons(model, send);
    put(el, h("div", { class: "pl-toolbar" }, summary, related, exports), h("div", { class: "pl-sides" }, a, b), hint, pair, error);
    const draw = () => {
      const names = model.get("names") || {};
      const boards = model.get("boards") || {};
      const picked = model.get("picked") || {};
      const s = model.get("shared") || {};
      setText(summary, `${s.shared_samples ?? 0} shared samples (only in A: ${s.only_a ?? 0}, only in B: ${s.only_b ?? 0}) · ${s.metric || "score"}`);
      const rel = model.get("related") || [];
      related.hidden = !rel.length;
      keyed(against, rel, (r) => r.name, (r) => h("option", { value: r.name }), (o, r) => setText(o, `${r.relation}: ${r.name}`));
      if (against.value !== names.b && rel.some((r) => r.name === names.b)) against.value = names.b;
      a.patch(`A · ${names.a || ""}`, boards.a || [], picked.a);
      b.patch(`B · ${names.b || ""}`, boards.b || [], picked.b);
      const p = model.get("pair") || {};
      pair.hidden = p.n == null;
      hint.hidden = !pair.hidden;
      if (!pair.hidden) {
        put(pair, h("b", { text: p.verdict }), h("span", { text: ` · A − B = ${p.mean_diff} (95% CI ${p.ci}), p = ${p.p_value}, n = ${p.n} paired samples` }),
          p.only_a || p.only_b ? h("span", { class: "pl-hint", text: ` · unpaired: ${p.only_a} only A, ${p.only_b} only B` }) : null);
      }
      setText(error, model.get("error"));
      error.hidden = !model.get("error");
    };
    draw();
    const keys = ["names", "boards", "shared", "related", "picked", "pair", "error"];
    for (const k of keys) model.on(`change:${k}`, draw);
    return () => { for (const k of keys) model.off(`change:${k}`, draw); exports.dispose(); };
  },
};
