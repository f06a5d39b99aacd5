// Output matrix: paints the page of cells promptlooper/ui/matrix_view.py sends (samples down,
// configurations or a variable's values across); every filter, search, page turn, pick, rating
// and export is a message, done in Python.
//
// Built once and patched: header cells are keyed by column, rows by sample, cells by
// sample + column, so a live sweep filling in cells changes text and classes in place, and the
// search box keeps its typed text and focus. The page never holds more than page_rows x
// page_cols cells, however large the matrix. Read-only: no rating controls are created at all.

function stars(n) {
  return "★".repeat(n || 0) + "☆".repeat(5 - (n || 0));
}

function ratingControls(send, readonly) {
  // thumbs and stars of one run; in read-only mode only the rating as text
  const shown = h("span", { class: "pl-rated" });
  if (readonly) {
    const node = h("span", { class: "pl-rate" }, shown);
    node.patch = (cell) => {
      setText(shown, `${cell.thumbs === "up" ? "▲ up" : cell.thumbs === "down" ? "▼ down" : ""}${cell.stars ? " " + stars(cell.stars) : ""}`);
    };
    return node;
  }
  let runId = null;
  const rate = (msg) => (ev) => { ev.stopPropagation(); if (runId) send({ action: "rate", run_id: runId, ...msg }); };
  const up = h("button", { class: "pl-thumb", title: "thumbs up", text: "▲", onclick: rate({ thumbs: "up" }) });
  const down = h("button", { class: "pl-thumb", title: "thumbs down", text: "▼", onclick: rate({ thumbs: "down" }) });
  const starButtons = [1, 2, 3, 4, 5].map((n) => h("button", { class: "pl-star", title: `${n} star${n > 1 ? "s" : ""}`,
    "data-stars": String(n), onclick: rate({ stars: n }) }));
  const node = h("span", { class: "pl-rate" }, up, down, h("span", { class: "pl-stars" }, ...starButtons));
  node.patch = (cell) => {
    runId = cell.ratable === false ? null : cell.run_id;
    setClass(up, `pl-thumb ${cell.thumbs === "up" ? "pl-on" : ""}`);
    setClass(down, `pl-thumb ${cell.thumbs === "down" ? "pl-on" : ""}`);
    starButtons.forEach((b, i) => { setClass(b, `pl-star ${cell.stars && i < cell.stars ? "pl-on" : ""}`); setText(b, cell.stars && i < cell.stars ? "★" : "☆"); });
  };
  return node;
}

function makeCell(send, readonly) {
  const score = h("span", { class: "pl-score" });
  const repeats = h("span", { class: "pl-repeats" });
  const badges = h("span", { class: "pl-badges" });
  const pick = h("input", { type: "checkbox", class: "pl-pick", title: "pick for the diff" });
  const output = h("div", { class: "pl-out" });
  const rating = ratingControls(send, readonly);
  const td = h("td", {}, h("div", { class: "pl-cell-head" }, pick, score, repeats, badges), output, rating);
  let runId = null;
  pick.addEventListener("click", (ev) => { ev.stopPropagation(); if (runId) send({ action: "pick", run_id: runId }); });
  td.addEventListener("click", () => { if (runId) send({ action: "open", run_id: runId }); });
  td.patch = (cell) => {
    runId = cell.run_id || null;
    setClass(td, cell.empty ? "pl-cell pl-empty" : `pl-cell pl-tone-${cell.tone}${cell.picked ? " pl-picked" : ""}`);
    td.querySelector(".pl-cell-head").hidden = !!cell.empty;
    rating.hidden = !!cell.empty || !(cell.status === "completed" || cell.status === "cached");
    setText(output, cell.empty ? "" : cell.output);
    if (cell.empty) return;
    setText(score, cell.score);
    setText(repeats, cell.repeats > 1 ? `×${cell.repeats}` : "");
    if (pick.checked !== !!cell.picked) pick.checked = !!cell.picked;
    keyed(badges, cell.badges || [], (b) => b.scorer, () => h("span", {}), (node, b) => {
      setClass(node, `pl-badge ${b.passed ? "pl-pass" : "pl-fail"}`);
      setText(node, `${b.passed ? "✓" : "✗"} ${b.scorer}`);
    });
    rating.patch(cell);
  };
  return td;
}

function segments(list) {
  return (list || []).map((g) => h("span", { class: { equal: "pl-eq", del: "pl-del", ins: "pl-ins" }[g.op] || "", text: g.text }));
}

