"""Is a page really in the theme it claims, and can its text be read? Checked from the computed
styles in the browser, so that a dark screenshot cannot pass with light parts in it.

- :func:`wait_for_jupyterlab_theme`: JupyterLab swaps a theme asynchronously. It shows a splash
  screen, removes the old theme's stylesheet, loads the new one (meanwhile no ``--jp-*`` variable
  is defined: its own chrome turns transparent and the views fall back to their light defaults),
  sets ``body[data-jp-theme-light]``, hides and re-shows the shell, then fades the splash out over
  about 0.3 s. Waiting for the ``data-jp-theme-light`` attribute alone therefore shoots the page
  under the splash or half styled; this waits for the whole sequence to end.
- :func:`surfaces`: the colour each surface is seen on (its background composited over its
  ancestors' down to the first opaque one), with its relative luminance.
- :func:`unreadable`: every visible text in the given roots whose colour has a WCAG contrast
  ratio below a minimum against the colour behind it (SVG text: its fill, against the chart's
  paper; text plotly draws inside a bar is left out, plotly colours it against the bar). Text
  inside an element made translucent on purpose (a rejected row, a filter switched off) is left
  out: it is meant to read as inactive.
"""

from __future__ import annotations

from typing import Any

# Colours as the browser computes them: rgb()/rgba(), or color(srgb r g b / a) for color-mix().
COLOUR_JS = r"""
const plParse = (css) => {
  let m = /^rgba?\(([^)]*)\)/.exec(css);
  if (m) { const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; }
  m = /^color\(srgb ([^)]*)\)/.exec(css);
  if (m) { const p = m[1].split(/[ \/]+/).filter(Boolean).map(Number); return [p[0] * 255, p[1] * 255, p[2] * 255, p.length > 3 ? p[3] : 1]; }
  if (css === 'transparent' || css === 'none' || !css) return [0, 0, 0, 0];
  throw new Error(`unparsed colour ${css}`);
};
const plOver = (top, under) => { const a = top[3];
  return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat([1]); };
const plLum = (c) => { const l = c.slice(0, 3).map((v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
  return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2]; };
const plRatio = (a, b) => { const [x, y] = [plLum(a), plLum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
// Without any opaque background the canvas shows: white, or Chromium's dark canvas under color-scheme: dark.
const plCanvas = () => (getComputedStyle(document.body).colorScheme.includes('dark') ? [18, 18, 18, 1] : [255, 255, 255, 1]);
const plBackdrop = (el) => {
  const layers = [];
  for (let e = el; e && e.nodeType === 1; e = e.parentElement) {
    const c = plParse(getComputedStyle(e).backgroundColor);
    if (c[3] > 0) layers.push(c);
    if (c[3] >= 1) break;
  }
  return layers.reverse().reduce((under, top) => plOver(top, under), plCanvas());
};
const plHex = (c) => '#' + c.slice(0, 3).map((v) => Math.round(v).toString(16).padStart(2, '0')).join('');
"""



def with_colours(fn: str) -> str:
    """``fn`` (a JavaScript function of one argument) with the colour helpers in its scope."""
    return f"(arg) => {{ {COLOUR_JS}\n return ({fn})(arg); }}"


SURFACES = with_colours(r"""
(selectors) => selectors.map((sel) => {
  const els = [...document.querySelectorAll(sel)].filter((e) => e.getClientRects().length > 0);
  if (!els.length) return { sel, found: 0 };
  const lums = els.map((e) => plLum(plBackdrop(e)));
  const worst = Math.max(...lums), best = Math.min(...lums);
  return { sel, found: els.length, darkest: best, lightest: worst, colour: plHex(plBackdrop(els[lums.indexOf(worst)])) };
})
""")

UNREADABLE = with_colours(r"""
([roots, minimum]) => {
  const bad = [], seen = new Set();
  let checked = 0;
  const dimmed = (el) => { for (let e = el; e; e = e.parentElement) if (Number(getComputedStyle(e).opacity) < 1) return true; return false; };
  for (const root of document.querySelectorAll(roots)) {
    const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
      const el = n.parentElement, text = n.textContent.trim();
      if (!text || !el || seen.has(el) || el.closest('option, style, script')) continue;
      seen.add(el);
      const style = getComputedStyle(el);
      if (el.getClientRects().length === 0 || style.visibility !== 'visible' || dimmed(el)) continue;
      const svg = el.closest('svg');
      // text plotly draws inside a bar is coloured by plotly against that bar, not the paper
      if (svg && el.closest('.bartext-inside')) continue;
      const behind = svg ? plBackdrop(svg) : plBackdrop(el);
      const ink = plParse(svg ? style.fill : style.color);
      if (svg && Number(style.fillOpacity) < 1) ink[3] *= Number(style.fillOpacity);
      const ratio = plRatio(plOver(ink, behind), behind);
      checked += 1;
      if (ratio < minimum) bad.push({ text: text.slice(0, 40), where: (el.className.baseVal ?? el.className) || el.tagName.toLowerCase(),
                                      ink: plHex(plOver(ink, behind)), behind: plHex(behind), ratio: Math.round(ratio * 100) / 100 });
    }
  }
  return { checked, bad };
}
""")

