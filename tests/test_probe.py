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


def test_kernel_probe_blurs_and_sharpens_edges():
    """The transforms do what their names say: blur lowers a step edge's steepest rise,
    the unsharp mask overshoots it on the bright side."""
    import numpy as np

    from training.kernel_probe import TRANSFORMS

    x = np.zeros((1, 32, 32, 3), np.float32)
    x[:, :, 16:] = 100.0
    rise = {k: float(np.diff(fn(x)[0, 16, :, 1]).max()) for k, fn in TRANSFORMS.items()}
    assert rise["as read"] == 100.0
    assert rise["blur 1.0 px"] < rise["blur 0.7 px"] < 100.0
    assert TRANSFORMS["unsharp 1.5 px, 0.7"](x).max() > TRANSFORMS["unsharp 1.0 px, 0.3"](x).max()
    assert TRANSFORMS["unsharp 1.0 px, 0.3"](x).max() > 100.0


def test_kernel_probe_counts_only_bleed_free_slabs(labelled_phantoms, phantom_study,
                                                   tiny_model_dir, capsys):
    """Labelled folders: AUCs, and the flagged share over bleed-free slabs only; a folder of
    series without labels: every slab counts, no AUC. One row per transform, then the noise."""
    from training import kernel_probe
    from training.data import read_rsna_labels

    model = tiny_model_dir / "tiny_classifier.onnx"
    assert kernel_probe.main(["--models", str(model), "--data", str(labelled_phantoms),
                              str(phantom_study.folder), "--threshold", "0"]) == 0
    rows = [r.strip("| ").split(" | ") for r in capsys.readouterr().out.splitlines()[2:]]
    n = len(kernel_probe.TRANSFORMS) + 1
    assert len(rows) == 2 * n
    labelled, unlabelled = rows[:n], rows[n:]
    assert [r[2] for r in labelled[:-1]] == list(kernel_probe.TRANSFORMS)
    assert labelled[-1][2].startswith("brain noise")
    labels = read_rsna_labels(labelled_phantoms / "stage_2_train.csv")
    bleed_free = sum(1 for y in labels.values() if y[0] == 0)
    assert int(labelled[0][5]) == bleed_free < len(labels)  # 5 mm: every slice, bleed-free only
    assert labelled[0][3] == "100.0%"  # threshold 0 flags every counted slab
    assert labelled[0][6] != "—"  # 'any' AUC: the fixture has bleeding and bleed-free slabs
    assert unlabelled[0][5] == str(phantom_study.n_slices)  # 5 mm: every slice is sampled
    assert unlabelled[0][6] == "—"


def test_occlusion_map_finds_the_cell_the_score_depends_on():
    """A stand-in classifier whose score rises with the texture of one cell: blurring that cell
    is the only occlusion that lowers it."""
    import numpy as np

    from training.occlusion_map import occlusion

    rng = np.random.default_rng(0)
    x = np.full((192, 192, 3), 30.0, np.float32)
    x[48:64, 80:96] += rng.normal(0, 20, (16, 16, 3)).astype(np.float32)

    def run(v):
        s = v[:, 48:64, 80:96, 1].std(axis=(1, 2))
        p = 1 / (1 + np.exp(-(s - 5.0)))
        return np.repeat(p[:, None], 6, axis=1)

    drop = occlusion(run, x, grid=12, sigma=4.0)
    assert drop.shape == (12, 12)
    assert np.unravel_index(np.argmax(drop), drop.shape) == (3, 5)
    assert drop[3, 5] > 1.0 and np.abs(np.delete(drop.ravel(), 3 * 12 + 5)).max() < 1e-6


def test_occlusion_map_runs_on_a_series(phantom_study, tiny_model_dir, tmp_path, capsys):
    from training import occlusion_map

    model = tiny_model_dir / "tiny_classifier.onnx"
    out = tmp_path / "occ.png"
    assert occlusion_map.main([str(phantom_study.folder), "--model", str(model), "--out", str(out),
                               "--last", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| series | slab | any | drop share in bone cells | outside the head |"
    assert out.is_file() == (len(lines) > 2)
