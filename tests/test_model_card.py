"""The model card is rendered from the committed manifest, evaluation and trial files: every
placeholder filled, and the committed models/README.md is what the renderer writes now."""

from __future__ import annotations

import json
from pathlib import Path

from export import model_card

ROOT = Path(__file__).resolve().parents[1]


def test_card_renders_every_table_and_is_up_to_date() -> None:
    manifest = json.loads((ROOT / "models" / "manifest.json").read_text())
    evaluation = json.loads((ROOT / "models" / "evaluation.json").read_text())
    template = (ROOT / "export" / "model_card.md").read_text()
    card = model_card.render(manifest, evaluation, template)
    assert "<!--" not in card
    assert "## Against the targets" in card and "**bundled (stage " in card
    assert card == (ROOT / "models" / "README.md").read_text()


def test_quantization_row_names_the_label_that_lost_most() -> None:
    # the lowest AUC can rise while another label falls past the export's tolerance
    manifest = {"models": {"c.onnx": {"quantization": {
        "fp32": {"auc": {"any": 0.90, "epidural": 0.95}, "min_auc": 0.90},
        "int8": {"auc": {"any": 0.91, "epidural": 0.93}, "min_auc": 0.91},
        "kept": False,
    }}}}
    row = model_card.quant_rows(manifest)[2]
    assert row == "| `c.onnx` | min AUC 0.900 | min AUC 0.910 | -0.020 (epidural) | no |"
