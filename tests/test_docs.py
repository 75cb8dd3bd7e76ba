"""The documentation runs: every ```python block of README.md and docs/*.md, and the rules the docs keep.

Each page's python blocks run in order, in one namespace and one temporary folder, like a
notebook: a later block uses names from earlier ones. The folder holds a ``photos/`` folder
(2 classes x 8 small JPEG and PNG images), a ``my.toml`` on it, and that config's run, made
once per session (``cache/``, ``runs/photos/``). Before a block runs, ``SUBSTITUTIONS``
replaces, as text, what would download weights or take long; nothing else changes.

Only blocks fenced ```python run. Commands are ```bash, configs ```toml, output and code that
needs a GPU or a cluster ```text. Every ```toml block must be a valid config (a fragment
without ``[data]`` is checked on top of one).
"""

from __future__ import annotations

import importlib
import linecache
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_WORDS = 2500

SUBSTITUTIONS = [  # (as written in the docs, as run here): no downloads, tiny inputs
    ('weights="imagenet"', 'weights="random"'),
    ("image_size=224", "image_size=32"),
]

NEEDS = [  # (text in a block, module it needs): skipped with that reason when the module is missing
    (".to_pandas(", "pandas"),
    ("import pandas", "pandas"),
]

MY_TOML = """\
[data]
root = "photos"

[features]
backbones = ["vgg16"]
weights = "random"
image_size = 32
batch_size = 8
num_workers = 0

[features.taps]
vgg16 = ["pool3", "pool4"]

[classifiers]
models = ["logreg"]

[run]
dir = "runs/photos"
"""

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)


def blocks(page: Path, language: str) -> list[tuple[int, str]]:
    """The ``language`` fenced blocks of a page: (line of the first code line, code)."""
    text = page.read_text()
    return [(text.count("\n", 0, match.start(2)) + 1, match.group(2))
            for match in _FENCE.finditer(text) if match.group(1) == language]


def _case_id(page: Path, line: int) -> str:
    return f"{page.relative_to(ROOT)}:{line}"


PYTHON_BLOCKS = [pytest.param(page, line, code, id=_case_id(page, line))
                 for page in PAGES for line, code in blocks(page, "python")]
TOML_BLOCKS = [pytest.param(page, line, code, id=_case_id(page, line))
               for page in PAGES for line, code in blocks(page, "toml")]


def _make_photos(folder: Path) -> None:
    """``photos/<class>/*``: 2 colour-coded classes x 8 noisy 32x24 images, JPEG and PNG."""
    rng = np.random.default_rng(0)
    for name, colour in {"cat": (200, 60, 40), "dog": (40, 80, 200)}.items():
        (folder / name).mkdir(parents=True)
        for index in range(8):
            pixels = np.clip(np.array(colour) + rng.normal(0, 30, (24, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{name}{index}.{'jpg' if index % 2 else 'png'}")


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    """The folder every page starts from: photos/, my.toml and its run (cache/, runs/photos/)."""
    from pipeline.cli import main

    folder = tmp_path_factory.mktemp("docs-template")
    _make_photos(folder / "photos")
    (folder / "my.toml").write_text(MY_TOML)
    assert main(["run", "-c", str(folder / "my.toml"), "--quiet"]) == 0
    return folder


_workspaces: dict[Path, dict] = {}


@pytest.fixture
def workspace(template, tmp_path_factory, monkeypatch):
    """One folder and one namespace per page, shared by its blocks in order."""

    def get(page: Path) -> dict:
        if page not in _workspaces:
            folder = tmp_path_factory.mktemp(page.stem)
            shutil.copytree(template, folder, dirs_exist_ok=True)
            _workspaces[page] = {"folder": folder, "namespace": {"__name__": "__docs__"}, "failed": []}
        monkeypatch.chdir(_workspaces[page]["folder"])
        return _workspaces[page]

    return get


def as_run(code: str) -> str:
    """The block as it runs here: SUBSTITUTIONS applied."""
    for written, run in SUBSTITUTIONS:
        code = code.replace(written, run)
    return code


@pytest.mark.parametrize("page, line, code", PYTHON_BLOCKS)
def test_python_block_runs(page, line, code, workspace):
    for text, module in NEEDS:
        if text in code:
            try:
                importlib.import_module(module)
            except ImportError:
                pytest.skip(f"needs {module}, which is not installed (an optional package)")
    space = workspace(page)
    source = as_run(code)
    name = f"<{_case_id(page, line)}>"  # tracebacks: the block's own lines, counted from its first
    linecache.cache[name] = (len(source), None, source.splitlines(keepends=True), name)
    compiled = compile(source, name, "exec")
    try:
        exec(compiled, space["namespace"])
    except BaseException as error:
        if space["failed"]:
            error.add_note(f"an earlier block of {page.name} failed too (line {space['failed'][0]}); "
                           f"this one may depend on it")
        space["failed"].append(line)
        raise


@pytest.mark.parametrize("page, line, code", TOML_BLOCKS)
def test_toml_block_is_a_valid_config(page, line, code, tmp_path):
    """A full config loads as it is; a fragment loads on top of a [data] section."""
    from pipeline import load_config

    text = code if re.search(r"^\[data\]", code, re.M) else '[data]\nroot = "photos"\n\n' + code
    path = tmp_path / "config.toml"
    path.write_text(text)
    load_config(path)


def test_readme_is_short():
    words = len((ROOT / "README.md").read_text().split())
    assert words <= README_MAX_WORDS, f"README.md has {words} words; at most {README_MAX_WORDS} (move detail to docs/)"


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    text = _FENCE.sub("", page.read_text())
    headings = re.findall(r"^#+ +(.+?) *$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def _links(page: Path) -> list[str]:
    text = _FENCE.sub("", page.read_text())
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page):
    missing = []
    for link in _links(page):
        if re.match(r"[a-z]+:", link):
            continue  # http(s), mailto: not checked offline
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if path == ROOT / "docs" / "report.md" and not path.exists():
            continue  # written on another branch (the HTML report); linked ahead of it
        if not path.exists():
            missing.append(f"{link} (no file {target})")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            missing.append(f"{link} (no heading #{anchor} in {path.name})")
    assert not missing, f"{page.name}: broken links: {', '.join(missing)}"


def test_where_to_read_on_names_every_page():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Where to read on", 1)[1]
    linked = {Path(link.partition("#")[0]).name for link in _links_in(section)}
    pages = {page.name for page in (ROOT / "docs").glob("*.md")} | {"report.md"}
    assert pages <= linked, f"pages missing from 'Where to read on': {sorted(pages - linked)}"


def _links_in(text: str) -> list[str]:
    return re.findall(r"\]\((docs/[^)\s]+)\)", text)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_no_paths_outside_the_repository(page):
    text = page.read_text()
    for needle in ("../shared", "/work/", "/root/"):
        assert needle not in text, f"{page.name} names {needle!r}: user docs speak of the product only"


def test_every_substitution_is_used():
    """The table stays in step with the docs: each entry is used by some block."""
    code = "".join(block for page in PAGES for _, block in blocks(page, "python"))
    unused = [written for written, _ in SUBSTITUTIONS if written not in code]
    assert not unused, f"substitutions no block uses (remove them, or fix the docs): {unused}"
