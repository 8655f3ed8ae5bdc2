"""``ichinfer batch`` on a local Ray instance: same answers as ``classify``, a killed worker,
a bad series, ``--resume``. Skipped when the ``[ray]`` extra (ray[data], pyarrow) is absent."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest

from ichinfer.labels import LABELS

ray = pytest.importorskip("ray", reason="needs the [ray] extra: pip install 'ichinfer[ray]'")
pq = pytest.importorskip("pyarrow.parquet", reason="needs the [ray] extra (pyarrow)")

from ichinfer import batch  # noqa: E402

pytestmark = pytest.mark.ray

N_SERIES = 20


@pytest.fixture(scope="module")
def fault_marker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fault is armed only while this file is absent (it is created when the fault fires)."""
    marker = tmp_path_factory.mktemp("fault") / "fired"
    marker.touch()
    return marker


@pytest.fixture(scope="module")
def local_ray(fault_marker: Path):
    """One local Ray instance for the module (2 CPUs); every worker sees the fault setting."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {batch.FAULT_ENV: f"3:{fault_marker}"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 small phantom series (128², 5 mm) in one RSNA-layout folder, written once."""
    from training.synth import make_study, write_study

    root = tmp_path_factory.mktemp("archive")
    for k in range(N_SERIES):
        write_study(make_study(100 + k, size=128, positive=k % 2 == 0, thin=False), root,
                    study_index=k)
    shutil.rmtree(root / "masks")
    return root / "stage_2_train"


def _by_series(archive: Path) -> list[list[Path]]:
    """The archive's files, per series (sorted by SeriesInstanceUID)."""
    import pydicom

    found: dict[str, list[Path]] = {}
    for f in sorted(archive.glob("*.dcm")):
        uid = pydicom.dcmread(f, stop_before_pixels=True).SeriesInstanceUID
        found.setdefault(uid, []).append(f)
    return [found[k] for k in sorted(found)]


def _slices(out: Path) -> list[dict]:
    return [r for p in sorted((out / "slices").glob("*.parquet"))
            for r in pq.read_table(p).to_pylist()]


def test_batch_equals_classify_with_a_worker_killed(archive, tiny_model_dir, tmp_path, local_ray,
                                                    fault_marker):
    from ichinfer.classification import Classifier
    from ichinfer.results import rsna_csv

    fault_marker.unlink()  # arm: the first actor to reach its 4th series exits hard, once
    out = tmp_path / "out"
    summary = batch.run_batch(archive, out=out, model_dir=tiny_model_dir, workers=2,
                              write_rsna_csv=True)
    assert fault_marker.exists(), "the fault did not fire"
    assert summary.total == N_SERIES and summary.written == N_SERIES and not summary.failures

    reference = Classifier(model_dir=tiny_model_dir).classify(archive, on_error="collect")
    want = {s.sop_instance_uid: s for s in reference.slices}
    rows = _slices(out)
    assert len(rows) == len(want)  # every slice exactly once: no series lost or doubled
    assert len({r["sop_instance_uid"] for r in rows}) == len(rows)
    for r in rows:
        ref = want[r["sop_instance_uid"]]
        assert r["path"] == ref.path and r["index"] == ref.index
        for label in LABELS:
            assert r[label] == pytest.approx(ref.probabilities[label], abs=1e-6)
    verdicts = {s.series_uid: s for s in reference.series}
    for p in (out / "series").glob("*.parquet"):
        head = pq.read_table(p).to_pylist()[0]
        ref = verdicts[head["series_uid"]]
        assert head["n_slices"] == len(ref.slices)
        for label in LABELS:
            assert head[label] == pytest.approx(ref.probabilities[label], abs=1e-6)
            assert head[f"{label}_verdict"] == ref.verdict[label]
            assert head[f"{label}_series_threshold"] == ref.verdict_thresholds[label] == 0.6
    got = sorted((out / "results.csv").read_text().splitlines())
    assert got == sorted(rsna_csv(reference).splitlines())


