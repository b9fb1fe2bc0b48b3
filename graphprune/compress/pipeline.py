"""The compress pipeline: a recipe's stages, each one method, resumable, ending in a report.

:data:`~graphprune.compress.recipe.STAGES`, in order, each optional: :meth:`Pipeline.pretrain`
(dense training) → :meth:`~Pipeline.regularize` (ASSL/SRP penalty, as long as the schedule says) →
:meth:`~Pipeline.prune` (the physical rewrite; the only pruning step of the one-shot ``l1``
baseline; ``scratch`` re-initializes the pruned architecture) → :meth:`~Pipeline.finetune` →
:meth:`~Pipeline.evaluate` (dense, pruned and bicubic on every evaluation set, then the report).

Before anything is written, :meth:`Pipeline.prepare` builds and checks everything a run needs:
the device, the dense model (seeded by ``seed:``, so its initialization is reproducible) and its
weights, its output shape for the recipe's scale, the datasets (every training image against the
patch size), the analysis and every module glob of the recipe. A problem stops the run there with
a one-line :class:`PipelineError` and no run folder.

Resumability: every stage saves its product (a ``graphprune.save`` file) and then marks itself
done in ``state.json``; the next stage always reads the saved product, so an interrupted and
resumed run takes exactly the path of an uninterrupted one. A re-run with ``resume=True`` skips
finished stages and lets the trainer of an interrupted stage continue from its last checkpoint;
it refuses a recipe that differs from the stored ``recipe.yaml``.

Run directory::

    out/
      recipe.yaml  command.txt  state.json  compress.log
      dense.safetensors          the dense model after pretraining (or as given)
      pruned_init.safetensors    right after the physical prune
      model.safetensors          the final pruned model (graphprune.load)
      pretrain/ regularize/ finetune/   trainer runs: checkpoints, log.jsonl, metrics.csv
      report.json  report.md  *.png
"""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from .. import io as gpio
from ..channels import ChannelGraph, analyze
from ..errors import one_line
from ..files import atomic_write
from ..globs import unmatched, unmatched_message
from ..plan import Plan, plan as make_plan, producer_names, removed_counts
from ..regularizers import REGULARIZERS
from ..schema import plain
from ..sr.evaluate import bicubic_scores, evaluate
from ..surgery import apply
from ..trace import TraceError, tensor_spec
from ..train import Trainer, is_main_process
from ..train.distributed import barrier, default_device
from .models import CheckpointError, build_dense
from .provenance import command_line, reproducibility
from .recipe import STAGES, Recipe, RecipeError, dump_recipe, load_recipe, recipe_differences
from .report import short_count, write_report

__all__ = ["Pipeline", "PipelineError", "complexity"]

log = logging.getLogger("graphprune.compress")


class PipelineError(RuntimeError):
    """A run cannot start or continue (one line, naming the problem and the fix)."""


def complexity(model: nn.Module, example: torch.Tensor, scale: int, leaf_modules=()) -> dict:
    """Params, fvcore flops at the example input, and the SR papers' Mult-Adds (1280x720 output)."""
    from ..flops import count, sr_mult_adds

    c = count(model, example, leaf_modules=leaf_modules)
    return {"params": int(c["params"]), "flops": int(c["flops"]), "flops_input": list(example.shape),
            "mult_adds": int(sr_mult_adds(model, scale, leaf_modules=leaf_modules))}


