"""Modules <-> plain parameter dicts, for a train state and checkpoints free of nnx types.

    graphdef, params = to_plain_params(model)        # once, outside jit
    @jax.jit
    def step(params, batch):                          # params: nested dict of arrays (traced)
        model = from_plain_params(graphdef, params)   # graphdef closed over (or a static arg)
        ...

`params` is a nested `dict[str, ...]` whose leaves are arrays; every key is a string (the
blocks of an `nnx.List` are "0", "1", ...), so the dict survives an Orbax save/restore or a
`'.'.join(path)` export unchanged. `from_plain_params` also accepts integer keys (as
`nnx.to_pure_dict` gives them). Inside `jax.jit` it is pure Python at trace time: the merge
builds a module around the traced arrays, so gradients w.r.t. `params` flow through it.
The graphdef is static (hashable, not a pytree): keep it out of the jitted state.

BatchNorm running statistics (`nnx.BatchStat`) ride in the same dict: they get no gradient
(the loss uses the batch's statistics), so the optimizer leaves them alone, and the update step
writes the new ones (`batch_stats` of the module after its forward) with `with_batch_stats`.
"""

from __future__ import annotations

from typing import Any

from flax import nnx
from flax.nnx import traversals

PlainParams = dict[str, Any]


def _str_keys(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {str(k): _str_keys(v) for k, v in tree.items()}
    return tree


def _int_keys(tree: Any) -> Any:
    # nnx sorts state paths when merging: "10" < "2" as strings, so list indices must be ints
    # again or the blocks of a depth >= 11 model would be silently permuted.
    if isinstance(tree, dict):
        return {
            (int(k) if isinstance(k, str) and k.isdigit() else k): _int_keys(v)
            for k, v in tree.items()
        }
    return tree


def to_plain_params(module: nnx.Module) -> tuple[nnx.GraphDef, PlainParams]:
    """Split `module` into its static graphdef and a nested dict (string keys) of its arrays.

    Raises ValueError if the module holds state other than `nnx.Param` and `nnx.BatchStat`
    (RNG streams, caches): the train state only carries parameters and batch statistics.
    """
    graphdef, state = nnx.split(module)
    others = [
        "/".join(map(str, path))
        for path, var in nnx.to_flat_state(state)
        if not isinstance(var, (nnx.Param, nnx.BatchStat))
    ]
    if others:
        raise ValueError(
            f"to_plain_params: {type(module).__name__} holds non-parameter state {others}; "
            "only nnx.Param and nnx.BatchStat variables can be converted (build modules "
            "without stored rngs)"
        )
    return graphdef, _str_keys(nnx.to_pure_dict(state))


def from_plain_params(graphdef: nnx.GraphDef, params: PlainParams) -> nnx.Module:
    """Rebuild the module from `graphdef` and a plain dict (from `to_plain_params`).

    Works on concrete or traced arrays (inside `jax.jit`/`jax.grad`). Raises ValueError when
    the dict's paths do not match the module's (a dict from a different architecture).
    """
    params = _int_keys(params)
    num_given = len(traversals.flatten_mapping(params))
    if num_given != graphdef.num_leaves:
        raise ValueError(
            f"from_plain_params: the module has {graphdef.num_leaves} parameter arrays, "
            f"the dict {num_given} (a dict from a different architecture?)"
        )
    module = nnx.merge(graphdef, params)
    expected = {path for path, _ in nnx.to_flat_state(nnx.state(module))}
    given = set(traversals.flatten_mapping(params))
    if expected != given:
        missing = sorted("/".join(map(str, p)) for p in expected - given)
        extra = sorted("/".join(map(str, p)) for p in given - expected)
        raise ValueError(
            f"from_plain_params: parameter paths do not match the module; "
            f"missing {missing[:10]}, unexpected {extra[:10]}"
        )
    return module


def batch_stats(module: nnx.Module) -> PlainParams:
    """The module's BatchNorm running statistics, as a plain dict with the params' paths
    (`{}` when it has none)."""
    return _str_keys(nnx.to_pure_dict(nnx.state(module, nnx.BatchStat)))


def with_batch_stats(params: PlainParams, stats: PlainParams) -> PlainParams:
    """`params` with the leaves at `stats`'s paths replaced by `stats`'s (a new dict)."""
    if not isinstance(stats, dict):
        return stats
    merged = dict(params)
    for key, value in stats.items():
        if key not in params:
            raise ValueError(f"with_batch_stats: no parameter {key!r} to replace")
        merged[key] = with_batch_stats(params[key], value)
    return merged
