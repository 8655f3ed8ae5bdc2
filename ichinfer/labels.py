"""The six RSNA 2019 intracranial hemorrhage labels, in the order the models output them."""

from __future__ import annotations

LABELS: tuple[str, ...] = (
    "any",
    "epidural",
    "intraparenchymal",
    "intraventricular",
    "subarachnoid",
    "subdural",
)
#: RSNA 2019 weighted log loss: ``any`` counts twice.
LABEL_WEIGHTS: tuple[float, ...] = (2.0, 1.0, 1.0, 1.0, 1.0, 1.0)
