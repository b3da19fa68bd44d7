"""Imports every model module so that ``@register_model`` runs.

The modules are discovered (`emofuse.model_options.model_module_names`: every module of this
package except ``base``, ``registry``, ``layers`` and private ones), so adding a model is adding
one file here; nothing lists the models by hand.
"""

import importlib

from emofuse.model_options import model_module_names

for _name in model_module_names():
    importlib.import_module(f"emofuse.models.{_name}")