def test_bad_series_recorded_and_resume_after_a_partial_run(archive, tiny_model_dir, tmp_path,
                                                            local_ray):
    src = tmp_path / "src"
    series_dirs = []
    for k, paths in enumerate(_by_series(archive)[:4]):
        d = src / f"s{k}"
        d.mkdir(parents=True)
        for f in paths:
            shutil.copy(f, d / f.name)
        series_dirs.append(d)
    (src / "junk.dcm").write_bytes(b"not a dicom file")  # a scan failure, named like DICOM
    # a manifest source, relative paths
    manifest = src / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path"])
        for p in sorted(src.rglob("*.dcm")):
            w.writerow([str(p.relative_to(src))])

    out = tmp_path / "out"
    plan = batch.plan_batch(manifest, out=out, model_dir=tiny_model_dir)
    assert plan.total == 4 and len(plan.scan_failures) == 1
    bad = next(iter(sorted(series_dirs[2].glob("*.dcm"))[5:6]))
    bad.unlink()  # vanished after the header scan: the series fails in its actor
    failures = [f for _, f in batch.iter_batch(plan, workers=2) if f is not None]
    summary = batch.finish_batch(plan, failures)
    assert summary.written == 3 and len(failures) == 1
    assert failures[0].path == str(series_dirs[2]) and failures[0].kind
    recorded = pq.read_table(out / "failures.parquet").to_pylist()
    assert {r["path"] for r in recorded} == {str(src / "junk.dcm"), str(series_dirs[2])}

    # a partial run: one series' outputs gone; the bad series comes back
    shutil.copy(archive / bad.name, bad)
    gone = plan.keys[0]
    (out / "series" / f"{gone}.parquet").unlink()
    kept = out / "slices" / f"{plan.keys[1]}.parquet"
    before = kept.stat().st_mtime_ns
    again = batch.plan_batch(manifest, out=out, model_dir=tiny_model_dir, resume=True)
    assert sorted(k for k, _ in again.todo) == sorted([gone, plan.keys[2]])
    done = [k for k, f in batch.iter_batch(again, workers=1) if f is None]
    assert sorted(done) == sorted([gone, plan.keys[2]])
    assert kept.stat().st_mtime_ns == before
    assert len(_slices(out)) == sum(len(list(d.glob("*.dcm"))) for d in series_dirs)


def test_cli_batch(archive, tiny_model_dir, tmp_path, local_ray):
    from typer.testing import CliRunner

    from ichinfer.cli import app

    src = tmp_path / "src"
    src.mkdir()
    files = [f for paths in _by_series(archive)[:2] for f in paths]  # two series
    for f in files:
        os.link(f, src / f.name)
    out = tmp_path / "out"
    args = ["batch", str(src), "--out", str(out), "--model-dir", str(tiny_model_dir),
            "--workers", "1"]
    res = CliRunner().invoke(app, [*args, "--rsna-csv"])
    assert res.exit_code == 0, res.output
    assert len(list((out / "series").glob("*.parquet"))) == 2
    assert len((out / "results.csv").read_text().splitlines()) == 1 + len(files) * len(LABELS)
    assert CliRunner().invoke(app, args).exit_code == 2  # outputs exist: needs a flag
    res = CliRunner().invoke(app, [*args, "--resume"])
    assert res.exit_code == 0 and "2 of 2 series already complete" in res.output


def test_parallel_scan_equals_dicom_scan(archive, tmp_path, local_ray):
    """Headers read by Ray tasks, grouped by the driver: the series (UIDs, slice order,
    spacing, warnings), failures and skipped files of dicom.scan on the same files."""
    import pydicom

    from ichinfer import dicom

    src = tmp_path / "src"
    groups = _by_series(archive)
    for k, paths in enumerate(groups[:5]):
        d = src / f"s{k}"
        d.mkdir(parents=True)
        for f in paths:
            os.link(f, d / f.name)
    (src / "junk.dcm").write_bytes(b"not a dicom file")  # a failure (named like DICOM)
    (src / "s0" / "notes.txt").write_text("a note")  # skipped (not DICOM, not named so)
    dup = pydicom.dcmread(groups[3][0])  # a second image at the same position: an order error
    dup.SOPInstanceUID = "1.2.826.0.1.3680043.2.1125.999"
    dup.save_as(src / "s3" / "dup.dcm")
    paths = [str(src), str(tmp_path / "missing"), str(groups[6][0])]

    want = dicom.scan(paths, on_error="collect")
    assert len(want.series) == 5 and len(want.failures) == 3 and len(want.skipped) == 1
    for chunk_size in (None, 3):
        got = batch.scan_parallel(paths, chunk_size=chunk_size)
        assert [(s.study_uid, s.series_uid) for s in got.series] == [
            (s.study_uid, s.series_uid) for s in want.series]
        for g, w in zip(got.series, want.series, strict=True):
            assert [(x.path, x.sop_instance_uid, x.location_mm) for x in g.slices] == [
                (x.path, x.sop_instance_uid, x.location_mm) for x in w.slices]
        assert got.failures == want.failures and got.skipped == want.skipped
        assert got == want


def test_manifest_without_path_column(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("file\na.dcm\n")
    from ichinfer.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="no 'path' column"):
        batch.source_paths(m)
