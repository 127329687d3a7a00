"""Kubernetes names from any model name: valid DNS-1123 labels, distinct for distinct names."""
from __future__ import annotations

import pytest

from core.deploy.names import DNS_LABEL, MAX_NAME, dns_label

HOSTILE = [
    "churn", "Churn", "a b", "a_b", "a.b", "---", "...", "9lives", "x" * 100, "ümlaut ñame",
    "$(rm -rf /)", "'; DROP TABLE deployment; --", "../../etc/passwd", "name\nwith\nnewlines",
    "FROM scratch\nRUN curl evil", "{{ .Values.x }}", "a" * 49 + "-", "😀", "", " ",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_every_name_gives_a_valid_short_label(name: str) -> None:
    label = dns_label(name, 12)
    assert DNS_LABEL.fullmatch(label) and len(label) <= MAX_NAME <= 63
    assert label.startswith("shipml") and label.endswith("-v12")


def test_distinct_names_stay_distinct() -> None:
    labels = {dns_label(name, 1) for name in HOSTILE}
    assert len(labels) == len(set(HOSTILE))
    assert dns_label("churn", 3) == "shipml-churn-v3"  # a clean name is kept readable
    assert dns_label("churn", 3) != dns_label("churn", 4)
