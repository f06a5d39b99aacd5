"""Where the widgets' browser code lives, and how one widget's ES module is put together.

anywidget imports a widget's ``_esm`` from a ``blob:`` URL (see its front end's ``load_esm``), so
an ES module there cannot ``import`` a sibling file: a relative specifier has nothing to resolve
against. The helpers every widget shares (``widgets/_shared/dom.js``) are therefore put in front
of each ``widgets/<name>/widget.js`` here, in Python, when the widget class is defined: one
module per widget, no build step, and a saved notebook keeps a self-contained copy of each.

With ``ANYWIDGET_HMR=1`` in a checkout (and ``watchfiles`` installed), anywidget's own file
watchers follow both source files and the joined module is rebuilt on every save, so editing
either reloads the widget live, as a plain ``Path`` would.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

# anywidget's file watchers: public enough to be what it builds for a ``Path`` itself; used only
# in development mode, where the joined module must follow edits of both of its files
from anywidget._file_contents import FileContents, VirtualFileContents

SHARED = ("_shared", "dom.js")


def widgets_dir() -> Path:
    """The folder of ESM/CSS assets: the top-level ``widgets/`` of a checkout (so that
    ``ANYWIDGET_HMR=1`` reloads edits), else its copy ``promptlooper/_widgets`` in a wheel."""
    package = Path(__file__).resolve().parents[1]
    checkout = package.parent / "widgets"
    return checkout if (checkout / "live" / "widget.js").is_file() else package / "_widgets"


def asset(widget: str, name: str) -> Path:
    return widgets_dir() / widget / name


def sources(widget: str) -> tuple[Path, Path]:
    """The files joined into ``widget``'s module: the shared helpers, then the widget."""
    return widgets_dir().joinpath(*SHARED), asset(widget, "widget.js")


def live_reload(path: Path) -> bool:
    """anywidget's rule for watching a file: ``ANYWIDGET_HMR=1``, ``watchfiles`` importable, and
    the file not inside an installed package."""
    return (os.environ.get("ANYWIDGET_HMR") == "1" and importlib.util.find_spec("watchfiles") is not None
            and not {"site-packages", "dist-packages"} & set(path.parts))


def join(*texts: str) -> str:
    return "\n".join(texts)


def esm(widget: str) -> str | VirtualFileContents:
    """``widget``'s ES module for ``_esm``: ``dom.js`` followed by ``widgets/<widget>/widget.js``."""
    paths = sources(widget)
    if not live_reload(paths[1]):
        return join(*(p.read_text(encoding="utf-8") for p in paths))
    return watched(paths)


def watched(paths: tuple[Path, ...], *, watch: bool = True) -> VirtualFileContents:
    """The joined module, rebuilt whenever one of its files changes (``watch``: in threads)."""
    files = [FileContents(p, start_thread=watch) for p in paths]
    joined = VirtualFileContents(join(*map(str, files)))

    def rebuild(_new: str) -> None:
        joined.contents = join(*map(str, files))

    for f in files:
        f.changed.connect(rebuild)
    joined.sources = files  # keeps the watchers alive as long as the class holds the module
    return joined
