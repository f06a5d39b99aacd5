// Leaderboard: draws rows sorted and built in Python (promptlooper/ui/leaderboard.py).
// Header click -> {action: "sort"}; row click -> "expand"; checkbox -> "select";
// run button -> "pick_run"; approve / reject / undo -> "approve" / "reject" / "clear".
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = String(v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c != null) el.append(c);
  return el;
}

function runDetail(run, picked, send) {
  const isPicked = picked.includes(run.id);
  const stages = (run.stages || []).map((s) =>
    h("div", { class: "pl-stage" },
      h("div", { class: "pl-stage-head", text: `${s.name} (${s.kind}${s.model ? " · " + s.model : ""}${s.cached ? " · cached" : ""})` }),
      s.params ? h("div", { class: "pl-params", text: s.params }) : null,
      ...(s.messages || []).map((m) =>
        h("div", { class: "pl-msg" }, h("span", { class: "pl-role", text: m.role }), h("span", { class: "pl-content", text: m.content }))),
      h("div", { class: "pl-response" }, h("span", { class: "pl-role", text: "response" }), h("span", { class: "pl-content", text: s.response }))));
  return h("div", { class: `pl-run ${isPicked ? "pl-picked" : ""}` },
    h("div", { class: "pl-run-head" },
      h("span", { text: `sample #${run.sample_index}${run.repeat ? " · repeat " + run.repeat : ""} · run ${run.short} · ${run.status}` }),
      h("span", { class: "pl-run-score", text: `score ${run.score}` }),
      h("button", { class: "pl-btn pl-pick", title: "pick for diff / rating (two: compare)",
        onclick: (e) => { e.stopPropagation(); send({ action: "pick_run", run_id: run.id }); },
        text: isPicked ? "picked ✓" : "pick" })),
    run.error ? h("div", { class: "pl-error", text: run.error }) : null,
    ...stages,
    h("div", { class: "pl-scores" }, ...(run.scores || []).map((sc) =>
      h("span", { class: `pl-chip pl-src-${sc.source}`, text: `${sc.scorer} ${sc.value}${sc.source !== "auto" ? " (" + sc.source + ")" : ""}` }))));
}

export default {
  render({ model, el }) {
    el.classList.add("pl-root", "pl-leaderboard");
    const send = (msg) => model.send(msg);
    const draw = () => {
      const cols = model.get("columns") || [];
      const rows = model.get("rows") || [];
      const sort = model.get("sort") || {};
      const expanded = model.get("expanded");
      const selected = model.get("selected") || [];
      const picked = model.get("picked_runs") || [];
      const readonly = model.get("readonly");
      const head = h("tr", {},
        h("th", { class: "pl-sel", title: "select: steer / compare two" }),
        ...cols.map((c) => h("th", {
          class: `pl-sortable pl-kind-${c.kind} ${sort.key === c.key ? "pl-sorted" : ""}`, "data-key": c.key,
          title: `sort by ${c.label}`, onclick: () => send({ action: "sort", key: c.key }),
          text: c.label + (sort.key === c.key ? (sort.desc ? " ▼" : " ▲") : ""),
        })),
        readonly ? null : h("th", { text: "" }));
      const body = [];
      for (const r of rows) {
        const cells = r.cells || {};
        const tr = h("tr", {
          class: `pl-row pl-decision-${r.decision || "none"} ${r.failed ? "pl-has-failed" : ""} ${expanded === r.id ? "pl-expanded" : ""}`,
          "data-id": r.id,
          onclick: () => send({ action: "expand", config_id: r.id }),
        },
          h("td", { class: "pl-sel" }, h("input", { type: "checkbox", checked: selected.includes(r.id), title: "select",
            onclick: (e) => { e.stopPropagation(); send({ action: "select", config_id: r.id }); } })),
          ...cols.map((c) => h("td", { class: `pl-kind-${c.kind}`, text: cells[c.key] ?? "" })),
          readonly ? null : h("td", { class: "pl-actions" },
            r.decision
              ? h("button", { class: "pl-btn pl-clear", text: "undo", onclick: (e) => { e.stopPropagation(); send({ action: "clear", config_id: r.id }); } })
              : null,
            r.decision === "approved" ? null : h("button", { class: "pl-btn pl-approve", title: "approve", text: "✓",
              onclick: (e) => { e.stopPropagation(); send({ action: "approve", config_id: r.id }); } }),
            r.decision === "rejected" ? null : h("button", { class: "pl-btn pl-reject", title: "reject", text: "✗",
              onclick: (e) => { e.stopPropagation(); send({ action: "reject", config_id: r.id }); } })));
        body.push(tr);
        if (expanded === r.id) {
          const runs = model.get("runs") || [];
          body.push(h("tr", { class: "pl-detail" }, h("td", { colspan: String(cols.length + 2) },
            runs.length ? h("div", { class: "pl-runs" }, ...runs.map((run) => runDetail(run, picked, send)))
              : h("div", { class: "pl-empty", text: "no runs yet" }))));
        }
      }
      const error = model.get("error");
      const notice = model.get("notice");
      el.replaceChildren(
        h("div", { class: "pl-toolbar" },
          h("span", { class: "pl-count", text: `${rows.length} configurations` }),
          h("button", { class: "pl-btn pl-refresh", text: "refresh", onclick: () => send({ action: "refresh" }) }),
          readonly ? h("span", { class: "pl-readonly", text: "read-only" }) : null,
          notice ? h("span", { class: "pl-notice", text: notice }) : null,
          error ? h("span", { class: "pl-error", text: error }) : null),
        h("div", { class: "pl-scroll" },
          h("table", { class: "pl-table" }, h("thead", {}, head), h("tbody", {}, ...body))),
        rows.length ? null : h("div", { class: "pl-empty", text: "No scored configuration yet." }));
    };
    draw();
    const keys = ["columns", "rows", "sort", "expanded", "runs", "selected", "picked_runs", "readonly", "error", "notice"];
    for (const k of keys) model.on(`change:${k}`, draw);
    return () => { for (const k of keys) model.off(`change:${k}`, draw); };
  },
};
