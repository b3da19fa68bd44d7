"""Model zoo. Importing this package registers every model with the registry."""

from emofuse.models.base import EmotionModel, ModelOutput
from emofuse.models.registry import create_model, list_models, register_model

# Model modules register themselves on import.
from emofuse.models import _zoo  # noqa: F401  (imports all model modules)

__all__ = ["EmotionModel", "ModelOutput", "create_model", "list_models", "register_model"]
