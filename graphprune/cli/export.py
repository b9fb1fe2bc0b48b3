"""``graphprune export``: ONNX with dynamic batch/height/width, checked against the model in onnxruntime.

    graphprune export --model runs/srpn_lite/model.safetensors --out srpn_lite_x4.onnx
    graphprune export --model edsr_baseline_x4 --out edsr.onnx --fp16 --input 1x3x64x64

The check (:func:`graphprune.export.export_onnx`) runs the file in onnxruntime at the example input
and at a second batch and size, and prints the largest absolute and relative error against the
float32 PyTorch model. Past ``--tolerance`` (relative to the output's peak; default 1e-4, 1e-2 with
``--fp16``) the file is removed and the exit code is 1. A model whose graph cannot be dynamic (a pruned
``fx.GraphModule`` that checks its traced size, code that turns sizes into Python numbers) is exported
at the example size and the command says so; ``--input`` picks that size. Exit 2: a user error, no file.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .args import Parser, UsageError, add_model_arguments, parse_shape, refuse_existing, run

__all__ = ["main", "build_parser"]

_PROG = "graphprune export"


def build_parser(prog: str = _PROG) -> Parser:
    p = Parser(prog=prog, description=__doc__.splitlines()[0].strip("`"))
    add_model_arguments(p)
    p.add_argument("--out", required=True, type=Path, metavar="FILE.onnx", help="the ONNX file to write")
    p.add_argument("--fp16", action="store_true", help="float16 weights, input and output")
    p.add_argument("--input", type=parse_shape, metavar="NxCxHxW",
                   help="example input (default: a saved model's traced size, else 1x3x64x64)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    p.add_argument("--tolerance", type=float, metavar="REL", help="largest accepted error relative to the "
                   "output's peak (default 1e-4; 1e-2 with --fp16)")
    p.add_argument("--no-check", action="store_true", help="do not run the file in onnxruntime")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return p


def _example(loaded, shape) -> torch.Tensor:
    if shape is None:
        shape = loaded.example if loaded.kind == "file" else (1, 3, 64, 64)
    return torch.rand(shape, generator=torch.Generator().manual_seed(0)) * loaded.rgb_range


def _run(args) -> int:
    from ..export import DEFAULT_OPSET, export_onnx
    from .model import load_model

    if args.out.suffix.lower() != ".onnx":
        raise UsageError(f"--out {args.out}: the file name must end in .onnx")
    refuse_existing([args.out], args.overwrite)
    if not args.no_check:
        import onnxruntime  # noqa: F401 - before any work: the check needs it
    import onnx  # noqa: F401 - torch.onnx.export needs it
    loaded = load_model(args.model, args.set)
    x = _example(loaded, args.input)
    tolerance = args.tolerance if args.tolerance is not None else (1e-2 if args.fp16 else 1e-4)
    out = export_onnx(loaded.model, x, args.out, fp16=args.fp16, opset=args.opset or DEFAULT_OPSET,
                      check=not args.no_check)
    size = args.out.stat().st_size / 2**20
    axes = "dynamic batch/height/width" if out.dynamic else f"fixed input {list(x.shape)}"
    print(f"exported {args.out} ({size:.1f} MiB, opset {args.opset or DEFAULT_OPSET}, "
          f"{'float16' if args.fp16 else 'float32'}, {axes})")
    if out.fixed_reason:
        print(f"note: fixed size: {out.fixed_reason}")
    for c in out.checks:
        print(f"onnxruntime vs torch at {list(c.shape)}: max abs error {c.max_abs:.3g}, max rel error {c.max_rel:.3g}")
    if out.checks and out.max_rel > tolerance:
        args.out.unlink()
        print(f"FAILED: max rel error {out.max_rel:.3g} > tolerance {tolerance:g}; {args.out} removed "
              "(pass --tolerance to accept it)")
        return 1
    if out.checks:
        print(f"ok: max rel error {out.max_rel:.3g} <= tolerance {tolerance:g}")
    return 0


def main(argv: list[str] | None = None, prog: str = _PROG) -> int:
    return run(prog, _run, build_parser(prog).parse_args(argv))
