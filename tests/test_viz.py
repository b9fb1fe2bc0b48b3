"""Structure of the visualizations: every group in the legend, one color per group everywhere, blocked
groups with their reason, self-contained HTML, parseable DOT/JSON, atomic CLI output, report PNGs."""
import importlib.util
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import graphprune as gp
import sr_models
from graphprune.compress import plots as rp
from graphprune import viz
from graphprune.viz._layout import layout

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", ROOT / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class NoRule(nn.Module):
    """conv -> an op without a coupling rule -> conv -> conv: the first group is blocked by the op."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 3, 1)

    def forward(self, x):
        return self.c(self.b(torch.special.i0(self.a(x))))


@pytest.fixture(scope="module")
def ledsr():
    model = sr_models.create_model("ledsr_f256r16_x4", n_feats=16, n_resblocks=2).eval()
    graph = gp.analyze(model, torch.zeros(1, 3, 12, 12))
    return graph, gp.plan(graph, 0.5)


@pytest.fixture(scope="module")
def norule():
    graph = gp.analyze(NoRule(), torch.zeros(1, 3, 8, 8))
    assert graph.unsupported, "the fixture needs an op without a rule"
    return graph


class _Collect(HTMLParser):
    """Legend rows, node groups, stripe fills and every tag's attributes of the page."""

    def __init__(self):
        super().__init__()
        self.legend, self.swatches, self.stripes, self.nodes, self.tags = {}, {}, [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        cls = a.get("class", "").split()
        if tag == "li" and "grp" in cls:
            self.legend[int(a["data-gid"])] = a
        elif tag == "span" and "sw" in cls and "data-gid" in a:
            self.swatches[int(a["data-gid"])] = re.search(r"background-color:(#[0-9a-f]{6})", a["style"]).group(1)
        elif tag == "rect" and "stripe" in cls:
            self.stripes.append((int(a["data-gid"]), a["fill"]))
        elif tag == "g" and "node" in cls:
            self.nodes.append(a)


def _parse(text):
    p = _Collect()
    p.feed(text)
    return p


# ------------------------------------------------------------------------------------ html
def test_legend_lists_every_group_with_its_color(ledsr, tmp_path):
    graph, plan = ledsr
    page = _parse(viz.render(graph, tmp_path / "g.html", plan=plan).read_text())
    assert set(page.legend) == {g.id for g in graph.groups}
    for g in graph.groups:
        row = page.legend[g.id]
        assert row["data-color"] == page.swatches[g.id] == viz.group_color(g.id, g.prunable)
        assert int(row["data-kept"]) == plan.kept(g.id)
        assert row["data-prunable"] == str(int(g.prunable))


def test_node_colors_match_the_legend(ledsr, tmp_path):
    graph, _ = ledsr
    page = _parse(viz.render(graph, tmp_path / "g.html").read_text())
    assert page.stripes, "nodes must be colored by group"
    for gid, fill in page.stripes:
        assert fill == page.legend[gid]["data-color"]
    # a node's stripes are exactly the groups its output carries (the residual stream: one group)
    carried = {g for n in page.nodes for g in n["data-groups"].split()}
    assert {str(g) for g, _ in page.stripes} <= carried
    stream = graph.groups_of("head.0", dim=0)[0]
    head = next(n for n in page.nodes if n["data-id"] == "head_0")
    assert head["data-groups"] == str(stream.id)


def test_distinct_colors_for_prunable_groups():
    colors = [viz.group_color(i, True) for i in range(40)]
    assert len(set(colors)) == 40
    assert viz.group_color(7, False) != viz.group_color(7, True)


def test_blocked_groups_carry_their_reason(norule, tmp_path):
    text = viz.render(norule, tmp_path / "g.html").read_text()
    page = _parse(text)
    blocked = [g for g in norule.groups if not g.prunable]
    assert blocked
    for g in blocked:
        row = page.legend[g.id]
        assert "blocked" in row["class"] and row["data-reason"] == g.reason and g.reason
    assert "no rule for this op" in text
    node = next(n for n in page.nodes if n["data-id"] in norule.unsupported)
    assert "blocked-op" in node["class"]
    data = json.loads(re.search(r'<script type="application/json" id="gp-data">(.*?)</script>', text, re.S).group(1))
    assert data["nodes"][node["data-id"]]["blocked"] == norule.unsupported[node["data-id"]]
    assert {int(k) for k in data["groups"]} == {g.id for g in norule.groups}


def test_html_has_no_external_references(ledsr, tmp_path):
    graph, plan = ledsr
    text = viz.render(graph, tmp_path / "g.html", plan=plan).read_text()
    page = _parse(text)
    assert not re.search(r"(?i)\b(https?|ftp):", text)
    assert not re.search(r"(?i)@import|\burl\(\s*['\"]?(?!#)", text), "only url(#local) references"
    for tag, attrs in page.tags:
        assert not (tag == "script" and "src" in attrs), "no <script src>"
        assert tag != "link", "no <link>"
        for key in ("src", "href", "xlink:href"):
            assert key not in attrs or attrs[key].startswith("#"), (tag, attrs)
    assert text.count("<script") == 2  # the JSON data and the inline script


def test_collapsed_repeated_blocks_keep_every_group(tmp_path):
    model = sr_models.create_model("rirsr_g10r20f96_x2", n_resgroups=5, n_resblocks=6, n_feats=8).eval()
    graph = gp.analyze(model, torch.zeros(1, 3, 8, 8))
    view = viz.build_view(graph, collapse=True)
    assert view.full is not None and len(view.nodes) < len(view.full.nodes) / 3
    shown = {g for n in view.nodes for g in n.color_groups}
    assert shown == {g for n in view.full.nodes for g in n.color_groups}, "collapsing must not hide a group"
    ids = {n.id for n in view.nodes}
    assert all(s in ids and t in ids for s, t in view.edges)
    inside = {m for n in view.nodes if n.collapsed for m in n.inner_modules}
    assert {"body.0.body.2.body.0", "body.2.body.3.body.2"} <= inside  # inner run and outer run collapsed
    assert not inside & {n.module for n in view.nodes}, "a module is shown once"
    page = _parse(viz.render(graph, tmp_path / "g.html", collapse=True).read_text())
    assert set(page.legend) == {g.id for g in graph.groups}
    assert {n["data-id"] for n in page.nodes} == ids | {n.id for n in view.full.nodes}  # both views present
    found = [n["data-id"] for n in page.nodes if "body.2.body.3.body.2" in n["data-modules"].split()]
    assert len(found) == 2, "search finds the module in the collapsed view and in the full view"


def test_layout_boxes_do_not_overlap():
    ids = [f"n{i}" for i in range(60)]
    edges = [(f"n{i}", f"n{i + 1}") for i in range(59)] + [(f"n{i}", f"n{i + 3}") for i in range(0, 57, 3)]
    lay = layout(ids, edges)
    boxes = list(lay.boxes.values())
    assert lay.n_cols > 1, "a long chain is folded into columns"
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y


# ------------------------------------------------------------------------------------ dot / json / static
def test_json_is_node_link_data(ledsr, tmp_path):
    graph, plan = ledsr
    data = json.loads(viz.render(graph, tmp_path / "g.json", plan=plan).read_text())
    ids = {n["id"] for n in data["nodes"]}
    assert {"head_0", "tail_1", "output"} <= ids
    assert all(e["source"] in ids and e["target"] in ids for e in data["links"])
    assert [g["id"] for g in data["groups"]] == [g.id for g in graph.groups]
    assert all(g["kept"] == plan.kept(g["id"]) for g in data["groups"])
    assert all({"x", "y", "w", "h"} <= set(n) for n in data["nodes"])
    import networkx as nx
    G = nx.node_link_graph(data, edges="links")
    assert nx.is_directed_acyclic_graph(G)


def test_dot_parses(ledsr, tmp_path):
    graph, _ = ledsr
    text = viz.render(graph, tmp_path / "g.dot").read_text()
    view = viz.build_view(graph, collapse=False)
    assert text.startswith("digraph ") and text.rstrip().endswith("}")
    declared = set(re.findall(r'^  "([^"]+)" \[', text, re.M))
    assert {n.id for n in view.nodes} <= declared
    assert len(re.findall(r'^  "[^"]+" -> "[^"]+";$', text, re.M)) == len(view.edges)
    if shutil.which("dot"):
        proc = subprocess.run(["dot", "-Tjson", str(tmp_path / "g.dot")], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert len(json.loads(proc.stdout)["objects"]) == len(declared)


@pytest.mark.parametrize("ext", [".png", ".svg"])
def test_static_picture_with_matplotlib(ledsr, tmp_path, ext):
    graph, plan = ledsr
    path = viz.render(graph, tmp_path / f"g{ext}", plan=plan, engine="matplotlib")
    head = path.read_bytes()[:200]
    assert head.startswith(PNG_MAGIC) if ext == ".png" else b"<svg" in head or b"<?xml" in head


@pytest.mark.skipif(not shutil.which("dot"), reason="Graphviz 'dot' not installed (apt-get install graphviz)")
def test_static_picture_with_graphviz(ledsr, tmp_path):
    graph, _ = ledsr
    assert viz.render(graph, tmp_path / "g.png", engine="dot").read_bytes().startswith(PNG_MAGIC)


def test_bad_output_leaves_no_file(ledsr, tmp_path):
    graph, _ = ledsr
    with pytest.raises(ValueError, match="unknown output format"):
        viz.render(graph, tmp_path / "g.txt")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ cli
def test_cli_html_with_ratio(tmp_path, capsys):
    tool = _load_tool("visualize")
    out = tmp_path / "g.html"
    assert tool.main(["--model", "ledsr_f256r16_x2", "--set", "n_resblocks=1", "--set", "n_feats=8",
                      "--ratio", "0.5", "--input", "1x3x8x8", "--out", str(out)]) == 0
    page = _parse(out.read_text())
    assert any(r.get("data-kept") == "4" for r in page.legend.values())


@pytest.mark.parametrize("argv, message", [
    (["--model", "no_such_model"], "is not a registered model"),
    (["--model", "ledsr_f256r16_x2", "--set", "n_resblocks"], "expected KEY=VALUE"),
    (["--model", "missing.safetensors"], "no such file"),
])
def test_cli_bad_input_one_line_exit_2_no_file(tmp_path, capsys, argv, message):
    tool = _load_tool("visualize")
    out = tmp_path / "g.html"
    assert tool.main(argv + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_recipe_and_pruned_file(tmp_path):
    tool = _load_tool("visualize")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nscale: 2\nmodel: {name: ledsr_f256r16_x2, kwargs: {n_resblocks: 1, n_feats: 8}}\n"
                      "prune: {ratio: 0.25, ignore: ['*tail*'], example_input: [1, 3, 8, 8]}\n")
    assert tool.main(["--recipe", str(recipe), "--out", str(tmp_path / "r.json")]) == 0
    data = json.loads((tmp_path / "r.json").read_text())
    assert any(g["kept"] == 6 for g in data["groups"])

    model = sr_models.create_model("ledsr_f256r16_x2", n_resblocks=1, n_feats=8)
    pruned, plan = gp.prune(model, torch.zeros(1, 3, 8, 8), 0.5)
    gp.save(pruned, tmp_path / "m.safetensors")
    assert tool.main(["--model", str(tmp_path / "m.safetensors"), "--out", str(tmp_path / "p.json")]) == 0
    kept = {g["id"]: g["kept"] for g in json.loads((tmp_path / "p.json").read_text())["groups"]}
    assert kept == {g.id: plan.kept(g.id) for g in plan.graph.groups}


def test_timm_model_html(tmp_path):
    timm = pytest.importorskip("timm")
    graph = gp.analyze(timm.create_model("resnet18", pretrained=False).eval(), torch.zeros(1, 3, 32, 32))
    page = _parse(viz.render(graph, tmp_path / "r.html").read_text())
    assert set(page.legend) == {g.id for g in graph.groups} and len(page.nodes) > 50


# ------------------------------------------------------------------------------------ report plots
def _png(path):
    from PIL import Image

    assert Path(path).read_bytes().startswith(PNG_MAGIC)
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.size


def test_plot_kept_channels(tmp_path):
    table = [{"id": i, "size": 64, "kept": 16 + i, "modules": [f"body.{i}.body.0", f"body.{i}.body.2"]} for i in range(5)]
    table.append({"id": 5, "size": 3, "kept": None, "modules": ["tail.0"]})
    w, h = _png(rp.plot_kept_channels(table, tmp_path / "kept.png"))
    assert w > 300 and h > 150
    with pytest.raises(ValueError, match="outside"):
        rp.plot_kept_channels([{"id": 0, "size": 4, "kept": 9, "modules": []}], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_plot_curves_skips_missing_keys(tmp_path):
    records = [{"iter": i, "loss": 10.0 / (i + 1), "lambda_max": min(i * 1e-4, 1e-2)} for i in range(0, 400, 5)]
    records += [{"iter": i, "psnr": 30 + i / 400} for i in range(0, 400, 100)]
    records.append({"event": "prune"})
    _png(rp.plot_curves(records, tmp_path / "curves.png", phases={"prune": 300}))
    _png(rp.plot_curves([{"iter": 1, "psnr": 31.0}], tmp_path / "psnr_only.png"))
    with pytest.raises(ValueError, match="no plottable values"):
        rp.plot_curves([{"iter": 1}], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_plot_crops(tmp_path):
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    lr = hr[::4, ::4]
    images = {"LR": lr, "bicubic": hr, "dense": hr, "pruned": hr, "HR": hr}
    w, h = _png(rp.plot_crops(images, tmp_path / "crops.png", box=(8, 8, 32, 32), titles={"pruned": "30.1 dB"}))
    assert w > 3 * h
    with pytest.raises(ValueError, match="uint8"):
        rp.plot_crops({"HR": hr.astype(np.float32)}, tmp_path / "bad.png")
