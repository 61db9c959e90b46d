"""masksmith: from annotated photos to a trained segmentation model and results you can use."""

from masksmith.errors import MasksmithError

__version__ = "0.1.0"
__all__ = ["MasksmithError", "__version__"]