export default {
  render({ model, el }) {
    el.classList.add("pl-root", "pl-matrix");
    const send = (msg) => model.send(msg);
    const readonly = !!model.get("readonly");
    // -- toolbar: search, filters, layout, export
    const search = h("input", { type: "search", class: "pl-search", placeholder: "search prompts and outputs" });
    search.addEventListener("keydown", (e) => { if (e.key === "Enter") send({ action: "filter", search: search.value }); });
    const tick = (name, label) => h("label", {}, h("input", { type: "checkbox", class: `pl-f-${name}`,
      onchange: (e) => send({ action: "filter", [name]: e.target.checked }) }), ` ${label}`);
    const differ = tick("differ", "only where outputs differ");
    const failures = tick("failures", "failures only");
    const low = h("input", { type: "number", class: "pl-low", min: "0", max: "1", step: "0.05", placeholder: "min" });
    const high = h("input", { type: "number", class: "pl-high", min: "0", max: "1", step: "0.05", placeholder: "max" });
    const range = h("span", { class: "pl-range" }, "score ", low, "–", high,
      h("button", { class: "pl-btn", text: "apply", onclick: () => send({ action: "filter",
        score: low.value === "" && high.value === "" ? null : [Number(low.value || 0), Number(high.value === "" ? 1 : high.value)] }) }));
    const paramFilters = h("span", { class: "pl-params" });
    const sortChoice = (cls, what) => h("select", { class: cls, onchange: (e) => send({ action: "sort", [what]: e.target.value }) },
      h("option", { value: "", text: "as read" }), h("option", { value: "score", text: "worst first" }),
      h("option", { value: "-score", text: "best first" }));
    const sortRows = sortChoice("pl-sort-rows", "rows");
    const sortCols = sortChoice("pl-sort-cols", "cols");
    const by = h("select", { class: "pl-by", onchange: (e) => send({ action: "by", by: e.target.value }) });
    const exports = exportButtons(model, send);
    const toolbar = h("div", { class: "pl-toolbar" }, search, differ, failures, range, paramFilters,
      h("label", {}, "across ", by), h("label", {}, "samples ", sortRows), h("label", {}, "columns ", sortCols),
      h("button", { class: "pl-btn pl-clear", text: "clear filters", onclick: () => send({ action: "clear" }) }),
      exports);
    // -- paging and the table
    const summary = h("span", { class: "pl-summary" });
    const where = h("span", { class: "pl-where" });
    const turn = (label, cls, fn) => h("button", { class: `pl-btn ${cls}`, text: label, onclick: () => send({ action: "page", ...fn(model.get("page") || {}) }) });
    const pager = h("div", { class: "pl-pager" }, summary,
      turn("◀ cols", "pl-prev-cols", (p) => ({ col: p.col - p.page_cols })), turn("cols ▶", "pl-next-cols", (p) => ({ col: p.col + p.page_cols })),
      turn("▲ rows", "pl-prev-rows", (p) => ({ row: p.row - p.page_rows })), turn("rows ▼", "pl-next-rows", (p) => ({ row: p.row + p.page_rows })),
      where);
    const colHeads = h("tr", {});
    const body = h("tbody", {});
    const table = h("table", { class: "pl-grid" }, h("thead", {}, colHeads), body);
    const scroller = h("div", { class: "pl-scroll" }, table);
    // -- run view and diff
    const detail = h("div", { class: "pl-detail" });
    const diff = h("div", { class: "pl-diffbox" });
    const notice = h("div", { class: "pl-notice" });
    const error = h("div", { class: "pl-error" });
    put(el, toolbar, pager, notice, error, scroller, detail, diff);
    const corner = h("th", { class: "pl-corner", text: "sample" });

    const drawDetail = () => {
      const d = model.get("detail") || {};
      detail.hidden = !d.id;
      if (!d.id) return;
      const rate = ratingControls(send, readonly || !d.ratable);
      rate.patch({ ...d, run_id: d.id });
      put(detail,
        h("div", { class: "pl-detail-head" }, h("b", { text: d.title }), h("span", { text: ` ${d.subtitle} · score ${d.score}` }),
          h("button", { class: "pl-btn pl-close", text: "close", onclick: () => send({ action: "close" }) })),
        h("div", { class: "pl-chips" }, ...(d.scores || []).map((s) => h("span", { class: `pl-chip pl-src-${s.source}`, text: `${s.scorer} ${s.value}` }))),
        h("div", { class: "pl-label", text: "prompt" }), h("pre", { class: "pl-prompt", text: d.prompt }),
        h("div", { class: "pl-label", text: "output" }), h("pre", { class: "pl-full", text: d.output }), rate);
    };
    const drawDiff = () => {
      const d = model.get("diff") || {};
      diff.hidden = !(d.sections && d.sections.length);
      if (diff.hidden) return;
      put(diff, h("div", { class: "pl-diff-head" }, h("b", { text: `${d.left.title} ⇄ ${d.right.title}` }),
        h("span", { text: ` scores ${d.left.score} / ${d.right.score}` })),
      ...d.sections.filter((s) => !s.same).map((s) => h("div", { class: "pl-diff-sec" }, h("div", { class: "pl-label", text: s.title }),
        h("div", { class: "pl-diff-row" }, h("pre", {}, ...segments(s.left)), h("pre", {}, ...segments(s.right))))));
    };
    const draw = () => {
      const filters = model.get("filters") || {};
      if (document.activeElement !== search && search.value !== (filters.search || "")) search.value = filters.search || "";
      differ.querySelector("input").checked = !!filters.differ;
      failures.querySelector("input").checked = !!filters.failures;
      keyed(paramFilters, model.get("params") || [], (p) => p.name, (p) => {
        const sel = h("select", { class: "pl-param", "data-param": p.name,
          onchange: (e) => send({ action: "filter", where: { ...(model.get("filters").where || {}), [p.name]: e.target.value || null } }) });
        return h("label", {}, `${p.name} `, sel);
      }, (node, p) => {
        const sel = node.querySelector("select");
        keyed(sel, [{ v: "", t: "all" }, ...p.values.map((v) => ({ v: String(v), t: String(v) }))], (o) => o.v,
          (o) => h("option", { value: o.v }), (opt, o) => setText(opt, o.t));
        const chosen = ((filters.where || {})[p.name] || [""])[0];
        if (sel.value !== String(chosen)) sel.value = String(chosen);
      });
      keyed(by, (model.get("choices") || []).map((c) => ({ c })), (o) => o.c, (o) => h("option", { value: o.c }), (opt, o) => setText(opt, o.c));
      if (by.value !== model.get("by")) by.value = model.get("by");
      const sort = model.get("sort") || {};
      if (sortRows.value !== (sort.rows || "")) sortRows.value = sort.rows || "";
      if (sortCols.value !== (sort.cols || "")) sortCols.value = sort.cols || "";
      const p = model.get("page") || {};
      setText(summary, model.get("summary"));
      setText(where, p.rows ? `samples ${p.row + 1}–${Math.min(p.rows, p.row + p.page_rows)} of ${p.rows} · columns ${p.col + 1}–${Math.min(p.cols, p.col + p.page_cols)} of ${p.cols}` : "no runs match");
      const cols = model.get("columns") || [];
      keyed(colHeads, [{ key: "\u0000corner" }, ...cols], (c) => c.key, (c) => (c.key === "\u0000corner" ? corner : h("th", {})),
        (th, c) => {
          if (c.key === "\u0000corner") return;
          if (!th.firstChild) th.append(h("div", { class: "pl-col-id" }), h("div", { class: "pl-col-detail" }));
          setText(th.firstChild, c.label);
          setText(th.lastChild, c.detail);
          setAttr(th, "title", c.detail ? `${c.label}: ${c.detail}` : c.label);
        });
      keyed(body, model.get("rows") || [], (r) => r.key, () => {
        const tr = h("tr", {}, h("th", { class: "pl-sample" }));
        return tr;
      }, (tr, r) => {
        const head = tr.firstElementChild;
        setText(head, r.label);
        setAttr(head, "title", r.title);
        // cells keyed inside the row after its header: a wrapper-free keyed() over the row's tds
        const cells = tr.__cells || (tr.__cells = new Map());
        const next = new Map();
        let prev = head;
        for (const c of r.cells) {
          let td = cells.get(c.key);
          if (!td) td = makeCell(send, readonly);
          td.patch(c);
          next.set(c.key, td);
          if (prev.nextElementSibling !== td) prev.after(td);
          prev = td;
        }
        for (const [k, td] of cells) if (!next.has(k)) td.remove();
        tr.__cells = next;
      });
      setText(notice, model.get("notice"));
      notice.hidden = !model.get("notice");
      setText(error, model.get("error"));
      error.hidden = !model.get("error");
    };
    draw();
    drawDetail();
    drawDiff();
    const keys = ["rows", "columns", "page", "filters", "params", "choices", "by", "sort", "summary", "notice", "error"];
    for (const k of keys) model.on(`change:${k}`, draw);
    model.on("change:detail", drawDetail);
    model.on("change:diff", drawDiff);
    return () => {
      for (const k of keys) model.off(`change:${k}`, draw);
      model.off("change:detail", drawDetail);
      model.off("change:diff", drawDiff);
      exports.dispose();
    };
  },
};
