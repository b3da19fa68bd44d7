"""Old import path of the predictor, kept so that ``from emofuse.predict import Predictor`` keeps
working; the code lives in `emofuse.inference.predictor` (also ``from emofuse import Predictor``)."""

from emofuse.inference.predictor import *  # noqa: F401,F403
from emofuse.inference.predictor import Prediction, Predictor, demo_checkpoint_dir, sample_clips  # noqa: F401
