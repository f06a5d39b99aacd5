// One plotly chart (promptlooper/ui/plotly_chart.py). plotly.js (4.8 MB) is not shipped with
// each chart: the first chart that becomes visible asks the kernel for it once (gzipped, as a
// binary buffer), and every chart on the page shares that one copy. A chart in a hidden tab
// asks nothing until it is shown, so a dashboard page loads without it.
// The figure follows the JupyterLab theme (its CSS variables) and resizes with its panel.
//
// A notebook reopened without a kernel has no one to ask for plotly.js: each drawn chart keeps
// an SVG picture of itself in its model (set locally, never sent to the kernel), which
// JupyterLab saves with the widget state, and a chart without the library shows that picture.
const KEY = "__promptlooperPlotly";
const SNAPSHOT_DELAY_MS = 1500;

function library(model) {
  const shared = globalThis[KEY];
  if (shared && shared.promise) return shared.promise;
  const state = { };
  state.promise = new Promise((resolve, reject) => {
    const onMsg = async (msg, buffers) => {
      if (!msg || msg.plotly !== "gzip") return;
      model.off("msg:custom", onMsg);
      try {
        const stream = new Blob([buffers[0]]).stream().pipeThrough(new DecompressionStream("gzip"));
        const source = await new Response(stream).text();
        // the UMD bundle sees a CommonJS module here, so it neither needs nor touches a page AMD loader
        const module = { exports: {} };
        new Function("module", "exports", "define", source)(module, module.exports, undefined);
        resolve(module.exports);
      } catch (err) {
        globalThis[KEY] = null; // the next chart may try again
        reject(err);
      }
    };
    model.on("msg:custom", onMsg);
    model.send({ action: "plotly_library" });
  });
  globalThis[KEY] = state;
  return state.promise;
}

function cssVar(el, name, fallback) {
  const v = getComputedStyle(el).getPropertyValue(name).trim();
  return v || fallback;
}

function themed(el, layout) {
  // colours from JupyterLab's theme variables (light or dark), so a chart is never a white box
  const fg = cssVar(el, "--jp-ui-font-color1", "#222");
  const grid = cssVar(el, "--jp-border-color2", "#e0e0e0");
  const axis = { gridcolor: grid, zerolinecolor: grid, linecolor: grid, color: fg };
  const out = { ...layout, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: { ...(layout.font || {}), color: fg, family: cssVar(el, "--jp-ui-font-family", "sans-serif") },
    legend: { ...(layout.legend || {}), font: { color: fg } }, autosize: true };
  delete out.width;
  delete out.template;
  for (const k of Object.keys(out)) if (/^[xy]axis\d*$/.test(k)) out[k] = { ...out[k], ...axis };
  for (const k of ["xaxis", "yaxis"]) if (!out[k]) out[k] = { ...axis };
  if (out.title && typeof out.title === "object") out.title = { ...out.title, font: { color: fg } };
  out.annotations = (out.annotations || []).map((a) => ({ ...a, font: { ...(a.font || {}), color: fg } }));
  return out;
}

export default {
  render({ model, el }) {
    el.classList.add("pl-root", "pl-chart");
    const plot = document.createElement("div");
    plot.className = "pl-plot";
    const status = document.createElement("div");
    status.className = "pl-hint";
    status.textContent = "chart loads when shown";
    const picture = document.createElement("img");
    picture.className = "pl-snapshot";
    picture.alt = "the chart as last drawn";
    const saved = model.get("snapshot");
    if (saved) { picture.src = saved; status.textContent = "last drawn chart (loading the live chart…)"; el.append(status, picture); }
    el.append(status, plot);
    let Plotly = null;
    let alive = true;
    let snapshotTimer = null;
    const takeSnapshot = () => {
      // after the figure settles: an SVG, a few tens of kB, with the theme's colours of the moment
      clearTimeout(snapshotTimer);
      snapshotTimer = setTimeout(() => {
        if (!Plotly || !alive || !plot.offsetWidth) return;
        Plotly.toImage(plot, { format: "svg", width: plot.offsetWidth, height: plot.offsetHeight || 400 })
          .then((url) => { if (alive && url !== model.get("snapshot")) model.set("snapshot", url); }, () => {});
      }, SNAPSHOT_DELAY_MS);
    };
    const draw = () => {
      if (!Plotly || !alive) return;
      const fig = model.get("figure") || {};
      Plotly.react(plot, fig.data || [], themed(el, fig.layout || {}), { responsive: true, displaylogo: false }).then(takeSnapshot);
    };
    const start = () => {
      if (Plotly || started) return;
      started = true;
      status.textContent = "loading chart…";
      library(model).then((lib) => { Plotly = lib; status.remove(); picture.remove(); draw(); },
        (err) => {
          // no kernel (a saved notebook opened later): the saved picture stays, said as such
          status.textContent = saved ? "last drawn chart (run the notebook to draw it live)" : `chart library failed to load: ${err}`;
          started = false;
        });
    };
    let started = false;
    // load and draw only when visible: a hidden tab costs nothing
    // the kernel holds back figure updates of charts no page shows (hidden tabs)
    let inView = null;
    const seen = new IntersectionObserver((entries) => {
      const on = entries.some((e) => e.isIntersecting);
      if (on) start();
      if (on !== inView) { inView = on; try { model.send({ action: "visible", on }); } catch { /* no kernel */ } }
    });
    seen.observe(el);
    const resized = new ResizeObserver(() => { if (Plotly && plot.offsetWidth) Plotly.Plots.resize(plot); });
    resized.observe(el);
    // JupyterLab switches themes by changing attributes of <body>
    const theme = new MutationObserver(draw);
    theme.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name"] });
    model.on("change:figure", draw);
    return () => {
      alive = false;
      clearTimeout(snapshotTimer);
      seen.disconnect(); resized.disconnect(); theme.disconnect();
      model.off("change:figure", draw);
      if (Plotly) Plotly.purge(plot);
    };
  },
};
