"""The index algebra under the channel graph: union-find over channel spaces with structure.

Every tensor dimension and every parameter dimension in a traced model is a *space* of some size.
Op rules relate spaces in three ways, and this module keeps the consequences consistent:

* ``unify(a, b)``        index i of ``a`` is index i of ``b`` (elementwise ops, a conv's output and
                         its weight's dim 0, a residual add, ...);
* ``define_cat(a, ...)`` ``a`` is the concatenation of smaller spaces (cat, split, slicing);
* ``define_prod(a, ...)``  ``a`` is the row-major product of smaller spaces (reshape, flatten,
                         pixel shuffle, grouped conv, attention heads × head dim).

Spaces are *atoms* in a union-find. A root atom may carry one definition (a concatenation or a
product of child atoms). Unifying two defined atoms reconciles their definitions by refining
both to a common structure: cut points of two concatenations are merged; two factorizations are
aligned by splitting factors at their greatest common divisor (mixed radix); a concatenation
against a product distributes over the outermost factor. When no common structure exists the
atoms are *blocked*, with a reason: the channels there will not be pruned. Nothing is guessed.

At the end, the atoms without a definition are the *leaves*: the independent units a plan may
remove indices from. :meth:`Atoms.expand` maps a leaf's indices to the positions they occupy in
any space, which is what the surgery slices.

Cost: every operation touches only the atoms of one op, so building is O(nodes) up to the
refinements, which are rare; expansion is O(size of the expanded space).

Examples
--------
A residual add followed by a concatenation:

>>> A = Atoms()
>>> x, y, z = A.new(4), A.new(4), A.new(6)
>>> A.unify(x, y)                      # x + y
>>> left, right = A.split(z, [4, 2])
>>> A.unify(left, x)                   # z = cat(x + y, w)
>>> [(A.size(leaf), m.tolist()) for leaf, m in A.expand(z)]
[(4, [[0], [1], [2], [3]]), (2, [[4], [5]])]

A pixel shuffle by 2 on a 3-channel output: each output channel owns 4 input channels:

>>> c_in, c_out = A.new(12), A.new(3)
>>> _ = A.define_prod(c_in, [c_out, A.new(2), A.new(2)])
>>> A.expand(c_in)[0][1].tolist()
[[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Atoms", "Definition"]


@dataclass(frozen=True)
class Definition:
    """A root atom's structure: ``kind`` is "cat" or "prod", ``parts`` the child atoms in order."""

    kind: str
    parts: tuple[int, ...]


