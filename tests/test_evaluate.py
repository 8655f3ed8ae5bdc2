"""training/evaluate.py's series-level figures (the verdict), with tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from tiny_models import tiny_classifier

from ichinfer.labels import LABELS


@pytest.mark.parametrize("series_threshold", [0.0, 1.01])
def test_series_figures_follow_the_verdict_thresholds(labelled_phantoms, tmp_path,
                                                     series_threshold):
    from training.evaluate import evaluate_classifier

    model = tmp_path / "tiny.onnx"
    meta = {"thresholds": json.dumps(dict.fromkeys(LABELS, 1.01)),  # no slice ever flagged
            "series_thresholds": json.dumps(dict.fromkeys(LABELS, series_threshold))}
    onnx.save(tiny_classifier(meta=meta), model)
    figures = evaluate_classifier(model, labelled_phantoms)
    # two series with a bleed: too few for an interval, so the count stands in the card instead
    assert figures["positive_series"]["any"] == 2
    assert figures["auc_ci95"]["any"] is None and "whole series" in figures["interval"]
    series = figures["series"]
    assert series["series"] == 4 and series["bleed_free_series"] == 2
    assert series["any"]["positive_series"] == 2
    every = series_threshold == 0.0  # 0: every series called; above 1: none
    for k in LABELS:
        row = series[k]
        assert row["verdict"]["threshold"] == series_threshold
        assert row["verdict"]["specificity"] == (0.0 if every else 1.0)
        if row["positive_series"]:
            assert row["verdict"]["sensitivity"] == (1.0 if every else 0.0)
            assert row["at_slice_threshold"]["sensitivity"] == 0.0
        assert row["at_slice_threshold"]["specificity"] == 1.0


def test_hard_negatives_refuses_folders_with_bleeds(labelled_phantoms):
    from training import hard_negatives

    with pytest.raises(SystemExit, match="slices have a bleed"):
        hard_negatives.main(["--data", str(labelled_phantoms)])


def test_hard_negatives_counts_what_the_models_mark(tmp_path, tiny_model_dir, capsys):
    from training import hard_negatives
    from training.synth import generate

    generate(tmp_path / "neg", 2, 5, size=64, positive_fraction=0.0, thin_fraction=0.0)
    assert hard_negatives.main([
        "--data", str(tmp_path / "neg"),
        "--classifiers", str(tiny_model_dir / "tiny_classifier.onnx"),
        "--segmenters", str(tiny_model_dir / "tiny_segmenter.onnx"),
    ]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| `")]
    assert len(rows) == 2
    # the tiny segmenter returns the 50-90 HU prior: it marks something on every head
    assert " 0 / " not in rows[1] and "mL" in rows[1]


def test_hard_negatives_segmenter_at_each_threshold(tmp_path, tiny_model_dir, capsys):
    from training import hard_negatives
    from training.synth import generate

    generate(tmp_path / "neg", 2, 5, size=64, positive_fraction=0.0, thin_fraction=0.0)
    assert hard_negatives.main([
        "--data", str(tmp_path / "neg"), "--mask-thresholds", "0.5", "1.5",
        "--segmenters", str(tiny_model_dir / "tiny_segmenter.onnx"),
    ]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| `")]
    assert [r.split(" | ")[0].split("` ")[1] for r in rows] == ["at 0.50", "at 1.50"]
    assert " 0 / " not in rows[0]  # its prior is 1 on dense pixels: marked at 0.5
    assert " 0 / " in rows[1] and "| 0.0 mL" in rows[1]  # nothing reaches 1.5
    # one run for both thresholds: 0.50's row is the row at the model's own threshold, 0.5
    assert hard_negatives.main(["--data", str(tmp_path / "neg"), "--segmenters",
                                str(tiny_model_dir / "tiny_segmenter.onnx")]) == 0
    (own,) = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| `")]
    assert own.split(" | ")[1:] == rows[0].split(" | ")[1:]


def test_hard_negatives_paired_difference(tmp_path, tiny_model_dir, capsys):
    from pathlib import Path

    from training import hard_negatives
    from training.synth import generate

    generate(tmp_path / "neg", 2, 5, size=64, positive_fraction=0.0, thin_fraction=0.0)
    model = str(tiny_model_dir / "tiny_classifier.onnx")
    assert hard_negatives.main(
        ["--data", str(tmp_path / "neg"), "--paired", "--classifiers", model, model]
    ) == 0
    out = capsys.readouterr().out
    assert "paired draws of the 2 series" in out
    assert out.splitlines()[-2] == f"| `{model}` | +0 [+0, +0] |"  # itself: nothing moves

    # four series of five slices; the later model flags all of the first series only
    groups = np.repeat(["s0", "s1", "s2", "s3"], 5)
    first = np.zeros(20, dtype=bool)
    later = groups == "s0"
    row = hard_negatives.paired_row(Path("m"), first, later, groups)
    assert row.startswith("| `m` | +5 [")
    low, high = (float(v) for v in row.split("[")[1].split("]")[0].split(", "))
    # one series holds every extra flag: a draw without it (a third of draws) adds none
    assert low == 0 and high >= 10


def test_precision_study_scores_and_times_every_variant(labelled_phantoms, tiny_model_dir,
                                                       capsys):
    from training import precision_study

    model = tiny_model_dir / "tiny_classifier.onnx"
    assert precision_study.main(["--model", str(model), "--data", str(labelled_phantoms),
                                 "--rounds", "1", "--calibration", "16"]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ")][2:]
    assert [r.split(" | ")[0] for r in rows] == [
        "| float32", "| int8 (export's recipe)", "| int8 (convolutions only)", "| fp16"]
    assert " | +0.0000 | yes | " in rows[0] and rows[0].endswith(" | 1.00x |")


def test_several_folders_are_scored_as_one_set(labelled_phantoms, tmp_path):
    """--data A B: the union of the folders, each slice's truth from its own folder."""
    from tiny_models import tiny_segmenter

    from training.evaluate import evaluate_classifier, evaluate_segmenter
    from training.synth import make_study, write_label_csv, write_studies_csv, write_study

    other = tmp_path / "other"
    records = [write_study(make_study(800 + i, size=96, positive=i == 0, thin=False), other,
                           study_index=i) for i in range(2)]  # fmt: skip
    write_label_csv(records, other / "stage_2_train.csv")
    write_studies_csv(records, other / "studies.csv")
    clf, seg = tmp_path / "clf.onnx", tmp_path / "seg.onnx"
    onnx.save(tiny_classifier(), clf)
    onnx.save(tiny_segmenter(), seg)
    one, two = (evaluate_classifier(clf, d) for d in (labelled_phantoms, other))
    both = evaluate_classifier(clf, [labelled_phantoms, other])
    assert both["slices"] == one["slices"] + two["slices"] > two["slices"] > 0
    assert both["series"]["series"] == 6 and both["positive_series"]["any"] == 3
    one, two = (evaluate_segmenter(seg, d) for d in (labelled_phantoms, other))
    both = evaluate_segmenter(seg, [labelled_phantoms, other])
    for key in ("slices", "bleeding_slices", "bleeding_series", "volume_series"):
        assert both[key] == one[key] + two[key], key
    assert two["bleeding_slices"] > 0


