"""The index algebra: unification, concatenation and factorization, refinement and blocking."""
import doctest

import numpy as np

import graphprune.atoms as atoms_mod
from graphprune.atoms import Atoms


def leaves(A, a):
    return [(A.size(leaf), pos.tolist()) for leaf, pos in A.expand(a)]


def test_doctests():
    assert doctest.testmod(atoms_mod).failed == 0


def test_unify_is_transitive_and_keeps_definitions():
    A = Atoms()
    x, y, z = A.new(6), A.new(6), A.new(6)
    A.split(z, [2, 4])
    A.unify(x, y)
    A.unify(y, z)
    assert A.same(x, z) and A.definition(x).kind == "cat"
    assert [s for s, _ in leaves(A, x)] == [2, 4]


def test_two_concatenations_are_refined_to_common_cuts():
    A = Atoms()
    x = A.new(10)
    a1, a2 = A.split(x, [4, 6])
    b1, b2 = A.split(x, [7, 3])
    sizes = [s for s, _ in leaves(A, x)]
    assert sizes == [4, 3, 3]
    assert leaves(A, b1)[0][1] == [[0], [1], [2], [3]]  # b1 starts with all of a1
    assert A.same(b2, A.expand(a2)[1][0]) or leaves(A, b2)[0][0] == 3


def test_factorizations_align_by_gcd():
    A = Atoms()
    x = A.new(12)
    f6, f2 = A.factor(x, [6, 2])
    g3, g4 = A.factor(x, [3, 4])
    assert sorted(s for s, _ in leaves(A, x)) == [2, 2, 3]
    # every position of x is owned exactly once per leaf
    for leaf, pos in A.expand(x):
        assert sorted(pos.ravel().tolist()) == list(range(12))


def test_incompatible_factorizations_are_blocked():
    A = Atoms()
    x = A.new(24)
    A.factor(x, [6, 4])
    A.factor(x, [4, 6])
    blocked = A.blocked_leaves([x])
    assert blocked and all("cannot be aligned" in r for r in blocked.values())


def test_concatenation_against_product_distributes_over_outer_factor():
    A = Atoms()
    x = A.new(8)
    c1, c2 = A.split(x, [4, 4])
    g, k = A.factor(x, [2, 4])
    assert A.same(c1, k) and A.same(c2, k)
    assert leaves(A, x) == [(4, [[0, 4], [1, 5], [2, 6], [3, 7]])]


def test_concatenation_cutting_a_factor_is_blocked():
    A = Atoms()
    x = A.new(8)
    A.split(x, [3, 5])
    A.factor(x, [2, 4])
    assert A.blocked_leaves([x])


def test_blocking_a_composite_blocks_its_leaves():
    A = Atoms()
    x = A.new(6)
    a, b = A.split(x, [2, 4])
    A.block(x, "interface")
    assert set(A.blocked_leaves([a, b, x])) == {A.find(a), A.find(b)}


def test_size_mismatch_blocks_instead_of_merging():
    A = Atoms()
    x, y = A.new(3), A.new(4)
    A.unify(x, y)
    assert not A.same(x, y) and A.blocked_reason(x) and A.blocked_reason(y)


def test_expansion_of_product_rows_are_disjoint_blocks():
    A = Atoms()
    x = A.new(2 * 3 * 4)
    a, b, c = A.factor(x, [2, 3, 4])
    pos = dict(A.expand(x))
    grid = np.arange(24).reshape(2, 3, 4)
    assert pos[A.find(b)][1].tolist() == sorted(grid[:, 1, :].ravel().tolist())
