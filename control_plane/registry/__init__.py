"""The model registry: versioned model assets as `az ml model` has them.

A feature package: it meets the store only through its `StoreExtension` (`rows.py`) and
`Store.feature_read/feature_write`, and keeps each version's artifact content-addressed under
`<home>/models/` (`artifacts.py`). `ModelRegistry` (`service.py`) is what the CLI, the admin
API and deployment references use. See docs/registry.md.
"""

from control_plane.registry.asset import MODEL_TYPES, ModelContainer, ModelVersion
from control_plane.registry.reference import ModelReference, parse_reference
from control_plane.registry.rows import STORE_EXTENSION
from control_plane.registry.service import ModelRegistry, Recovery

__all__ = ["MODEL_TYPES", "STORE_EXTENSION", "ModelContainer", "ModelReference", "ModelRegistry",
           "ModelVersion", "Recovery", "parse_reference"]