def test_bleed_areas_per_label_from_the_painted_mask():
    import numpy as np

    from training.auc_by_size import slice_areas_mm2

    mask = np.zeros((8, 8), np.uint8)
    mask[0, :3] = 1  # 3 px epidural
    mask[5, :5] = 5  # 5 px subdural
    areas = slice_areas_mm2(mask, 0.5)
    assert areas.tolist() == [2.0, 0.75, 0.0, 0.0, 0.0, 1.25]  # any = all of them


def test_auc_by_size_bins_every_bleeding_slice_once(labelled_phantoms, tiny_model_dir,
                                                    capsys):
    from training import auc_by_size

    assert auc_by_size.main(["--data", str(labelled_phantoms), "--model",
                             str(tiny_model_dir / "tiny_classifier.onnx"),
                             "--bins", "0", "100"]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ")][2:]
    assert [r.split(" | ")[0] for r in rows] == [f"| {label}" for label in LABELS]
    for row in rows:
        cells = row.strip("| ").split(" | ")[1:]
        total = int(cells[0].split(",")[0])
        assert sum(int(c.split(",")[0]) for c in cells[1:]) == total
    assert int(rows[0].split(" | ")[1].split(",")[0]) > 0  # the fixture has bleeding slices


def test_auc_by_size_splits_series_by_thickness(labelled_phantoms, tiny_model_dir, capsys):
    from training import auc_by_size

    model = str(tiny_model_dir / "tiny_classifier.onnx")
    assert auc_by_size.main(["--data", str(labelled_phantoms), "--model", model,
                             "--thin-below", "5.5"]) == 0
    out = capsys.readouterr().out
    whole, thin, thick = out.split("\nSeries ")
    rows = [r for r in whole.splitlines() if r.startswith("| ")]
    n = int(whole.split(": ")[1].split()[0])
    # the fixture's series are all 5 mm: every slice is in the thinner group, none in the other
    assert thin.startswith(f"thinner than 5.5 mm: {n} slices")
    assert [r for r in thin.splitlines() if r.startswith("| ")] == rows
    assert thick.startswith("5.5 mm or thicker: 0 slices")


def test_hard_negatives_refuses_to_pair_other_slices(monkeypatch, capsys):
    import numpy as np

    from training import hard_negatives

    # a classifier with other slabs or context sees other slices: its flags cannot be paired
    runs = {"A": ["s1", "s1", "s2"], "B": ["s1", "s1", "s2"], "C": ["s1", "s2", "s2"]}
    monkeypatch.setattr(hard_negatives, "check_bleed_free", lambda folders: None)
    monkeypatch.setattr(hard_negatives, "classifier_flags", lambda path, folders: (
        np.array([True, False, False]), np.array(runs[str(path)]), 0, 2))
    assert hard_negatives.main(["--data", "unused", "--paired", "--classifiers", "A", "B",
                                "C"]) == 0
    out = capsys.readouterr().out
    assert "| `B` | +0 [" in out
    assert "| `C` | not paired: its slices differ from the first's |" in out


def test_compare_models_mirror_rows(labelled_phantoms, tiny_model_dir, capsys):
    from training import compare_models

    assert compare_models.main([
        "--data", str(labelled_phantoms), "--mirror", "--models",
        str(tiny_model_dir / "tiny_classifier.onnx"), str(tiny_model_dir / "tiny_segmenter.onnx"),
    ]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| `")]
    assert [r.split(" | ")[0].endswith("mirrored") for r in rows] == [False, True, False, True]
    # the tiny segmenter returns its 50-90 HU prior, which commutes with mirroring: mirrored
    # back, the averaged maps are the plain ones
    assert rows[2].split(" | ")[1:] == rows[3].split(" | ")[1:]


def test_compare_models_paired_differences(labelled_phantoms, tiny_model_dir, capsys):
    from training import compare_models

    model = str(tiny_model_dir / "tiny_classifier.onnx")
    assert compare_models.main(
        ["--data", str(labelled_phantoms), "--paired", "--models", model, model]
    ) == 0
    out = capsys.readouterr().out
    assert "2 000 paired draws of whole patients" in out
    row = [r for r in out.splitlines() if r.startswith("| `")][-1]
    cells = row.strip("| ").split(" | ")[1:]
    assert len(cells) == len(LABELS) + 2
    if cells[-1] == "no label has an interval":
        cells.pop()
    for cell in cells:  # a model against itself: nothing moves (NaN: a label the fixture lacks)
        assert cell.startswith(("+0.000", "+nan")), cell
        assert "[+0.000, +0.000]" in cell or "fewer than 3 patients" in cell
    assert cells[0].startswith("+0.000")  # `any` is in the fixture


def test_compare_models_pairs_segmenters(labelled_phantoms, tiny_model_dir, capsys):
    from training import compare_models

    model = str(tiny_model_dir / "tiny_segmenter.onnx")
    assert compare_models.main(
        ["--data", str(labelled_phantoms), "--paired", "--mask-thresholds", "0.3", "0.6",
         "--models", model, model]
    ) == 0
    out = capsys.readouterr().out
    assert "Difference in Dice from" in out and "2 000 paired draws of whole patients" in out
    rows = [r for r in out.split("Difference in Dice from")[1].splitlines()
            if r.startswith("| `")]
    assert [r.split(" | ")[1] for r in rows] == ["0.30", "0.60"]  # one row per threshold
    for row in rows:  # a model against itself: nothing moves
        for cell in row.strip("| ").split(" | ")[2:]:
            assert cell.startswith("+0.000"), cell
            assert "[+0.000, +0.000]" in cell or "fewer than 3 patients" in cell


def test_compare_models_pairs_thresholds_of_one_segmenter(labelled_phantoms, tiny_model_dir,
                                                          capsys):
    from training import compare_models

    model = tiny_model_dir / "tiny_segmenter.onnx"
    own = compare_models.model_info(model)["mask_threshold"]
    swept = [0.3, 0.6]
    assert own not in swept
    assert compare_models.main(
        ["--data", str(labelled_phantoms), "--paired", "--mask-thresholds", *map(str, swept),
         "--models", str(model)]
    ) == 0
    out = capsys.readouterr().out
    head, paired = out.split("Difference in Dice from")
    assert f"at its own mask threshold {own:.2f}" in paired
    rows = [r.strip("| ").split(" | ") for r in paired.splitlines() if r.startswith("| 0.")]
    assert [r[0] for r in rows] == ["0.30", "0.60"]  # the swept ones, not the model's own
    for cells in (r[1:] for r in rows):  # the tiny segmenter's maps are its binary prior
        assert cells[0] in ("+0.000 [+0.000, +0.000]", "+0.000 (fewer than 3 patients)"), cells


def test_paired_thresholds_difference(capsys):
    import numpy as np

    from training.compare_models import pooled_dice, print_paired_thresholds, slice_overlaps

    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(10), 4)  # 10 patients of 4 slices
    truth = np.zeros((40, 12, 12))
    truth[::2, 3:8, 3:8] = 1
    prob = np.clip(0.6 * truth + 0.5 * rng.random(truth.shape), 0, 1)[..., None]
    at = {t: slice_overlaps(prob, truth, t) for t in (0.5, 0.7, 0.9)}
    print_paired_thresholds(Path("m.onnx"), groups, 0.7, at, digits=4)
    out = capsys.readouterr().out
    assert "at its own mask threshold 0.70" in out and "10 patients, 10 with a bleeding" in out
    rows = {r.split(" | ")[0].strip("| "): r.split(" | ")[1]
            for r in out.splitlines() if r.startswith("| 0.")}
    assert list(rows) == ["0.50", "0.90"]
    for t in (0.5, 0.9):
        gain = pooled_dice(at[t]) - pooled_dice(at[0.7])
        assert abs(gain) > 0.01  # the thresholds do differ here
        assert rows[f"{t:.2f}"].startswith(f"{gain:+.4f} ["), rows


def test_dice_cells_difference_and_interval():
    import numpy as np

    from training.compare_models import dice_cells, slice_overlaps

    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(12), 5)  # 12 patients of 5 slices
    truth = np.zeros((60, 16, 16))
    truth[::2, 4:10, 4:10] = 1  # every patient has bleeding slices
    worse = np.where(rng.random(truth.shape) < 0.3, 1 - truth, truth)  # 30 % of pixels wrong
    better = np.where(rng.random(truth.shape) < 0.1, 1 - truth, truth)  # 10 % wrong
    a = slice_overlaps(worse[..., None], truth, 0.5)
    b = slice_overlaps(better[..., None], truth, 0.5)
    t, m_a, m_b = truth > 0, worse > 0.5, better > 0.5
    pooled_a = 2 * (t & m_a).sum() / (t.sum() + m_a.sum())
    pooled_b = 2 * (t & m_b).sum() / (t.sum() + m_b.sum())
    cells = dice_cells(a, b, groups)
    assert cells[0].startswith(f"{pooled_b - pooled_a:+.3f} [")
    low, high = (float(v) for v in cells[0].split("[")[1].rstrip("]").split(", "))
    assert 0 < low <= pooled_b - pooled_a <= high  # better in every draw
    bleeding = t.any(axis=(1, 2))
    per = [2 * (t[i] & m[i]).sum() / (t[i].sum() + m[i].sum()) for m in (m_a, m_b)
           for i in np.flatnonzero(bleeding)]
    half = len(per) // 2
    assert cells[1].startswith(f"{np.mean(per[half:]) - np.mean(per[:half]):+.3f} [")
    two = dice_cells(a[:10], b[:10], groups[:10])  # two patients: no interval
    assert all(c.endswith("(fewer than 3 patients)") for c in two)


