"""The rules of a recipe that span several keys, and the files it names; run on a sound structure.

:func:`graphprune.schema.load` has already checked every key's type and range, so each rule here
reads typed values and says what to change: a regularize stage needs ASSL or SRP, the model's
scale must match ``scale``, training stages need ``data.train``, ... :func:`file_problems` lists
what the recipe names that is not on disk (errors for a run, warnings for a dry run).
"""
from __future__ import annotations

from ..regularizers import REGULARIZERS
from ..schema import Problem, suggest
from .datasets import BENCHMARKS
from .models import SpandrelModel
from .recipe import TRAIN_STAGES, Recipe

__all__ = ["recipe_problems", "file_problems"]


def recipe_problems(r: Recipe) -> tuple[list[Problem], list[Problem]]:
    """``(problems, warnings)`` of a structurally valid recipe."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    if not r.name.strip():
        problems.append(Problem("name", "empty; expected a non-empty string naming the run"))
    problems += r.model.problems(r.scale, r.rgb_range)
    for check in (_prune, _stages, _data):
        check(r, problems, warnings)
    return problems, warnings


def _prune(r: Recipe, problems: list[Problem], warnings: list[Problem]) -> None:
    p = r.prune
    for key in p.ratios:
        if isinstance(key, int) and key < 0 or key == "":
            problems.append(Problem(f"prune.ratios.{key}", "a key is a group id (integer >= 0) or a module-name glob"))
    _target(r, problems)
    if p.method != "none" and not p.removes_something:
        problems.append(Problem("prune.ratio", f"{p.ratio} removes nothing; prune.method {p.method} needs "
                                               "0 < ratio < 1 (or a positive entry in prune.ratios)"))
    if p.method == "none" and p.removes_something:
        warnings.append(Problem("prune.ratio", f"{p.ratio} is ignored because prune.method is none"))
    if p.method in REGULARIZERS and r.rgb_range == 1:
        warnings.append(Problem("rgb_range", "1 with the papers' penalty constants: they are relative to an L1 "
                                             "loss on 0..255, so the penalty is ~255x stronger here"))


def _target(r: Recipe, problems: list[Problem]) -> None:
    """A budget replaces the ratio; the allocations other than uniform need one."""
    p, t = r.prune, r.prune.target
    if t is None:
        if p.allocation != "uniform":
            problems.append(Problem("prune.allocation", f"{p.allocation} spreads a budget; give prune.target "
                                    "(e.g. {mult_adds: 35.8G}) or use prune.ratio with allocation uniform"))
        return
    if len(t.measures) != 1:
        problems.append(Problem("prune.target", f"names {', '.join(t.measures) or 'no measure'}; expected exactly one "
                                "of mult_adds, params, flops, latency_ms (e.g. {params: 623K})"))
    if p.ratio > 0:
        problems.append(Problem("prune.ratio", f"{p.ratio} and prune.target both say how much to remove; "
                                "keep one (set prune.ratio: 0 or remove prune.target)"))
    if p.allocation != "uniform" and p.ratios:
        problems.append(Problem("prune.ratios", f"per-group ratios fix widths that allocation {p.allocation} "
                                "chooses; remove them or use allocation uniform"))
    if t.latency_ms is not None and p.allocation != "uniform":
        problems.append(Problem("prune.allocation", f"{p.allocation} with a latency target: latency is measured per "
                                "candidate, so only allocation uniform searches it"))
    if p.allocation == "sensitivity" and not (r.data.val or r.eval.sets):
        problems.append(Problem("prune.allocation", "sensitivity measures PSNR on data.val (or eval.sets); "
                                "add a set, e.g. data.val: [{type: demo}]"))


def _stages(r: Recipe, problems: list[Problem], warnings: list[Problem]) -> None:
    _stage_lengths(r, problems)
    _stages_of_the_method(r, problems, warnings)
    training = [n for n in TRAIN_STAGES if r.stage_iters(n) > 0]
    if training and r.data.train is None:
        problems.append(Problem("data.train", f"missing; stage(s) {', '.join(training)} need training data (e.g. "
                                "{type: df2k, root: datasets/DF2K} or {type: demo} for the embedded photos)"))
    if not training and r.prune.method == "none" and not r.eval.sets:
        warnings.append(Problem("", "recipe does nothing: no training stage, prune.method none and no eval.sets"))


def _stage_lengths(r: Recipe, problems: list[Problem]) -> None:
    """``total_iter`` is required in pretrain/finetune and refused in regularize (the schedule sets it)."""
    for name in TRAIN_STAGES:
        st = getattr(r.stages, name)
        if st is not None and name == "regularize" and st.total_iter is not None:
            problems.append(Problem("stages.regularize.total_iter", f"{st.total_iter!r} is not allowed; the "
                                    f"regularize stage's length comes from prune.schedule ({r.regularize_iters} "
                                    "iterations here); remove it"))
        if st is not None and name != "regularize" and st.total_iter is None:
            problems.append(Problem(f"stages.{name}.total_iter", "missing required key; expected an integer >= 0 "
                                                                 "(iterations; 0 skips the stage)"))


def _stages_of_the_method(r: Recipe, problems: list[Problem], warnings: list[Problem]) -> None:
    """Which stages each method needs or cannot have."""
    s, method = r.stages, r.prune.method
    if s.regularize is not None and method not in REGULARIZERS:
        problems.append(Problem("stages.regularize", f"prune.method {method!r} has no regularization stage (only "
                                "assl and srp grow a penalty); remove stages.regularize or set prune.method: "
                                "assl or srp"))
    if s.regularize is None and method in REGULARIZERS:
        lr = "2.0e-4" if method == "assl" else "1.0e-4"
        problems.append(Problem("stages.regularize", f"missing; prune.method {method} needs it, e.g. regularize: "
                                f"{{optim: {{type: Adam, lr: {lr}}}}} (its length comes from prune.schedule)"))
    if s.finetune is not None and method == "none":
        problems.append(Problem("stages.finetune", "there is nothing to fine-tune with prune.method none; train the "
                                                   "dense model in stages.pretrain, or choose a prune.method"))
    if method == "scratch" and not r.stage_iters("finetune"):
        problems.append(Problem("stages.finetune", "prune.method scratch trains the pruned architecture from random "
                                                   "weights there; add stages.finetune with total_iter > 0"))
    if method in ("assl", "srp", "l1") and r.model.checkpoint is None and not r.stage_iters("pretrain"):
        warnings.append(Problem("model.checkpoint", f"null and no stages.pretrain: prune.method {method} will "
                                                    "prune a randomly initialized model"))


def _data(r: Recipe, problems: list[Problem], warnings: list[Problem]) -> None:
    for path, d in _sources(r):
        if d.type == "benchmark" and d.name not in BENCHMARKS and suggest(d.name, BENCHMARKS):
            warnings.append(Problem(f"{path}.name", f"{d.name!r} is not a standard benchmark{suggest(d.name, BENCHMARKS)}"))
    if r.eval.sets and not r.eval.metrics:
        problems.append(Problem("eval.metrics", "empty; expected some of psnr, ssim"))


def _sources(r: Recipe):
    """``(key path, source)`` of every dataset the recipe names."""
    if r.data.train is not None:
        yield "data.train", r.data.train
    yield from ((f"data.val.{i}", v) for i, v in enumerate(r.data.val))
    yield from ((f"eval.sets.{i}", v) for i, v in enumerate(r.eval.sets))


_FIXES = {"data.train": "use --set 'data.train={type: demo}' for the embedded demo photos",
          "data.val": "use --set data.val=[] to train without validation, or --set 'data.val=[{type: demo}]'",
          "eval.sets": "use --set 'eval.sets=[{type: demo}]' for the embedded demo photos"}


def file_problems(r: Recipe) -> list[Problem]:
    """One problem per file or folder the recipe names that is not there, each with the fix."""
    from pathlib import Path

    out = []
    ckpt = None if isinstance(r.model, SpandrelModel) else r.model.checkpoint  # a spandrel file checks itself
    if ckpt and not Path(ckpt).expanduser().is_file():
        out.append(Problem("model.checkpoint", f"{ckpt} does not exist (put the pretrained dense weights there, see "
                                               "the recipe's header for where to get them, or use --set "
                                               "model.checkpoint=null to start from random weights)"))
    for path, source in _sources(r):
        fix = _FIXES[path.rsplit(".", 1)[0] if path[-1].isdigit() else path]
        out += [p.under(path) for p in source.missing(r.scale, fix)]
    return out
