// Steering controls: every button sends one message; promptlooper/ui/steering.py calls the
// facade (and refuses in read-only mode). The DOM is built once and updated in place, so the
// editors keep focus and text while the status refreshes every second.
function drawStatus(badge, statusText, st) {
  badge.textContent = st.state || "";
  badge.className = `pl-badge pl-state-${String(st.state || "").replace(/[^a-z]/g, "")}`;
  statusText.textContent = st.text || "";
}

function renderStatusOnly({ model, el }) {
  const badge = h("span", { class: "pl-badge" });
  const statusText = h("span", { class: "pl-status-text" });
  put(el, h("div", { class: "pl-steer-status" }, badge, statusText,
    h("span", { class: "pl-readonly", text: "read-only view" })));
  const draw = () => drawStatus(badge, statusText, model.get("status") || {});
  draw();
  model.on("change:status", draw);
  return () => model.off("change:status", draw);
}

export default {
  render({ model, el }) {
    el.classList.add("pl-root", "pl-steering");
    // Python fixes read-only at construction (a page cannot switch it off), so a read-only view
    // gets the status alone: no steering control exists in its DOM, hidden or not.
    if (model.get("readonly")) return renderStatusOnly({ model, el });
    const send = (msg) => model.send(msg);
    const reason = h("input", { class: "pl-reason", type: "text", placeholder: "reason (optional)" });
    const forkText = h("textarea", { class: "pl-fork-text", rows: "4", spellcheck: "false" });
    const spaceText = h("textarea", { class: "pl-space-text", rows: "5", spellcheck: "false" });
    const forkName = h("input", { class: "pl-fork-name", type: "text", placeholder: "fork name (optional)" });
    const forkStart = h("input", { class: "pl-fork-start", type: "checkbox", checked: true });
    const forkStrategy = h("select", { class: "pl-fork-strategy", title: "how to sweep the fork's space" },
      ...["grid", "random", "guided"].map((v) => h("option", { value: v, text: v })));
    const dirty = new Set(); // editors the user typed in: Python's prefill no longer overwrites them
    // The text typed stays until the action it was sent with succeeds: a typo gets an error in
    // words next to the user's own text, never a reset editor.
    let pending = null;
    forkText.addEventListener("input", () => dirty.add("fork_text"));
    spaceText.addEventListener("input", () => dirty.add("space_text"));

    const btn = (cls, label, onclick, title) => h("button", { class: `pl-btn ${cls}`, title, onclick, text: label });
    const pause = btn("pl-pause", "Pause", () => send({ action: "pause", reason: reason.value }), "calls in flight finish, no new ones start");
    const resume = btn("pl-resume", "Resume", () => send({ action: "resume" }));
    const stop = btn("pl-stop", "Stop", () => send({ action: "stop", reason: reason.value }), "finished runs stay; running again resumes");
    const approve = btn("pl-approve", "✓ Approve", () => send({ action: "approve", reason: reason.value }));
    const reject = btn("pl-reject", "✗ Reject", () => send({ action: "reject", reason: reason.value }));
    const fork = btn("pl-fork-btn", "Fork", () => {
      send({ action: "fork", changes: forkText.value, name: forkName.value, start: forkStart.checked, strategy: forkStrategy.value });
      pending = "fork_text";
    });
    const redirect = btn("pl-redirect-btn", "Redirect", () => {
      send({ action: "redirect", space: spaceText.value });
      pending = "space_text";
    });

    const badge = h("span", { class: "pl-badge" });
    const statusText = h("span", { class: "pl-status-text" });
    const selText = h("span", { class: "pl-sel-id" });
    const forks = h("div", { class: "pl-forks" });
    const notice = h("div", { class: "pl-notice" });
    const error = h("div", { class: "pl-error" });
    const forkBox = h("details", { class: "pl-fork", open: true },
      h("summary", { text: "Fork: a new experiment from the selected (or best) configuration" }),
      h("div", { class: "pl-hint", text: "Edit values (a list sweeps them in the fork). JSON or YAML." }),
      forkText,
      h("div", { class: "pl-row-buttons" }, forkName, h("label", {}, forkStart, " start it now"), forkStrategy, fork),
      forks);
    const redirectBox = h("details", { class: "pl-redirect" },
      h("summary", { text: "Redirect: change the remaining space of the sweep" }),
      spaceText, h("div", { class: "pl-row-buttons" }, redirect));
    const controls = h("div", { class: "pl-controls" },
      h("div", { class: "pl-row-buttons" }, pause, resume, stop, reason),
      h("div", { class: "pl-selected" }, h("span", { class: "pl-label", text: "selected configuration: " }), selText, approve, reject),
      forkBox, redirectBox);
    put(el, h("div", { class: "pl-steer-status" }, badge, statusText), controls, notice, error);

    const show = (node, on) => { node.style.display = on ? "" : "none"; };
    const draw = () => {
      const st = model.get("status") || {};
      const can = st.can || {};
      const av = model.get("available") || {};
      const sel = model.get("selected") || {};
      drawStatus(badge, statusText, st);
      pause.disabled = !can.pause;
      resume.disabled = !can.resume;
      stop.disabled = !can.stop;
      const best = model.get("best") || {};
      selText.textContent = sel.short
        ? `${sel.short} (${sel.params || "no varied parameters"})` + (sel.ticked > 1 ? ` — the later of ${sel.ticked} ticked rows; untick it to act on the other` : "")
        : `none ticked — fork starts from the best: ${best.short ? `${best.short} (${best.params || "no varied parameters"})` : "none yet"}`;
      show(approve, av.approve); show(reject, av.reject);
      approve.disabled = reject.disabled = !sel.id;
      show(forkBox, av.fork); show(redirectBox, av.redirect);
      if (!dirty.has("fork_text")) forkText.value = model.get("fork_text") || "";
      if (!dirty.has("space_text")) spaceText.value = model.get("space_text") || "";
      const fl = model.get("forks") || [];
      forks.textContent = fl.length ? "forks: " + fl.join(", ") : "";
      if (pending && model.get("notice") && !model.get("error")) { dirty.delete(pending); pending = null; }
      if (!dirty.has("fork_text")) forkText.value = model.get("fork_text") || "";
      if (!dirty.has("space_text")) spaceText.value = model.get("space_text") || "";
      notice.textContent = model.get("notice") || "";
      error.textContent = model.get("error") || "";
    };
    draw();
    const keys = ["status", "available", "selected", "best", "fork_text", "space_text", "forks", "error", "notice"];
    for (const k of keys) model.on(`change:${k}`, draw);
    return () => { for (const k of keys) model.off(`change:${k}`, draw); };
  },
};
