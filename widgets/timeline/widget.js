// Activity timeline: the feed and the type filter are computed in promptlooper/ui/timeline.py;
// a chip click toggles a type ("toggle"), a double click shows only it ("only").
//
// Chips are keyed by event type and feed entries by event id (shared `keyed` helper): new events
// are inserted above the ones shown, which stay the same elements, so the browser's scroll
// anchoring keeps the event being read where it is, and a focused chip keeps its focus.
export default {
  render({ model, el }) {
    el.classList.add("pl-root", "pl-timeline");
    const send = (msg) => model.send(msg);
    const list = h("div", { class: "pl-feed" });
    const empty = h("div", { class: "pl-hint", text: "No events to show." });
    const all = h("button", { class: "pl-chip pl-all", text: "all", title: "show every type", onclick: () => send({ action: "all" }) });
    const typeChips = h("span", { class: "pl-type-chips" });
    const chips = h("div", { class: "pl-filters" }, all, typeChips);
    put(el, chips, empty, list);
    const drawFilters = () => {
      keyed(typeChips, model.get("types") || [], (t) => t.type,
        (t) => h("button", {
          "data-type": t.type, title: "click: show / hide · double click: only this type",
          onclick: () => send({ action: "toggle", type: t.type }), ondblclick: () => send({ action: "only", type: t.type }),
        }),
        (node, t) => {
          setClass(node, `pl-chip pl-fam-${t.type.split(".")[0]} ${t.hidden ? "pl-off" : ""}`);
          setText(node, `${t.type} ${t.count}`);
        });
    };
    const drawFeed = () => {
      const events = model.get("events") || [];
      empty.hidden = events.length > 0;
      keyed(list, events, (e) => e.id,
        (e) => h("div", { class: `pl-event pl-fam-${e.family}`, "data-type": e.type, "data-id": String(e.id) },
          h("span", { class: "pl-time", title: e.ts, text: e.time }),
          h("span", { class: "pl-type", text: e.type }),
          h("span", { class: "pl-summary" })),
        (node, e) => setText(node.lastChild, e.summary));
    };
    drawFilters();
    drawFeed();
    model.on("change:types", drawFilters);
    model.on("change:events", drawFeed);
    return () => { model.off("change:types", drawFilters); model.off("change:events", drawFeed); };
  },
};
