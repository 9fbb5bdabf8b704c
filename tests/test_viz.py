"""tinylm.viz.draw_graph: the DOT text of known small graphs, node by node and edge by edge."""
import re
import shutil

import pytest

import tinylm as tl
from tinylm.viz import Graph, draw_graph

_NODE = re.compile(r'^\s*(\w+) \[shape=(\w+), (.*?), label="(.*)"\];$')
_EDGE = re.compile(r"^\s*(\w+) -> (\w+);$")


def parse(source):
    """({node: (shape, style, label)}, [(src, dst)]) from draw_graph's DOT text."""
    nodes, edges = {}, []
    assert source.startswith("digraph tinylm {") and source.rstrip().endswith("}")
    for line in source.splitlines()[1:-1]:
        m = _NODE.match(line)
        if m:
            nodes[m.group(1)] = (m.group(2), m.group(3), m.group(4).replace("\\n", "\n"))
            continue
        m = _EDGE.match(line)
        if m:
            edges.append((m.group(1), m.group(2)))
    return nodes, edges


def test_diamond_x_times_x_plus_x():
    x = tl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x.name = "x"
    y = x * x + x                               # x is used three times: the diamond of chapter 2
    nodes, edges = parse(draw_graph(y).source)
    op, leaf = 'style=filled, fillcolor="#fff2cc"', 'style=filled, fillcolor="#cfe2f3"'
    assert nodes == {
        "t0": ("box", "style=solid", "(3,) float32"),           # y, made by Add
        "f0": ("ellipse", op, "Add"),
        "t1": ("box", "style=solid", "(3,) float32"),           # x * x, made by Mul
        "t2": ("box", leaf, "x\n(3,) float32\nleaf, grad"),
        "f1": ("ellipse", op, "Mul"),
    }
    assert sorted(edges) == sorted([("f0", "t0"), ("t1", "f0"), ("t2", "f0"), ("f1", "t1"),
                                    ("t2", "f1"), ("t2", "f1")])


def test_leaves_with_and_without_gradients_shapes_and_dtypes():
    w = tl.zeros(4, 2, dtype=tl.float64, requires_grad=True)
    w.name = "w"
    x = tl.ones(3, 4, dtype=tl.float64)           # data: a leaf that gets no gradient
    loss = (x @ w).tanh().sum()
    nodes, edges = parse(draw_graph(loss).source)
    labels = {n: lab for n, (_, _, lab) in nodes.items()}
    assert [labels[f] for f in ("f0", "f1", "f2")] == ["Sum", "Tanh", "MatMul"]
    assert labels["t0"] == "() float64"
    assert labels["t1"] == "(3, 2) float64"       # tanh's output
    assert labels["t2"] == "(3, 2) float64"       # the matmul's output
    assert labels["t3"] == "(3, 4) float64\nleaf, no grad"
    assert labels["t4"] == "w\n(4, 2) float64\nleaf, grad"
    assert 'fillcolor="#eeeeee"' in nodes["t3"][1] and 'fillcolor="#cfe2f3"' in nodes["t4"][1]
    assert sorted(edges) == sorted([("f0", "t0"), ("t1", "f0"), ("f1", "t1"), ("t2", "f1"),
                                    ("f2", "t2"), ("t3", "f2"), ("t4", "f2")])


def test_a_leaf_alone_and_the_same_text_twice():
    a = tl.tensor([[1.0]])
    nodes, edges = parse(draw_graph(a).source)
    assert nodes == {"t0": ("box", 'style=filled, fillcolor="#eeeeee"', "(1, 1) float32\nleaf, no grad")}
    assert edges == []
    b = tl.randn(2, 3, requires_grad=True)
    assert draw_graph((b * 2).exp()).source == draw_graph((b * 2).exp()).source


def test_names_are_escaped():
    a = tl.tensor([1.0], requires_grad=True)
    a.name = 'say "hi"\\'
    src = draw_graph(a * 2).source
    assert r'label="say \"hi\"\\' in src


def test_freed_graph_and_bad_input_raise():
    a = tl.tensor([1.0, 2.0], requires_grad=True)
    y = (a * a).sum()
    y.backward()
    with pytest.raises(ValueError, match="retain_graph"):
        draw_graph(y)
    z = (a * a).sum()
    z.backward(retain_graph=True)
    assert "Mul" in draw_graph(z).source
    with pytest.raises(TypeError, match="Tensor"):
        draw_graph(a.data)
    with pytest.raises(ValueError, match="rankdir"):
        draw_graph(a, rankdir="XY")
    with pytest.raises(ValueError, match="format"):
        draw_graph(a).render("graph.txt")


def test_render_writes_dot_without_graphviz(tmp_path):
    a = tl.tensor([1.0], requires_grad=True)
    g = draw_graph(a + 1)
    assert isinstance(g, Graph) and str(g) == g.source
    path = g.render(tmp_path / "g.dot")
    assert open(path, encoding="utf-8").read() == g.source


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
def test_render_svg_with_graphviz(tmp_path):
    a = tl.tensor([1.0], requires_grad=True)
    a.name = "a"
    path = draw_graph(a * a + a).render(tmp_path / "g.svg")
    svg = open(path, encoding="utf-8").read()
    assert "<svg" in svg and ">Mul<" in svg and ">Add<" in svg
    assert draw_graph(a * a).pipe("png")[:8] == b"\x89PNG\r\n\x1a\n"
