// Leaderboard: draws rows sorted and built in Python (promptlooper/ui/leaderboard.py).
// Header click -> {action: "sort"}; row click -> "expand"; checkbox -> "select";
// run button -> "pick_run"; approve / reject / undo -> "approve" / "reject" / "clear".
//
// The DOM is built once and patched in place: rows are keyed by configuration id and a row
// element lives as long as its configuration is on the board. A sweep updates the board about
// once a second; rebuilding it would reset scrolling, drop clicks that land on a replaced
// element and lose focus. While the pointer is over the table the rows hold their order (the
// cells still update) and a "re-sort" button offers the new ranking; a header click re-sorts
// at once, since the user asked for it.
function runDetail(run, isPicked, send) {
  const stages = (run.stages || []).map((s) =>
    h("div", { class: "pl-stage" },
      h("div", { class: "pl-stage-head", text: `${text(s.name)} (${text(s.kind)}${s.model ? " · " + s.model : ""}${s.cached ? " · cached" : ""})` }),
      s.params ? h("div", { class: "pl-params", text: s.params }) : null,
      ...(s.messages || []).map((m) =>
        h("div", { class: "pl-msg" }, h("span", { class: "pl-role", text: text(m.role) }), h("span", { class: "pl-content", text: text(m.content) }))),
      h("div", { class: "pl-response" }, h("span", { class: "pl-role", text: "response" }), h("span", { class: "pl-content", text: text(s.response) }))));
  return h("div", { class: `pl-run ${isPicked ? "pl-picked" : ""}`, "data-run": run.id },
    h("div", { class: "pl-run-head" },
      h("span", { text: `sample #${text(run.sample_index)}${run.repeat ? " · repeat " + run.repeat : ""} · run ${text(run.short)} · ${text(run.status)}` }),
      h("span", { class: "pl-run-score", text: run.score ? `score ${run.score}` : "not scored" }),
      h("button", { class: "pl-btn pl-pick", title: "pick for diff / rating (two: compare)",
        onclick: (e) => { e.stopPropagation(); send({ action: "pick_run", run_id: run.id }); },
        text: isPicked ? "picked ✓" : "pick" })),
    run.error ? h("div", { class: "pl-error", text: run.error }) : null,
    ...stages,
    h("div", { class: "pl-scores" }, ...(run.scores || []).map((sc) =>
      h("span", { class: `pl-chip pl-src-${sc.source}`, text: `${text(sc.scorer)} ${text(sc.value)}${sc.source !== "auto" ? " (" + sc.source + ")" : ""}` }))));
}

const SORT_GRACE_MS = 3000; // rows that arrive this soon after a header click follow it at once

// The table with one delta applied: new rows added, changed fields (and cells) patched, rows
// removed, and the order set; the same table when the delta is for another table or none; null
// when deltas were missed (a page that connected after the first ones, as a dashboard does while a
// sweep runs): each delta is relative to the one before, so the page must ask for the whole table.
function applyDelta(table, delta) {
  if (!delta || delta.base == null || delta.base < table.seq) return table; // none, or for an older table
  if (delta.base === table.seq && delta.n <= (table.n || 0)) return table; // applied already
  if (delta.base !== table.seq || delta.n !== (table.n || 0) + 1) return null; // deltas missed
  const byK = new Map((table.rows || []).map((r) => [r.k, r]));
  for (const k of delta.remove || []) byK.delete(k);
  for (const r of delta.add || []) byK.set(r.k, r);
  for (const p of delta.patch || []) {
    const old = byK.get(p.k);
    if (old) byK.set(p.k, { ...old, ...p, cells: { ...old.cells, ...(p.cells || {}) } });
  }
  const order = delta.order || (table.rows || []).map((r) => r.k).filter((k) => byK.has(k)).concat((delta.add || []).map((r) => r.k));
  return { seq: table.seq, n: delta.n, rows: order.map((k) => byK.get(k)).filter(Boolean) };
}

