"""Safe names derived from any model name: Kubernetes DNS-1123 labels and folder-free ids."""
from __future__ import annotations

import hashlib
import re

MAX_NAME = 50  # under 63 so ReplicaSet and Pod suffixes still fit in a label
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def dns_label(model_name: str, version: int, *, prefix: str = "shipml") -> str:
    """A DNS-1123 (and DNS-1035) label naming one model version, e.g. ``shipml-churn-v3``.

    Anything but lowercase letters and digits becomes a dash. When that changed the name
    (``Churn`` vs ``churn``, ``a b`` vs ``a_b``), six hex digits of the name's hash keep
    different names apart. The result starts with a letter, ends with a letter or digit and
    is at most ``MAX_NAME`` characters long.
    """
    slug = _NOT_ALNUM.sub("-", str(model_name).lower()).strip("-")
    tail = f"-v{int(version)}"
    if slug != model_name:
        tail = f"-{hashlib.sha256(str(model_name).encode()).hexdigest()[:6]}{tail}"
    room = MAX_NAME - len(prefix) - 1 - len(tail)
    slug = slug[:room].strip("-")
    name = f"{prefix}-{slug}{tail}" if slug else f"{prefix}{tail}"
    assert DNS_LABEL.fullmatch(name) and len(name) <= MAX_NAME, name
    return name
