"""Every case of the bad-input corpus (tests/bad_inputs.py) through the API and the CLI.

API: ``on_error="raise"`` raises an ichinfer error naming the file and the reason;
``on_error="collect"`` records it and processes the good series beside it. CLI: one line per
bad file, no traceback, exit code 1, the failures in the JSON output; non-image DICOM inside a
series folder is skipped with a note.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import shutil

import pytest
from bad_inputs import make_corpus
from typer.testing import CliRunner

import ichinfer
from ichinfer import dicom
from ichinfer.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))



@pytest.fixture(autouse=True)
def no_permission(monkeypatch):
    """chmod 000 does not stop root: make open() refuse the unreadable case as it would."""
    if os.geteuid() != 0:
        return
    real = builtins.open

    def fake_open(file, *args, **kwargs):
        if str(file).endswith("unreadable.dcm"):
            raise PermissionError(13, "Permission denied", str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(dicom, "open", fake_open, raising=False)


def _model(tiny_model_dir):
    return tiny_model_dir / "tiny_classifier.onnx"


def test_every_case_raises_a_clear_ichinfer_error_or_is_processed(corpus, tiny_model_dir):
    _, cases = corpus
    outcomes = {}
    for case in cases:
        try:
            result = ichinfer.classify(case.path, model=_model(tiny_model_dir), on_error="raise")
        except ichinfer.IchInferError as err:
            outcomes[case.name] = type(err).__name__
            assert case.kind == type(err).__name__, (case.name, str(err))
            assert re.search(case.match, str(err)), (case.name, str(err))
            assert str(case.path) in str(err) or case.path.name in str(err), str(err)
            assert err.reason in str(err)
            continue
        outcomes[case.name] = "result"
        assert case.kind is None, (case.name, "processed but should fail")
        assert result.series and result.ok
        if case.match:
            warnings = [w for s in result.series for w in s.warnings]
            assert any(re.search(case.match, w) for w in warnings), warnings
    clear = sum(1 for c in cases if c.kind is not None and outcomes[c.name] == c.kind)
    print(f"\nbad-input cases: {len(cases)}; ended in a clear ichinfer error: {clear}; "
          f"processed: {sum(v == 'result' for v in outcomes.values())}")
    assert clear == sum(c.kind is not None for c in cases) == 20


def test_collect_records_each_case_and_processes_the_good_series(corpus, tiny_model_dir):
    good, cases = corpus
    for case in cases:
        result = ichinfer.classify([good, case.path], model=_model(tiny_model_dir),
                                   on_error="collect")
        good_series = [s for s in result.series if s.slices[0].path.startswith(str(good))]
        assert len(good_series) == 1 and len(good_series[0].slices) == 3, case.name
        if case.kind is None:
            assert result.ok, (case.name, result.failures)
            continue
        assert len(result.failures) == 1, (case.name, result.failures)
        failure = result.failures[0]
        assert failure.kind == case.kind and re.search(case.match, failure.reason), failure
        assert case.name in failure.path + failure.reason


def test_cli_one_line_per_bad_file_exit_1_and_json(corpus, tiny_model_dir, tmp_path):
    good, cases = corpus
    bad = [c for c in cases if c.kind is not None]
    out = tmp_path / "r.json"
    args = ["classify", str(good), *[str(c.path) for c in bad], "--out", str(out),
            "--model-dir", str(tiny_model_dir)]
    r = runner.invoke(app, args)
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    failed = [line for line in r.output.splitlines() if line.startswith("failed:")]
    assert len(failed) == len(bad), failed
    for case in bad:
        lines = [line for line in failed if case.name in line]
        assert lines and re.search(case.match, lines[0]), (case.name, failed)
    data = json.loads(out.read_text())
    assert len(data["series"]) == 1 and len(data["failures"]) == len(bad)
    assert all(f["reason"] and f["kind"] for f in data["failures"])


def test_cli_skips_non_image_dicom_in_a_series_folder_with_a_note(corpus, tiny_model_dir,
                                                                  tmp_path):
    good, cases = corpus
    folder = tmp_path / "series"
    shutil.copytree(good, folder)
    skipped = [c for c in cases if c.in_folder == "skipped"]
    for case in skipped:
        shutil.copy(case.path, folder / case.name)
    out = tmp_path / "r.json"
    r = runner.invoke(app, ["classify", str(folder), "--out", str(out), "--model-dir",
                            str(tiny_model_dir)])
    assert r.exit_code == 0, r.output
    notes = [line for line in r.output.splitlines() if line.startswith("skipped:")]
    assert len(notes) == len(skipped) >= 4
    data = json.loads(out.read_text())
    assert {os.path.basename(s["path"]) for s in data["skipped"]} == {c.name for c in skipped}
    assert len(data["series"][0]["slices"]) == 3 and data["failures"] == []


def test_cli_each_case_alone(corpus, tiny_model_dir, tmp_path):
    """A run on one bad input alone: exit 1 and one line (processed cases: exit 0)."""
    _, cases = corpus
    for k, case in enumerate(cases):
        if case.name == "huge_4096.dcm":
            continue  # processed above; saves a second 32 MB decode
        r = runner.invoke(app, ["classify", str(case.path), "--out", str(tmp_path / f"{k}.json"),
                                "--model-dir", str(tiny_model_dir), "-q"])
        assert "Traceback" not in r.output
        if case.kind is None:
            assert r.exit_code == 0, (case.name, r.output)
            continue
        lines = [line for line in r.output.splitlines() if line.strip()]
        assert r.exit_code == 1 and len(lines) == 1, (case.name, r.output)
        assert lines[0].startswith("failed:") and case.name in lines[0], lines