class Atoms:
    """Union-find over channel spaces, with concatenation / product definitions on the roots."""

    def __init__(self) -> None:
        self._parent: list[int] = []
        self._size: list[int] = []
        self._defn: dict[int, Definition] = {}
        self._blocked: dict[int, str] = {}
        self._inexact: dict[int, str] = {}
        self._dynamic: dict[int, str] = {}
        self._expanded: dict[int, list[tuple[int, np.ndarray]]] = {}

    # ------------------------------------------------------------------ basic union-find
    def new(self, size: int) -> int:
        """A fresh atom of ``size`` indices."""
        self._parent.append(len(self._parent))
        self._size.append(int(size))
        return len(self._parent) - 1

    def __len__(self) -> int:
        return len(self._parent)

    def find(self, a: int) -> int:
        parent = self._parent
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:  # path compression
            parent[a], a = root, parent[a]
        return root

    def size(self, a: int) -> int:
        return self._size[self.find(a)]

    def definition(self, a: int) -> Definition | None:
        return self._defn.get(self.find(a))

    def same(self, a: int, b: int) -> bool:
        return self.find(a) == self.find(b)

    # ------------------------------------------------------------------ blocking
    def block(self, a: int, reason: str) -> None:
        """Mark ``a`` (and, when expanded, everything it contains) as not prunable."""
        root = self.find(a)
        self._blocked.setdefault(root, reason)

    def blocked_reason(self, a: int) -> str | None:
        return self._blocked.get(self.find(a))

    # ------------------------------------------------------------------ exactness
    def mark_inexact(self, a: int, reason: str) -> None:
        """Mark ``a`` as read by a statistic over its indices (a mean, a softmax, a LayerNorm).

        Pruning such a space is structurally sound but not exact: the kept indices see a statistic
        of fewer values. Like a block, the mark covers everything ``a`` contains, and merges on unify.
        """
        root = self.find(a)
        self._inexact.setdefault(root, reason)

    def mark_dynamic(self, a: int, reason: str) -> None:
        """Mark ``a`` as a dim whose size depends on the data (a boolean mask's selection)."""
        self._dynamic.setdefault(self.find(a), reason)

    def is_dynamic(self, a: int) -> bool:
        """True when ``a``, or a space it is made of, has a size that depends on the data."""
        return bool(self._dynamic) and bool(self._marked_ancestors(self.find(a), self._dynamic)) or \
            self.find(a) in self._dynamic

    def inexact_leaves(self, roots) -> dict[int, str]:
        """Every leaf marked inexact directly or through a marked composite among ``roots``."""
        return self._marked_leaves(roots, self._inexact)

    # ------------------------------------------------------------------ relations
    def unify(self, a: int, b: int) -> None:
        """Declare that index i of ``a`` is index i of ``b``."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        self._expanded.clear()
        if self._size[ra] != self._size[rb]:
            reason = f"size mismatch {self._size[ra]} vs {self._size[rb]}"
            self.block(ra, reason)
            self.block(rb, reason)
            return
        self._parent[rb] = ra
        for marks in (self._blocked, self._inexact, self._dynamic):
            if rb in marks:
                marks.setdefault(ra, marks.pop(rb))
        da, db = self._defn.get(ra), self._defn.pop(rb, None)
        if db is None:
            return
        if da is None:
            self._defn[ra] = db
            return
        self._reconcile(ra, da, db)

    def define_cat(self, a: int, parts: list[int]) -> list[int]:
        """Declare ``a`` the concatenation of the atoms ``parts``; returns them (empty ones dropped)."""
        atoms = [p for p in parts if self.size(p) > 0]
        if sum(self.size(p) for p in atoms) != self.size(a):
            self.block(a, "concatenation sizes do not add up")
            return atoms
        if len(atoms) == 1:
            self.unify(a, atoms[0])
            return atoms
        fresh = self.new(self.size(a))
        self._defn[fresh] = Definition("cat", tuple(atoms))
        self._expanded.clear()
        self.unify(a, fresh)
        return atoms

    def define_prod(self, a: int, factors: list[int]) -> list[int]:
        """Declare ``a`` the row-major product of ``factors`` (first = outermost)."""
        atoms = [f for f in factors if self.size(f) != 1]
        if math.prod(self.size(f) for f in factors) != self.size(a):
            self.block(a, "reshape sizes do not multiply up")
            return atoms
        if not atoms:
            return atoms
        if len(atoms) == 1:
            self.unify(a, atoms[0])
            return atoms
        fresh = self.new(self.size(a))
        self._defn[fresh] = Definition("prod", tuple(atoms))
        self._expanded.clear()
        self.unify(a, fresh)
        return atoms

    def split(self, a: int, sizes: list[int]) -> list[int]:
        """Cut ``a`` into consecutive fresh parts of the given sizes (a concatenation)."""
        return self.define_cat(a, [self.new(s) for s in sizes])

    def factor(self, a: int, sizes: list[int]) -> list[int]:
        """Factor ``a`` row-major into fresh factors of the given sizes."""
        factors = [self.new(s) for s in sizes]
        self.define_prod(a, factors)
        return factors

    # ------------------------------------------------------------------ reconciliation
    def _reconcile(self, root: int, da: Definition, db: Definition) -> None:
        if da.kind == "cat" and db.kind == "cat":
            self._align_cats(root, da.parts, db.parts)
        elif da.kind == "prod" and db.kind == "prod":
            self._align_prods(root, list(da.parts), list(db.parts))
        else:
            cat, prod = (da, db) if da.kind == "cat" else (db, da)
            self._defn[root] = cat
            self._cat_against_prod(root, cat.parts, prod.parts)

    def _align_cats(self, root: int, pa: tuple[int, ...], pb: tuple[int, ...]) -> None:
        cuts = sorted(set(_cuts([self.size(p) for p in pa])) | set(_cuts([self.size(p) for p in pb])))
        fine_a = self._refine_cat(pa, cuts)
        fine_b = self._refine_cat(pb, cuts)
        for x, y in zip(fine_a, fine_b):
            self.unify(x, y)
        self._defn[self.find(root)] = Definition("cat", tuple(fine_a))

    def _refine_cat(self, parts: tuple[int, ...], cuts: list[int]) -> list[int]:
        """Cut each part at the global cut points falling inside it."""
        out, start = [], 0
        for p in parts:
            end = start + self.size(p)
            inner = [c - start for c in cuts if start < c < end]
            if inner:
                sizes = np.diff([0, *inner, end - start]).tolist()
                out.extend(self.split(p, sizes))
            else:
                out.append(p)
            start = end
        return out

    def _align_prods(self, root: int, fa: list[int], fb: list[int]) -> None:
        """Align two row-major factorizations of one space by gcd splitting (mixed radix)."""
        self._defn[root] = Definition("prod", tuple(fa))
        while fa and fb:
            x, y = fa[0], fb[0]
            sx, sy = self.size(x), self.size(y)
            if sx == sy:
                self.unify(x, y)
                fa.pop(0), fb.pop(0)
                continue
            g = math.gcd(sx, sy)
            if g == 1:
                reason = f"reshape factors cannot be aligned ({sx} against {sy})"
                for f in (root, *fa, *fb):  # every factor: the spaces they also live in lose the relation
                    self.block(f, reason)
                return
            xo, xi = self.factor(x, [g, sx // g])
            yo, yi = self.factor(y, [g, sy // g])
            self.unify(xo, yo)
            fa[0], fb[0] = xi, yi
            if self.size(xi) == 1:
                fa.pop(0)
            if self.size(yi) == 1:
                fb.pop(0)

    def _cat_against_prod(self, root: int, parts: tuple[int, ...], factors: tuple[int, ...]) -> None:
        """Distribute a concatenation over the outermost factor of a product."""
        outer, inner = factors[0], list(factors[1:])
        inner_size = math.prod(self.size(f) for f in inner)
        sizes = [self.size(p) for p in parts]
        if any(s % inner_size for s in sizes):
            reason = "a concatenation/split cuts across a reshape factor"
            for p in (root, *parts, *factors):  # factors too: they also live in other spaces
                self.block(p, reason)
            return
        pieces = self.define_cat(outer, [self.new(s // inner_size) for s in sizes])
        for part, piece in zip(parts, pieces):
            self.define_prod(part, [piece, *inner])

    # ------------------------------------------------------------------ leaves and index maps
    def expand(self, a: int) -> list[tuple[int, np.ndarray]]:
        """The leaves inside ``a`` and, for each, where its indices sit in ``a``.

        Returns a list of ``(leaf, positions)`` where ``positions`` has shape
        ``(size(leaf), k)``: row i lists the k positions of ``a`` that leaf index i owns.
        A leaf occurring in several factors of a product owns the union of their positions.
        """
        root = self.find(a)
        cached = self._expanded.get(root)
        if cached is not None:
            return cached
        d = self._defn.get(root)
        if d is None:
            result = [(root, np.arange(self._size[root], dtype=np.int64)[:, None])]
        elif d.kind == "cat":
            result, offset = [], 0
            for p in d.parts:
                result.extend((leaf, pos + offset) for leaf, pos in self.expand(p))
                offset += self.size(p)
        else:
            result = self._expand_prod(root, d.parts)
        self._expanded[root] = result = _merge_same_leaf(result)
        return result

    def _expand_prod(self, root: int, parts: tuple[int, ...]) -> list[tuple[int, np.ndarray]]:
        sizes = [self.size(p) for p in parts]
        grid = np.arange(self._size[root], dtype=np.int64).reshape(sizes)
        result = []
        for axis, p in enumerate(parts):
            moved = np.moveaxis(grid, axis, 0).reshape(sizes[axis], -1)
            for leaf, pos in self.expand(p):
                rows = moved[pos]  # (leaf_size, k, rest)
                result.append((leaf, rows.reshape(rows.shape[0], -1)))
        return result

    def leaves(self, a: int) -> set[int]:
        """The leaves ``a`` is made of (what :meth:`expand` maps, without the index arrays: cheap)."""
        out, stack = set(), [self.find(a)]
        while stack:
            root = stack.pop()
            d = self._defn.get(root)
            if d is None:
                out.add(root)
            else:
                stack.extend(self.find(p) for p in d.parts)
        return out

    def factor_sets(self) -> list[set[int]]:
        """Leaves that are row-major factors of one product space (heads × head dim, groups × width).

        Nested products are flattened; a concatenation inside a product is a factor of its own and
        is not entered. Only products of two or more leaves are listed.
        """
        out = []
        for root, d in self._defn.items():
            if d.kind != "prod" or self.find(root) != root:
                continue
            leaves, stack = set(), list(d.parts)
            while stack:
                p = self.find(stack.pop())
                sub = self._defn.get(p)
                if sub is None:
                    leaves.add(p)
                elif sub.kind == "prod":
                    stack.extend(sub.parts)
            if len(leaves) > 1:
                out.append(leaves)
        return out

    def leaf_blocked_reason(self, leaf: int, via: int) -> str | None:
        """Why ``leaf`` is blocked, considering every blocked ancestor on the path from ``via``."""
        return self._marked_ancestors(self.find(via), self._blocked).get(self.find(leaf))

    def _marked_ancestors(self, root: int, marks: dict[int, str], inherited: str | None = None) -> dict[int, str]:
        reason = inherited or marks.get(root)
        d = self._defn.get(root)
        if d is None:
            return {root: reason} if reason else {}
        out: dict[int, str] = {}
        for p in d.parts:
            for leaf, r in self._marked_ancestors(self.find(p), marks, reason).items():
                out.setdefault(leaf, r)
        return out

    def _marked_leaves(self, roots, marks: dict[int, str]) -> dict[int, str]:
        out: dict[int, str] = {}
        if not marks:
            return out
        seen: set[int] = set()
        for r in roots:
            r = self.find(r)
            if r in seen:
                continue
            seen.add(r)
            for leaf, reason in self._marked_ancestors(r, marks).items():
                out.setdefault(leaf, reason)
        return out

    def blocked_leaves(self, roots) -> dict[int, str]:
        """Every leaf blocked directly or through a blocked composite among ``roots``."""
        return self._marked_leaves(roots, self._blocked)


def _cuts(sizes: list[int]) -> list[int]:
    return np.cumsum(sizes)[:-1].tolist()


def _merge_same_leaf(result: list[tuple[int, np.ndarray]]) -> list[tuple[int, np.ndarray]]:
    merged: dict[int, list[np.ndarray]] = {}
    for leaf, pos in result:
        merged.setdefault(leaf, []).append(pos)
    return [(leaf, parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1))
            for leaf, parts in merged.items()]