export default {
  render({ model, el }) {
    el.classList.add("pl-root", "pl-leaderboard");
    const send = (msg) => model.send(msg);

    // -- the skeleton, built once
    const count = h("span", { class: "pl-count" });
    const refresh = h("button", { class: "pl-btn pl-refresh", text: "refresh", onclick: () => send({ action: "refresh" }) });
    const resort = h("button", { class: "pl-btn pl-resort", hidden: true,
      title: "The ranking changed while the pointer was over the table; rows hold still until you apply it.",
      onclick: () => place(true) });
    const roBadge = h("span", { class: "pl-readonly", text: "read-only", hidden: true });
    // the column chooser: hidden columns are this view's choice (kept while the board updates)
    const hiddenCols = new Set();
    const chooserList = h("div", { class: "pl-chooser-list" });
    const chooser = h("details", { class: "pl-chooser" }, h("summary", { text: "columns" }), chooserList);
    const notice = h("span", { class: "pl-notice" });
    const error = h("span", { class: "pl-error" });
    const headRow = h("tr");
    const tbody = h("tbody");
    const scroll = h("div", { class: "pl-scroll" }, h("table", { class: "pl-table" }, h("thead", {}, headRow), tbody));
    const empty = h("div", { class: "pl-empty", text: "No scored configuration yet." });
    el.append(h("div", { class: "pl-toolbar" }, count, refresh, resort, chooser, roBadge, notice, error), scroll, empty);
    // the expanded runs stay within the visible width of the table's scroller
    new ResizeObserver(() => el.style.setProperty("--pl-view-width", `${scroll.clientWidth}px`)).observe(scroll);

    let hovering = false;
    let sortedAt = 0;
    scroll.addEventListener("pointerenter", () => { hovering = true; });
    scroll.addEventListener("pointerleave", () => { hovering = false; place(false); });

    const entries = new Map(); // config id -> {tr, box, tds: Map(column key -> td), undo, approve, reject}
    const detail = h("tr", { class: "pl-detail" }, h("td"));
    const runEls = new Map(); // run id -> [json, element]
    let headSig = "";
    let cols = [];

    function drawHead(readonly) {
      const sig = JSON.stringify([cols.map((c) => [c.key, c.label, c.kind]), readonly]);
      if (sig === headSig) return false;
      headSig = sig;
      chooserList.replaceChildren(...cols.filter((c) => c.key !== "rank" && c.key !== "config_id").map((c) =>
        h("label", {}, h("input", { type: "checkbox", checked: !hiddenCols.has(c.key),
          onchange: (e) => { if (e.target.checked) hiddenCols.delete(c.key); else hiddenCols.add(c.key); showCols(); } }), ` ${c.label}`)));
      headRow.replaceChildren(
        h("th", { class: "pl-sel", title: "select: steer / compare two" }),
        ...cols.map((c) => h("th", {
          class: `pl-sortable pl-kind-${c.kind}`, "data-key": c.key, title: `sort by ${c.label}`,
          onclick: () => { sortedAt = Date.now(); send({ action: "sort", key: c.key }); },
        }, h("span", { class: "pl-label", text: c.label }), h("span", { class: "pl-arrow" }))),
        ...(readonly ? [] : [h("th", { class: "pl-actions-head", text: "" })]));
      return true;
    }

    function showCols() {
      for (const cell of el.querySelectorAll("[data-key]")) cell.classList.toggle("pl-col-hidden", hiddenCols.has(cell.dataset.key));
    }

    function makeEntry(id) {
      const tr = h("tr", { "data-id": id, onclick: () => send({ action: "expand", config_id: id }) });
      const box = h("input", { type: "checkbox", title: "select",
        onclick: (e) => { e.stopPropagation(); send({ action: "select", config_id: id }); } });
      const act = (cls, title, label, action) => h("button", { class: `pl-btn ${cls}`, title, text: label,
        onclick: (e) => { e.stopPropagation(); send({ action, config_id: id }); } });
      const entry = { tr, box, sel: h("td", { class: "pl-sel" }, box), tds: new Map(),
        actions: h("td", { class: "pl-actions" }),
        undo: act("pl-clear", "undo the decision", "undo", "clear"),
        approve: act("pl-approve", "approve", "✓", "approve"),
        reject: act("pl-reject", "reject", "✗", "reject") };
      entry.actions.append(entry.undo, entry.approve, entry.reject);
      tr.append(entry.sel);
      return entry;
    }

    function layCells(entry, readonly) {
      // columns changed: the row element stays, its cells follow the new header
      const keep = new Map();
      for (const c of cols) {
        keep.set(c.key, entry.tds.get(c.key) || h("td", { "data-key": c.key }));
        keep.get(c.key).classList.toggle("pl-col-hidden", hiddenCols.has(c.key));
      }
      entry.tds = keep;
      entry.tr.replaceChildren(entry.sel, ...keep.values(), ...(readonly ? [] : [entry.actions]));
    }

    function patchRow(entry, r, state) {
      const cells = r.cells || {};
      setClass(entry.tr, ["pl-row", `pl-decision-${r.decision || "none"}`, r.failed ? "pl-has-failed" : "",
        r.few ? "pl-few" : "", state.expanded === r.id ? "pl-expanded" : ""].filter(Boolean).join(" "));
      const on = state.selected.includes(r.id);
      if (entry.box.checked !== on) entry.box.checked = on;
      for (const c of cols) {
        const td = entry.tds.get(c.key);
        setClass(td, `pl-kind-${c.kind}${hiddenCols.has(c.key) ? " pl-col-hidden" : ""}`);
        const t = text(cells[c.key]);
        setText(td, t);
        // truncated text (long prompts, parameters, reasons) reads in full on hover
        setAttr(td, "title", c.key === "n" ? r.n_of : (c.kind === "param" || c.kind === "failure" || c.kind === "id") ? t : "");
      }
      entry.undo.hidden = !r.decision;
      entry.approve.hidden = r.decision === "approved";
      entry.reject.hidden = r.decision === "rejected";
    }

    function drawDetail(state) {
      const td = detail.firstChild;
      td.colSpan = cols.length + 2;
      const runs = model.get("runs") || [];
      const seen = new Set();
      const els = runs.map((run) => {
        seen.add(run.id);
        const sig = JSON.stringify([run, state.picked.includes(run.id)]);
        const old = runEls.get(run.id);
        if (old && old[0] === sig) return old[1];
        const fresh = runDetail(run, state.picked.includes(run.id), send);
        if (old) old[1].replaceWith(fresh);
        runEls.set(run.id, [sig, fresh]);
        return fresh;
      });
      for (const id of [...runEls.keys()]) if (!seen.has(id)) { runEls.get(id)[1].remove(); runEls.delete(id); }
      let box = td.firstChild;
      if (!runs.length) {
        if (!box || !box.classList.contains("pl-empty")) td.replaceChildren(h("div", { class: "pl-empty", text: "no runs yet" }));
        return;
      }
      if (!box || !box.classList.contains("pl-runs")) { box = h("div", { class: "pl-runs" }); td.replaceChildren(box); }
      els.forEach((node, i) => { if (box.children[i] !== node) box.insertBefore(node, box.children[i] || null); });
    }

    // Put the rows in the model's order, moving only rows that are out of place (a moved
    // element loses focus and hover). Held while the pointer is over the table.
    function place(force) {
      const rows = (model.get("table") || {}).rows || [];
      const expanded = model.get("expanded") || "";
      const order = [];
      for (const r of rows) {
        const e = entries.get(r.id);
        if (!e) continue;
        order.push(e.tr);
        if (r.id === expanded) order.push(detail);
      }
      if (!expanded && detail.parentNode) detail.remove();
      const current = [...tbody.children];
      const same = current.length === order.length && current.every((node, i) => node === order[i]);
      if (same) { resort.hidden = true; return; }
      const held = hovering && !force && Date.now() - sortedAt > SORT_GRACE_MS;
      if (held) {
        // new rows still appear (at the end), the expanded detail stays under its row, nothing else moves
        for (const node of order) if (node !== detail && !node.parentNode) tbody.append(node);
        const row = expanded && entries.get(expanded);
        if (row && row.tr.parentNode && row.tr.nextSibling !== detail) row.tr.after(detail);
        const moved = [...tbody.children].filter((n) => n !== detail).some((n, i) => n !== order.filter((o) => o !== detail)[i]);
        resort.hidden = !moved;
        setText(resort, "re-sort");
        return;
      }
      order.forEach((node, i) => { if (tbody.children[i] !== node) tbody.insertBefore(node, tbody.children[i] || null); });
      resort.hidden = true;
    }

    function draw() {
      scheduled = false;
      cols = model.get("columns") || [];
      const rows = (model.get("table") || {}).rows || [];
      const readonly = !!model.get("readonly");
      const sort = model.get("sort") || {};
      const state = { expanded: model.get("expanded") || "", selected: model.get("selected") || [], picked: model.get("picked_runs") || [] };
      const relaid = drawHead(readonly);
      if (relaid) showCols();
      for (const th of headRow.querySelectorAll("th[data-key]")) {
        const on = th.dataset.key === sort.key;
        th.classList.toggle("pl-sorted", on);
        setText(th.querySelector(".pl-arrow"), on ? (sort.desc ? " ▼" : " ▲") : "");
      }
      const live = new Set();
      for (const r of rows) {
        live.add(r.id);
        let e = entries.get(r.id);
        if (!e) { e = makeEntry(r.id); entries.set(r.id, e); layCells(e, readonly); } else if (relaid) layCells(e, readonly);
        patchRow(e, r, state);
      }
      for (const [id, e] of entries) if (!live.has(id)) { e.tr.remove(); entries.delete(id); }
      if (state.expanded) drawDetail(state);
      place(false);
      setText(count, `${rows.length} configurations`);
      roBadge.hidden = !readonly;
      setText(notice, model.get("notice"));
      setText(error, model.get("error"));
      empty.hidden = rows.length > 0;
    }

    // several traits change together (rows, then runs...): draw once for the batch
    let scheduled = false;
    const later = () => { if (!scheduled) { scheduled = true; Promise.resolve().then(draw); } };
    // A delta brings the table up to date (promptlooper/ui/board_sync.py). The merged table is
    // kept in the model, locally (never sent back: Python owns the rows), so another view of
    // this model and a notebook saved with its widget state both hold the whole board.
    const onDelta = () => {
      const table = model.get("table") || {};
      const merged = applyDelta(table, model.get("delta"));
      if (merged === null) model.send({ action: "resync" }); // Python answers with the whole table
      else if (merged !== table) model.set("table", merged);
    };
    onDelta(); // a saved or re-displayed model may hold a delta newer than its table
    draw();
    model.on("change:delta", onDelta);
    const keys = ["columns", "table", "sort", "expanded", "runs", "selected", "picked_runs", "readonly", "error", "notice"];
    for (const k of keys) model.on(`change:${k}`, later);
    return () => { model.off("change:delta", onDelta); for (const k of keys) model.off(`change:${k}`, later); };
  },
};
