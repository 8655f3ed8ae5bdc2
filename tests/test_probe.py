"""training/probe_real.py: the model card's occlusion and perturbation probe."""

from __future__ import annotations


def test_probe_real_reports_occlusion_and_perturbations(phantom_study, tiny_model_dir, capsys):
    """training/probe_real.py (the model card's probe) runs on any classifier and series."""
    from training import probe_real

    model = tiny_model_dir / "tiny_classifier.onnx"
    assert probe_real.main([str(phantom_study.folder), "--model", str(model), "--top", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("occlusion (4 slabs):")
    rows = [r for r in out.splitlines() if r.startswith("| ") and r[2:5] not in ("sla", "---")]
    assert [r.split(" | ")[0][2:] for r in rows][:2] == ["as read", "noise 3 HU"]
    assert len(rows) == 8
