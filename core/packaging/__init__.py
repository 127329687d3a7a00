"""Model images: a Docker build context per model version, built with the docker SDK.

``build_context`` writes the context (generated Dockerfile, slim pinned requirements, the ``core``
source, the model files and their hashes); ``build_image`` builds it and streams the log;
``image_tag`` turns any model name into a valid tag.
"""
from core.packaging.build import BuiltImage, ImageBuildError, build_image, image_tag
from core.packaging.context import build_context, context_labels, dockerfile, model_labels
from core.packaging.requirements import runtime_requirements

__all__ = [
    "BuiltImage",
    "ImageBuildError",
    "build_context",
    "build_image",
    "context_labels",
    "dockerfile",
    "image_tag",
    "model_labels",
    "runtime_requirements",
]
