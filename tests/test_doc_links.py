"""The docs' links to the source never rot: every relative link in docs/*.md and README.md must
point at a file that exists, and a link whose text names code (`ops.Gelu`, `GPT.init_weights`)
must point at a Python file that defines that name (found by parsing the file with ast).

How a name is looked up in the linked file: leading module names (`ops.`, `F.`, `nn.`, ...)
that the file does not define are dropped; the first remaining name must be a class or
function defined anywhere in the file (or a top-level assignment), and each further name
(`KVCache.update`) a function, class or assignment inside the one before it.

The chapters link the package's target layout; while a file of it does not exist yet
(tinylm/hub.py), `MOVED` says where its code lives today, and the name is looked up there.
Once the file exists it is checked itself, and MOVED's entry is dead weight to delete.
Also: every numbered chapter has a "Where in the source" box, and no page names a path outside
the repository.
"""
import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md")) + sorted(DOCS.glob("exercises/*.md")) + [REPO / "README.md"]
CHAPTERS = sorted(DOCS.glob("[01][0-9]-*.md"))

# new layout -> today's file(s), used only while the new file is absent
MOVED = {}   # a linked file that does not exist yet -> where its code lives today (none at present)
# chapters without a "Where in the source" box yet, with the reason
NO_BOX = {"09-gpu.md": "owned by another session (issue 17 leaves chapter 9 to the GPU work)"}

_LINK = re.compile(r"(?<!!)\[([^\]\n]+)\]\(([^)\s]+)\)|!\[[^\]\n]*\]\(([^)\s]+)\)")
_CODE_NAME = re.compile(r"^`([A-Za-z_][\w.]*)(?:\(\))?`$")


def _strip_code(text):
    """The page without fenced code blocks (links are only looked for in prose)."""
    return re.sub(r"^\s*(`{3,}|~{3,}).*?^\s*\1\s*$", "", text, flags=re.M | re.S)


def links(path):
    """[(line number, link text or None for an image, target)] of one page, outside code blocks."""
    text = _strip_code(Path(path).read_text(encoding="utf-8"))
    out = []
    for m in _LINK.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        out.append((line, m.group(1), m.group(2) or m.group(3)))
    return out


def _local(target):
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")


def _definitions(tree):
    """{name: node} of the classes, functions and assignments directly in a module or class body."""
    found = {}
    for node in getattr(tree, "body", []):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        found[n.id] = node
    return found


def _anywhere(tree, name):
    """Every class or function called `name` at any depth of the file."""
    return [n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.name == name]


def defines(tree, dotted, module=()):
    """Whether the parsed file defines `dotted` (e.g. 'ops.Gelu', 'GPT.init_weights', 'F.gelu').

    `module`: names of the linked module itself ('train' for tinylm/train.py), always dropped
    as a prefix (train.train is the function train of train.py).
    """
    parts = dotted.split(".")
    while len(parts) > 1 and (parts[0] in module or parts[0] in ("tinylm", "tl")):
        parts = parts[1:]
    while parts and not _anywhere(tree, parts[0]) and parts[0] not in _definitions(tree):
        parts = parts[1:]                      # a module prefix: ops., F., nn., ...
    if not parts:
        return False
    scopes = _anywhere(tree, parts[0]) or [_definitions(tree)[parts[0]]]
    for name in parts[1:]:
        scopes = [d for s in scopes for n, d in _definitions(s).items() if n == name]
        if not scopes:
            return False
    return True


def resolve(page, target):
    """The files (repository-relative) a local link stands for: itself, or where MOVED says its code is today."""
    rel = target.split("#")[0]
    path = (page.parent / rel).resolve()
    if not path.is_relative_to(REPO):
        return None, []
    key = path.relative_to(REPO).as_posix()
    if path.exists():
        return key, [path]
    return key, [REPO / p for p in MOVED.get(key, [])]


def _problems(page):
    bad = []
    for line, label, target in links(page):
        if not _local(target):
            continue
        key, files = resolve(page, target)
        where = f"{page.relative_to(REPO).as_posix()}:{line}: [{label}]({target})"
        if key is None:
            bad.append(f"{where} leaves the repository")
            continue
        if not files or not all(f.exists() for f in files):
            bad.append(f"{where}: no file {key}")
            continue
        m = _CODE_NAME.match(label or "")
        if m and key.endswith(".py") and not m.group(1).endswith(".py"):
            trees = [ast.parse(f.read_text(encoding="utf-8")) for f in files]
            module = {Path(key).stem, Path(key).parent.name}
            if not any(defines(t, m.group(1), module) for t in trees):
                bad.append(f"{where}: {key} defines no {m.group(1)}")
    return bad


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_local_links_and_named_code_exist(page):
    bad = _problems(page)
    assert not bad, "broken links:\n" + "\n".join(bad)


def test_the_checker_catches_a_missing_name_and_file(tmp_path):
    page = DOCS / "02-autograd.md"             # resolve() works relative to a page's folder
    tree = ast.parse("class GPT:\n    def init_weights(self): pass\ndef gelu(x): pass\nX = 1\n")
    assert defines(tree, "GPT.init_weights") and defines(tree, "model.GPT") and defines(tree, "F.gelu")
    assert defines(tree, "X") and defines(tree, "gelu.gelu", module={"gelu"})
    assert not defines(tree, "gelu.gelu")     # without the module name, gelu. is not a prefix
    assert not defines(tree, "GPT.generate") and not defines(tree, "ops.Gelu") and not defines(tree, "gelu.x")
    assert resolve(page, "../tinylm/no_such_file.py") == ("tinylm/no_such_file.py", [])
    assert resolve(page, "../../outside.md")[0] is None
    fake = tmp_path / "docs" / "x.md"
    fake.parent.mkdir()
    fake.write_text("See [`ops.Gelu`](../tinylm/ops.py) and [gone](../nothing.md).\n", encoding="utf-8")
    assert [(ln, t) for ln, _, t in links(fake)] == [(1, "../tinylm/ops.py"), (1, "../nothing.md")]


def test_every_chapter_has_a_where_in_the_source_box():
    missing = [p.name for p in CHAPTERS if p.name not in NO_BOX
               and not re.search(r"^#+ .*Where in the source", p.read_text(encoding="utf-8"), flags=re.M)]
    assert not missing, f"chapters without a 'Where in the source' section: {missing}"
    for p in CHAPTERS:
        if p.name in NO_BOX:
            continue
        text = p.read_text(encoding="utf-8")
        box = text[re.search(r"^#+ .*Where in the source", text, flags=re.M).start():]
        assert re.search(r"\]\(\.\./tinylm/", box), f"{p.name}: its 'Where in the source' box links no tinylm file"


# ../shared (beside the checkout), a home folder (~/), a drive (C:\\), or any absolute path such as
# /usr/share/ (but not a URL's path, nor a relative link's)
_OUTSIDE = re.compile(r"\.\./shared|~/|\b[A-Z]:[\\/]|(?<![\w:/.~\-\])])/[A-Za-z_][\w.-]*/")


def test_no_page_names_a_path_outside_the_repository():
    for text, outside in [("see /usr/share/dict", True), ("in `../shared/data`", True), ("~/.cache/tinylm", True),
                          ("C:\\data\\x", True), ("[`ops.Gelu`](../tinylm/ops.py)", False),
                          ("https://arxiv.org/abs/1706.03762", False), ("out/run-a/log.csv", False)]:
        assert bool(_OUTSIDE.search(text)) is outside, text
    bad = [f"{p.relative_to(REPO).as_posix()}:{n}: {ln.strip()[:80]}"
           for p in PAGES for n, ln in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
           if _OUTSIDE.search(ln)]
    assert not bad, "pages naming a path outside the repository:\n" + "\n".join(bad)