def test_paired_cells_difference_and_interval():
    import numpy as np

    from ichinfer.metrics import roc_auc
    from training.compare_models import paired_cells

    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(20), 10)  # 20 patients of 10 slices
    y = np.zeros((200, len(LABELS)))
    y[:, 0] = np.repeat(np.arange(20) % 2, 10)  # `any` in 10 patients
    y[:20, 1] = 1  # `epidural` in two patients only
    y[:, 2:] = y[:, :1]
    a = np.clip(0.35 * y + rng.random(y.shape) * 0.8, 0, 1)  # overlapping scores
    b = a.copy()
    b[:, 0] = 0.9 * y[:, 0] + 0.05  # perfect on `any`
    cells = paired_cells(a, b, y, groups)
    gain = roc_auc(y[:, 0], b[:, 0]) - roc_auc(y[:, 0], a[:, 0])
    assert gain > 0.05
    assert cells[0].startswith(f"{gain:+.3f} [")
    low, high = (float(v) for v in cells[0].split("[")[1].rstrip("]").split(", "))
    assert low <= gain <= high and low > 0  # b is better in every draw
    assert cells[1] == "+0.000 (fewer than 3 patients)"  # epidural: two patients
    assert cells[-2].endswith("(fewer than 3 patients)")  # so no interval for the mean
    # the mean over the other five labels, where only `any` moved
    assert cells[-1].startswith(f"{gain / 5:+.3f} [")
    assert cells[-1].endswith(
        "] (any, intraparenchymal, intraventricular, subarachnoid, subdural)"
    )


