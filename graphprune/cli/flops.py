"""``graphprune flops``: a model's parameters, fvcore-convention flops and the SR papers' Mult-Adds.

    graphprune flops --model ledsr_f256r16_x4 --set n_feats=45
    graphprune flops --model runs/srpn_lite/model.safetensors
    graphprune flops --model swinir_light_x2 --input 1x3x48x48 --include-matmul --check-fvcore
    graphprune flops --model timm:resnet18 --input 1x3x224x224

Flops are counted on the traced graph with fake tensors (:mod:`graphprune.flops`): nothing runs at full
resolution. Mult-Adds (1280x720 output by default) are printed for SR models (scale known or found from
the output's size); ``--check-fvcore`` also runs fvcore's own FlopCountAnalysis on ``--input``.
"""
from __future__ import annotations

from .args import Parser, add_model_arguments, parse_shape, run

__all__ = ["main", "build_parser", "report"]

_PROG = "graphprune flops"


def build_parser(prog: str = _PROG) -> Parser:
    p = Parser(prog=prog, description=__doc__.splitlines()[0].strip("`"))
    add_model_arguments(p)
    p.add_argument("--scale", type=int, help="upscaling factor for Mult-Adds (default: the model's scale)")
    p.add_argument("--input", type=parse_shape, help="input shape of the fvcore count (default: a saved model's "
                   "traced size, else 1x3x64x64)")
    p.add_argument("--hr", default="720x1280", help="HR output size HxW for Mult-Adds (default 720x1280)")
    p.add_argument("--include-matmul", action="store_true", help="Mult-Adds also count matmuls/attention")
    p.add_argument("--check-fvcore", action="store_true", help="also run fvcore.nn.FlopCountAnalysis")
    return p


def report(args) -> list[str]:
    import torch

    from ..flops import count, sr_mult_adds
    from .args import UsageError
    from .model import load_model

    loaded = load_model(args.model, args.set)
    shape = args.input or (loaded.example if loaded.kind == "file" else (1, 3, 64, 64))
    try:
        hr = tuple(int(v) for v in args.hr.lower().split("x"))
    except ValueError:
        hr = ()
    if len(hr) != 2:
        raise UsageError(f"--hr {args.hr!r}: expected HxW like 720x1280")
    x, leaf = torch.zeros(shape), loaded.leaf_modules
    c = count(loaded.model, x, leaf_modules=leaf)
    lines = [f"model        {args.model} {' '.join(args.set)}".rstrip(),
             f"params       {c['params']:,} ({c['params'] / 1e3:.1f}K)",
             f"flops        {c['flops']:,} ({c['flops'] / 1e9:.3f}G, fvcore convention, input {tuple(shape)})",
             f"unsupported  {', '.join(f'{k}: {v}' for k, v in sorted(c['unsupported'].items())) or '-'}"]
    scale = args.scale or loaded.scale
    if scale:
        macs = sr_mult_adds(loaded.model, scale, hr=hr, input_channels=shape[1], include_matmul=args.include_matmul,
                            leaf_modules=leaf)
        lines.append(f"mult-adds    {macs:,} ({macs / 1e9:.1f}G, x{scale}, {hr[1]}x{hr[0]} output, SR-paper convention)")
    else:
        lines.append("mult-adds    - (not an SR model: no upscaled image out; pass --scale to count anyway)")
    if args.check_fvcore:
        from fvcore.nn import FlopCountAnalysis

        fa = FlopCountAnalysis(loaded.model, (x,))
        fa.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        lines.append(f"fvcore       {int(fa.total()):,} (its own jit trace; equal: {int(fa.total()) == c['flops']})")
    return lines


def _run(args) -> int:
    print("\n".join(report(args)))
    return 0


def main(argv: list[str] | None = None, prog: str = _PROG) -> int:
    return run(prog, _run, build_parser(prog).parse_args(argv))
