"""The typed loader: every problem at once as (key path, message), never a half-built object."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Optional, Union

import pytest

from graphprune.schema import INVALID, ConfigError, Problem, Schema, Variants, field, load, plain, subset


@dataclass(kw_only=True)
class Cat(Schema):
    name: str = field(doc="the cat")
    lives: int = field(9, ge=0, le=9)


@dataclass(kw_only=True)
class Dog(Schema):
    type: Literal["dog"] = "dog"
    bark: float = field(1.0, gt=0)


@dataclass(kw_only=True)
class Fish(Schema):
    type: Literal["fish"] = "fish"
    fins: tuple[int, int] = (2, 2)


@dataclass(kw_only=True)
class Home(Schema):
    ALIASES = {"pet_name": "owner"}
    KEY_HINTS = {"animal": "use pets: [...]"}
    owner: str = ""
    pets: list[Annotated[Union[Dog, Fish], Variants("type")]] = field([])
    cat: Optional[Cat] = None
    weights: dict[Union[int, str], float] = field({}, ge=0, lt=1)


def problems(data) -> list[str]:
    value, found = load(Home, data)
    assert (value is INVALID) == bool(found)
    return [str(p) for p in found]


def test_valid_data_is_typed_and_normalized():
    home, found = load(Home, {"pets": [{"type": "fish", "fins": [1, 3]}, {"type": "dog", "bark": 2}],
                              "cat": {"name": "Tom", "lives": 8.0}, "weights": {0: 0.5, "*a*": 0}})
    assert found == [] and home.pets == [Fish(fins=(1, 3)), Dog(bark=2.0)]
    assert home.cat.lives == 8 and isinstance(home.cat.lives, int)  # an integral float is an integer
    assert plain(home)["pets"][0] == {"type": "fish", "fins": [1, 3]}


def test_every_problem_at_once_with_its_key_path():
    assert problems({"animal": 1, "pets": [{"type": "cat"}, {"type": "dog", "bark": 0}],
                     "cat": {"lives": 10}, "weights": {"x": 1.5}}) == [
        "animal: unknown key (use pets: [...]); valid keys: owner, pets, cat, weights",
        "pets.0.type: 'cat' is not one of dog, fish",
        "pets.1.bark: 0.0 is out of range; expected bark > 0",
        "cat.name: missing required key; expected a string (the cat)",
        "cat.lives: 10 is out of range; expected 0 <= lives <= 9",
        "weights.x: 1.5 is out of range; expected 0 <= weights < 1"]


def test_types_and_the_fix_in_the_message():
    assert problems({"owner": 3, "cat": {"name": "Tom", "lives": "9"}, "pets": [{"type": "fish", "fins": [1]}]}) == [
        "owner: 3 is an integer; expected a string",
        "pets.0.fins: [1] has 1 items; expected a list of 2 integers",
        "cat.lives: '9' is a string; expected an integer (write numbers without quotes)"]
    assert problems({"cat": {"name": "Tom", "lives": 2.5}}) == ["cat.lives: 2.5 is a number; expected an integer"]
    assert problems({"pets": {"type": "dog"}}) == ["pets: {'type': 'dog'} is a mapping; expected a list of mappings"]


def test_aliases_keep_the_key_as_written():
    home, _ = load(Home, {"pet_name": "Ann"})
    assert home.owner == "Ann"
    assert problems({"pet_name": 1}) == ["pet_name: 1 is an integer; expected a string"]
    assert problems({"pet_name": "a", "owner": "b"}) == ["owner: given twice (also as 'pet_name')"]


def test_direct_construction_validates_too():
    with pytest.raises(ConfigError) as e:
        Cat(name="Tom", lives=-1)
    assert e.value.problems == [Problem("lives", "-1 is out of range; expected 0 <= lives <= 9")]


def test_subset_points_excluded_keys_elsewhere():
    Owned = subset(Home, "Owned", {"owner": "the deed"})
    assert Owned.keys() == ["pets", "cat", "weights"]
    assert [str(p) for p in load(Owned, {"pet_name": "x"})[1]] == [
        "pet_name: unknown key (set by the deed, not here); valid keys: pets, cat, weights"]
