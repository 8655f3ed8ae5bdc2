"""The ``ichinfer`` command: outputs, exit codes, no patient identifiers printed."""

from __future__ import annotations

import csv
import json

from typer.testing import CliRunner

import ichinfer
from ichinfer.cli import app

runner = CliRunner()


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def test_classify_writes_rsna_csv(phantom_study, tiny_model_dir, tmp_path):
    out = tmp_path / "results.csv"
    r = invoke("classify", phantom_study.folder, "--out", out, "--model-dir", tiny_model_dir, "-q")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 6 * phantom_study.n_slices
    assert all(row["ID"].startswith("ID_") and row["ID"].rsplit("_", 1)[1] in ichinfer.LABELS
               for row in rows)
    assert all(0.0 <= float(row["Label"]) <= 1.0 for row in rows)


def test_classify_json_and_no_overwrite(phantom_study, tiny_model_dir, tmp_path):
    out = tmp_path / "results.json"
    assert invoke("classify", phantom_study.folder, "--out", out, "--model-dir", tiny_model_dir,
                  "-q").exit_code == 0
    data = json.loads(out.read_text())
    assert len(data["series"][0]["slices"]) == phantom_study.n_slices
    before = out.read_text()
    r = invoke("classify", phantom_study.folder, "--out", out, "--model-dir", tiny_model_dir)
    assert r.exit_code == 2 and "--overwrite" in r.output and out.read_text() == before
    r = invoke("classify", phantom_study.folder, "--out", out, "--model-dir", tiny_model_dir,
               "--overwrite", "-q")
    assert r.exit_code == 0


def test_failures_give_exit_1_and_the_rest_is_processed(phantom_study, tiny_model_dir, tmp_path):
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"DICM" * 3)
    out = tmp_path / "r.json"
    r = invoke("classify", phantom_study.folder, bad, "--out", out, "--model-dir", tiny_model_dir)
    assert r.exit_code == 1
    assert "broken.dcm" in r.output and "Traceback" not in r.output
    data = json.loads(out.read_text())
    assert len(data["series"]) == 1 and data["failures"][0]["path"] == str(bad)


def test_usage_errors_exit_2(tmp_path):
    assert invoke("classify", tmp_path, "--out", tmp_path / "x.txt").exit_code == 2
    assert invoke("classify").exit_code == 2


def test_segment_writes_masks_overlays_summary(phantom_study, tiny_model_dir, tmp_path):
    out = tmp_path / "seg"
    r = invoke("segment", phantom_study.folder, "--out", out, "--model-dir", tiny_model_dir,
               "--overlays", "all")
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["series"][0]["volume_ml"] is not None
    assert len(list((out / "masks").glob("*.png"))) == phantom_study.n_slices
    assert len(list((out / "overlays").glob("*.png"))) == phantom_study.n_slices
    assert "PHANTOM" not in r.output  # the phantom's PatientID never printed


def test_decode_processes_give_the_same_outputs_and_leave_the_environment(
        phantom_study, tiny_model_dir, tmp_path, monkeypatch):
    """The command decodes beside a worker process by default (``--decode-processes``); the
    outputs are those of decoding in this process alone, and the variable it sets for the
    command is put back."""
    import os

    from ichinfer.pipeline import DECODE_PROCESSES_ENV

    monkeypatch.delenv(DECODE_PROCESSES_ENV, raising=False)
    outputs = {}
    for n in ("1", "2", None):
        out = tmp_path / f"seg-{n}"
        r = invoke("segment", phantom_study.folder, "--out", out, "--model-dir", tiny_model_dir,
                   "--overlays", "all", "-q", *(["--decode-processes", n] if n else []))
        assert r.exit_code == 0, r.output
        assert DECODE_PROCESSES_ENV not in os.environ
        outputs[n] = {f.relative_to(out).as_posix(): f.read_bytes()
                      for f in sorted(out.rglob("*.png"))}
    assert len(outputs["1"]) == 2 * phantom_study.n_slices
    assert outputs["2"] == outputs["1"] and outputs[None] == outputs["1"]
    r = invoke("segment", phantom_study.folder, "--out", tmp_path / "bad", "--model-dir",
               tiny_model_dir, "--decode-processes", "-1")
    assert r.exit_code == 2


def test_segment_mask_threshold_marks_less_at_a_higher_threshold(phantom_study, tiny_model_dir,
                                                                 tmp_path):
    volumes = []
    for t in ("0.05", "0.95"):
        out = tmp_path / t
        r = invoke("segment", phantom_study.folder, "--out", out, "--model-dir", tiny_model_dir,
                   "--overlays", "none", "--mask-threshold", t)
        assert r.exit_code == 0, r.output
        volumes.append(json.loads((out / "summary.json").read_text())["series"][0]["volume_ml"])
    assert volumes[0] > volumes[1]
    r = invoke("segment", phantom_study.folder, "--out", tmp_path / "bad", "--model-dir",
               tiny_model_dir, "--mask-threshold", "1.5")
    assert r.exit_code == 2


def _plain_then_resumed_with(study, model_dir, out, *options) -> tuple[dict, dict]:
    """summary.json of a plain ``segment`` run, then of a ``--resume`` run in the same folder
    with ``options``."""
    summaries = []
    for extra in ([], [*options, "--resume"]):
        r = invoke("segment", study.folder, "--out", out, "--model-dir", model_dir,
                   "--overlays", "none", *extra)
        assert r.exit_code == 0, r.output
        summaries.append(json.loads((out / "summary.json").read_text()))
    return summaries[0], summaries[1]


