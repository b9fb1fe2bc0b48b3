"""The ``graphprune`` command: one entry point, one subcommand per tool.

    graphprune compress  --recipe ledsr_x4_srp --dry-run      # a shipped recipe by name, or a YAML path
    graphprune upscale   --model runs/x/model.safetensors --input photos/ --out photos_x4
    graphprune evaluate  --model edsr_baseline_x4 --model runs/x/model.safetensors --sets Set5,Set14 \\
                         --root datasets/benchmark --scale 4
    graphprune export    --model runs/x/model.safetensors --out model.onnx
    graphprune flops     --model ledsr_f256r16_x4 --set n_feats=45
    graphprune visualize --model ledsr_f256r16_x4 --out groups.html
    graphprune sensitivity --model runs/x/dense.safetensors --demo --out sens/

Why one entry point with subcommands rather than one script per tool: one name on the user's PATH, one
``--help`` that lists everything, and every tool importing only what it needs (the subcommand's module
is imported after the choice). ``tools/<command>.py`` run the same ``main`` from a checkout.
Each command follows :mod:`graphprune.cli.args` (user errors: one line, exit 2, nothing written) and
takes ``--model`` as :mod:`graphprune.cli.model` describes.
"""
from __future__ import annotations

import importlib
import sys

__all__ = ["main", "COMMANDS"]

#: command -> (module with ``main(argv)``, one line of help)
COMMANDS = {
    "compress": ("graphprune.compress.cli", "train, regularize, prune, fine-tune and evaluate as a recipe says"),
    "upscale": ("graphprune.cli.upscale", "upscale images (a file, a folder or a glob) to PNGs"),
    "evaluate": ("graphprune.cli.evaluate", "PSNR/SSIM on benchmark sets, the papers' table, models side by side"),
    "export": ("graphprune.cli.export", "ONNX export, checked against the model in onnxruntime"),
    "flops": ("graphprune.cli.flops", "parameters, fvcore flops and the SR papers' Mult-Adds"),
    "visualize": ("graphprune.cli.visualize", "draw the channel groups (html, svg, png, dot, json)"),
    "sensitivity": ("graphprune.cli.sensitivity", "each group's PSNR drop when pruned alone: measured, cached, plotted"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "usage: graphprune <command> [options]   (graphprune <command> --help)\n\ncommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``graphprune <command> ...``: run the command's ``main`` with the remaining arguments."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        from ..schema import suggest

        print(f"graphprune: error: unknown command {name!r}{suggest(name, list(COMMANDS))}; "
              f"commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(rest, prog=f"graphprune {name}")