# Something drawn over a view (JupyterLab's splash screen while it swaps themes, a dialog, a
# scrolled part of the view painted over its own sticky header): the element at a point of each
# element's visible part (near its left edge, where a sticky neighbour on the right cannot be)
# must be that element or inside it.
COVERED = r"""
(selectors) => {
  let looked = 0;
  const covered = [];
  for (const el of document.querySelectorAll(selectors.join(', '))) {
    // the part its scrolling ancestors and the window let show (the body's overflow applies to
    // the window, which is already counted)
    let [left, top, right, bottom] = ((r) => [r.left, r.top, r.right, r.bottom])(el.getBoundingClientRect());
    [left, top, right, bottom] = [Math.max(left, 0), Math.max(top, 0), Math.min(right, innerWidth), Math.min(bottom, innerHeight)];
    for (let e = el.parentElement; e && e !== document.body; e = e.parentElement) {
      if (getComputedStyle(e).overflow === 'visible') continue;
      const c = e.getBoundingClientRect();
      [left, top, right, bottom] = [Math.max(left, c.left), Math.max(top, c.top), Math.min(right, c.right), Math.min(bottom, c.bottom)];
    }
    if (right - left < 4 || bottom - top < 4) continue;
    const [x, y] = [left + Math.min(8, (right - left) / 2), (top + bottom) / 2];
    const hit = document.elementFromPoint(x, y);
    // a sticky one of the same kind (a pinned column's header over a scrolled one) is the design
    const same = hit && hit.closest(selectors.join(', '));
    if (same && same !== el && !same.contains(el) && getComputedStyle(same).position === 'sticky') continue;
    looked += 1;
    if (!el.contains(hit)) covered.push({ el: `${el.tagName.toLowerCase()}.${el.className} ${el.textContent.slice(0, 30)}`,
                                          by: hit ? `${hit.tagName.toLowerCase()}#${hit.id}.${hit.className} ${hit.textContent.slice(0, 30)}` : null });
  }
  return { looked, covered };
}
"""

# What JupyterLab has done once a theme is in place: see the module docstring.
THEME_APPLIED = with_colours(r"""
(dark) => {
  const root = getComputedStyle(document.documentElement).getPropertyValue('--jp-layout-color0').trim();
  if (!root || document.body.dataset.jpThemeLight !== String(!dark)) return false;
  if (document.getElementById('jupyterlab-splash') || document.querySelector('#main.lm-mod-hidden')) return false;
  const links = [...document.querySelectorAll('link[rel="stylesheet"]')].filter((l) => /theme-[a-z-]+-extension/.test(l.href));
  if (!links.length || links.some((l) => !l.sheet)) return false;
  const menu = document.querySelector('#jp-menu-panel, .lm-MenuBar');
  const lum = plLum(plBackdrop(menu || document.body));
  return dark ? lum < 0.1 : lum > 0.7;
}
""")
TWO_FRAMES = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))"


def wait_for_jupyterlab_theme(page: Any, *, dark: bool, timeout: float = 30_000) -> None:
    """Wait until JupyterLab has finished switching to its dark (or light) theme, then two frames."""
    page.wait_for_function(THEME_APPLIED, arg=dark, timeout=timeout)
    page.evaluate(TWO_FRAMES)


def surfaces(page: Any, selectors: list[str]) -> list[dict[str, Any]]:
    return page.evaluate(SURFACES, selectors)


def unreadable(page: Any, roots: str, minimum: float = 4.5) -> dict[str, Any]:
    return page.evaluate(UNREADABLE, [roots, minimum])


def assert_theme(page: Any, roots: str, selectors: list[str], *, dark: bool, minimum: float = 4.5,
                 uncovered: list[str] | None = None) -> None:
    """Every surface named by ``selectors`` is found and seen dark (or light), nothing is drawn over
    the views under ``roots`` (nor over the elements named by ``uncovered``), and every visible
    text in them reads at ``minimum`` contrast or better against what is behind it."""
    found = surfaces(page, selectors)
    missing = [s["sel"] for s in found if not s["found"]]
    assert not missing, f"no visible element for {missing}"
    if dark:
        wrong = [s for s in found if s["lightest"] > 0.1]  # #595959 and darker
    else:
        wrong = [s for s in found if s["darkest"] < 0.6]
    assert not wrong, f"surfaces not {'dark' if dark else 'light'}: {wrong}"
    over = page.evaluate(COVERED, [roots, *(uncovered or [])])
    assert over["looked"] > 0 and not over["covered"], f"covered: {over}"
    text = unreadable(page, roots, minimum)
    assert text["checked"] > 0, f"no text checked under {roots}"
    assert not text["bad"], f"text below {minimum}:1 contrast ({'dark' if dark else 'light'}): {text['bad']}"
