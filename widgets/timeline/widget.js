// Activity timeline: the feed and the type filter are computed in promptlooper/ui/timeline.py;
// a chip click toggles a type ("toggle"), a double click shows only it ("only").
export default {
  render({ model, el }) {
    el.classList.add("pl-root", "pl-timeline");
    const send = (msg) => model.send(msg);
    const list = h("div", { class: "pl-feed" });
    const chips = h("div", { class: "pl-filters" });
    el.replaceChildren(chips, list);
    const drawFilters = () => {
      const types = model.get("types") || [];
      chips.replaceChildren(
        h("button", { class: "pl-chip pl-all", text: "all", title: "show every type", onclick: () => send({ action: "all" }) }),
        ...types.map((t) => h("button", {
          class: `pl-chip pl-fam-${t.type.split(".")[0]} ${t.hidden ? "pl-off" : ""}`, "data-type": t.type,
          title: "click: show / hide · double click: only this type",
          onclick: () => send({ action: "toggle", type: t.type }), ondblclick: () => send({ action: "only", type: t.type }),
          text: `${t.type} ${t.count}`,
        })));
    };
    const drawFeed = () => {
      const events = model.get("events") || [];
      list.replaceChildren(...(events.length ? events.map((e) => h("div", { class: `pl-event pl-fam-${e.family}`, "data-type": e.type },
        h("span", { class: "pl-time", title: e.ts, text: e.time }),
        h("span", { class: "pl-type", text: e.type }),
        h("span", { class: "pl-summary", text: e.summary }))) : [h("div", { class: "pl-hint", text: "No events to show." })]));
    };
    drawFilters();
    drawFeed();
    model.on("change:types", drawFilters);
    model.on("change:events", drawFeed);
    return () => { model.off("change:types", drawFilters); model.off("change:events", drawFeed); };
  },
};
