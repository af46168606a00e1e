"""The base objectives by name (`objective.base`). Adding one: its module, and a line here."""

from avrl_jax.objectives.clip import CLIP
from avrl_jax.objectives.dino import DINO
from avrl_jax.objectives.labels import Labels
from avrl_jax.objectives.objective import BaseObjective
from avrl_jax.objectives.simclr import SimCLR

OBJECTIVES: dict[str, type[BaseObjective]] = {cls.name: cls for cls in (SimCLR, Labels, DINO, CLIP)}
BASE_OBJECTIVES = tuple(OBJECTIVES)


def make_objective(config) -> BaseObjective:
    """The base objective of a training config; an unknown name lists the valid ones."""
    name = config.objective.base
    if name not in OBJECTIVES:
        raise ValueError(f"objective.base={name!r} is not valid; choose one of {BASE_OBJECTIVES}")
    return OBJECTIVES[name](config)
