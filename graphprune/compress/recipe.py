"""Recipes: one YAML file per experiment, validated in full before any work starts.

A recipe names the model, the data, the value range, the pruning method with its schedule, the
training stages and the evaluation. The schema is the dataclasses below (:mod:`graphprune.schema`
checks them); ``recipes/*.yaml`` are the examples. :func:`load_recipe` reads the file, applies
``--set`` overrides (:mod:`.overrides`), loads the schema, then, when the structure is sound, runs
the cross-field rules and the file checks (:mod:`.checks`). Every problem is one line in one
:class:`RecipeError`, naming the key path, the value seen and what is expected.

Relative paths are relative to the working directory (launch commands run from the repo root).

    >>> r = load_recipe("recipes/ledsr_x4_srp.yaml", ["stages.finetune.total_iter=1000"], check_files=False)
    >>> r.prune.target.params, r.stages.finetune.total_iter, r.regularize_iters
    ('623K', 1000, 143170)
    >>> r.train_config("regularize", "runs/x/regularize").total_iters
    143170

Schema (defaults after ``=``; ``!`` = required)::

    name!  seed=0  scale! (2|3|4)  rgb_range=255 (1|255)  output_dir=runs/<name>
    model:   name! (zoo name | timm:NAME | package.module:factory)  kwargs={}  checkpoint=null
             leaf_modules=[]
    data:    train: {type! (div2k|df2k|folder|demo), root, hr_dir, lr_dir, index_range,
                     patch_size=48, batch_size=16, repeat=null, num_workers=4, cache=true}
             val: [eval set, ...]
    eval:    sets: [{type! (benchmark|demo|folder|div2k), root, name, hr_dir, lr_dir, index_range}]
             metrics=[psnr, ssim]  crop_border=null  test_y_channel=true  tile=null|{size, overlap}
    prune:   method=none (assl|srp|l1|scratch|none)  ratio=0.0  ratios={}  ignore=[]  round_to=1
             target=null|{mult_adds|params|flops: 35.8G | latency_ms: 20, device=cpu, input=null}
             allocation=uniform (uniform|global|sensitivity)  min_channels=1
             sensitivity: {ratios=[0.25, 0.5, 0.75], max_images=5}
             criterion=l1  example_input=[1, 3, 48, 48]
             schedule: {delta=1e-4, every=20, ceiling=0.5, stabilize=43150}
             assl: {ssa_iters=17260, ssa_weight=1.0, coupled_selection=first}
             srp:  {coupled_selection=random}
    stages:  pretrain / finetune: {total_iter!, optim!, scheduler={type: constant}}
             regularize: {optim!, scheduler}    (its length comes from prune.schedule)
    train:   any TrainConfig key or BasicSR alias except those set above (TRAINER_KEYS)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Literal, Optional, Sequence, Union

import yaml

from ..files import atomic_write
from ..regularizers import REGULARIZERS, PenaltySchedule
from ..schema import ConfigError, Problem, Schema, field, load, plain, subset
from ..train.config import TrainConfig
from ..train.optim import Optimizer
from ..train.schedules import ConstantLR, Scheduler
from .datasets import EvalSet, TrainSet
from .models import ModelSpec
from .overrides import apply_overrides, read_yaml, tag_override

__all__ = [
    "RecipeError", "Recipe", "DataSpec", "EvalSpec", "Tile", "PruneSpec", "Target", "SensitivityOptions", "ASSLOptions", "SRPOptions",
    "Stage", "Stages", "load_recipe", "dump_recipe", "recipe_differences", "METHODS", "STAGES",
    "TRAIN_STAGES", "TRAINER_KEYS", "DEFAULT_EXAMPLE_INPUT", "shipped_recipe", "recipes_dir",
]

METHODS = ("assl", "srp", "l1", "scratch", "none")
#: The order a pipeline runs its steps in (each is optional; ``Pipeline`` has one method per stage).
STAGES = ("pretrain", "regularize", "prune", "finetune", "evaluate")
#: The analysis's example input when a recipe names none: one 48x48 LR patch, the papers' size.
DEFAULT_EXAMPLE_INPUT = (1, 3, 48, 48)


class RecipeError(ConfigError):
    """Every problem of a recipe, one per line; ``problems`` holds ``(key path, message)`` pairs."""

    def __init__(self, path: str, problems: Sequence[Problem]):
        self.path = str(path)
        super().__init__(f"invalid recipe {self.path}", problems)


# --------------------------------------------------------------------------------------- schema
@dataclass(kw_only=True)
class DataSpec(Schema):
    train: Optional[TrainSet] = None
    val: list[EvalSet] = field([], doc="evaluated during training")


@dataclass(kw_only=True)
class Tile(Schema):
    size: int = field(256, doc="LR tile side", ge=1)
    overlap: int = field(32, doc="LR pixels added around each tile", ge=0)


@dataclass(kw_only=True)
class EvalSpec(Schema):
    sets: list[EvalSet] = field([], doc="evaluated at the end")
    metrics: list[Literal["psnr", "ssim"]] = field(["psnr", "ssim"])
    crop_border: Optional[int] = field(None, doc="pixels (null = scale)", ge=0)
    test_y_channel: bool = True
    tile: Optional[Tile] = None


@dataclass(kw_only=True)
class ASSLOptions(Schema):
    ssa_iters: int = field(17260, doc="iterations of the alignment (SSA) phase", ge=0)
    ssa_weight: float = field(1.0, doc="weight of the SSA loss", ge=0)
    coupled_selection: Literal["first", "sum", "random"] = "first"


@dataclass(kw_only=True)
class SRPOptions(Schema):
    coupled_selection: Literal["random", "first", "sum"] = "random"


def _example_input_problems(shape: tuple[int, ...]) -> list[str]:
    n = shape[0] * shape[1] * shape[2] * shape[3]
    return [] if n <= 2**24 else [f"{list(shape)} holds {n:,} values; the analysis needs shapes only, so one "
                                  f"small input such as {list(DEFAULT_EXAMPLE_INPUT)} is enough (at most 2^24 values)"]


def _amount_problems(value) -> list[str]:
    from ..allocation import parse_amount

    try:
        return [] if value is None or parse_amount(value) > 0 else [f"{value!r} is not positive"]
    except ValueError as e:
        return [str(e)]


@dataclass(kw_only=True)
class Target(Schema):
    """A budget (:mod:`graphprune.allocation`): exactly one of the measures, amounts with K/M/G units."""

    mult_adds: Optional[Union[float, str]] = field(None, doc="SR Mult-Adds at a 1280x720 output, e.g. 35.8G",
                                                   check=_amount_problems)
    params: Optional[Union[float, str]] = field(None, doc="parameters, e.g. 623K", check=_amount_problems)
    flops: Optional[Union[float, str]] = field(None, doc="fvcore flops at prune.example_input, e.g. 2G",
                                               check=_amount_problems)
    latency_ms: Optional[float] = field(None, doc="measured milliseconds per forward", gt=0)
    device: str = field("cpu", doc="where a latency target is timed")
    input: Optional[tuple[int, int, int, int]] = field(None, doc="[N, C, H, W] a latency target is timed at "
                                                                 "(default prune.example_input)", ge=1)

    @property
    def measures(self) -> list[str]:
        return [k for k in ("mult_adds", "params", "flops", "latency_ms") if getattr(self, k) is not None]

    def as_plan_target(self) -> dict:
        """The mapping :func:`graphprune.plan.plan` takes as ``target``."""
        (measure,) = self.measures
        out = {measure: getattr(self, measure)}
        if measure == "latency_ms":
            out["device"] = self.device
            if self.input is not None:
                out["input"] = list(self.input)
        return out


@dataclass(kw_only=True)
class SensitivityOptions(Schema):
    ratios: list[float] = field([0.25, 0.5, 0.75], doc="each group alone pruned at these ratios", gt=0, lt=1)
    max_images: int = field(5, doc="images of the first data.val (or eval) set it is measured on", ge=1)


@dataclass(kw_only=True)
class PruneSpec(Schema):
    method: Literal["assl", "srp", "l1", "scratch", "none"] = "none"
    ratio: float = field(0.0, doc="fraction removed per group", ge=0, lt=1)
    ratios: dict[Union[int, str], float] = field({}, doc="group id or module glob -> ratio", ge=0, lt=1)
    target: Optional[Target] = field(None, doc="a budget instead of a ratio, e.g. {mult_adds: 35.8G}")
    allocation: Literal["uniform", "global", "sensitivity"] = field(
        "uniform", doc="how a target's channels are spread: one ratio, by importance per cost, by measured PSNR")
    min_channels: int = field(1, doc="fewest channels a group keeps under a global allocation", ge=1)
    sensitivity: SensitivityOptions = field(default_factory=SensitivityOptions)
    ignore: list[str] = field([], doc="module-name globs whose outputs are never pruned")
    round_to: int = field(1, doc="kept channels are a multiple of it", ge=1)
    criterion: Literal["l1", "l2", "random"] = "l1"
    exact_only: bool = field(False, doc="prune only exact groups (none read by a LayerNorm/softmax/mean over channels)")
    example_input: tuple[int, int, int, int] = field(DEFAULT_EXAMPLE_INPUT, doc="[N, C, H, W]", ge=1,
                                                     check=_example_input_problems)
    schedule: PenaltySchedule = field(default_factory=PenaltySchedule)
    assl: ASSLOptions = field(default_factory=ASSLOptions)
    srp: SRPOptions = field(default_factory=SRPOptions)

    @property
    def options(self) -> dict:
        """The method's own options (``assl:`` or ``srp:``) as keyword arguments."""
        block = getattr(self, self.method, None)
        return plain(block) if block is not None else {}

    @property
    def removes_something(self) -> bool:
        return self.ratio > 0 or self.target is not None or any(v > 0 for v in self.ratios.values())

    def plan_arguments(self) -> dict:
        """``ratio=`` or ``target=``/``allocation=`` and the rest, as :func:`graphprune.plan.plan` takes them."""
        how = ({"target": self.target.as_plan_target(), "allocation": self.allocation,
                "min_channels": self.min_channels} if self.target is not None else {"ratio": self.ratio})
        return {**how, "ratios": self.ratios or None, "round_to": self.round_to, "exact_only": self.exact_only}


