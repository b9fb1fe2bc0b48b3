"""The compress application: a YAML recipe in, a pruned model and its report out.

``recipe`` (schema and validation), ``pipeline`` (the stages), ``report`` and ``plots`` (what a
run leaves behind). The engine (:mod:`graphprune.channels`, :mod:`graphprune.plan`,
:mod:`graphprune.surgery`) knows nothing of this layer.
"""
