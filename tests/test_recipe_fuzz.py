"""A recipe fuzzer: mutations of every shipped recipe either fail with one line per problem, exit
code 2 and no file, or start a valid run.

Mutations (hypothesis): a value of the wrong type, a removed key, a number out of range, an unknown
key, random bytes or random text for the whole file. "A valid run start" means every training
stage's trainer config builds, and for the demo recipes the pipeline's start-up checks
(:meth:`Pipeline.prepare`: model, weights, output shape, data, analysis) pass or fail in one line
(the paper recipes name datasets that are not here, so only the demo recipes get that far).
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphprune.compress import cli
from graphprune.compress.overrides import yaml_load
from graphprune.compress.pipeline import Pipeline, PipelineError
from graphprune.compress.recipe import TRAIN_STAGES, RecipeError, load_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
ODD_VALUES = ["fast", "", -1, 0, 10**12, 3.7, -0.5, None, True, [], {}, "1e-4", [1, "a"], {"x": 1}, "demo"]


def _paths(node, prefix=()):
    """Every key path of a parsed recipe (mapping keys and list indices)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield prefix + (k,)
        yield from _paths(v, prefix + (k,))


def _parent(raw, path):
    for k in path[:-1]:
        raw = raw[k]
    return raw


@st.composite
def mutated(draw):
    """``(recipe path, file bytes)``: one mutation of one shipped recipe."""
    path = draw(st.sampled_from(RECIPES))
    kind = draw(st.sampled_from(["type", "drop", "range", "unknown", "bytes", "text"]))
    if kind == "bytes":
        return path, draw(st.binary(max_size=200))
    if kind == "text":
        return path, draw(st.text(max_size=80)).encode("utf-8")
    raw = yaml_load(path.read_text())
    where = draw(st.sampled_from(list(_paths(raw))))
    parent, key = _parent(raw, where), where[-1]
    if kind == "type":
        parent[key] = copy.deepcopy(draw(st.sampled_from(ODD_VALUES)))
    elif kind == "drop":
        del parent[key]
    elif kind == "range":
        parent[key] = draw(st.one_of(st.integers(-10**6, 10**9), st.floats(-1e6, 1e6, allow_nan=False)))
    elif isinstance(parent, dict):
        parent[draw(st.sampled_from(["ratoi", "lr_rate", "typ", "patch", "total_iters"]))] = 1
    return path, yaml.safe_dump(raw, sort_keys=False).encode()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutated())
def test_mutated_recipe_fails_in_one_line_per_problem_or_starts(case, tmp_path_factory, capsys):
    source, data = case
    d = tmp_path_factory.mktemp("fuzz")
    recipe_file = d / source.name
    recipe_file.write_bytes(data)
    try:
        recipe = load_recipe(recipe_file, check_files=False)
    except RecipeError:
        recipe = None
    for stage in TRAIN_STAGES if recipe is not None else ():  # valid means valid trainer configs: no failure later
        if recipe.stage_iters(stage) > 0 and recipe.data.train is not None:
            recipe.train_config(stage, d / stage)
    try:
        recipe = load_recipe(recipe_file)  # as the CLI loads it: files checked too
    except RecipeError as e:
        assert e.problems and all("\n" not in str(p) for p in e.problems)
        code = cli.main(["--recipe", str(recipe_file), "--out", str(d / "run")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == len(e.problems) and all(x.startswith("error: ") for x in err)
        assert sorted(p.name for p in d.iterdir()) == [source.name], "nothing is written"
        return
    try:
        Pipeline(recipe, d / "run").prepare()
    except PipelineError as e:
        assert "\n" not in str(e)
    assert not (d / "run").exists(), "start-up checks write nothing"


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_shipped_recipe_loads(path):
    load_recipe(path, check_files=False)
