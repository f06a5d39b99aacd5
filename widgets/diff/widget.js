// Diff view: paints the word-level segments computed with difflib in promptlooper/ui/diff.py.
const OP_CLASS = { equal: "pl-eq", del: "pl-del", ins: "pl-ins" };

function side(s) {
  return h("div", { class: "pl-side-head" },
    h("div", { class: "pl-side-title" }, h("span", { text: s.title || "" }), h("span", { class: "pl-side-score", text: `score ${s.score ?? "–"}` })),
    h("div", { class: "pl-side-sub", text: s.subtitle || "" }),
    h("div", { class: "pl-scores" }, ...(s.scores || []).map((sc) =>
      h("span", { class: `pl-chip pl-src-${sc.source}`, text: `${sc.scorer} ${sc.value}` }))));
}

function segments(list) {
  return h("div", { class: "pl-text" }, ...(list || []).map((g) => h("span", { class: OP_CLASS[g.op] || "", text: g.text })));
}

export default {
  render({ model, el }) {
    el.classList.add("pl-root", "pl-diff");
    const send = (msg) => model.send(msg);
    const draw = () => {
      const left = model.get("left") || {};
      const right = model.get("right") || {};
      const sections = model.get("sections") || [];
      const samples = model.get("samples") || [];
      const hint = model.get("hint");
      const error = model.get("error");
      if (!sections.length) {
        put(el, h("div", { class: "pl-hint", text: hint || "Nothing to compare." }),
          error ? h("div", { class: "pl-error", text: error }) : null);
        return;
      }
      const picker = samples.length > 1 ? h("select", { class: "pl-sample", onchange: (e) => send({ action: "sample", index: Number(e.target.value) }) },
        ...samples.map((s) => h("option", { value: String(s.index), selected: s.index === model.get("sample"), text: s.label }))) : null;
      put(el, 
        h("div", { class: "pl-toolbar" }, picker,
          h("button", { class: "pl-btn pl-swap", text: "⇄ swap", onclick: () => send({ action: "swap" }) }),
          h("label", {}, h("input", { type: "checkbox", class: "pl-only-diff", checked: el.classList.contains("pl-hide-same"), onchange: (e) => el.classList.toggle("pl-hide-same", e.target.checked) }), " only differences"),
          error ? h("span", { class: "pl-error", text: error }) : null),
        h("div", { class: "pl-grid" }, side(left), side(right),
          ...sections.flatMap((s) => [
            h("div", { class: `pl-section-title ${s.same ? "pl-same" : ""}`, text: s.title + (s.same ? " (same)" : "") }),
            h("div", { class: `pl-cell ${s.same ? "pl-same" : ""}` }, segments(s.left)),
            h("div", { class: `pl-cell ${s.same ? "pl-same" : ""}` }, segments(s.right)),
          ])));
    };
    draw();
    const keys = ["left", "right", "sections", "samples", "sample", "hint", "error"];
    for (const k of keys) model.on(`change:${k}`, draw);
    return () => { for (const k of keys) model.off(`change:${k}`, draw); };
  },
};
