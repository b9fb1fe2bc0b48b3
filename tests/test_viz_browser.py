"""Headless Chromium opens the interactive page of LEDSR and of a timm model; the screenshot shows the graph.

Skipped where Debian's ``chromium`` is absent (``apt-get install chromium`` to run it).
"""
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import graphprune as gp
import sr_models
from graphprune import viz

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not shutil.which("chromium"),
    reason="headless browser test needs /usr/bin/chromium (Debian: apt-get install chromium)")
SIZE = (1400, 900)


def screenshot(html: Path, png: Path, tmp: Path) -> np.ndarray:
    exe = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'profile'}", f"--screenshot={png}", f"--window-size={SIZE[0]},{SIZE[1]}",
           "--hide-scrollbars", "--virtual-time-budget=3000", html.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and png.exists(), proc.stderr[-2000:]
    from PIL import Image

    with Image.open(png) as im:
        return np.asarray(im.convert("RGB"))


def _rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)])


def check_graph_visible(img: np.ndarray, graph) -> None:
    assert img.shape[:2] == (SIZE[1], SIZE[0])
    canvas = img[60:, : SIZE[0] - 380]  # below the header, left of the legend
    nonwhite = (np.abs(canvas.astype(int) - 255).sum(-1) > 30).mean()
    assert nonwhite > 0.05, f"only {nonwhite:.1%} of the canvas is drawn"
    colors = {tuple(c) for c in canvas.reshape(-1, 3)[::7]}
    assert len(colors) > 200, f"{len(colors)} distinct colors: the graph is not rendered"
    # the largest prunable group's color fills node boxes in the canvas (not only its legend swatch)
    big = max(graph.prunable_groups, key=lambda g: len(g.members))
    close = (np.abs(canvas.astype(int) - _rgb(viz.group_color(big.id, True))).sum(-1) <= 12).mean()
    assert close > 0.002, f"group #{big.id}'s color covers {close:.2%} of the canvas"


def test_ledsr_page_renders(tmp_path):
    model = sr_models.create_model("ledsr_f256r16_x4").eval()
    graph = gp.analyze(model, torch.zeros(1, 3, 48, 48))
    html = viz.render(graph, tmp_path / "ledsr.html", plan=gp.plan(graph, 0.5))
    check_graph_visible(screenshot(html, tmp_path / "ledsr.png", tmp_path), graph)


def test_timm_page_renders(tmp_path):
    timm = pytest.importorskip("timm")
    graph = gp.analyze(timm.create_model("mobilenetv3_small_100", pretrained=False).eval(), torch.zeros(1, 3, 64, 64))
    html = viz.render(graph, tmp_path / "mnv3.html")
    check_graph_visible(screenshot(html, tmp_path / "mnv3.png", tmp_path), graph)
