// Rating: thumbs, 1-5 stars and a comment on one run; promptlooper/ui/rating.py checks the
// input and writes it through promptlooper.ratings.rate (refused in read-only mode).
export default {
  render({ model, el }) {
    el.classList.add("pl-root", "pl-rating");
    const send = (msg) => model.send(msg);
    // the draft rating lives here until it is sent; a new run clears it
    let thumbs = null, stars = null, shownRun = null;
    const comment = h("textarea", { class: "pl-comment", rows: "2", placeholder: "comment (optional)" });
    const draw = () => {
      const run = model.get("run") || {};
      const choices = model.get("choices") || [];
      const readonly = !!model.get("readonly");
      const available = !!model.get("available");
      if (run.id !== shownRun) { thumbs = null; stars = null; comment.value = ""; shownRun = run.id; }
      const picker = h("select", { class: "pl-run-select", onchange: (e) => send({ action: "select", run_id: e.target.value }) },
        ...choices.map((c) => h("option", { value: c.id, selected: c.id === run.id, text: c.label })));
      const thumb = (value, label) => h("button", {
        class: `pl-btn pl-thumb pl-thumb-${value} ${thumbs === value ? "pl-on" : ""}`, title: `thumbs ${value}`,
        onclick: () => { thumbs = thumbs === value ? null : value; draw(); }, text: label });
      const starButtons = [1, 2, 3, 4, 5].map((n) => h("button", {
        class: `pl-btn pl-star ${stars && n <= stars ? "pl-on" : ""}`, title: `${n} star${n > 1 ? "s" : ""}`, "data-stars": String(n),
        onclick: () => { stars = stars === n ? null : n; draw(); }, text: stars && n <= stars ? "★" : "☆" }));
      const editor = readonly ? h("div", { class: "pl-readonly", text: "read-only view" })
        : !available ? h("div", { class: "pl-hint", text: "Ratings are not available in this PromptLooper version." })
        : h("div", { class: "pl-editor" },
          h("div", { class: "pl-row-buttons" }, thumb("up", "▲ thumbs up"), thumb("down", "▼ thumbs down"), h("span", { class: "pl-stars" }, ...starButtons)),
          comment,
          h("button", { class: "pl-btn pl-save", text: "Save rating", disabled: !run.id,
            onclick: () => send({ action: "rate", thumbs, stars, comment: comment.value }) }));
      put(el, 
        h("div", { class: "pl-toolbar" }, picker, h("button", { class: "pl-btn pl-refresh", text: "refresh", onclick: () => send({ action: "refresh" }) })),
        run.id ? h("div", { class: "pl-run-card" },
          h("div", { class: "pl-run-meta", text: `run ${run.short} · sample #${run.sample_index} · config ${run.config} · ${run.status} · score ${run.score}` }),
          h("div", { class: "pl-output", text: run.output }),
          (run.human || []).length ? h("div", { class: "pl-human" }, h("span", { class: "pl-label", text: "human scores: " }),
            ...run.human.map((s) => h("span", { class: "pl-chip", text: `${s.scorer} ${s.value}${s.comment ? " · " + s.comment : ""}` }))) : null)
          : h("div", { class: "pl-hint", text: "No run yet." }),
        editor,
        model.get("notice") ? h("div", { class: "pl-notice", text: model.get("notice") }) : null,
        model.get("error") ? h("div", { class: "pl-error", text: model.get("error") }) : null);
    };
    draw();
    const keys = ["run", "choices", "readonly", "available", "notice", "error"];
    for (const k of keys) model.on(`change:${k}`, draw);
    return () => { for (const k of keys) model.off(`change:${k}`, draw); };
  },
};
