"""Training: configuration, losses, datasets, the Lightning task, `fit` and the k-fold runner."""

from emofuse.training.config import TrainConfig, load_train_config
from emofuse.training.data import FeatureDataset, collate, modality_dropout
from emofuse.training.fit import FitResult, Predictions, fit, predict_outputs, predict_proba, predict_proba_mean
from emofuse.training.kfold import FoldRun, KFoldResult, run_kfold
from emofuse.training.losses import FocalLoss, focal_loss, inverse_frequency_weights
from emofuse.training.task import EmotionTask

__all__ = [
    "EmotionTask",
    "FeatureDataset",
    "FitResult",
    "FocalLoss",
    "FoldRun",
    "KFoldResult",
    "Predictions",
    "TrainConfig",
    "collate",
    "fit",
    "focal_loss",
    "inverse_frequency_weights",
    "load_train_config",
    "modality_dropout",
    "predict_outputs",
    "predict_proba",
    "predict_proba_mean",
    "run_kfold",
]