@dataclass(kw_only=True)
class Stage(Schema):
    total_iter: Optional[int] = field(None, doc="iterations (0 skips the stage)", ge=0)
    optim: Optimizer = field(doc="e.g. {type: Adam, lr: 1.0e-4}")
    scheduler: Scheduler = field(default_factory=ConstantLR)


@dataclass(kw_only=True)
class Stages(Schema):
    KEY_HINTS: ClassVar[dict[str, str]] = {
        "prune": "the prune step has no trainer settings: it runs between regularize and finetune when "
                 "prune.method is not none (configure it under prune:)",
        "evaluate": "evaluation is configured under eval: (it runs when eval.sets is not empty)",
        "train": "stages are pretrain, regularize, finetune; shared trainer keys go in train:"}

    pretrain: Optional[Stage] = None
    regularize: Optional[Stage] = None
    finetune: Optional[Stage] = None


#: The stages that train, in :data:`STAGES` order (the others have no trainer settings).
TRAIN_STAGES = tuple(s for s in STAGES if s in Stages.keys())

#: The TrainConfig fields a recipe sets outside its ``train:`` block: where, and how to read them.
TRAINER_KEYS: dict[str, tuple[str, Callable]] = {
    "total_iters": ("stages.<stage>.total_iter", lambda r, stage: r.stage_iters(stage)),
    "optimizer": ("stages.<stage>.optim", lambda r, stage: getattr(r.stages, stage).optim),
    "scheduler": ("stages.<stage>.scheduler", lambda r, stage: getattr(r.stages, stage).scheduler),
    "batch_size": ("data.train.batch_size", lambda r, stage: r.data.train.batch_size),
    "num_workers": ("data.train.num_workers", lambda r, stage: r.data.train.num_workers),
    "seed": ("seed", lambda r, stage: r.seed),
    "rgb_range": ("rgb_range", lambda r, stage: float(r.rgb_range)),
    "out_dir": ("the run directory (--out)", None),
}

