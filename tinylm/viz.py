"""Draw the recorded graph of a tensor, for teaching: Graphviz DOT text, rendered when Graphviz is there.

`draw_graph(y)` walks back from `y` through the public surface of the engine only
(`tensor.grad_fn`, the Function; `fn.args`, its inputs; `fn.name`; `tensor.shape`, `dtype`,
`requires_grad`, `is_leaf`, `name`) and returns a `Graph`: its `source` is DOT text, built
with no dependency. `Graph.render("g.svg")` runs Graphviz's `dot` program when it is installed
(`apt-get install graphviz`, `brew install graphviz`) and raises a RuntimeError saying so when
it is not. The same idea as micrograd's `draw_dot` and torchviz's `make_dot`, written anew.

Tensors are boxes (name, shape, dtype); a leaf that requires grad, the kind `backward()` fills
a `.grad` for, is filled blue and marked "leaf, grad"; leaves without a gradient are grey. Ops
are ellipses with the Function's name. Edges run forward: input tensor -> op -> output.
Draw before `backward()` or use `backward(retain_graph=True)`: backward frees each Function's
saved inputs, and then there is no graph left to draw.
"""
import os
import shutil
import subprocess

from tinylm.tensor import Tensor

__all__ = ["Graph", "draw_graph"]

_FORMATS = ("svg", "png", "pdf", "dot")
_OP_STYLE = 'style=filled, fillcolor="#fff2cc"'


def _quote(text):
    """A DOT double-quoted string (backslashes and quotes escaped, newlines as \\n)."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _tensor_label(t):
    shape = "(" + ", ".join(str(n) for n in t.shape) + ("," if len(t.shape) == 1 else "") + ")"
    lines = ([t.name] if t.name else []) + [f"{shape} {t.dtype}"]
    if t.is_leaf:
        lines.append("leaf, grad" if t.requires_grad else "leaf, no grad")
    return "\n".join(lines)


class Graph:
    """A drawn graph: `source` (DOT text, also `str(graph)`), `render(path)` and `pipe(format)` via Graphviz."""

    def __init__(self, source):
        self.source = source

    def __str__(self):
        return self.source

    def __repr__(self):
        n = self.source.count("\n") - 1
        return f"Graph({n} DOT lines; .source for the text, .render(path) to draw it)"

    def pipe(self, format="svg"):
        """The drawing as bytes, in `format` (svg, png, pdf), made by Graphviz's `dot` program."""
        if format not in _FORMATS:
            raise ValueError(f"Graph.pipe: format must be one of {_FORMATS}, got {format!r}")
        if format == "dot":
            return self.source.encode("utf-8")
        dot = shutil.which("dot")
        if dot is None:
            raise RuntimeError("Graph.render needs Graphviz's `dot` program on the PATH (apt-get install graphviz, "
                               "brew install graphviz); Graph.source has the DOT text without it")
        proc = subprocess.run([dot, f"-T{format}"], input=self.source.encode("utf-8"), capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError(f"dot -T{format} failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
        return proc.stdout

    def render(self, path, format=None):
        """Write the drawing to `path`; the format comes from its extension (.svg, .png, .pdf, .dot) unless given."""
        path = os.fspath(path)
        if format is None:
            format = os.path.splitext(path)[1].lstrip(".").lower()
            if format not in _FORMATS:
                raise ValueError(f"Graph.render: cannot tell the format of {path!r} from its extension; "
                                 f"name one of {_FORMATS} or pass format=")
        data = self.pipe(format)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def _repr_svg_(self):  # Jupyter draws it inline when Graphviz is there
        try:
            return self.pipe("svg").decode("utf-8")
        except RuntimeError:
            return None


def draw_graph(tensor, rankdir="LR"):
    """The graph that made `tensor`: ops, shapes, dtypes and which leaves get gradients, as a `Graph`.

    Nodes are numbered in the order a walk back from `tensor` meets them (t0 is `tensor`
    itself, f0 the Function that made it), so the same computation always gives the same text.
    `rankdir` is Graphviz's layout direction: "LR" (left to right) or "TB" (top to bottom).
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"draw_graph: expected a tinylm Tensor, got {type(tensor).__name__}")
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise ValueError(f"draw_graph: rankdir must be LR, TB, RL or BT, got {rankdir!r}")
    tensors, fns = {}, {}                      # id -> node name, in the order met
    nodes, edges = [], []

    def tensor_node(t):
        key = id(t)
        if key not in tensors:
            tensors[key] = f"t{len(tensors)}"
            style = ('style=filled, fillcolor="#cfe2f3"' if t.requires_grad else 'style=filled, fillcolor="#eeeeee"') \
                if t.is_leaf else "style=solid"
            nodes.append(f"  {tensors[key]} [shape=box, {style}, label={_quote(_tensor_label(t))}];")
            if t.grad_fn is not None:
                stack.append(t)
        return tensors[key]

    stack = []
    tensor_node(tensor)
    seen_edges = set()
    while stack:
        t = stack.pop(0)                       # breadth-first: the numbering reads back from the output
        fn = t.grad_fn
        if getattr(fn, "freed", False) or not hasattr(fn, "args"):
            raise ValueError(f"draw_graph: the {fn.name} that made a tensor of shape {t.shape} was freed by "
                             "backward(); draw the graph before backward() or call backward(retain_graph=True)")
        new_fn = id(fn) not in fns
        if new_fn:
            fns[id(fn)] = f"f{len(fns)}"
            nodes.append(f"  {fns[id(fn)]} [shape=ellipse, {_OP_STYLE}, label={_quote(fn.name)}];")
        edge = (fns[id(fn)], tensors[id(t)])
        if edge not in seen_edges:
            seen_edges.add(edge)
            edges.append(f"  {edge[0]} -> {edge[1]};")
        if not new_fn:
            continue
        for a in fn.args:
            if isinstance(a, Tensor):
                src = tensor_node(a)
                edges.append(f"  {src} -> {fns[id(fn)]};")   # an input used twice gives two edges
    lines = ["digraph tinylm {", f"  rankdir={rankdir};", '  node [fontname="Helvetica", fontsize=10];']
    return Graph("\n".join(lines + nodes + edges + ["}"]) + "\n")
