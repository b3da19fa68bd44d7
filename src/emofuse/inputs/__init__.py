"""How features become model inputs: augmented views (`views`) and the input plan (`plan`).

`InputPlan` says, for one recipe or checkpoint, which features make each modality's input,
whether they are pooled or turned into dialogue windows, whether they are standardised, and
which augmented views train and average at test time. Training, evaluation and prediction all
build their inputs with it (see docs/usage.md, "Input plan").
"""

from __future__ import annotations

from typing import Any

from emofuse.inputs.views import AugmentedView, SpeedView, list_view_kinds, register_view, view_from_dict

__all__ = ["AugmentedView", "SpeedView", "register_view", "view_from_dict", "list_view_kinds",
           "InputPlan", "ModalityPlan", "average_over_views"]


def __getattr__(name: str) -> Any:  # the plan pulls in numpy and the feature code: load it on first use
    if name in ("InputPlan", "ModalityPlan", "average_over_views"):
        from emofuse.inputs import plan

        return getattr(plan, name)
    raise AttributeError(f"module 'emofuse.inputs' has no attribute {name!r}")