#: ``train:``: the trainer's settings that the recipe does not set elsewhere.
TrainSettings = subset(TrainConfig, "TrainSettings", {k: where for k, (where, _) in TRAINER_KEYS.items()})


@dataclass(kw_only=True)
class Recipe(Schema):
    """A validated recipe; build it with :func:`load_recipe`."""

    KEY_HINTS: ClassVar[dict[str, str]] = {
        "network_g": "use model: {name: <sr_models name>, kwargs: {...}}",
        "datasets": "use data: {train: {...}, val: [...]}",
        "path": "use model.checkpoint for pretrained weights and output_dir for the run",
        "val": "use eval: for the final evaluation, data.val and train.val_freq during training",
        "num_gpu": "launch with torchrun; train: batch sizes are per process"}

    name: str = field(doc="the run's name")
    scale: Literal[2, 3, 4] = field(doc="upscaling factor")
    model: ModelSpec = field(doc="{name: ..., kwargs: {...}, checkpoint: ...}")
    seed: int = field(0, doc="seeds the model's initialization, the data order and the method", ge=0)
    rgb_range: Literal[1, 255] = 255
    output_dir: Optional[str] = None
    data: DataSpec = field(default_factory=DataSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    prune: PruneSpec = field(default_factory=PruneSpec)
    stages: Stages = field(default_factory=Stages)
    train: TrainSettings = field(default_factory=TrainSettings, doc="shared trainer settings")

    # set on the instance by load_recipe, not part of the schema
    source: ClassVar[str] = ""              # the file it was read from
    overrides: ClassVar[tuple] = ()         # the --set assignments applied
    warnings: ClassVar[tuple] = ()          # one line each, printed before a run

    @property
    def regularize_iters(self) -> int:
        """Length of the regularize stage (0 without ASSL/SRP), from the method's own rule."""
        if self.prune.method not in REGULARIZERS:
            return 0
        return REGULARIZERS[self.prune.method].stage_iters(self.prune.schedule, **self.prune.options)

    def stage_iters(self, stage: str) -> int:
        """Iterations of a training stage (0 when absent)."""
        st = getattr(self.stages, stage) if stage in TRAIN_STAGES else None
        if st is None:
            return 0
        return self.regularize_iters if stage == "regularize" else (st.total_iter or 0)

    def train_config(self, stage: str, out_dir: str | Path, **changes) -> TrainConfig:
        """The trainer's config for ``stage``: the ``train:`` block plus :data:`TRAINER_KEYS`."""
        present = [s for s in TRAIN_STAGES if getattr(self.stages, s) is not None]
        if stage not in present or self.data.train is None:
            raise ValueError(f"recipe {self.name!r} has no training stage {stage!r} with data.train; "
                             f"it has: {', '.join(present) or 'none'}")
        owned = {k: read(self, stage) for k, (_, read) in TRAINER_KEYS.items() if read is not None}
        settings = {k: getattr(self.train, k) for k in TrainSettings.keys()}
        return TrainConfig(**{**settings, **owned, "out_dir": str(out_dir), **changes})

    @property
    def run_dir(self) -> str:
        return self.output_dir or f"runs/{self.name}"

    def to_dict(self) -> dict:
        """Plain data with exactly the schema's keys (for report.json and :func:`dump_recipe`)."""
        return {k: plain(getattr(self, k)) for k in self.keys()}


# ------------------------------------------------------------------------------------ public API
def load_recipe(path: str | Path, overrides: Sequence[str] = (), *, check_files: bool = True) -> Recipe:
    """Read, override, validate. Raises :class:`RecipeError` listing every problem.

    Parameters
    ----------
    path : str or Path
        A YAML recipe.
    overrides : sequence of str
        ``"a.b.c=value"`` assignments; values are YAML (``0.5``, ``[]``, ``{type: demo}``, ``null``).
    check_files : bool
        Missing datasets and checkpoints are errors (default) or, for a dry run, warnings
        collected in ``recipe.warnings``.
    """
    from .checks import file_problems, recipe_problems

    raw, problems = read_yaml(path)
    problems += apply_overrides(raw, overrides) if not problems else []
    recipe = None
    if not problems:
        if not isinstance(raw, dict):
            problems = [Problem("recipe", f"{raw!r} is a {type(raw).__name__}; expected a mapping")]
        else:
            recipe, problems = load(Recipe, raw)
    warnings: list[Problem] = []
    if not problems:  # the structure is sound: cross-field rules and files
        problems, warnings = recipe_problems(recipe)
        (problems if check_files else warnings).extend(file_problems(recipe))
    if problems:
        raise RecipeError(str(path), [tag_override(p, overrides) for p in problems])
    recipe.source, recipe.overrides, recipe.warnings = str(path), tuple(overrides), tuple(map(str, warnings))
    return recipe


def recipes_dir() -> Path:
    """The shipped recipes: ``recipes/`` of a checkout, or ``graphprune/recipes`` of an installed wheel (setup.py)."""
    checkout = Path(__file__).resolve().parents[2] / "recipes"
    return checkout if checkout.is_dir() else Path(__file__).resolve().parents[1] / "recipes"


def shipped_recipe(text: str) -> str:
    """``--recipe``: a path as given, or the name of a shipped recipe (``ledsr_x4_srp``) as its path.

    >>> Path(shipped_recipe("ledsr_x4_srp")).name, shipped_recipe("my.yaml")
    ('ledsr_x4_srp.yaml', 'my.yaml')
    """
    found = recipes_dir() / f"{text}.yaml"
    if Path(text).exists() or Path(text).suffix or "/" in text or not found.is_file():
        return text
    return str(found)


def dump_recipe(recipe: Recipe, path: str | Path) -> Path:
    """Write the resolved recipe as YAML (loadable again), its source and overrides in a header."""
    header = [f"# resolved recipe {recipe.name!r}, from {recipe.source}"]
    header += [f"#   --set {o}" for o in recipe.overrides]
    body = yaml.safe_dump(recipe.to_dict(), sort_keys=False, default_flow_style=None, width=100)
    return atomic_write(path, "\n".join(header) + "\n" + body)


def recipe_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Key paths where two resolved recipes differ, with both values (``output_dir`` ignored).

    >>> recipe_differences({"prune": {"method": "assl", "ratio": 0.5}}, {"prune": {"method": "srp", "ratio": 0.5}})
    ["prune.method: 'assl' in the run, 'srp' now"]
    """
    out = []
    for key in dict.fromkeys([*old, *new]):
        where = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if where == "output_dir" or a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += recipe_differences(a, b, where + ".")
        else:
            out.append(f"{where}: {a!r} in the run, {b!r} now")
    return out
