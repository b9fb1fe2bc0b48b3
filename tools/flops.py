"""Print a zoo model's parameters, fvcore-convention flops and SR-paper Mult-Adds.

    python tools/flops.py --model ledsr_f256r16_x4 --set n_feats=45
    python tools/flops.py --model swinir_light_x2 --input 1x3x48x48 --include-matmul --check-fvcore

Flops are counted on the traced graph with fake tensors (graphprune.flops): nothing runs at full
resolution. ``--check-fvcore`` also runs fvcore's own FlopCountAnalysis on ``--input`` (a real forward).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli import parse_overrides, parse_shape  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="registered name, see sr_models.list_models()")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model argument override")
    p.add_argument("--scale", type=int, help="upscaling factor for Mult-Adds (default: the model's scale)")
    p.add_argument("--input", default="1x3x64x64", type=parse_shape, help="input shape for the fvcore count")
    p.add_argument("--hr", default="720x1280", type=parse_shape, help="HR output size HxW for Mult-Adds")
    p.add_argument("--include-matmul", action="store_true", help="Mult-Adds also count matmuls/attention")
    p.add_argument("--check-fvcore", action="store_true", help="also run fvcore.nn.FlopCountAnalysis")
    return p


def report(args: argparse.Namespace) -> list[str]:
    import torch

    import sr_models
    from graphprune.flops import count, sr_mult_adds

    model = sr_models.create_model(args.model, **parse_overrides(args.set)).eval()
    scale = args.scale or getattr(model, "scale", None)
    if not scale:
        raise ValueError(f"{args.model} has no .scale attribute; pass --scale")
    x = torch.zeros(args.input)
    c = count(model, x)
    lines = [
        f"model        {args.model} {dict(parse_overrides(args.set)) or ''}".rstrip(),
        f"params       {c['params']:,} ({c['params'] / 1e3:.1f}K)",
        f"flops        {c['flops']:,} ({c['flops'] / 1e9:.3f}G, fvcore convention, input {tuple(args.input)})",
        f"unsupported  {', '.join(f'{k}: {v}' for k, v in sorted(c['unsupported'].items())) or '-'}",
    ]
    hr = tuple(args.hr[-2:])
    macs = sr_mult_adds(model, scale, hr=hr, input_channels=args.input[1], include_matmul=args.include_matmul)
    lines.append(f"mult-adds    {macs:,} ({macs / 1e9:.1f}G, x{scale}, {hr[1]}x{hr[0]} output, SR-paper convention)")
    if args.check_fvcore:
        from fvcore.nn import FlopCountAnalysis

        fa = FlopCountAnalysis(model, (x,))
        fa.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        lines.append(f"fvcore       {int(fa.total()):,} (its own jit trace; equal: {int(fa.total()) == c['flops']})")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        lines = report(args)
    except Exception as exc:  # noqa: BLE001 - one line, non-zero exit
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"flops.py: error: {type(exc).__name__}: {first}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
