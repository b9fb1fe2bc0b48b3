"""Recipes: every shipped recipe validates; malformed recipes give the exact error line; overrides are typed."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import yaml

from graphprune.plan import n_removed
from graphprune.compress.overrides import parse_override
from graphprune.compress.recipe import Recipe, RecipeError, dump_recipe, load_recipe
from graphprune.regularizers import PenaltySchedule
from graphprune.train.trainer import TrainConfig

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))

# A small valid recipe on the demo data (no files needed); each table row changes one thing.
BASE = {
    "name": "t", "seed": 0, "scale": 4, "rgb_range": 255, "output_dir": "runs/t",
    "model": {"name": "ledsr_f256r16_x4", "kwargs": {"n_feats": 8, "n_resblocks": 1}},
    "data": {"train": {"type": "demo", "patch_size": 16, "batch_size": 2, "num_workers": 0},
             "val": [{"type": "demo"}]},
    "eval": {"sets": [{"type": "demo"}]},
    "prune": {"method": "assl", "ratio": 0.5, "ignore": ["*mean*", "*tail*"],
              "schedule": {"delta": 0.1, "every": 2, "ceiling": 0.5, "stabilize": 3},
              "assl": {"ssa_iters": 4}},
    "stages": {"pretrain": {"total_iter": 5, "optim": {"type": "Adam", "lr": 1.0e-3}},
               "regularize": {"optim": {"type": "Adam", "lr": 1.0e-3}},
               "finetune": {"total_iter": 5, "optim": {"type": "Adam", "lr": 1.0e-3},
                            "scheduler": {"type": "StepLR", "step_size": 3, "gamma": 0.5}}},
    "train": {"val_freq": 5, "print_freq": 1},
}


def write(tmp_path, data, name="r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def problems_of(path, overrides=(), check_files=False) -> list[str]:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides, check_files=check_files)
    return [str(p) for p in info.value.problems]


# -- the shipped recipes ------------------------------------------------------------------------
@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_validates_and_builds_trainer_configs(path, tmp_path):
    r = load_recipe(path, check_files=False)
    assert r.name == path.stem and r.source == str(path)
    text = path.read_text()
    assert text.startswith("#") and f"compress.py --recipe recipes/{path.name}" in text  # launch command
    for stage in ("pretrain", "regularize", "finetune"):
        if getattr(r.stages, stage) is not None and r.stage_iters(stage) > 0:
            cfg = r.train_config(stage, tmp_path / stage)
            assert isinstance(cfg, TrainConfig) and cfg.total_iters == r.stage_iters(stage) and cfg.rgb_range == r.rgb_range
    # the resolved dump loads back to the same recipe
    again = load_recipe(dump_recipe(r, tmp_path / "recipe.yaml"), check_files=False)
    assert again.to_dict() == r.to_dict()


def test_recipe_set_is_complete():
    names = {p.stem for p in RECIPES}
    assert {f"ledsr_x{s}_{m}" for s in (2, 3, 4) for m in ("assl", "srp")} <= names
    assert {f"rirsr_x{s}_srp" for s in (2, 3, 4)} | {"edsr_baseline_x2_assl", "demo_x4_assl",
                                                     "demo_x4_srp", "demo_x4_train"} <= names


@pytest.mark.parametrize("stem, width, kept", [("ledsr_x{}_assl", 256, 49), ("ledsr_x{}_srp", 256, 45),
                                               ("rirsr_x{}_srp", 96, 63)])
def test_paper_recipes_settings(stem, width, kept):
    for s in (2, 3, 4):
        r = load_recipe(Path(RECIPES[0].parent, stem.format(s) + ".yaml"), check_files=False)
        if r.prune.target is None:
            assert width - n_removed(r.prune.ratio, width) == kept
        else:  # the paper's size as a budget: the plan's widths must be the paper's
            import graphprune as gp
            from graphprune.compress.models import build_dense

            dense = build_dense(r.model, r.seed, weights=False)
            graph = gp.analyze(dense, torch.zeros(r.prune.example_input), ignore=r.prune.ignore)
            counts = gp.removed_counts(graph, **r.prune.plan_arguments())
            assert {width - n for n in counts.values()} == {kept} and len(counts) == len(graph.prunable_groups)
        assert r.scale == s and r.model.name.endswith(f"_x{s}") and r.rgb_range == 255
        assert (r.data.train.type, r.data.train.index_range, r.data.train.patch_size,
                r.data.train.batch_size) == ("df2k", "1-3550", 48, 16)
        sch = r.prune.schedule
        assert (sch.delta, sch.every, sch.ceiling, sch.stabilize) == (1e-4, 20, 0.5, 43150)
        assert r.prune.ignore == ["*mean*", "*tail*"]
        assert r.stages.finetune.total_iter == 5000 * 888  # the code's default --epochs 5000
        sched = r.stages.finetune.scheduler
        assert (sched.type, sched.step_size, sched.gamma) == ("StepLR", 200 * 888, 0.5)
        lr_prune = r.stages.regularize.optim.lr
        if r.prune.method == "assl":
            assert (lr_prune, r.prune.assl.ssa_iters, r.regularize_iters) == (2e-4, 17260, 17260 + 5001 * 20 + 43150)
        else:
            assert (lr_prune, r.prune.srp.coupled_selection, r.regularize_iters) == (1e-4, "random", 5001 * 20 + 43150)
        sets = [e.name for e in r.eval.sets]
        assert sets == ["Set5", "Set14", "B100", "Urban100"] + (["Manga109"] if kept != 45 else [])


def test_demo_recipes_use_demo_data_only():
    for stem in ("demo_x4_assl", "demo_x4_srp", "demo_x4_train"):
        r = load_recipe(RECIPES[0].parent / f"{stem}.yaml")  # check_files=True: names no file
        assert r.data.train.type == "demo" and [e.type for e in r.eval.sets] == ["demo"]
        assert r.model.checkpoint is None and r.stages.pretrain.total_iter > 0
    assert load_recipe(RECIPES[0].parent / "demo_x4_train.yaml").prune.method == "none"


# -- malformed recipes -> the exact line ----------------------------------------------------------
def _drop(*keys):
    def edit(d):
        node = d
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]
    return edit


def _put(value, *keys):
    def edit(d):
        node = d
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return edit


CASES = [  # (id, edit of BASE or list of --set overrides, expected line)
    ("unknown key", _put("assl", "prune", "methd"),
     "prune.methd: unknown key (did you mean 'method'?); valid keys: method, ratio, ratios, target, "
     "allocation, min_channels, sensitivity, ignore, round_to, criterion, exact_only, example_input, schedule, assl, srp"),
    ("unknown top-level BasicSR key", _put({"type": "EDSR"}, "network_g"),
     "network_g: unknown key (use model: {name: <sr_models name>, kwargs: {...}}); valid keys: name, "
     "scale, model, seed, rgb_range, output_dir, data, eval, prune, stages, train"),
    ("wrong type", _put("zero", "seed"), "seed: 'zero' is a string; expected an integer"),
    ("quoted number", _put("5", "prune", "schedule", "every"),
     "prune.schedule.every: '5' is a string; expected an integer (write numbers without quotes)"),
    ("ratio out of range", _put(1.2, "prune", "ratio"),
     "prune.ratio: 1.2 is out of range; expected 0 <= ratio < 1 (fraction removed per group)"),
    ("delta not positive", _put(0.0, "prune", "schedule", "delta"),
     "prune.schedule.delta: 0.0 is out of range; expected delta > 0 (λ increment per update, official "
     "--reg_granularity_prune)"),
    ("unknown method", _put("asl", "prune", "method"),
     "prune.method: 'asl' is not one of assl, srp, l1, scratch, none (did you mean 'assl'?)"),
    ("bad choice", _put("sums", "prune", "assl", "coupled_selection"),
     "prune.assl.coupled_selection: 'sums' is not one of first, sum, random (did you mean 'sum'?)"),
    ("missing required key", _drop("name"), "name: missing required key; expected a string (the run's name)"),
    ("missing data type", _drop("data", "train", "type"),
     "data.train.type: missing required key; expected one of div2k, df2k, folder, demo"),
    ("bad scale", _put(5, "scale"), "scale: 5 is not one of 2, 3, 4"),
    ("scale mismatch", _put(2, "scale"),
     "scale: 2 does not match model.name 'ledsr_f256r16_x4' (an x4 model); use model.name "
     "ledsr_f256r16_x2 or scale: 4"),
    ("unknown model", _put("ledsr_f256r16x4", "model", "name"),
     "model.name: 'ledsr_f256r16x4' is not a registered model (did you mean 'ledsr_f256r16_x4'?); use "
     "sr_models.list_models(), 'timm:NAME' or 'package.module:factory'"),
    ("model kwargs", _put({"n_feat": 8}, "model", "kwargs"),
     "model.kwargs: {'n_feat': 8} rejected: ledsr_f256r16_x4: unknown argument(s) ['n_feat']; valid "
     "arguments: scale, n_feats, n_resblocks, res_scale, rgb_range, n_colors, kernel_size"),
    ("factory kwargs", _put({"name": "sr_models.ledsr:LEDSR", "kwargs": {"n_feat": 8}}, "model"),
     "model.kwargs: {'n_feat': 8} do not fit sr_models.ledsr:LEDSR: got an unexpected keyword argument 'n_feat'"),
    ("factory name", _put("sr_models.ledsr:LEDSRX", "model", "name"),
     "model.name: module 'sr_models.ledsr' has no 'LEDSRX'"),
    ("value range vs model", _put(1, "rgb_range"),
     "rgb_range: 1 but model 'ledsr_f256r16_x4' is built for rgb_range 255 (its mean shift); also set "
     "model.kwargs.rgb_range: 1"),
    ("regularize with l1", _put("l1", "prune", "method"),
     "stages.regularize: prune.method 'l1' has no regularization stage (only assl and srp grow a "
     "penalty); remove stages.regularize or set prune.method: assl or srp"),
    ("assl without regularize", _drop("stages", "regularize"),
     "stages.regularize: missing; prune.method assl needs it, e.g. regularize: {optim: {type: Adam, "
     "lr: 2.0e-4}} (its length comes from prune.schedule)"),
    ("regularize total_iter", _put(9, "stages", "regularize", "total_iter"),
     "stages.regularize.total_iter: 9 is not allowed; the regularize stage's length comes from "
     "prune.schedule (19 iterations here); remove it"),
    ("stage without optim", _drop("stages", "finetune", "optim"),
     "stages.finetune.optim: missing required key; expected a mapping with type: one of Adam, AdamW, SGD "
     "(e.g. {type: Adam, lr: 1.0e-4})"),
    ("stages.prune", _put({}, "stages", "prune"),
     "stages.prune: unknown key (the prune step has no trainer settings: it runs between regularize "
     "and finetune when prune.method is not none (configure it under prune:)); valid keys: pretrain, "
     "regularize, finetune"),
    ("nothing to prune", _put(0.0, "prune", "ratio"),
     "prune.ratio: 0.0 removes nothing; prune.method assl needs 0 < ratio < 1 (or a positive entry in "
     "prune.ratios)"),
    ("ratios override", _put({"*body*": 1.5}, "prune", "ratios"),
     "prune.ratios.*body*: 1.5 is out of range; expected 0 <= ratios < 1 (group id or module glob -> ratio)"),
    ("no training data", _put(None, "data", "train"),
     "data.train: missing; stage(s) pretrain, regularize, finetune need training data (e.g. {type: "
     "df2k, root: datasets/DF2K} or {type: demo} for the embedded photos)"),
    ("df2k without root", _put({"type": "df2k"}, "data", "train"), "data.train.root: missing required key; "
     "expected a string (the folder holding DIV2K_train_HR or DF2K_train_HR)"),
    ("bad index range", _put({"type": "df2k", "root": "x", "index_range": "9-2"}, "data", "train"),
     "data.train.index_range: index range must satisfy 1 <= first <= last, got '9-2'"),
    ("trainer key typo", _put(5, "train", "val_frq"),
     "train.val_frq: unknown key (did you mean 'val_freq'?); valid keys: loss, grad_clip, ema, log_every, "
     "val_every, save_every, keep_checkpoints, best_metric, best_mode, resume, deterministic, device, shuffle, "
     "progress_bar, amp, channels_last, compile"),
    ("trainer key owned by a stage", _put(100, "train", "total_iter"),
     "train.total_iter: unknown key (set by stages.<stage>.total_iter, not here); valid keys: loss, grad_clip, "
     "ema, log_every, val_every, save_every, keep_checkpoints, best_metric, best_mode, resume, deterministic, "
     "device, shuffle, progress_bar, amp, channels_last, compile"),
    # the trainer's own schemas (TrainConfig, optimizers, schedulers), at the recipe's key paths
    ("scheduler argument", _put({"type": "StepLR"}, "stages", "finetune", "scheduler"),
     "stages.finetune.scheduler.step_size: missing required key; expected an integer (iterations between "
     "decays)"),
    ("batch size", _put(0, "data", "train", "batch_size"),
     "data.train.batch_size: 0 is out of range; expected batch_size >= 1 (per process)"),
    ("trainer value", _put(-1, "train", "val_freq"),
     "train.val_freq: -1 is out of range; expected val_freq >= 1 (iterations between evaluations, or null)"),
    ("quoted lr", ["stages.finetune.optim.lr='1e-4'"],
     "stages.finetune.optim.lr: '1e-4' is a string; expected a number (write numbers without quotes) "
     "[from --set stages.finetune.optim.lr='1e-4']"),
    # overrides
    ("bad override syntax", ["prune.ratio 0.5"],
     "--set 'prune.ratio 0.5': expected KEY=VALUE with a dotted key, e.g. --set prune.ratio=0.5"),
    ("override of unknown key", ["prune.schedul.delta=1"],
     "prune.schedul: unknown key (did you mean 'schedule'?); valid keys: method, ratio, ratios, "
     "target, allocation, min_channels, sensitivity, ignore, round_to, criterion, exact_only, example_input, "
     "schedule, assl, srp [from --set prune.schedul.delta=1]"),
    ("override of a bad value", ["prune.ratio=2"],
     "prune.ratio: 2.0 is out of range; expected 0 <= ratio < 1 (fraction removed per group) "
     "[from --set prune.ratio=2]"),
    ("override through a scalar", ["name.x=1"], "--set 'name.x=1': name is a string ('t'), not a mapping"),
    ("override past a list", ["eval.sets.3.name=Set5"],
     "--set 'eval.sets.3.name=Set5': eval.sets is a list of 1 items; '3' is not an index of it"),
]


@pytest.mark.parametrize("edit, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_recipe_exact_line(tmp_path, edit, expected):
    data = copy.deepcopy(BASE)
    overrides = edit if isinstance(edit, list) else []
    if not overrides:
        edit(data)
    problems = problems_of(write(tmp_path, data), overrides)
    assert expected in problems, "\n".join(problems)


def test_base_recipe_is_valid(tmp_path):
    r = load_recipe(write(tmp_path, BASE))
    assert r.regularize_iters == 4 + 6 * 2 + 3 and r.warnings == ()
    factory = load_recipe(write(tmp_path, BASE), ["model={name: 'sr_models.ledsr:LEDSR', kwargs: {scale: 4}}"])
    assert factory.model.kwargs == {"scale": 4}


def test_all_problems_in_one_error(tmp_path):
    data = copy.deepcopy(BASE)
    data["seed"], data["prune"]["ratio"], data["train"]["val_frq"] = -1, 1.5, 3
    path = write(tmp_path, data)
    with pytest.raises(RecipeError) as info:
        load_recipe(path, ["prune.methd=srp"])
    msg = str(info.value)
    assert msg.startswith(f"invalid recipe {path}:\n  ")
    assert len(info.value.problems) == 4 and all(f"\n  {p}" in msg for p in info.value.problems)
    assert [p.path for p in info.value.problems] == ["seed", "prune.methd", "prune.ratio", "train.val_frq"]


def test_missing_dataset_is_an_error_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = copy.deepcopy(BASE)
    data["data"]["train"] = {"type": "df2k", "root": "datasets/DF2K", "index_range": "1-3550"}
    data["eval"]["sets"] = [{"type": "benchmark", "root": "datasets/benchmark", "name": "Set5"}]
    data["model"]["checkpoint"] = "pretrained/x.pt"
    path = write(tmp_path, data)
    expected = [
        "model.checkpoint: pretrained/x.pt does not exist (put the pretrained dense weights there, see the "
        "recipe's header for where to get them, or use --set model.checkpoint=null to start from random weights)",
        "data.train.root: datasets/DF2K does not exist (put DF2K there: DF2K_train_HR/0001.png ... and "
        "DF2K_train_LR_bicubic/X4/0001x4.png, or use --set 'data.train={type: demo}' for the embedded demo photos)",
        "eval.sets.0.root: datasets/benchmark does not exist (put Set5 there: Set5/HR/*.png and optionally "
        "Set5/LR_bicubic/X4/*x4.png, e.g. from EDSR's benchmark.tar; or use --set 'eval.sets=[{type: demo}]' "
        "for the embedded demo photos)",
    ]
    assert problems_of(path, check_files=True) == expected
    # dry run: the same lines become warnings, and the demo data is never substituted
    r = load_recipe(path, check_files=False)
    assert list(r.warnings) == expected and r.data.train.type == "df2k"
    # the data in place: valid (a root that exists but lacks the HR folder is named too)
    (tmp_path / "datasets/DF2K").mkdir(parents=True)
    assert problems_of(path, ["model.checkpoint=null", "eval.sets=[]"], check_files=True) == [
        "data.train.root: datasets/DF2K has no DF2K_train_HR folder (put DF2K there: DF2K_train_HR/0001.png"
        " ... and DF2K_train_LR_bicubic/X4/0001x4.png, or use --set 'data.train={type: demo}' for the embedded "
        "demo photos)"]
    (tmp_path / "datasets/DF2K/DF2K_train_HR").mkdir()
    (tmp_path / "datasets/benchmark/Set5/HR").mkdir(parents=True)
    (tmp_path / "pretrained").mkdir()
    (tmp_path / "pretrained/x.pt").write_bytes(b"")
    assert load_recipe(path, check_files=True).warnings == ()
    # the fix the message names works
    assert load_recipe(path, ["data.train={type: demo}"]).data.train.type == "demo"


def test_yaml_details(tmp_path):
    text = yaml.safe_dump(BASE, sort_keys=False).replace("delta: 0.1", "delta: 1e-4")
    (tmp_path / "a.yaml").write_text(text)
    assert load_recipe(tmp_path / "a.yaml").prune.schedule.delta == 1e-4  # plain PyYAML: the string '1e-4'
    (tmp_path / "b.yaml").write_text(text + "seed: 3\n")
    [line] = problems_of(tmp_path / "b.yaml")
    assert line.startswith("YAML syntax error: ") and "duplicate key 'seed'" in line
    assert problems_of(tmp_path / "missing.yaml")[0].startswith("cannot read the recipe")
    (tmp_path / "c.yaml").write_text("- 1\n- 2\n")
    assert problems_of(tmp_path / "c.yaml")[0].startswith("recipe: [1, 2] is a list; expected a mapping")


# -- overrides ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, keys, value", [
    ("prune.ratio=0.5", ["prune", "ratio"], 0.5),
    ("data.train.batch_size=8", ["data", "train", "batch_size"], 8),
    ("eval.sets=[]", ["eval", "sets"], []),
    ("model.checkpoint=null", ["model", "checkpoint"], None),
    ("model.checkpoint=", ["model", "checkpoint"], None),
    ("prune.schedule.delta=1e-4", ["prune", "schedule", "delta"], 1e-4),
    ("eval.sets=[{type: demo}]", ["eval", "sets"], [{"type": "demo"}]),
    ("name=123", ["name"], 123),
    ("name='123'", ["name"], "123"),
    ("data.train.index_range=1-800", ["data", "train", "index_range"], "1-800"),
    ("prune.ratios.*tail*=0.2", ["prune", "ratios", "*tail*"], 0.2),
])
def test_parse_override_types(text, keys, value):
    assert parse_override(text) == (keys, value)


def test_overrides_are_typed_and_validated(tmp_path):
    path = write(tmp_path, BASE)
    r = load_recipe(path, ["prune.ratio=0.25", "data.train.batch_size=8", "eval.sets=[]",
                           "eval.crop_border=4", "prune.method=srp", "data.val.0.type=demo",
                           "stages.finetune.optim.lr=5e-4"])
    assert r.prune.ratio == 0.25 and isinstance(r.data.train.batch_size, int) and r.data.train.batch_size == 8
    assert r.eval.sets == [] and r.eval.crop_border == 4 and r.prune.method == "srp"
    assert r.train_config("finetune", "o").optimizer.lr == 5e-4
    assert r.overrides[0] == "prune.ratio=0.25" and BASE["prune"]["ratio"] == 0.5  # input untouched
    assert problems_of(path, ["name=123"]) == ["name: 123 is an integer; expected a string [from --set name=123]"]
    assert problems_of(path, ["data.train.batch_size=8.5"]) == [
        "data.train.batch_size: 8.5 is a number; expected an integer [from --set data.train.batch_size=8.5]"]


# -- the API the pipeline uses -------------------------------------------------------------------
def test_train_config_merges_stage_train_and_data(tmp_path):
    r = load_recipe(write(tmp_path, BASE))
    cfg = r.train_config("regularize", tmp_path / "reg")
    assert (cfg.total_iters, cfg.batch_size, cfg.num_workers, cfg.out_dir, cfg.seed, cfg.rgb_range) == (
        19, 2, 0, str(tmp_path / "reg"), 0, 255.0)
    assert (cfg.optimizer.type, cfg.optimizer.lr, cfg.scheduler.type) == ("Adam", 1e-3, "constant")
    assert (cfg.val_every, cfg.log_every) == (5, 1)  # train: {val_freq: 5, print_freq: 1}
    assert r.train_config("finetune", "o", total_iters=7).total_iters == 7
    with pytest.raises(ValueError, match="no training stage 'evaluate'"):
        r.train_config("evaluate", "o")


def test_to_dict_is_plain_schema_data(tmp_path):
    r = load_recipe(write(tmp_path, BASE), ["prune.ratios={3: 0.25}"])
    d = r.to_dict()
    assert list(d) == ["name", "scale", "model", "seed", "rgb_range", "output_dir", "data", "eval",
                       "prune", "stages", "train"]
    assert d["prune"]["ratios"] == {3: 0.25} and d["prune"]["schedule"]["every"] == 2
    assert isinstance(r, Recipe) and r.prune.schedule.delta == 0.1 and r.stages.finetune.total_iter == 5
    dumped = dump_recipe(r, tmp_path / "run" / "recipe.yaml").read_text()
    assert dumped.startswith("# resolved recipe 't', from ") and "#   --set prune.ratios={3: 0.25}" in dumped


@pytest.mark.parametrize("delta, ceiling, updates", [(1e-4, 0.5, 5001), (1e-2, 0.3, 31), (0.02, 0.5, 26),
                                                     (0.3, 0.5, 2), (1.0, 0.5, 1)])
def test_schedule_updates_by_formula(delta, ceiling, updates):
    s = PenaltySchedule(delta=delta, every=3, ceiling=ceiling, stabilize=0)
    assert s.updates_to_stop == updates and s.grow_iters == 3 * updates == s.length()
    assert (updates - 1) * delta <= ceiling + 1e-12 < updates * delta or math.isclose((updates - 1) * delta, ceiling)