def test_segment_mirror_is_recorded_and_not_resumed_from_a_plain_run(phantom_study,
                                                                     tiny_model_dir, tmp_path):
    plain, both = _plain_then_resumed_with(phantom_study, tiny_model_dir, tmp_path / "out",
                                           "--mirror")
    assert (plain["model"]["mirror"], both["model"]["mirror"]) == (False, True)
    # run again, not taken from the plain run's record: twice the inferences
    assert both["series"][0]["n_inferences"] == 2 * plain["series"][0]["n_inferences"]


def test_info_lists_models_and_providers(tiny_model_dir):
    r = invoke("info", "--model-dir", tiny_model_dir, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert "CPUExecutionProvider" in data["providers"]
    assert {m["file"] for m in data["models"]} == {"tiny_classifier.onnx", "tiny_segmenter.onnx"}
    assert "pylibjpeg" in data["jpeg_lossless_decoders"]


def test_info_lists_the_jpeg_lossless_decoders_in_the_order_tried(tiny_model_dir, monkeypatch):
    from ichinfer import dicom

    monkeypatch.setenv(dicom.JPEG_LOSSLESS_DECODER_ENV, "pylibjpeg")
    data = json.loads(invoke("info", "--model-dir", tiny_model_dir, "--json").output)
    assert data["jpeg_lossless_decoders"][0] == "pylibjpeg"
    assert set(data["jpeg_lossless_decoders"]) == set(
        dicom.installed_plugins(dicom.JPEGLosslessSV1))
    monkeypatch.setenv(dicom.JPEG_LOSSLESS_DECODER_ENV, "turbo")
    r = invoke("info", "--model-dir", tiny_model_dir, "--json")
    assert r.exit_code == 0
    assert "DECODER=turbo is not one of" in json.loads(r.output)["jpeg_lossless_decoders"]


def test_refused_model_is_one_line_and_exit_2(phantom_study, tiny_model_dir, tmp_path):
    """sha256 or metadata not matching: a setup error (exit 2), one line; --debug: traceback."""
    import shutil

    import onnx
    from tiny_models import tiny_classifier

    from ichinfer.models import MANIFEST, sha256

    changed = tmp_path / "changed"
    shutil.copytree(tiny_model_dir, changed)
    with open(changed / "tiny_classifier.onnx", "ab") as fh:
        fh.write(b"\0")
    wrong_labels = tmp_path / "labels"
    shutil.copytree(tiny_model_dir, wrong_labels)
    onnx.save(tiny_classifier(32, meta={"labels": json.dumps(["any", "epidural"])}),
              str(wrong_labels / "tiny_classifier.onnx"))
    manifest = json.loads((wrong_labels / MANIFEST).read_text())
    manifest["models"]["tiny_classifier.onnx"]["sha256"] = sha256(
        wrong_labels / "tiny_classifier.onnx")
    (wrong_labels / MANIFEST).write_text(json.dumps(manifest))
    for folder, reason in ((changed, "sha256"), (wrong_labels, "labels")):
        r = invoke("classify", phantom_study.folder, "--model-dir", folder)
        lines = [line for line in r.output.splitlines() if line.strip()]
        assert r.exit_code == 2 and len(lines) == 1, r.output
        assert lines[0].startswith("error:") and reason in lines[0]
        assert "Traceback" not in r.output
        r = invoke("classify", phantom_study.folder, "--model-dir", folder, "--debug")
        assert isinstance(r.exception, ichinfer.ModelIntegrityError)


def test_outputs_are_readable_like_plain_files(phantom_study, tiny_model_dir, tmp_path):
    """Atomic writes must not leave mkstemp's private 0600 mode on results."""
    import os

    out = tmp_path / "r.json"
    assert invoke("classify", phantom_study.folder, "--out", out, "--model-dir", tiny_model_dir,
                  "-q").exit_code == 0
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask


def test_series_warnings_are_printed(phantom_study, tiny_model_dir, tmp_path):
    """A gap in a series is a warning on the terminal as well as in the JSON; --quiet hides it."""
    import shutil

    folder = tmp_path / "gappy"
    shutil.copytree(phantom_study.folder, folder)
    files = sorted(folder.glob("*.dcm"), key=lambda p: ichinfer.read_series(p).locations_mm[0])
    files[len(files) // 2].unlink()  # one slice from the middle
    out = tmp_path / "r.json"
    r = invoke("classify", folder, "--out", out, "--model-dir", tiny_model_dir)
    assert r.exit_code == 0, r.output
    lines = [line for line in r.output.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and "gap of" in lines[0], r.output
    assert json.loads(out.read_text())["series"][0]["warnings"]
    quiet = invoke("classify", folder, "--model-dir", tiny_model_dir, "-q")
    assert "warning:" not in quiet.output


def test_info_shows_both_operating_points(tiny_model_dir):
    """The CLI legend sends users to `ichinfer info` for the thresholds behind the verdict."""
    r = invoke("info", "--model-dir", tiny_model_dir)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "thresholds, slice / series verdict: any 0.500 / 0.600" in text


def test_segment_gate_is_recorded_and_not_resumed_from_a_plain_run(phantom_study,
                                                                   tiny_model_dir, tmp_path):
    nothing_called = tmp_path / "thresholds.json"
    nothing_called.write_text(json.dumps({"any": 1.0}))  # no slice reaches it (sigmoid < 1)
    plain, gated = _plain_then_resumed_with(phantom_study, tiny_model_dir, tmp_path / "out",
                                            "--gate", "--thresholds", nothing_called)
    assert plain["model"]["gate"] is None and plain["series"][0]["volume_ml"] > 0
    assert gated["model"]["gate"]["label"] == "any"
    assert gated["model"]["gate"]["threshold"] == 1.0
    assert gated["model"]["gate"]["classifier"] == "tiny_classifier.onnx"
    # run again, not taken from the plain run's record: no slice called, no mask
    assert gated["series"][0]["volume_ml"] == 0