class Pipeline:
    """Run a validated :class:`~graphprune.compress.recipe.Recipe` in ``out_dir``."""

    def __init__(self, recipe: Recipe, out_dir: str | Path | None = None, *, resume: bool = False,
                 device: str | None = None, command: str | None = None):
        self.recipe, self.resume = recipe, resume
        self.out = Path(out_dir or recipe.run_dir)
        self.device = device or recipe.train.device
        self.command = command or command_line([sys.executable, *sys.argv])
        self.state: dict[str, Any] = {"done": [], "stages": [], "results": {}}
        self.example = torch.zeros(recipe.prune.example_input)  # shapes only: analysis and counting
        self.dense: nn.Module | None = None
        self.pruned: nn.Module | None = None
        self.graph: ChannelGraph | None = None
        self.plan: Plan | None = None
        self.regularizer = None
        self._measured = None  # the sensitivity, when the allocation needs it
        self.train_data, self.val_sets, self.eval_sets = None, {}, {}
        self.result: dict[str, Any] = {}

    @property
    def method(self) -> str:
        return self.recipe.prune.method

    @property
    def done(self) -> list[str]:
        return self.state["done"]

    # ------------------------------------------------------------------ start-up: nothing written
    def prepare(self, *, data: bool = True) -> None:
        """Every check a run needs before its first file; raises :class:`PipelineError`.

        ``data=False`` (dry run): no datasets, and dense weights only when their file is there.
        """
        self._check_device()
        self.dense = self._build_dense(weights=data or Path(self.recipe.model.checkpoint or "").is_file())
        self._check_output_shape(self.dense)
        if self.method != "none":
            self._check_module_globs(self.dense)
            self._check_ratio_keys(self._analyze(self.dense))
        if data:
            self._build_datasets()

    def _check_device(self) -> None:
        try:
            device = torch.device(self.device) if self.device else default_device()
        except RuntimeError as e:
            raise PipelineError(f"--device {self.device}: {one_line(e)}; use cpu, cuda or cuda:N") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise PipelineError(f"--device {self.device}: this machine has no CUDA device "
                                "(torch.cuda.is_available() is False); use --device cpu")
        self.device = str(device)

    def _build_dense(self, weights: bool) -> nn.Module:
        m = self.recipe.model
        try:
            return build_dense(m, self.recipe.seed, weights=weights)
        except CheckpointError as e:
            raise PipelineError(f"model.checkpoint: {e}") from None
        except Exception as e:  # noqa: BLE001 - a user's factory may raise anything
            raise PipelineError(f"model.name: {m.name} cannot be built: {one_line(e, with_type=True)}") from None

    def _traced(self, fn, *args, **kwargs):
        """``fn(...)``, an untraceable model turned into one line naming ``model.leaf_modules``."""
        try:
            return fn(*args, **kwargs)
        except TraceError as e:
            raise PipelineError(f"model.name: {one_line(e, limit=400)}; in a recipe that list is "
                                "model.leaf_modules, e.g. --set 'model.leaf_modules=[\"body.*\"]'") from None

    def _check_output_shape(self, model: nn.Module) -> None:
        from ..flops import _shape_trace  # the meta-device trace counting uses: no real forward

        traced = self._traced(_shape_trace, model, self.example, self.recipe.model.leaf_modules)
        out = next(n for n in traced.gm.graph.nodes if n.op == "output").args[0]
        got = list(getattr(tensor_spec(out), "shape", ())) if isinstance(out, fx.Node) else []
        n, c, h, w = self.recipe.prune.example_input
        want = [n, c, h * self.recipe.scale, w * self.recipe.scale]
        if got != want:
            raise PipelineError(f"model.name: {self.recipe.model.name} turns a {[n, c, h, w]} input into {got or '?'}; "
                                f"an x{self.recipe.scale} SR model for this data must give {want} (check scale, "
                                "model.kwargs and the model's upsampler)")

    def _analyze(self, model: nn.Module) -> ChannelGraph:
        m = self.recipe.model
        return self._traced(analyze, model, self.example, ignore=self.recipe.prune.ignore, leaf_modules=m.leaf_modules)

    def _check_module_globs(self, model: nn.Module) -> None:
        """A glob that matches no module is a typo (``*maen*`` protects nothing): refuse it."""
        names = [n for n, _ in model.named_modules() if n]
        for what, globs in (("prune.ignore", self.recipe.prune.ignore), ("model.leaf_modules",
                                                                         self.recipe.model.leaf_modules)):
            if unmatched(globs, names):
                raise PipelineError(unmatched_message(what, globs, names))

    def _check_ratio_keys(self, graph: ChannelGraph) -> None:
        """``prune.ratios`` keys: globs must match a group's producer, ids must be groups."""
        keys, producers = list(self.recipe.prune.ratios), producer_names(graph)
        if unmatched(keys, producers):
            raise PipelineError(unmatched_message("prune.ratios", keys, producers))
        ids = {g.id for g in graph.groups}
        bad = [k for k in keys if isinstance(k, int) and k not in ids]
        if bad:
            raise PipelineError(f"prune.ratios: group id(s) {bad} do not exist; this model has groups 0-{max(ids)} "
                                "(see --dry-run)")

    def _build_datasets(self, *, val_only: bool = False) -> None:
        """Every dataset (``val_only``: the first validation or evaluation set, for a dry run's sensitivity)."""
        r = self.recipe
        try:
            if val_only:
                spec = (r.data.val or r.eval.sets)[0]
                self.val_sets = {spec.label: spec.build(r.scale, train=False, rgb_range=float(r.rgb_range))}
                return
            if r.data.train is not None:
                self.train_data = r.data.train.build_train(r.scale, float(r.rgb_range), r.seed)
            self.val_sets = {s.label: s.build(r.scale, train=False, rgb_range=float(r.rgb_range)) for s in r.data.val}
            self.eval_sets = {s.label: s.build(r.scale, train=False, rgb_range=float(r.rgb_range)) for s in r.eval.sets}
        except (OSError, ValueError) as e:
            raise PipelineError(f"data: {one_line(e, limit=400)}") from None

    # ------------------------------------------------------------------ the run
    def run(self) -> dict:
        """Prepare, open the run folder, run every stage; returns the report's data."""
        self.prepare()
        self._open_run_dir()
        for stage in STAGES:  # each stage's seconds go to state.json and the report
            getattr(self, stage)()
        return self.result

    def _open_run_dir(self) -> None:
        state_file = self.out / "state.json"
        if state_file.exists() and not self.resume:
            raise PipelineError(f"{self.out} already holds a run: pass --resume to continue it, or --out to start "
                                "a new one elsewhere")
        if state_file.exists():
            self._check_same_recipe()
            self.state = json.loads(state_file.read_text())
        if is_main_process():
            dump_recipe(self.recipe, self.out / "recipe.yaml")
            atomic_write(self.out / "command.txt", self.command + "\n")
            handler = logging.FileHandler(self.out / "compress.log")
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            log.addHandler(handler)
        log.setLevel(logging.INFO)

    def _check_same_recipe(self) -> None:
        try:
            stored = load_recipe(self.out / "recipe.yaml", check_files=False)
        except RecipeError as e:
            raise PipelineError(f"{self.out}/recipe.yaml cannot be read back ({one_line(e)}); start a new run with "
                                "--out") from None
        diffs = recipe_differences(stored.to_dict(), self.recipe.to_dict())
        if diffs:
            more = f" (+{len(diffs) - 3} more)" if len(diffs) > 3 else ""
            raise PipelineError(f"{self.out} was run with a different recipe; --resume continues only the same one: "
                                f"{'; '.join(diffs[:3])}{more}; resume with --recipe {self.out / 'recipe.yaml'}, "
                                "or start a new run with --out")

    def _mark_done(self, stage: str, iterations: int, seconds: float) -> None:
        self.state["done"].append(stage)
        self.state["stages"].append({"name": stage, "iterations": int(iterations), "seconds": round(seconds, 2)})
        if is_main_process():
            atomic_write(self.out / "state.json", json.dumps(self.state, indent=2, default=str))

    def _say(self, msg: str) -> None:
        if is_main_process():
            print(msg, flush=True)
        log.info(msg)

    def _handover(self, model: nn.Module, name: str, spec=None) -> nn.Module:
        """Save a stage's product and read it back: resumed and uninterrupted runs continue alike."""
        path = self.out / name
        if is_main_process():
            spec = spec or getattr(model, "gp_save_spec", None) or gpio.make_spec(None, model=model)
            sr = {"scale": self.recipe.scale, "rgb_range": float(self.recipe.rgb_range)}  # for upscale/evaluate
            gpio.save(model.cpu(), path, {**spec, "sr": sr})
        barrier()  # other ranks read the file
        return gpio.load(path)

    def _train(self, stage: str, model: nn.Module, hooks=(), total_iters: int | None = None) -> None:
        """Train ``model`` in place for ``stage`` (continuing from its last checkpoint, if any)."""
        changes = {"total_iters": total_iters} if total_iters is not None else {}
        cfg = self.recipe.train_config(stage, self.out / stage, resume=True, device=self.device, **changes)
        first_val = next(iter(self.val_sets.values()), None)
        t0 = time.perf_counter()
        Trainer(model, self.train_data, cfg, val_data=first_val, eval_fn=self._val_fn(), hooks=list(hooks)).train()
        if stage not in self.done:
            self._mark_done(stage, cfg.total_iters, time.perf_counter() - t0)

    # ------------------------------------------------------------------ the stages
    def pretrain(self) -> None:
        """Dense training (when the recipe has it); the dense model is saved either way."""
        iters = self.recipe.stage_iters("pretrain")
        dense_file = self.out / "dense.safetensors"
        if dense_file.exists() and ("pretrain" in self.done or not iters):
            self.dense = gpio.load(dense_file)
            return
        if iters:
            self._say(f"== pretrain: {iters} iterations")
            self._train("pretrain", self.dense)
        self.dense = self._handover(self.dense, "dense.safetensors")

    def regularize(self) -> None:
        """ASSL/SRP: train the dense model with the growing penalty on the channels to remove."""
        if self.method not in REGULARIZERS or "prune" in self.done:
            return
        self.graph = self._analyze(self.dense)
        self.regularizer = self._regularizer(self.graph)
        self.regularizer.prepare(self.dense)
        total, sched = self.regularizer.total_iters(), self.regularizer.schedule
        self._say(f"== regularize ({self.method.upper()}): {total} iterations (penalty grows to {sched.ceiling} "
                  f"in {sched.grow_iters} iterations, stabilizes {sched.stabilize})")
        self._train("regularize", self.dense, hooks=[self.regularizer], total_iters=total)

    def prune(self) -> None:
        """The physical rewrite (after regularization, or one-shot for l1/scratch)."""
        if self.method == "none":
            return
        if "prune" in self.done:
            self.graph = self._analyze(gpio.load(self.out / "dense.safetensors"))
            self.plan = Plan.from_dict(self.graph, gpio.read_spec(self.out / "pruned_init.safetensors")["plan"])
            self.pruned = gpio.load(self.out / "pruned_init.safetensors")
            return
        t0 = time.perf_counter()
        pruned = self._rewrite()
        self.pruned = self._handover(pruned, "pruned_init.safetensors", gpio.make_spec(self.plan, model=self.dense))
        first = dict(list(self.eval_sets.items())[:1])  # what pruning cost before fine-tuning repairs it
        self.state["results"]["pruned_before_finetune"] = self._final_eval(self.pruned, first,
                                                                           "pruned, before fine-tuning")
        self._mark_done("prune", 0, time.perf_counter() - t0)

    def finetune(self) -> None:
        """Train the pruned model; ``model.safetensors`` is the result (with or without fine-tuning)."""
        if self.method == "none":
            return
        iters = self.recipe.stage_iters("finetune")
        if iters:
            if "finetune" not in self.done:
                self._say(f"== finetune: {iters} iterations")
            self._train("finetune", self.pruned)  # a finished stage loads its last checkpoint and stops
        self.pruned = self._handover(self.pruned, "model.safetensors")  # its spec came with pruned_init

    def evaluate(self) -> None:
        """Dense, pruned and bicubic on every evaluation set; then report.json, report.md, pictures."""
        t0 = time.perf_counter()
        dense = gpio.load(self.out / "dense.safetensors").eval()  # regularization changed the in-memory one
        r = self.result
        r.update(recipe=self.recipe.to_dict(), reproducibility=self._reproducibility(),
                 dense=self._measure(dense, "dense"), pruned=None, groups=[])
        if self.pruned is not None:
            r.update(pruned=self._measure(self.pruned.eval(), "pruned"), groups=self._groups(),
                     pruned_before_finetune=self.state["results"].get("pruned_before_finetune", {}))
        if self.eval_sets and is_main_process():
            kw = {k: v for k, v in self._eval_kwargs().items() if k != "tile"}
            r["bicubic"] = bicubic_scores(self.eval_sets, **kw)
        if "evaluate" not in self.done:
            self._mark_done("evaluate", 0, time.perf_counter() - t0)
        r["stages"] = list(self.state["stages"])
        if is_main_process():
            write_report(r, self.out, dense=dense, pruned=self.pruned, eval_sets=self.eval_sets,
                         scale=self.recipe.scale, rgb_range=float(self.recipe.rgb_range), tile=self._tile())

    # ------------------------------------------------------------------ helpers of the stages
    def _regularizer(self, graph: ChannelGraph):
        """The recipe's ASSL/SRP hook: schedule, ratio (or a budget's allocated counts), method options."""
        p = self.recipe.prune
        how = ({"counts": removed_counts(graph, **self._plan_arguments(graph))} if p.target is not None else
               {"ratio": p.ratio, "ratios": p.ratios or None, "round_to": p.round_to, "exact_only": p.exact_only})
        return REGULARIZERS[self.method](graph, schedule=p.schedule, seed=self.recipe.seed, **how, **p.options)

    def _plan_arguments(self, graph: ChannelGraph) -> dict:
        """:func:`~graphprune.plan.plan`'s arguments from the recipe (the sensitivity measured if needed)."""
        p = self.recipe.prune
        args = {**p.plan_arguments(), "criterion": p.criterion, "seed": self.recipe.seed}
        if p.target is not None and p.allocation == "sensitivity":
            self._measured = self._measured or self._sensitivity(graph)  # the dense model's, once
            args["sensitivity"] = self._measured
        return args

    def _sensitivity(self, graph: ChannelGraph):
        """Each group's PSNR drop on the first validation (else evaluation) set, cached in the run folder."""
        from ..sensitivity import sensitivity

        r, opts = self.recipe, self.recipe.prune.sensitivity
        if not (self.val_sets or self.eval_sets):  # a dry run builds only this set
            self._build_datasets(val_only=True)
        name, data = next(iter({**self.val_sets, **self.eval_sets}.items()))
        if not self.out.is_dir() and r.model.checkpoint is None and r.stage_iters("pretrain"):
            self._say("note: a dry run measures the sensitivity of the untrained model; the run measures it "
                      "after pretraining")
        cache = self.out / "sensitivity.json"
        self._say(f"== sensitivity: {len(graph.prunable_groups)} groups x {len(opts.ratios)} ratios on "
                  f"{min(len(data), opts.max_images)} image(s) of {name}" + (" (cached)" if cache.is_file() else ""))
        s = sensitivity(self.dense, data, "psnr", graph=graph, scale=r.scale, rgb_range=float(r.rgb_range),
                        ratios=opts.ratios, criterion=r.prune.criterion, max_images=opts.max_images,
                        cache=cache if is_main_process() and self.out.is_dir() else None,
                        progress=is_main_process())
        if is_main_process() and self.out.is_dir():
            s.plot(self.out / "sensitivity.png", title=f"{r.model.name}: PSNR drop per group ({name})")
        return s

    def _rewrite(self) -> nn.Module:
        """The pruned model and ``self.plan``: from the regularizer's choice, or a one-shot plan."""
        if self.regularizer is not None:
            pruned, self.plan = self.regularizer.finalize(self.dense.cpu())
            return pruned
        self.graph = self._analyze(self.dense)
        self.plan = make_plan(self.graph, **self._plan_arguments(self.graph))
        pruned = apply(self.dense, self.plan)
        if self.method == "scratch":
            torch.manual_seed(self.recipe.seed)
            for m in pruned.modules():
                if hasattr(m, "reset_parameters") and any(q.requires_grad for q in m.parameters(recurse=False)):
                    m.reset_parameters()
        self._say(f"== prune ({self.method}): {sum(q.numel() for q in self.dense.parameters()):,} -> "
                  f"{sum(q.numel() for q in pruned.parameters()):,} params")
        return pruned

    def _measure(self, model: nn.Module, label: str) -> dict:
        """Sizes at the example input and scores on every evaluation set."""
        sizes = complexity(model, self.example, self.recipe.scale, self.recipe.model.leaf_modules)
        return {**sizes, "metrics": self._final_eval(model, self.eval_sets, label)}

    def _groups(self) -> list[dict]:
        """Every group of the analysis with the channels the plan kept (blocked ones with their reason)."""
        return [{"id": g.id, "size": g.size, "kept": self.plan.kept(g.id), "prunable": g.prunable,
                 "reason": g.reason, "modules": g.modules("out")} for g in self.graph.groups]

    def _tile(self) -> dict | None:
        return plain(self.recipe.eval.tile)

    def _eval_kwargs(self) -> dict:
        ev = self.recipe.eval
        return dict(scale=self.recipe.scale, rgb_range=float(self.recipe.rgb_range), crop_border=ev.crop_border,
                    test_y_channel=ev.test_y_channel, metrics=tuple(ev.metrics), tile=self._tile())

    def _val_fn(self):
        """Validation during training: PSNR on every ``data.val`` set and their mean."""
        if not self.val_sets:
            return None
        kw = {**self._eval_kwargs(), "metrics": ("psnr",)}

        def eval_fn(model):
            res = evaluate(model, self.val_sets, **kw)
            flat = {f"{name}/psnr": v["psnr"] for name, v in res.items()}
            flat["psnr"] = sum(v["psnr"] for v in res.values()) / len(res)
            return flat
        return eval_fn

    def _final_eval(self, model: nn.Module, eval_sets: dict, label: str) -> dict:
        if not eval_sets or not is_main_process():
            return {}
        t0 = time.perf_counter()
        res = evaluate(model.eval(), eval_sets, **self._eval_kwargs())
        self._say(f"== evaluate {label}: " + ", ".join(
            f"{k} {v.get('psnr', float('nan')):.2f} dB / {v.get('ssim', float('nan')):.4f}" for k, v in res.items())
            + f" ({time.perf_counter() - t0:.1f} s)")
        return res

    def _reproducibility(self) -> dict:
        files = [p for pair in (self.train_data.pairs if self.train_data is not None else [])
                 for p in (pair.hr, pair.lr) if p is not None]
        return reproducibility(seed=self.recipe.seed, command=self.command, device=self.device, train_files=files)

    # ------------------------------------------------------------------ dry run
    def dry_run(self) -> dict:
        """Build, check, analyze and plan without data or training: what the pruned model will be."""
        for w in self.recipe.warnings:
            print(f"warning: {w}")
        self.prepare(data=False)
        leaf, scale = self.recipe.model.leaf_modules, self.recipe.scale
        d = complexity(self.dense.eval(), self.example, scale, leaf)
        print(f"model {self.recipe.model.name}: {d['params']:,} params ({short_count(d['params'])}), "
              f"{d['mult_adds'] / 1e9:.1f} G Mult-Adds (1280x720 output)")
        if self.method == "none":
            return {"dense": d, "pruned": None}
        q = self._dry_plan(self._timed_analysis())
        print(f"pruned ({self.method}): {q['params']:,} params ({short_count(q['params'])}), "
              f"{q['mult_adds'] / 1e9:.1f} G Mult-Adds; x{d['params'] / max(q['params'], 1):.1f} fewer params")
        return {"dense": d, "pruned": q}

    def _timed_analysis(self) -> ChannelGraph:
        t0 = time.perf_counter()
        graph = self._analyze(self.dense)
        print(f"analysis: {len(graph.groups)} groups, {len(graph.prunable_groups)} prunable "
              f"({time.perf_counter() - t0:.2f} s)\n{graph.summary()}")
        return graph

    def _budget_lines(self, graph: ChannelGraph, plan: Plan) -> str:
        """Per group the width the allocation chose, then the budget reached and its distance from the target."""
        from ..allocation import Budget, short_amount

        p = self.recipe.prune
        budget = Budget.of(graph, p.target.as_plan_target(), self.dense)
        measure, amount = budget.measure, budget.target
        kept = {g.id: plan.kept(g.id) for g in graph.prunable_groups}
        reached = budget(kept)
        rows = [f"  group {g.id:>3} {(g.modules('out') or ['?'])[0]:<40} {g.size:>5} -> {kept[g.id]}"
                for g in graph.prunable_groups if kept[g.id] != g.size]
        same = len(graph.prunable_groups) - len(rows)
        return "\n".join([f"plan ({p.allocation} allocation of {measure} {short_amount(amount)}): "
                          f"{len(rows)} group(s) pruned" + (f", {same} kept whole" if same else ""), *rows,
                          f"budget: {measure} {short_amount(reached)} reached for a target of {short_amount(amount)} "
                          f"({100 * (reached - amount) / amount:+.2f} %)"])

    def _dry_plan(self, graph: ChannelGraph) -> dict:
        """The plan's widths, the regularization's length, and the pruned model's sizes."""
        p = self.recipe.prune
        plan = make_plan(graph, **self._plan_arguments(graph))
        if p.target is None:
            kept = sorted({(g.size, plan.kept(g.id)) for g in graph.prunable_groups})
            print("plan: " + ", ".join(f"{n} -> {k}" for n, k in kept) + " channels per group")
        else:
            print(self._budget_lines(graph, plan))
        if self.method in REGULARIZERS:
            reg = self._regularizer(graph)
            print(f"{self.method.upper()} regularization: {reg.total_iters():,} iterations; "
                  f"{len(reg.coupled)} coupled group(s) found by the analysis")
        return complexity(apply(self.dense, plan), self.example, self.recipe.scale, self.recipe.model.leaf_modules)
