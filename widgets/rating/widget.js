// Rating: thumbs, 1-5 stars and a comment on one run; promptlooper/ui/rating.py checks the
// input and writes it through promptlooper.ratings.rate (refused in read-only mode).
//
// Built once and patched: the run list and notices change while a sweep runs, and a rebuilt
// editor would drop the comment being typed, its focus and the draft thumbs / stars.
export default {
  render({ model, el }) {
    el.classList.add("pl-root", "pl-rating");
    const send = (msg) => model.send(msg);
    // the draft rating lives here until it is sent; a new run clears it
    let thumbs = null, stars = null, shownRun = null;
    const picker = h("select", { class: "pl-run-select", onchange: (e) => send({ action: "select", run_id: e.target.value }) });
    const toolbar = h("div", { class: "pl-toolbar" }, picker,
      h("button", { class: "pl-btn pl-refresh", text: "refresh", onclick: () => send({ action: "refresh" }) }));
    const meta = h("div", { class: "pl-run-meta" });
    const output = h("div", { class: "pl-output" });
    const humanChips = h("span", {});
    const human = h("div", { class: "pl-human" }, h("span", { class: "pl-label", text: "human scores: " }), humanChips);
    const card = h("div", { class: "pl-run-card" }, meta, output, human);
    const noRun = h("div", { class: "pl-hint", text: "No run yet." });
    const thumb = (value, label) => h("button", { class: `pl-btn pl-thumb pl-thumb-${value}`, title: `thumbs ${value}`, text: label,
      onclick: () => { thumbs = thumbs === value ? null : value; drawDraft(); } });
    const thumbButtons = [thumb("up", "▲ thumbs up"), thumb("down", "▼ thumbs down")];
    const starButtons = [1, 2, 3, 4, 5].map((n) => h("button", { title: `${n} star${n > 1 ? "s" : ""}`, "data-stars": String(n),
      onclick: () => { stars = stars === n ? null : n; drawDraft(); } }));
    const comment = h("textarea", { class: "pl-comment", rows: "2", placeholder: "comment (optional)" });
    const save = h("button", { class: "pl-btn pl-save", text: "Save rating",
      onclick: () => send({ action: "rate", thumbs, stars, comment: comment.value }) });
    const editor = h("div", { class: "pl-editor" },
      h("div", { class: "pl-row-buttons" }, ...thumbButtons, h("span", { class: "pl-stars" }, ...starButtons)), comment, save);
    const readonlyNote = h("div", { class: "pl-readonly", text: "read-only view" });
    const unavailable = h("div", { class: "pl-hint", text: "Ratings are not available in this PromptLooper version." });
    const notice = h("div", { class: "pl-notice" });
    const error = h("div", { class: "pl-error" });
    put(el, toolbar, card, noRun, readonlyNote, unavailable, editor, notice, error);

    function drawDraft() {
      thumbButtons.forEach((b, i) => setClass(b, `pl-btn pl-thumb pl-thumb-${i ? "down" : "up"} ${thumbs === (i ? "down" : "up") ? "pl-on" : ""}`));
      starButtons.forEach((b, i) => {
        const on = stars && i + 1 <= stars;
        setClass(b, `pl-btn pl-star ${on ? "pl-on" : ""}`);
        setText(b, on ? "★" : "☆");
      });
    }

    const draw = () => {
      const run = model.get("run") || {};
      const readonly = !!model.get("readonly");
      const available = !!model.get("available");
      if (run.id !== shownRun) { thumbs = null; stars = null; comment.value = ""; shownRun = run.id; }
      keyed(picker, model.get("choices") || [], (c) => c.id, (c) => h("option", { value: c.id }), (node, c) => setText(node, c.label));
      if (run.id && picker.value !== run.id) picker.value = run.id;
      card.hidden = !run.id;
      noRun.hidden = !!run.id;
      if (run.id) {
        setText(meta, `run ${text(run.short)} · sample #${text(run.sample_index)} · config ${text(run.config)} · ${text(run.status)} · score ${text(run.score)}`);
        setText(output, run.output);
        const scores = run.human || [];
        human.hidden = !scores.length;
        keyed(humanChips, scores, (s) => s.scorer, () => h("span", { class: "pl-chip" }),
          (node, s) => setText(node, `${s.scorer} ${s.value}${s.comment ? " · " + s.comment : ""}`));
      }
      readonlyNote.hidden = !readonly;
      unavailable.hidden = readonly || available;
      editor.hidden = readonly || !available;
      save.disabled = !run.id;
      drawDraft();
      setText(notice, model.get("notice"));
      notice.hidden = !model.get("notice");
      setText(error, model.get("error"));
      error.hidden = !model.get("error");
    };
    draw();
    const keys = ["run", "choices", "readonly", "available", "notice", "error"];
    for (const k of keys) model.on(`change:${k}`, draw);
    return () => { for (const k of keys) model.off(`change:${k}`, draw); };
  },
};
