"""The compress pipeline: a recipe's stages, resumable at any point, ending in a report.

Stages, in order, each optional: ``pretrain`` (dense training) → ``regularize`` (ASSL/SRP penalty,
as long as the schedule says) → ``prune`` (the physical rewrite; for the one-shot ``l1`` baseline
this is the only pruning step; ``scratch`` re-initializes the pruned architecture) → ``finetune`` →
``evaluate`` (dense, pruned and bicubic, on every evaluation set).

Resumability: every stage writes its result (a ``graphprune.save`` file) and then marks itself done
in ``state.json`` (atomically). A re-run with ``resume=True`` skips finished stages and lets the
trainer of an interrupted stage continue from its last checkpoint, exactly.

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
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import io as gpio
from ..channels import ChannelGraph, analyze
from ..plan import Plan, plan as make_plan
from ..regularizers import REGULARIZERS, PenaltySchedule
from ..sr.data import PairedImageDataset, benchmark_set, demo_dataset, div2k
from ..sr.evaluate import bicubic_scores, evaluate
from ..surgery import apply
from ..train import Trainer, is_main_process
from ..train.distributed import barrier

__all__ = ["Pipeline", "PipelineError", "build_dataset", "complexity"]

log = logging.getLogger("graphprune.compress")


class PipelineError(RuntimeError):
    """A run cannot start or continue (one line, naming the problem and the fix)."""


# ------------------------------------------------------------------------------------ building
def build_dataset(spec: dict, *, scale: int, rgb_range: float, train: bool, seed: int = 0,
                  patch_size: int = 48, repeat: int | None = None, cache: bool = True):
    """A dataset from a recipe entry ``{type, root, name, hr_dir, lr_dir, index_range}``."""
    kind = spec.get("type", "demo")
    kw: dict[str, Any] = dict(train=train, rgb_range=rgb_range)
    if train:
        kw.update(patch_size=patch_size, seed=seed, cache=cache)
        if repeat is not None:
            kw["repeat"] = repeat
    if kind == "demo":
        return demo_dataset("train" if train else "val", scale, **kw)
    if kind in ("div2k", "df2k"):
        return div2k(spec["root"], scale, "train" if train else "valid", spec.get("index_range"),
                     prefix=kind.upper(), **kw)
    if kind == "benchmark":
        return benchmark_set(spec["root"], spec["name"], scale, **kw)
    if kind == "folder":
        return PairedImageDataset.from_folders(spec["hr_dir"], spec.get("lr_dir"), scale=scale,
                                               index_range=spec.get("index_range"), **kw)
    raise PipelineError(f"unknown dataset type {kind!r}")


def set_name(spec: dict) -> str:
    return spec.get("name") or spec.get("type", "set")


def complexity(model: nn.Module, example: torch.Tensor, scale: int) -> dict:
    """Params, fvcore flops at the example input, and the SR papers' Mult-Adds (1280x720 output)."""
    from ..flops import count, sr_mult_adds

    c = count(model, example)
    return {"params": int(c["params"]), "flops": int(c["flops"]), "mult_adds": int(sr_mult_adds(model, scale))}


