"""Operating points: thresholds reaching a target sensitivity, intervals, the thresholds file."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ichinfer.calibrate import (
    calibrate,
    delong_ci,
    read_rsna_csv,
    threshold_for_sensitivity,
    wilson_ci,
)
from ichinfer.classification import load_thresholds
from ichinfer.cli import app
from ichinfer.errors import InvalidInputError
from ichinfer.labels import LABELS
from ichinfer.metrics import roc_auc


def test_wilson_interval_known_values():
    lo, hi = wilson_ci(8, 10)
    assert (lo, hi) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_ci(10, 10)[1] == pytest.approx(1.0) and wilson_ci(0, 10)[0] == pytest.approx(0.0)
    assert all(np.isnan(wilson_ci(0, 0)))


def test_delong_matches_auc_and_bootstrap_width():
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.3
    s = np.where(y, rng.normal(1.0, 1.0, 400), rng.normal(0.0, 1.0, 400)).round(1)  # ties
    auc, lo, hi = delong_ci(y, s)
    assert auc == pytest.approx(roc_auc(y, s), abs=1e-12)
    boot = []
    for _ in range(300):
        i = rng.integers(0, 400, 400)
        boot.append(roc_auc(y[i], s[i]))
    b_lo, b_hi = np.percentile(boot, [2.5, 97.5])
    assert lo < auc < hi
    assert (hi - lo) == pytest.approx(b_hi - b_lo, rel=0.25)
    assert all(np.isnan(delong_ci(np.ones(5), np.arange(5))))


def test_threshold_reaches_target_sensitivity():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 1, 0, 1], bool)
    s = np.array([0.9, 0.8, 0.7, 0.3, 0.6, 0.2, 0.1, 0.65, 0.5, 0.4])
    for target in (0.5, 0.8, 0.95, 1.0):
        t = threshold_for_sensitivity(y, s, target)
        assert ((s >= t) & y).sum() / y.sum() >= target
        # the highest such threshold: any higher positive score misses the target
        higher = s[y & (s > t)]
        if higher.size:
            assert ((s >= higher.min()) & y).sum() / y.sum() < target


def _write_rsna(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ID", "Label"])
        w.writerows(rows)


def _site(tmp_path, n=300, seed=1):
    rng = np.random.default_rng(seed)
    truth, pred = [], []
    for i in range(n):
        image = f"ID_{i:06x}"
        y_any = rng.random() < 0.4
        for label in LABELS:
            y = y_any if label in ("any", "subdural") else False
            p = float(np.clip(rng.normal(0.65 if y else 0.35, 0.15), 0, 1))
            truth.append([f"{image}_{label}", int(y)])
            pred.append([f"{image}_{label}", f"{p:.6f}"])
    _write_rsna(tmp_path / "labels.csv", truth)
    _write_rsna(tmp_path / "pred.csv", pred)
    return tmp_path / "labels.csv", tmp_path / "pred.csv"


def test_calibrate_reports_and_writes_thresholds(tmp_path):
    labels, pred = _site(tmp_path)
    cal = calibrate(read_rsna_csv(labels), scores=read_rsna_csv(pred), target_sensitivity=0.9)
    assert cal.n_images == 300 and cal.n_unmatched == 0
    anyc = cal.labels["any"]
    assert anyc.chosen.sensitivity >= 0.9
    lo, hi = anyc.chosen.sensitivity_ci
    assert lo < anyc.chosen.sensitivity <= hi
    assert 0.8 < anyc.auc < 1.0 and anyc.auc_ci[0] < anyc.auc < anyc.auc_ci[1]
    # labels without positives keep the model default (not in the file)
    assert set(cal.thresholds) == {"any", "subdural"}
    assert any("epidural" in n for n in cal.notes)


def test_intervals_resample_whole_series_where_they_are_known():
    # 40 series of 10 slices that share their label and nearly their score: ten slices say
    # little more than one, and the intervals must say so
    rng = np.random.default_rng(5)
    labels, scores, series = {}, {}, {}
    for g in range(40):
        y, base = g % 2 == 0, rng.normal(0.6 if g % 2 == 0 else 0.4, 0.15)
        for k in range(10):
            image = f"ID_{g:02d}{k:02d}"
            series[image] = f"1.2.{g}"
            for label in LABELS:
                positive = y and label in ("any", "subdural")
                labels[(image, label)] = float(positive)
                scores[(image, label)] = float(base + rng.normal(0, 0.01))
        if g < 2:  # two series with an epidural bleed: too few for an interval
            labels[(f"ID_{g:02d}00", "epidural")] = 1.0
    flat = calibrate(labels, scores=scores, target_sensitivity=0.9)
    grouped = calibrate(labels, scores=scores, target_sensitivity=0.9, series=series)
    assert grouped.thresholds == flat.thresholds  # only the intervals change
    assert grouped.n_series == 40 and flat.n_series is None
    assert "whole series" in grouped.ci_methods["auc"] and "DeLong" in flat.ci_methods["auc"]
    for c in (grouped.labels["any"], flat.labels["any"]):
        assert c.auc_ci[0] < c.auc < c.auc_ci[1]
        assert c.chosen.specificity_ci[0] <= c.chosen.specificity <= c.chosen.specificity_ci[1]

    def width(ci):
        return ci[1] - ci[0]

    g, f = grouped.labels["any"], flat.labels["any"]
    assert width(g.auc_ci) > 2 * width(f.auc_ci)
    assert width(g.chosen.specificity_ci) > 2 * width(f.chosen.specificity_ci)
    assert all(np.isnan(grouped.labels["epidural"].auc_ci))
    assert not any(np.isnan(flat.labels["epidural"].auc_ci))
    assert "whole series (40 series)" in " ".join(grouped.notes)
    assert "too narrow" in " ".join(flat.notes)
    # a series missing for one image: back to intervals over slices, said so
    partial = dict(series)
    del partial["ID_0000"]
    assert calibrate(labels, scores=scores, series=partial).n_series is None


def test_cli_calibrate_round_trip_into_classify(tmp_path, tiny_model_dir, phantom_study):
    labels, pred = _site(tmp_path)
    out = tmp_path / "thresholds.json"
    res = CliRunner().invoke(app, ["calibrate", str(labels), "--predictions", str(pred),
                                   "--target-sensitivity", "0.95", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["target_sensitivity"] == 0.95
    assert set(data["metrics"]["any"]) >= {"auc", "auc_ci95", "chosen", "n_positive"}
    assert data["metrics"]["any"]["chosen"]["sensitivity"] >= 0.95
    assert "Wilson" in data["ci_methods"]["proportions"]
    merged = load_thresholds(out, dict.fromkeys(LABELS, 0.5))
    assert merged["any"] == pytest.approx(data["thresholds"]["any"])
    assert merged["epidural"] == 0.5
    # classify and segment accept it
    r2 = CliRunner().invoke(app, ["classify", str(phantom_study.folder), "--model-dir",
                                  str(tiny_model_dir), "--thresholds", str(out), "--quiet",
                                  "--out", str(tmp_path / "r.json")])
    assert r2.exit_code == 0, r2.output
    r3 = CliRunner().invoke(app, ["segment", str(phantom_study.folder), "--model-dir",
                                  str(tiny_model_dir), "--thresholds", str(out), "--quiet",
                                  "--out", str(tmp_path / "seg")])
    assert r3.exit_code == 0, r3.output
    # existing output without --overwrite: usage error
    again = CliRunner().invoke(app, ["calibrate", str(labels), "--predictions", str(pred),
                                     "--out", str(out)])
    assert again.exit_code == 2


def test_cli_calibrate_runs_the_model_on_images(tmp_path, tiny_model_dir, phantom_study):
    """Labels named by file stem (as the phantom writer and RSNA do) match model outputs."""
    from ichinfer.dicom import read_series

    series = read_series(phantom_study.folder)
    rows = []
    for k, sl in enumerate(series.slices):
        stem = sl.path.rsplit("/", 1)[-1].split(".")[0]
        for label in LABELS:
            rows.append([f"{stem}_{label}", int(label == "any" and k % 3 == 0)])
    _write_rsna(tmp_path / "labels.csv", rows)
    out = tmp_path / "t.json"
    res = CliRunner().invoke(app, ["calibrate", str(tmp_path / "labels.csv"), "--images",
                                   str(phantom_study.folder), "--model-dir", str(tiny_model_dir),
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["n_images"] == len(series.slices)
    assert data["metrics"]["any"]["reference"]["threshold"] == 0.5  # the model's default
    # the classifier ran here, so the series are known: one series, too few for an interval
    assert data["n_series"] == 1 and "of 1 series" in res.output
    assert data["metrics"]["any"]["auc_ci95"] == [None, None]
    # the same from classify's JSON, which names each slice's series too
    pred = tmp_path / "pred.json"
    r2 = CliRunner().invoke(app, ["classify", str(phantom_study.folder), "--model-dir",
                                  str(tiny_model_dir), "--quiet", "--out", str(pred)])
    assert r2.exit_code == 0, r2.output
    out2 = tmp_path / "t2.json"
    r3 = CliRunner().invoke(app, ["calibrate", str(tmp_path / "labels.csv"), "--predictions",
                                  str(pred), "--out", str(out2)])
    assert r3.exit_code == 0, r3.output
    again = json.loads(out2.read_text())
    assert again["n_series"] == 1 and again["n_images"] == data["n_images"]
    assert again["thresholds"] == pytest.approx(data["thresholds"], abs=1e-6)
    # a JSON that is not classify's: exit 2, naming the file
    (tmp_path / "other.json").write_text('{"series": [{"slices": [{}]}]}')
    r4 = CliRunner().invoke(app, ["calibrate", str(tmp_path / "labels.csv"), "--predictions",
                                  str(tmp_path / "other.json"), "--out", str(tmp_path / "t3.json")])
    assert r4.exit_code == 2 and "other.json" in r4.output and "classify" in r4.output


def test_bad_csv_and_no_overlap(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("image,value\nx,1\n")
    with pytest.raises(InvalidInputError):
        read_rsna_csv(bad)
    _write_rsna(tmp_path / "a.csv", [["ID_1_any", 1]])
    _write_rsna(tmp_path / "b.csv", [["ID_2_any", 0.5]])
    with pytest.raises(InvalidInputError):
        calibrate(read_rsna_csv(tmp_path / "a.csv"), scores=read_rsna_csv(tmp_path / "b.csv"))
    res = CliRunner().invoke(app, ["calibrate", str(tmp_path / "a.csv"), "--out",
                                   str(tmp_path / "t.json")])
    assert res.exit_code == 2  # neither --predictions nor --images
