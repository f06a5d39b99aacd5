// Rating queue: one run at a time, rated from the keyboard; promptlooper/ui/rating_queue.py keeps
// the order, the unrated runs and the position, and writes each rating through wb.rate.
//
// Keys while the view has focus: j / k next / previous, 1-5 stars, + / - thumbs up / down,
// u only-unrated on / off. Built once and patched. Read-only: no rating controls and the rating
// keys do nothing (Python refuses them too).
const KEYS = { j: { action: "next" }, k: { action: "prev" }, ArrowRight: { action: "next" }, ArrowLeft: { action: "prev" },
  u: { action: "toggle" } };
const RATE_KEYS = { "+": { thumbs: "up" }, "=": { thumbs: "up" }, "-": { thumbs: "down" },
  1: { stars: 1 }, 2: { stars: 2 }, 3: { stars: 3 }, 4: { stars: 4 }, 5: { stars: 5 } };

export default {
  render({ model, el }) {
    el.classList.add("pl-root", "pl-queue");
    el.tabIndex = 0;
    const send = (msg) => model.send(msg);
    const readonly = !!model.get("readonly");
    const where = h("span", { class: "pl-where" });
    const only = h("input", { type: "checkbox", class: "pl-only", onchange: () => send({ action: "toggle" }) });
    const nav = h("div", { class: "pl-toolbar" },
      h("button", { class: "pl-btn pl-prev", text: "◀ prev (k)", onclick: () => send({ action: "prev" }) }),
      h("button", { class: "pl-btn pl-next", text: "next unrated (j) ▶", onclick: () => send({ action: "next" }) }),
      h("label", {}, only, " only unrated (u)"), where,
      h("button", { class: "pl-btn pl-refresh", text: "refresh", onclick: () => send({ action: "refresh" }) }));
    const meta = h("div", { class: "pl-meta" });
    const prompt = h("pre", { class: "pl-prompt" });
    const output = h("pre", { class: "pl-output" });
    const given = h("div", { class: "pl-given" });
    const up = h("button", { class: "pl-btn pl-thumb pl-up", title: "thumbs up (+)", text: "▲ up", onclick: () => send({ action: "rate", thumbs: "up" }) });
    const down = h("button", { class: "pl-btn pl-thumb pl-down", title: "thumbs down (-)", text: "▼ down", onclick: () => send({ action: "rate", thumbs: "down" }) });
    const starButtons = [1, 2, 3, 4, 5].map((n) => h("button", { class: "pl-star", title: `${n} star${n > 1 ? "s" : ""} (${n})`,
      "data-stars": String(n), onclick: () => send({ action: "rate", stars: n }) }));
    const controls = readonly ? null : h("div", { class: "pl-controls" }, up, down, h("span", { class: "pl-stars" }, ...starButtons),
      h("span", { class: "pl-keys", text: "keys: j/k move · 1–5 stars · +/− thumbs" }));
    const card = h("div", { class: "pl-card" }, meta, h("div", { class: "pl-label", text: "prompt" }), prompt,
      h("div", { class: "pl-label", text: "output" }), output, given, controls);
    const notice = h("div", { class: "pl-notice" });
    const error = h("div", { class: "pl-error" });
    put(el, nav, card, notice, error);

    const onKey = (e) => {
      if (e.target.closest && e.target.closest("input, textarea, select")) return;
      const msg = KEYS[e.key] || (!readonly && RATE_KEYS[e.key] ? { action: "rate", ...RATE_KEYS[e.key] } : null);
      if (!msg) return;
      e.preventDefault();
      send(msg);
    };
    el.addEventListener("keydown", onKey);

    const draw = () => {
      const run = model.get("run") || {};
      const p = model.get("position") || {};
      card.hidden = !run.id;
      only.checked = !!model.get("only_unrated");
      setText(where, `run ${p.index || 0} of ${p.total || 0} · ${p.unrated || 0} unrated`);
      if (run.id) {
        setText(meta, `run ${run.short} · sample #${text(run.sample_index)} · config ${run.config} · score ${run.score}`);
        setText(prompt, run.prompt);
        setText(output, run.output);
        const stars = run.stars || 0;
        setText(given, run.thumbs || stars
          ? `${run.thumbs === "up" ? "▲ thumbs up" : run.thumbs === "down" ? "▼ thumbs down" : ""} ${stars ? "★".repeat(stars) + "☆".repeat(5 - stars) : ""}${run.by ? " · by " + run.by : ""}`
          : "not rated yet");
        setClass(up, `pl-btn pl-thumb pl-up ${run.thumbs === "up" ? "pl-on" : ""}`);
        setClass(down, `pl-btn pl-thumb pl-down ${run.thumbs === "down" ? "pl-on" : ""}`);
        starButtons.forEach((b, i) => { setClass(b, `pl-star ${i < stars ? "pl-on" : ""}`); setText(b, i < stars ? "★" : "☆"); });
      }
      setText(notice, model.get("notice"));
      notice.hidden = !model.get("notice");
      setText(error, model.get("error"));
      error.hidden = !model.get("error");
    };
    draw();
    const keys = ["run", "position", "only_unrated", "notice", "error"];
    for (const k of keys) model.on(`change:${k}`, draw);
    return () => {
      for (const k of keys) model.off(`change:${k}`, draw);
      el.removeEventListener("keydown", onKey);
    };
  },
};
