"""Building a model image with the docker SDK, and a safe tag for any model name.

The docker SDK talks to the engine's HTTP API directly: labels go in as JSON data, the context as
a tar stream, so no model string ever passes through a shell or into the Dockerfile text.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import BadInput
from core.packaging.context import context_labels

REPOSITORY = "shipml-model"
BUILD_TIMEOUT_S = 1800  # a cold build downloads ~150 MB of wheels


class ImageBuildError(BadInput):
    """The image could not be built: the message names the failing step and the engine's error."""


@dataclass(frozen=True)
class BuiltImage:
    """A built image: its id (``sha256:...``), the tag it got, and its size in bytes."""

    id: str
    tag: str
    size_bytes: int


def image_tag(model_name: str, version: int) -> str:
    """A valid docker tag for any model name: ``shipml-model/<slug>-<hash8>:v<version>``.

    The slug keeps the name readable (lowercase letters and digits, other runs become ``-``);
    the first 8 hex digits of the name's sha256 keep distinct names distinct ("My model" and
    "my-model" give different tags).
    """
    name = str(model_name)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48].strip("-") or "model"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{REPOSITORY}/{slug}-{digest}:v{int(version)}"


def build_image(
    context: Path,
    *,
    tag: str,
    labels: dict[str, str],
    on_log: Callable[[str], None] | None = None,
    network_mode: str = "host",
    client=None,
) -> BuiltImage:
    """Build ``context`` (from ``build_context``) into an image tagged ``tag``.

    Args:
        context: The build context folder.
        tag: The image tag (see ``image_tag``).
        labels: Extra image labels; they are added to the model's own labels (name, version,
            data hash, sha256) that ``build_context`` recorded, and win on a clash.
        on_log: Called with every line of the build log as it arrives (for progress display).
        network_mode: The build containers' network; ``host`` works on engines without a bridge.
        client: A ``docker.DockerClient``; default: one from the environment (DOCKER_HOST).

    Returns:
        The image's id, tag and size.

    Raises:
        ImageBuildError: The engine is unreachable, or a build step failed (the message names
            the step and the error).
    """
    import docker  # imported here so that importing core.packaging never needs the SDK

    if client is None:
        try:
            client = docker.from_env(timeout=BUILD_TIMEOUT_S)
            client.ping()
        except Exception:  # noqa: BLE001 - the SDK raises many kinds; the user needs one line
            raise ImageBuildError(
                "no Docker engine answers (is dockerd running and DOCKER_HOST right?)"
            ) from None
    all_labels = {**context_labels(context), **{str(k): str(v) for k, v in labels.items()}}
    step, image_id, error = "", None, None
    try:
        stream = client.api.build(
            path=str(context),
            tag=tag,
            labels=all_labels,
            network_mode=network_mode,
            rm=True,
            forcerm=True,  # remove intermediate containers of failed steps too
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                error = str(chunk.get("error") or "").strip()
                continue
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = aux["ID"]
            text = chunk.get("stream") or chunk.get("status") or ""
            for line in str(text).splitlines():
                line = line.rstrip()
                if not line:
                    continue
                if line.startswith("Step "):
                    step = line
                if on_log is not None:
                    on_log(line)
    except docker.errors.APIError as exc:
        error = str(exc.explanation or exc)
    if error or image_id is None:
        where = f" at {_short(step)}" if step else ""
        raise ImageBuildError(f"the image build failed{where}: {_short(error or 'no image produced')}")
    image = client.images.get(image_id)
    return BuiltImage(id=image.id, tag=tag, size_bytes=int(image.attrs.get("Size") or 0))


def _short(text: str, limit: int = 300) -> str:
    """One line, at most ``limit`` characters (an engine error can be a whole pip log)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