def _atomic_json(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------ pipeline
class Pipeline:
    """Run a validated recipe. ``recipe`` is a :class:`graphprune.recipe.Recipe`."""

    STAGES = ("pretrain", "regularize", "prune", "finetune", "evaluate")

    def __init__(self, recipe, out_dir: str | Path | None = None, *, resume: bool = False,
                 device: str | None = None, argv: list[str] | None = None):
        self.recipe = recipe
        self.r = recipe.to_dict()
        self.out = Path(out_dir or self.r["output_dir"])
        self.resume = resume
        self.device = device
        self.argv = argv or sys.argv
        self.scale = int(self.r["scale"])
        self.rgb_range = float(self.r["rgb_range"])
        self.state: dict[str, Any] = {"done": [], "stages": [], "results": {}}
        self.graph: ChannelGraph | None = None

    # -------------------------------------------------------------- setup
    @property
    def method(self) -> str:
        return (self.r.get("prune") or {}).get("method", "none")

    def example_input(self) -> torch.Tensor:
        shape = (self.r.get("prune") or {}).get("example_input") or [1, 3, 48, 48]
        return torch.rand(*shape) * self.rgb_range

    def _prepare_dir(self) -> None:
        state_file = self.out / "state.json"
        if state_file.exists() and not self.resume:
            raise PipelineError(f"{self.out} already holds a run: pass --resume to continue it, "
                                f"or --out to start a new one elsewhere")
        self.out.mkdir(parents=True, exist_ok=True)
        if state_file.exists():
            self.state = json.loads(state_file.read_text())
        if is_main_process():
            from .recipe import dump_recipe
            dump_recipe(self.recipe, self.out / "recipe.yaml")
            (self.out / "command.txt").write_text(" ".join(shlex.quote(a) for a in self.argv) + "\n")
            handler = logging.FileHandler(self.out / "compress.log")
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            log.addHandler(handler)
        log.setLevel(logging.INFO)

    def _mark_done(self, stage: str, iterations: int, seconds: float) -> None:
        self.state["done"].append(stage)
        self.state["stages"].append({"name": stage, "iterations": int(iterations), "seconds": round(seconds, 2)})
        if is_main_process():
            _atomic_json(self.out / "state.json", self.state)

    def _say(self, msg: str) -> None:
        if is_main_process():
            print(msg, flush=True)
        log.info(msg)

    def build_model(self, *, weights: bool = True) -> nn.Module:
        spec = dict(self.r["model"])
        name = spec.get("name", "")
        kwargs = dict(spec.get("kwargs") or {})
        if name.startswith("timm:"):
            model_spec = {"timm": name[5:], "kwargs": kwargs}
        elif ":" in name:
            model_spec = {"factory": name, "kwargs": kwargs}
        else:
            model_spec = {"name": name, "kwargs": kwargs}
        model = gpio.build_model(model_spec)
        if weights and spec.get("checkpoint"):
            from sr_models._factory import load_checkpoint
            load_checkpoint(model, spec["checkpoint"])
        return model

    def datasets(self) -> tuple[Any, dict, dict]:
        data = self.r.get("data") or {}
        tr = data.get("train")
        train = None
        if tr:
            train = build_dataset(tr, scale=self.scale, rgb_range=self.rgb_range, train=True,
                                  seed=int(self.r.get("seed", 0)), patch_size=int(tr.get("patch_size", 48)),
                                  repeat=tr.get("repeat"), cache=bool(tr.get("cache", True)))
            train.repeat = self.recipe.data.train.repeat_for(len(train.pairs))
        val = {set_name(s): build_dataset(s, scale=self.scale, rgb_range=self.rgb_range, train=False)
               for s in data.get("val") or []}
        ev = {set_name(s): build_dataset(s, scale=self.scale, rgb_range=self.rgb_range, train=False)
              for s in (self.r.get("eval") or {}).get("sets") or []}
        return train, val, ev

    # -------------------------------------------------------------- stages
    def _eval_kwargs(self) -> dict:
        ev = self.r.get("eval") or {}
        return dict(scale=self.scale, rgb_range=self.rgb_range, crop_border=ev.get("crop_border"),
                    test_y_channel=ev.get("test_y_channel", True), metrics=tuple(ev.get("metrics") or ("psnr", "ssim")),
                    tile=ev.get("tile"))

    def _eval_fn(self, val_sets: dict):
        kw = self._eval_kwargs()
        kw["metrics"] = ("psnr",)

        def eval_fn(model):
            res = evaluate(model, val_sets, **kw)
            flat = {f"{name}/psnr": v["psnr"] for name, v in res.items()}
            flat["psnr"] = sum(v["psnr"] for v in res.values()) / max(len(res), 1)
            return flat
        return eval_fn if val_sets else None

    def _train(self, stage: str, model: nn.Module, train_data, val_sets, hooks=(), total_iters=None) -> Trainer:
        cfg = self.recipe.train_config(stage, str(self.out / stage))
        if total_iters is not None:
            cfg["total_iters"] = int(total_iters)
        cfg["resume"] = True  # a finished stage is skipped; an unfinished one continues from its checkpoint
        if self.device:
            cfg["device"] = self.device
        if train_data is None:
            raise PipelineError(f"stage {stage!r} trains but the recipe has no data.train")
        trainer = Trainer(model, train_data, cfg, val_data=next(iter(val_sets.values()), None),
                          eval_fn=self._eval_fn(val_sets), hooks=list(hooks))
        trainer.train()
        return trainer

    def _stage_iters(self, stage: str) -> int:
        st = (self.r.get("stages") or {}).get(stage)
        return int(st.get("total_iter") or 0) if st else 0

    def dry_run(self) -> dict:
        """Build, analyze and plan without training: what the pruned model will be (sizes only)."""
        for w in getattr(self.recipe, "warnings", ()):
            print(f"warning: {w}")
        ckpt = (self.r["model"].get("checkpoint") or "")
        dense = self.build_model(weights=bool(ckpt) and Path(ckpt).is_file()).eval()
        example = self.example_input()
        prune = self.r.get("prune") or {}
        result = {"dense": complexity(dense, example, self.scale), "pruned": None}
        print(f"model {self.r['model']['name']}: {result['dense']['params']:,} params, "
              f"{result['dense']['mult_adds'] / 1e9:.1f} G Mult-Adds (1280x720 output)")
        if self.method == "none":
            return result
        t0 = time.perf_counter()
        graph = analyze(dense, example, ignore=prune.get("ignore") or ())
        print(f"analysis: {len(graph.groups)} groups, {len(graph.prunable_groups)} prunable "
              f"({time.perf_counter() - t0:.2f} s)\n{graph.summary()}")
        p = make_plan(graph, float(prune["ratio"]), ratios=prune.get("ratios") or None,
                      round_to=int(prune.get("round_to", 1)))
        pruned = apply(dense, p)
        result["pruned"] = complexity(pruned, example, self.scale)
        kept = sorted({(g.size, p.kept(g.id)) for g in graph.prunable_groups})
        print("plan: " + ", ".join(f"{n} -> {k}" for n, k in kept) + " channels per group")
        d, q = result["dense"], result["pruned"]
        print(f"pruned ({self.method}): {q['params']:,} params ({q['params'] // 1000}K), "
              f"{q['mult_adds'] / 1e9:.1f} G Mult-Adds; x{d['params'] / q['params']:.1f} fewer params")
        if self.method in REGULARIZERS:
            reg = self._regularizer(graph)
            print(f"{self.method.upper()} regularization: {reg.total_iters():,} iterations; "
                  f"{len(reg.coupled)} coupled group(s) found by the analysis")
        return result

    def run(self) -> dict:
        self._prepare_dir()
        t_all = time.perf_counter()
        example = self.example_input()
        train_data, val_sets, eval_sets = self.datasets()
        done = set(self.state["done"])

        # ---- dense model (pretrained, or trained here)
        dense_file = self.out / "dense.safetensors"
        if "pretrain" in done and dense_file.exists():
            dense = gpio.load(dense_file)
        else:
            dense = self.build_model()
            if self._stage_iters("pretrain") > 0:
                self._say(f"== pretrain: {self._stage_iters('pretrain')} iterations")
                t0 = time.perf_counter()
                self._train("pretrain", dense, train_data, val_sets)
                self._mark_done("pretrain", self._stage_iters("pretrain"), time.perf_counter() - t0)
            if is_main_process():
                gpio.save(dense.cpu(), dense_file)
            barrier()  # other ranks read the file later
        dense = dense.cpu().eval()
        result = {"recipe": self.r, "dense": {}, "pruned": None, "groups": [], "stages": self.state["stages"]}
        result["dense"] = complexity(dense, example, self.scale)

        if self.method == "none":
            self._t_eval = time.perf_counter()
            result["dense"]["metrics"] = self._final_eval(dense, eval_sets, "dense")
            return self._finish(result, dense, None, eval_sets, t_all)

        # ---- analysis
        prune = self.r["prune"]
        t0 = time.perf_counter()
        self.graph = analyze(dense, example, ignore=prune.get("ignore") or ())
        self._say(f"== analysis: {len(self.graph.groups)} groups, {len(self.graph.prunable_groups)} prunable "
                  f"({time.perf_counter() - t0:.2f} s)")

        # ---- regularize + prune
        init_file = self.out / "pruned_init.safetensors"
        if "prune" in done and init_file.exists():
            pruned = gpio.load(init_file)
            plan = Plan.from_dict(self.graph, gpio.read_spec(init_file)["plan"])
        else:
            pruned, plan = self._regularize_and_prune(dense, train_data, val_sets)
            if is_main_process():
                gpio.save(pruned.cpu(), init_file, gpio.make_spec(plan, model=dense))
            barrier()
            # what the pruning step itself cost, before fine-tuning repairs it (first evaluation set)
            first = dict(list(eval_sets.items())[:1])
            self.state["results"]["pruned_before_finetune"] = self._final_eval(pruned.cpu().eval(), first,
                                                                               "pruned, before fine-tuning")
            self._mark_done("prune", 0, 0.0)
        result["pruned_before_finetune"] = self.state["results"].get("pruned_before_finetune", {})
        result["groups"] = [{"id": g.id, "size": g.size, "kept": plan.kept(g.id), "prunable": g.prunable,
                             "reason": g.reason, "modules": g.modules("out")} for g in self.graph.groups]

        # ---- finetune
        if "finetune" not in done and self._stage_iters("finetune") > 0:
            self._say(f"== finetune: {self._stage_iters('finetune')} iterations")
            t0 = time.perf_counter()
            self._train("finetune", pruned, train_data, val_sets)
            self._mark_done("finetune", self._stage_iters("finetune"), time.perf_counter() - t0)
        elif "finetune" in done:
            pruned = self._load_trained(pruned, "finetune")
        pruned = pruned.cpu().eval()
        dense = gpio.load(dense_file).eval()  # regularization changed the in-memory dense model
        pruned.gp_save_spec = gpio.make_spec(plan, model=dense)
        if is_main_process():
            gpio.save(pruned, self.out / "model.safetensors")
        result["pruned"] = complexity(pruned, example, self.scale)
        self._t_eval = time.perf_counter()
        result["dense"]["metrics"] = self._final_eval(dense, eval_sets, "dense")
        result["pruned"]["metrics"] = self._final_eval(pruned, eval_sets, "pruned")
        return self._finish(result, dense, pruned, eval_sets, t_all)

    def _regularizer(self, graph: ChannelGraph):
        """The recipe's ASSL/SRP hook: schedule, ratio, overrides and method options as given."""
        prune = self.r["prune"]
        return REGULARIZERS[self.method](
            graph, float(prune["ratio"]), schedule=PenaltySchedule(**(prune.get("schedule") or {})),
            ratios=prune.get("ratios") or None, round_to=int(prune.get("round_to", 1)),
            seed=int(self.r.get("seed", 0)), **(prune.get(self.method) or {}))

    def _regularize_and_prune(self, dense: nn.Module, train_data, val_sets) -> tuple[nn.Module, Plan]:
        prune, method = self.r["prune"], self.method
        ratio, ratios = float(prune["ratio"]), prune.get("ratios") or None
        round_to = int(prune.get("round_to", 1))
        if method in REGULARIZERS:
            reg = self._regularizer(self.graph)
            sched = reg.schedule
            reg.prepare(dense)
            total = reg.total_iters()
            self._say(f"== regularize ({method.upper()}): {total} iterations "
                      f"(penalty grows to {sched.ceiling} in {sched.grow_iters} iterations, stabilizes {sched.stabilize})")
            t0 = time.perf_counter()
            self._train("regularize", dense, train_data, val_sets, hooks=[reg], total_iters=total)
            self._mark_done("regularize", total, time.perf_counter() - t0)
            dense_cpu = dense.cpu()
            pruned, plan = reg.finalize(dense_cpu)
            return pruned, plan
        criterion = prune.get("criterion", "l1")
        plan = make_plan(self.graph, ratio, criterion=criterion, ratios=ratios, round_to=round_to,
                         seed=int(self.r.get("seed", 0)))
        pruned = apply(dense, plan)
        if method == "scratch":
            torch.manual_seed(int(self.r.get("seed", 0)))
            for m in pruned.modules():
                if hasattr(m, "reset_parameters") and any(p.requires_grad for p in m.parameters(recurse=False)):
                    m.reset_parameters()
        self._say(f"== prune ({method}): {sum(p.numel() for p in dense.parameters()):,} -> "
                  f"{sum(p.numel() for p in pruned.parameters()):,} params")
        return pruned, plan

    def _load_trained(self, model: nn.Module, stage: str) -> nn.Module:
        from ..train import latest_good_checkpoint

        found = latest_good_checkpoint(self.out / stage / "checkpoints")
        if found is not None:
            model.load_state_dict(found[1]["model"])
        return model

    def _final_eval(self, model: nn.Module, eval_sets: dict, label: str) -> dict:
        if not eval_sets or not is_main_process():
            return {}
        t0 = time.perf_counter()
        res = evaluate(model, eval_sets, **self._eval_kwargs())
        self._say(f"== evaluate {label}: " + ", ".join(
            f"{k} {v.get('psnr', float('nan')):.2f} dB / {v.get('ssim', float('nan')):.4f}" for k, v in res.items())
            + f" ({time.perf_counter() - t0:.1f} s)")
        return res

    def _finish(self, result: dict, dense: nn.Module, pruned: nn.Module | None, eval_sets: dict, t_all: float) -> dict:
        kw = self._eval_kwargs()
        if eval_sets and is_main_process():
            result["bicubic"] = bicubic_scores(eval_sets, scale=self.scale, rgb_range=self.rgb_range,
                                               crop_border=kw["crop_border"], test_y_channel=kw["test_y_channel"],
                                               metrics=kw["metrics"])
        if "evaluate" not in self.state["done"]:
            self._mark_done("evaluate", 0, time.perf_counter() - self._t_eval)
        result["stages"] = list(self.state["stages"])
        result["seconds"] = round(time.perf_counter() - t_all, 1)
        if is_main_process():
            from .report import write_report
            write_report(result, self.out, dense=dense, pruned=pruned, eval_sets=eval_sets, scale=self.scale,
                         rgb_range=self.rgb_range, tile=kw["tile"])
        return result