def test_print_paired_refuses_rows_of_other_patients(capsys):
    import numpy as np

    from training.compare_models import print_paired

    rng = np.random.default_rng(2)
    y = np.zeros((40, len(LABELS)))
    y[::2] = 1
    groups = np.repeat(np.array([f"p{i}" for i in range(8)]), 5)
    shuffled = groups[::-1].copy()  # the same targets, but rows of other patients
    prob = rng.random(y.shape)
    inputs = {"a": (None, y, groups), "b": (None, y, groups), "c": (None, y, shuffled)}
    print_paired([("A", "a", prob), ("B", "b", prob), ("C", "c", prob)], inputs)
    out = capsys.readouterr().out
    assert "| `B` | +0.000 [" in out
    assert "| `C` | not paired: its inputs differ from the first model's |" in out


def test_context_features_take_the_neighbours_by_distance():
    import numpy as np

    from training.context_study import OFFSETS_MM, features, logit

    loc = np.array([0.0, 5.0, 10.0, 20.0])  # a gap: nothing at 15 mm
    probs = np.zeros((4, len(LABELS)))
    probs[:, 2] = [0.1, 0.2, 0.3, 0.4]
    f = features(probs, loc, 2)
    assert f.shape == (4, 2 * len(OFFSETS_MM))
    at = {off: k for k, off in enumerate(OFFSETS_MM)}
    z = logit(probs[:, 2])
    # slice at 5 mm: itself, 0 mm at -5, 10 mm at +5, 20 mm at +15, none at +10 or -10
    row = f[1]
    assert row[2 * at[0.0]] == z[1] and row[2 * at[-5.0]] == z[0] and row[2 * at[5.0]] == z[2]
    assert row[2 * at[15.0]] == z[3] and row[2 * at[15.0] + 1] == 1.0
    assert row[2 * at[10.0]] == 0.0 and row[2 * at[10.0] + 1] == 0.0
    assert row[2 * at[-10.0] + 1] == 0.0


