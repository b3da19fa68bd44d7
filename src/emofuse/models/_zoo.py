"""Imports every model module so that `@register_model` runs. Add new model modules here."""

import importlib

_MODULES = (
    "emofuse.models.pooling",
    "emofuse.models.early_fusion",
    "emofuse.models.tfn",
    "emofuse.models.tucker",
    "emofuse.models.dual_stream",
    "emofuse.models.text_audio_attention",
    "emofuse.models.gated_fusion",
    "emofuse.models.of_cmaer_cat",
    "emofuse.models.linear",
)

for _name in _MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # a module still being written is skipped, not fatal
        if exc.name != _name:
            raise
