"""``graphprune upscale``: images in (a file, a folder or a glob), upscaled PNGs out.

    graphprune upscale --model runs/srpn_lite/model.safetensors --input photos/ --out photos_x4
    graphprune upscale --model edsr_baseline_x4 --input 'shots/*.jpg' --tile 256 --device cuda --half

Large images run in tiles with overlap (:func:`graphprune.sr.tiling.tiled_forward`, equal to
whole-image inference when the overlap covers the model's receptive field). Every output is
``<out>/<input stem>.png``, 8-bit RGB quantized as the papers' metrics quantize
(:func:`graphprune.sr.metrics.to_uint8_range`), written whole or not at all. Before any work the
command refuses existing outputs (unless ``--overwrite``), two inputs with the same stem, ``--half``
without CUDA, and a model that is no SR model.
"""
from __future__ import annotations

import glob
import sys
import time
from pathlib import Path

import torch
from torch import nn

from .args import Parser, UsageError, add_model_arguments, positive_int, refuse_existing, resolve_device, run

__all__ = ["main", "build_parser", "collect_images", "Prepared", "save_png"]

_PROG = "graphprune upscale"


def build_parser(prog: str = _PROG) -> Parser:
    p = Parser(prog=prog, description=__doc__.splitlines()[0].strip("`"))
    add_model_arguments(p)
    p.add_argument("--input", required=True, metavar="PATH", help="an image, a folder of images or a quoted glob")
    p.add_argument("--out", metavar="DIR", help="output folder (default: upscaled_x<scale>)")
    p.add_argument("--tile", type=positive_int, metavar="N", help="LR tile side for large images (default: whole)")
    p.add_argument("--overlap", type=int, default=32, metavar="N", help="LR context around each tile (default 32)")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda if available)")
    p.add_argument("--half", action="store_true", help="float16 inference (CUDA only)")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format (faster on CPU)")
    p.add_argument("--rgb-range", type=float, choices=(1.0, 255.0), help="pixel range the model expects "
                   "(default: the model's own; 1 for spandrel and unknown models)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return p


def collect_images(text: str) -> list[Path]:
    """The images ``--input`` names: a file, a folder's images (sorted), or a glob's matches (sorted)."""
    from ..sr.data import IMAGE_EXTENSIONS, list_images

    path = Path(text)
    if path.is_dir():
        files = list_images(path)
    elif path.is_file():
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise UsageError(f"--input {text}: not an image ({', '.join(IMAGE_EXTENSIONS)})")
        files = [path]
    elif glob.has_magic(text):
        files = sorted(p for p in map(Path, glob.glob(text)) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    else:
        raise UsageError(f"--input {text}: no such file or folder")
    if not files:
        raise UsageError(f"--input {text}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    for f in files:  # before any output: a cut-off download is found here, not after half the folder
        _check_readable(f)
    return files


def _check_readable(path: Path) -> None:
    """Parse ``path``'s header and check its chunks (PIL's ``verify``: no pixels decoded); one line if broken."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()  # a PNG cut off after its header fails here too
    except _DECODE_ERRORS as e:
        raise _unreadable(path, e) from None


#: What PIL raises on a file that is no image or is damaged (UnidentifiedImageError is an OSError).
_DECODE_ERRORS = (OSError, ValueError, SyntaxError)


def _unreadable(path: Path, error: BaseException) -> UsageError:
    from ..errors import one_line

    return UsageError(f"{path}: not an image PIL can read ({one_line(error, limit=120)}); replace or remove the file")


class Prepared(nn.Module):
    """``model`` on its device, dtype and memory format; takes and returns float32 on that device."""

    def __init__(self, model: nn.Module, device, half: bool = False, channels_last: bool = False):
        super().__init__()
        self.dtype = torch.float16 if half else torch.float32
        self.format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(device=device, dtype=self.dtype, memory_format=self.format).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.dtype).contiguous(memory_format=self.format)).float()


def save_png(image: torch.Tensor, path: Path, rgb_range: float) -> Path:
    """Write a ``C x H x W`` image in ``[0, rgb_range]`` as an 8-bit PNG, atomically."""
    from PIL import Image

    from ..files import atomic_write
    from ..sr.metrics import to_uint8_range

    pixels = to_uint8_range(image, rgb_range).astype("uint8")
    pixels = pixels[:, :, 0] if pixels.shape[2] == 1 else pixels
    return atomic_write(path, lambda tmp: Image.fromarray(pixels).save(tmp, format="PNG"))


def _targets(files: list[Path], out: Path) -> list[Path]:
    seen: dict[str, Path] = {}
    for f in files:
        if f.stem in seen:
            raise UsageError(f"{seen[f.stem]} and {f} would both be written to {out / (f.stem + '.png')}; "
                             "give one of them another name or upscale them separately")
        seen[f.stem] = f
    return [out / f"{f.stem}.png" for f in files]


def upscale_one(net: nn.Module, path: Path, scale: int, rgb_range: float, tile: dict | None, device, label: str):
    """One image through the model: ``C x sH x sW`` on the CPU in ``[0, rgb_range]`` (float)."""
    from ..sr.data import read_rgb, to_tensor
    from ..sr.evaluate import upscale

    try:
        lr = to_tensor(read_rgb(path), rgb_range).to(device)
    except _DECODE_ERRORS as e:  # damaged past what verify() reads (a JPEG's data)
        raise _unreadable(path, e) from None
    try:
        return upscale(net, lr, scale, tile).cpu()
    except (RuntimeError, AssertionError) as e:
        if "graphprune: this pruned graph was traced" in str(e):
            raise UsageError(f"--model {label} runs only at the input size it was traced for ({e}); "
                             "use --tile so that tile + 2 x overlap is that size") from None
        raise


def _run(args) -> int:
    from tqdm import tqdm

    from .model import load_model

    if args.overlap < 0:
        raise UsageError(f"--overlap {args.overlap}: must be >= 0")
    device = resolve_device(args.device)
    if args.half and device.type != "cuda":
        raise UsageError(f"--half needs a CUDA device (got {device}); float16 on the CPU is slower, not faster")
    files = collect_images(args.input)
    loaded = load_model(args.model, args.set)
    scale = loaded.require_sr()
    out = Path(args.out or f"upscaled_x{scale}")
    targets = _targets(files, out)
    refuse_existing(targets, args.overwrite)
    rgb_range = args.rgb_range or loaded.rgb_range
    net = Prepared(loaded.model, device, args.half, args.channels_last)
    tile = {"size": args.tile, "overlap": args.overlap} if args.tile else None
    t0 = time.perf_counter()
    for src, dst in zip(tqdm(files, unit="img", desc="upscale", file=sys.stderr, disable=None), targets):
        save_png(upscale_one(net, src, scale, rgb_range, tile, device, args.model), dst, rgb_range)
    print(f"wrote {len(targets)} image(s) to {out} (x{scale}, {time.perf_counter() - t0:.1f} s)")
    return 0


def main(argv: list[str] | None = None, prog: str = _PROG) -> int:
    return run(prog, _run, build_parser(prog).parse_args(argv))