def test_context_study_runs_end_to_end(labelled_phantoms, tiny_model_dir, capsys):
    from training import context_study

    assert context_study.main(["--fit", str(labelled_phantoms), "--score", str(labelled_phantoms),
                               "--model", str(tiny_model_dir / "tiny_classifier.onnx")]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| labelled")]
    assert len(rows) == 1 and rows[0].count("→") == len(LABELS)


def test_fusion_study_runs_end_to_end(labelled_phantoms, tiny_model_dir, capsys):
    from training import fusion_study

    assert fusion_study.main([
        "--fit", str(labelled_phantoms), "--score", str(labelled_phantoms),
        "--real", str(labelled_phantoms / "stage_2_train"),
        "--classifier", str(tiny_model_dir / "tiny_classifier.onnx"),
        "--segmenter", str(tiny_model_dir / "tiny_segmenter.onnx")]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [r.strip("| ").split(" | ") for r in out if r.startswith("| ") and "---" not in r]
    assert [r[0] for r in rows[1:]] == ["classifier", "segmenter peak", "segmenter pixels",
                                        "fused"]
    assert all(len(r) == 2 + len(fusion_study.BINS_MM2) for r in rows)
    flagged = [line for line in out if line.startswith("stage_2_train: ")]
    assert len(flagged) == 4  # one line per series of the folder


def test_gate_sweep_runs_end_to_end(labelled_phantoms, tiny_model_dir, capsys):
    from training import gate_sweep

    assert gate_sweep.main([
        "--data", str(labelled_phantoms), "--real", str(labelled_phantoms / "stage_2_train"),
        "--thresholds", "0", "1.0",
        "--classifier", str(tiny_model_dir / "tiny_classifier.onnx"),
        "--segmenter", str(tiny_model_dir / "tiny_segmenter.onnx")]) == 0
    rows = [r.strip("| ").split(" | ") for r in capsys.readouterr().out.splitlines()
            if r.startswith("| ") and "---" not in r][1:]
    assert [r[0] for r in rows] == ["0.000 (no gate)", "1.000"]
    assert float(rows[0][3].split()[0]) > 0  # the ungated tiny segmenter marks something
    assert float(rows[1][3].split()[0]) == 0 and rows[1][4] == "0"  # nothing reaches 1.0


def test_hysteresis_keeps_regions_reaching_the_high_mask_and_grows_across_slices():
    from training.hysteresis_study import hysteresis

    low = [np.zeros((8, 8), bool) for _ in range(3)]
    high = [np.zeros((8, 8), bool) for _ in range(3)]
    low[0][1:3, 1:3] = low[0][5:7, 5:7] = True  # two regions, one reaching the high mask
    high[0][1, 1] = True
    low[1][2:4, 2:4] = True  # overlaps the kept region of slice 0, no high pixel of its own
    low[1][6:8, 0:2] = True  # overlaps nothing kept
    low[2][3:5, 3:5] = True  # overlaps slice 1's first region only
    flat = hysteresis(low, high, across=False)
    assert flat[0].sum() == 4 and flat[0][1, 1] and not flat[0][5, 5]
    assert not flat[1].any() and not flat[2].any()
    grown = hysteresis(low, high, across=True)
    assert (grown[0] == flat[0]).all()
    assert grown[1][2, 2] and not grown[1][7, 0] and grown[1].sum() == 4
    assert grown[2].sum() == 4  # reached through slice 1


def test_hysteresis_study_runs_end_to_end(labelled_phantoms, tiny_model_dir, capsys):
    from training import hysteresis_study

    assert hysteresis_study.main([
        "--data", str(labelled_phantoms), "--real", str(labelled_phantoms / "stage_2_train"),
        "--lows", "0.2", "--segmenter", str(tiny_model_dir / "tiny_segmenter.onnx")]) == 0
    rows = [r.strip("| ").split(" | ") for r in capsys.readouterr().out.splitlines()
            if r.startswith("| ") and "---" not in r]
    shares = rows[1:7]
    assert [r[0] for r in shares] == ["all", *hysteresis_study.SUBTYPES]
    assert int(shares[0][2]) == sum(int(r[2]) for r in shares[1:]) > 0  # the bleeds' pixels
    assert all(0.0 <= float(r[4]) <= 1.0 for r in shares)  # the model-grid ceiling
    masks = rows[8:]
    assert [r[0].split(",")[0] for r in masks] == [
        "own threshold (0.5)", "hysteresis 0.2 to 0.5", "hysteresis 0.2 to 0.5"]
    marked = [float(r[3].split()[0]) for r in masks]
    assert marked[0] <= marked[1] <= marked[2]  # hysteresis only adds, across slices more


def test_seg_breakdown_reports_the_model_grid_ceiling(labelled_phantoms, tmp_path, capsys):
    from tiny_models import write_model_dir

    from training import seg_breakdown

    ceilings = {}
    for size in (32, 96):  # the phantoms are 96²: a third of their size, and their own
        folder = write_model_dir(tmp_path / str(size), size=size)
        assert seg_breakdown.main(["--data", str(labelled_phantoms), "--model",
                                   str(folder / "tiny_segmenter.onnx")]) == 0
        rows = {r.strip("| ").split(" | ")[0]: r.strip("| ").split(" | ")
                for r in capsys.readouterr().out.splitlines()
                if r.startswith("| ") and "---" not in r}
        ceilings[size] = float(rows["all"][3])
    assert ceilings[96] == 1.0  # nothing lost on the image's own grid
    assert 0.5 < ceilings[32] < 1.0  # edge pixels lost on a grid a third of the size


def test_thresholds_from_one_run_score_as_a_run_at_each(labelled_phantoms, tmp_path):
    """evaluate_segmenter_thresholds: each threshold's figures are evaluate_segmenter's at that
    threshold, and the differences are against the reference threshold, inside their interval."""
    from tiny_models import tiny_segmenter

    from training.evaluate import evaluate_segmenter, evaluate_segmenter_thresholds

    seg = tmp_path / "seg.onnx"
    onnx.save(tiny_segmenter(), seg)  # its own mask threshold: 0.5
    figures = evaluate_segmenter_thresholds(seg, labelled_phantoms, [0.9, 0.2])
    assert figures["reference_threshold"] == 0.5
    rows = {row["threshold"]: row for row in figures["thresholds"]}
    assert list(rows) == [0.2, 0.5, 0.9]  # sorted, the reference among them
    assert figures["bleed_free_series"] == 2 and figures["bleeding_series"] == 2
    for t, row in rows.items():
        alone = evaluate_segmenter(seg, labelled_phantoms, threshold=t)
        assert row["dice_pooled"] == pytest.approx(alone["dice_pooled"], abs=1e-12)
        assert row["dice_mean_bleeding_slices"] == pytest.approx(
            alone["dice_mean_bleeding_slices"], abs=1e-12)
        assert row["volume_median_relative_error"] == pytest.approx(
            alone["volume_median_relative_error"], abs=1e-12)
        assert figures["slices"] == alone["slices"]
        assert figures["bleeding_slices"] == alone["bleeding_slices"]
    assert "dice_pooled_minus_reference" not in rows[0.5]
    assert len({row["dice_pooled"] for row in rows.values()}) == 3
    assert rows[0.2]["bleed_free_volume_ml"] >= rows[0.9]["bleed_free_volume_ml"]
    for t in (0.2, 0.9):
        for key, figure in (("dice_pooled", "dice_pooled_minus_reference"),
                            ("dice_mean_bleeding_slices", "dice_mean_minus_reference")):
            diff = rows[t][figure]
            assert diff == pytest.approx(rows[t][key] - rows[0.5][key], abs=1e-12)
            low, high = rows[t][figure + "_ci95"]
            assert low <= diff <= high


def test_evaluate_scores_several_mask_thresholds_from_the_command_line(labelled_phantoms,
                                                                       tiny_model_dir, tmp_path):
    from training.evaluate import main

    out = tmp_path / "thresholds.json"
    assert main(["--data", str(labelled_phantoms), "--model-dir", str(tiny_model_dir),
                 "--only", "segment", "--mask-thresholds", "0.3", "0.7",
                 "--mask-threshold", "0.7", "--out", str(out)]) == 0
    (figures,) = json.loads(out.read_text())["segmenters"]
    assert figures["reference_threshold"] == 0.7
    assert [row["threshold"] for row in figures["thresholds"]] == [0.3, 0.7]
    with pytest.raises(SystemExit):
        main(["--data", str(labelled_phantoms), "--model-dir", str(tiny_model_dir),
              "--mask-thresholds", "0.3", "--gate"])
