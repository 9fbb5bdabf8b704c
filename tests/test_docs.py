"""The docs never rot: every ```python block of docs/*.md and README.md runs here.

How it works:
  - `markdown_blocks(path)` finds each fenced block that opens with ```python (or ```py) and
    returns (line number of its first code line, code, skip reason or None).
  - A block is skipped when the last non-blank line before its fence is an HTML comment
    `<!-- skip: reason -->`; each skipped block is its own test item that reports the reason
    (`pytest -ra` lists them). The reason `needs a GPU` is special: such a block runs where
    CuPy finds a CUDA GPU (`tinylm.gpu_available()`), and is skipped elsewhere.
  - The other blocks of one Markdown file run in order, in one shared namespace (a later block
    may use an earlier block's names), with cwd = the repository root, in a fresh Python
    process per file (`python tests/test_docs.py FILE.md`): no state leaks between files, and
    BLAS runs on one thread (unless OPENBLAS_NUM_THREADS etc. are set), which is faster for
    the docs' small matmuls and immune to a busy machine. Each block is compiled under the
    Markdown file's path with its real line numbers, so a failure's traceback points at the
    line in the .md file, and the message names the file and the block's first line.
Also: every name in `tinylm.__all__` must appear in the docs' code (code blocks or `inline
code`), and every module of tinylm/ must appear in the package map of docs/design.md.
"""
import os
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

try:
    import pytest
except ImportError:  # the runner below needs no pytest
    pytest = None

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
MARKDOWN = sorted(DOCS.glob("*.md")) + ([REPO / "README.md"] if (REPO / "README.md").is_file() else [])

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*(\w*)")
_SKIP = re.compile(r"^\s*<!--\s*skip:\s*(.*?)\s*-->\s*$")


NEEDS_GPU = "needs a GPU"
_gpu = None


def skipped(reason):
    """Whether a block with this skip reason (None: no marker) is skipped here."""
    global _gpu
    if reason != NEEDS_GPU:
        return reason is not None
    if _gpu is None:
        sys.path.insert(0, str(REPO))
        import tinylm
        _gpu = tinylm.gpu_available()
    return not _gpu


def markdown_blocks(path):
    """[(first code line number, code, skip reason or None)] for each ```python block of a file."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        start, j = i + 1, i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        if lang.lower() in ("python", "py"):
            prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            skip = _SKIP.match(prev)
            code = "\n".join(ln[len(indent):] if ln.startswith(indent) else ln for ln in lines[start:j])
            blocks.append((start + 1, code, skip.group(1) if skip else None))
        i = j + 1
    return blocks


def _rel(path):
    path = Path(path).resolve()
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)


def run_file(path):
    """Run the python blocks of one Markdown file in order in one namespace; 0 if all pass, else 1."""
    path = Path(path).resolve()
    os.chdir(REPO)
    sys.path.insert(0, str(REPO))
    namespace = {"__name__": "__docs__"}
    for first, code, skip in markdown_blocks(path):
        if skipped(skip):
            continue
        # pad with newlines so tracebacks give the line numbers of the Markdown file itself
        compiled = compile("\n" * (first - 1) + code, str(path), "exec")
        t0 = time.perf_counter()
        try:
            exec(compiled, namespace)
        except BaseException:
            sys.stdout.flush()
            sys.stderr.write(f"{_rel(path)}: the python block starting at line {first} failed:\n"
                             f"{traceback.format_exc()}")
            return 1
        print(f"[{_rel(path)}:{first}: {time.perf_counter() - t0:.2f} s]", flush=True)
    return 0


def _items():
    for path in MARKDOWN:
        yield pytest.param(path, None, None, id=_rel(path))
        for line, _, reason in markdown_blocks(path):
            if skipped(reason):
                yield pytest.param(path, line, reason, id=f"{_rel(path)}:{line}-skipped")


if pytest is not None:
    @pytest.mark.parametrize("path, line, reason", list(_items()))
    def test_markdown_python_blocks(path, line, reason):
        if reason is not None:
            pytest.skip(f"{_rel(path)}:{line}: {reason}")
        env = dict(os.environ)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, "1")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(path)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)
        sys.stdout.write(proc.stdout + f"{_rel(path)}: {time.perf_counter() - t0:.1f} s\n")
        if proc.returncode != 0:
            pytest.fail(proc.stderr[-6000:] or f"{_rel(path)}: exit status {proc.returncode}", pytrace=False)


def test_gpu_blocks_run_where_there_is_a_gpu():
    import tinylm
    assert skipped(None) is False and skipped("a long run") is True
    assert skipped(NEEDS_GPU) is (not tinylm.gpu_available())
    assert any(reason == NEEDS_GPU for _, _, reason in markdown_blocks(DOCS / "09-gpu.md"))


def test_skip_markers_sit_on_python_blocks():
    """A `<!-- skip: ... -->` comment must be followed by a ```python fence (else it is a typo)."""
    bad = []
    for path in MARKDOWN:
        lines = path.read_text(encoding="utf-8").splitlines()
        for n, ln in enumerate(lines):
            if _SKIP.match(ln):
                nxt = next((x for x in lines[n + 1:] if x.strip()), "")
                m = _FENCE.match(nxt)
                if not m or m.group(3).lower() not in ("python", "py"):
                    bad.append(f"{_rel(path)}:{n + 1}")
    assert not bad, f"skip markers not followed by a ```python block: {bad}"


def _code_text():
    """The docs' code: fenced blocks (any language) and `inline code` spans of docs/*.md."""
    parts = []
    for path in sorted(DOCS.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        parts += re.findall(r"^\s*(?:`{3,}|~{3,}).*?$(.*?)^\s*(?:`{3,}|~{3,})\s*$", text, flags=re.M | re.S)
        parts += re.findall(r"`([^`\n]+)`", text)
    return "\n".join(parts)


def test_every_public_name_is_in_the_docs():
    import tinylm as tl
    code = _code_text()
    missing = [name for name in tl.__all__ if not re.search(rf"(?<![\w]){re.escape(name)}(?!\w)", code)]
    assert not missing, f"names in tinylm.__all__ that no code in docs/*.md uses or shows: {missing}"


def test_design_map_lists_every_module():
    design = (DOCS / "design.md").read_text(encoding="utf-8")
    modules = sorted(p.name for p in (REPO / "tinylm").glob("*.py"))
    missing = [m for m in modules if f"tinylm/{m}" not in design]
    assert not missing, f"tinylm modules missing from the package map in docs/design.md: {missing}"


if __name__ == "__main__":
    sys.exit(run_file(sys.argv[1]))
