"""Training: configuration, losses, datasets and their data module, the Lightning task and Trainer,
`fit`, the k-fold runner and the rank-zero guards of multi-process runs.

The names below are imported on first use, so that ``emofuse.training.config`` (recipe
validation) does not import PyTorch Lightning.
"""

import importlib
import sys
import types

_SOURCES = {
    "TrainConfig": "config", "load_train_config": "config",
    "FeatureDataset": "data", "collate": "data", "modality_dropout": "data",
    "FeatureDataModule": "datamodule", "make_loader": "datamodule",
    "is_rank_zero": "distributed", "rank_zero_only": "distributed",
    "build_trainer": "fit",
    "FitResult": "fit", "Predictions": "fit", "fit": "fit", "predict_outputs": "fit", "predict_proba": "fit",
    "predict_proba_mean": "fit",
    "FoldRun": "results", "KFoldResult": "results", "run_kfold": "kfold",
    "FocalLoss": "losses", "focal_loss": "losses", "inverse_frequency_weights": "losses",
    "EmotionTask": "task",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """``emofuse.training.fit`` stays the function `fit` when its submodule is imported, as with
    eager imports (the import system would otherwise set the package attribute to the module)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _SOURCES and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
