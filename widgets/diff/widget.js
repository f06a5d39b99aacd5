// Diff view: paints the word-level segments computed with difflib in promptlooper/ui/diff.py.
//
// Built once and patched: sections are keyed by title (one `display: contents` wrapper holding
// the title and both cells of the grid row), their word segments by position, so a new pair of
// runs updates the text in place, and the "only differences" tick, a focused control and the
// reader's scroll survive.
const OP_CLASS = { equal: "pl-eq", del: "pl-del", ins: "pl-ins" };

function sideHead() {
  const title = h("span", {});
  const score = h("span", { class: "pl-side-score" });
  const sub = h("div", { class: "pl-side-sub" });
  const chips = h("div", { class: "pl-scores" });
  const node = h("div", { class: "pl-side-head" }, h("div", { class: "pl-side-title" }, title, score), sub, chips);
  node.patch = (s) => {
    setText(title, s.title);
    setText(score, `score ${s.score ?? "–"}`);
    setText(sub, s.subtitle);
    keyed(chips, s.scores || [], (sc) => `${sc.source}:${sc.scorer}`, () => h("span", {}), (chip, sc) => {
      setClass(chip, `pl-chip pl-src-${sc.source}`);
      setText(chip, `${sc.scorer} ${sc.value}`);
    });
  };
  return node;
}

function patchSegments(textEl, list) {
  keyed(textEl, (list || []).map((g, i) => ({ i, ...g })), (g) => g.i, () => h("span", {}), (span, g) => {
    setClass(span, OP_CLASS[g.op] || "");
    setText(span, g.text);
  });
}

function section() {
  const title = h("div", { class: "pl-section-title" });
  const left = h("div", { class: "pl-text" });
  const right = h("div", { class: "pl-text" });
  const node = h("div", { class: "pl-section" }, title, h("div", { class: "pl-cell" }, left), h("div", { class: "pl-cell" }, right));
  node.patch = (s) => {
    setClass(node, `pl-section ${s.same ? "pl-same" : ""}`);
    setText(title, s.title + (s.same ? " (same)" : ""));
    patchSegments(left, s.left);
    patchSegments(right, s.right);
  };
  return node;
}

export default {
  render({ model, el }) {
    el.classList.add("pl-root", "pl-diff");
    const send = (msg) => model.send(msg);
    const hint = h("div", { class: "pl-hint" });
    const picker = h("select", { class: "pl-sample", onchange: (e) => send({ action: "sample", index: Number(e.target.value) }) });
    const error = h("div", { class: "pl-error" });
    const toolbar = h("div", { class: "pl-toolbar" }, picker,
      h("button", { class: "pl-btn pl-swap", text: "⇄ swap", onclick: () => send({ action: "swap" }) }),
      h("label", {}, h("input", { type: "checkbox", class: "pl-only-diff",
        onchange: (e) => el.classList.toggle("pl-hide-same", e.target.checked) }), " only differences"));
    const left = sideHead();
    const right = sideHead();
    const sections = h("div", { class: "pl-sections" });
    const grid = h("div", { class: "pl-grid" }, left, right, sections);
    put(el, hint, error, toolbar, grid);
    const draw = () => {
      const list = model.get("sections") || [];
      const samples = model.get("samples") || [];
      const shown = list.length > 0;
      hint.hidden = shown;
      setText(hint, shown ? "" : model.get("hint") || "Nothing to compare.");
      toolbar.hidden = grid.hidden = !shown;
      setText(error, model.get("error"));
      error.hidden = !model.get("error");
      if (!shown) return;
      picker.hidden = samples.length <= 1;
      keyed(picker, samples, (s) => s.index, (s) => h("option", { value: String(s.index) }), (o, s) => setText(o, s.label));
      const current = String(model.get("sample") ?? "");
      if (picker.value !== current) picker.value = current;
      left.patch(model.get("left") || {});
      right.patch(model.get("right") || {});
      keyed(sections, list, (s) => s.title, section, (node, s) => node.patch(s));
    };
    draw();
    const keys = ["left", "right", "sections", "samples", "sample", "hint", "error"];
    for (const k of keys) model.on(`change:${k}`, draw);
    return () => { for (const k of keys) model.off(`change:${k}`, draw); };
  },
};
