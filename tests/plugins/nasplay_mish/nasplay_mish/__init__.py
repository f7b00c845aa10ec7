"""A nasplay plugin: the Mish activation and a "3x3 conv + squeeze-and-excitation" block.

Importing this module registers them (nasplay finds it through the ``nasplay.plugins`` entry point in pyproject.toml):

- ``activation=mish``: every activation of a network becomes Mish, ``x * tanh(softplus(x))`` (Misra 2019);
- ``conv_se=on``: every full 3x3 conv after the stem is followed by squeeze-and-excitation (Hu et al. 2017), squeezed
  to a quarter of its channels (at least 4); ``conv_se=off`` takes those SE ops out again.
"""

from __future__ import annotations

import nasplay
from nasplay import SE, Conv
from nasplay.space.knobs.tree import iter_ops, map_ops, refuse


def _mish():
    import torch  # only when a network is built: importing the plugin stays as cheap as `import nasplay`

    return torch.nn.Mish()


nasplay.register_activation("mish", _mish, label="Mish")


def _se_after(op) -> bool:
    return isinstance(op, Conv) and op.kernel in (3, (3, 3)) and not op.separable and not op.depthwise and op.factor == "none"


def conv_se(genome: nasplay.Genome, value: str) -> nasplay.Genome:
    """on: an SE op after every plain 3x3 conv of the stages that has none; off: those SE ops removed."""
    sites = [(op, s) for op, s in iter_ops(genome, where=("stage",)) if _se_after(op)]
    if not sites:
        raise refuse("conv_se", value, genome, "it has no plain 3x3 conv after its stem", "on | off")

    def fn(op, site):
        after = site.ops[site.index + 1] if site.index + 1 < len(site.ops) else None
        if value == "on" and _se_after(op) and not isinstance(after, SE):
            return (op, SE(squeeze=max(4, op.out // 4)))
        if value == "off" and isinstance(op, SE) and site.index > 0 and _se_after(site.ops[site.index - 1]):
            return None
        return op

    return map_ops(genome, fn, where=("stage",))


nasplay.register_knob("conv_se", conv_se, values=("on", "off"),
                      help="A 3x3 conv followed by squeeze-and-excitation: on adds SE (squeeze 1/4) after every plain "
                           "3x3 conv of the stages; off removes it.", example="conv_se=on")

__all__ = ["conv_se"]
