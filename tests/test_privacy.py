"""No patient identifier in any log line, message or output file, even for broken inputs.

The files carry distinctive PatientName, PatientID, AccessionNumber and PatientBirthDate
values; one has a damaged length so that its (0008,0060) Modality value runs into them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from dicom_factory import make_ct_dataset, write
from typer.testing import CliRunner

from ichinfer.cli import app

IDENTIFIERS = {"PatientName": "Zyxwvu^Qtsrpo", "PatientID": "PID-98765-XQ",
               "AccessionNumber": "ACC-55511-ZZ", "PatientBirthDate": "19230417"}
SECRETS = [*IDENTIFIERS.values(), "Zyxwvu", "Qtsrpo"]  # digits alone could be in a UID
runner = CliRunner()


def _ds(**overrides):
    return make_ct_dataset(**IDENTIFIERS, **overrides)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("private")
    for k, z in enumerate([0.0, 5.0, 10.0]):
        write(_ds(ImagePositionPatient=[-8.0, -8.0, z], InstanceNumber=k + 1),
              root / "good" / f"{k}.dcm")
    write(_ds(Modality="MR"), root / "bad" / "mr.dcm")
    write(_ds(ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"]), root / "good" / "scout.dcm")
    write(_ds(SOPClassUID="1.2.840.10008.5.1.4.1.1.88.67", Modality="SR", PixelData=None),
          root / "good" / "dose.dcm")
    whole = Path(write(_ds(), root / "src.dcm")).read_bytes()
    (root / "bad" / "cut.dcm").write_bytes(whole[:-500])
    # (0008,0060) CS length 2 -> 48: the value swallows the patient elements that follow
    at = whole.index(b"\x08\x00\x60\x00CS\x02\x00")
    damaged = whole[: at + 6] + b"\x30\x00" + whole[at + 8:]
    (root / "bad" / "damaged.dcm").write_bytes(damaged)
    for k in range(2):
        write(_ds(ImagePositionPatient=None, InstanceNumber=k + 1, SeriesInstanceUID="1.2.3.4"),
              root / "bad" / "nopos" / f"{k}.dcm")
    (root / "src.dcm").unlink()
    return root


def _files_text(folder: Path) -> str:
    parts = []
    for path in folder.rglob("*"):
        parts.append(str(path))
        if path.is_file():
            parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_no_identifier_in_messages_logs_or_outputs(inputs, tiny_model_dir, tmp_path, caplog,
                                                   debug):
    caplog.set_level(logging.DEBUG)
    flags = ["--debug"] if debug else []
    out = tmp_path / "out"
    texts = []
    for args in (
        ["classify", inputs / "good", inputs / "bad", "--out", out / "r.json"],
        ["classify", inputs / "good", inputs / "bad", "--out", out / "r.csv"],
        ["segment", inputs / "good", inputs / "bad", "--out", out / "seg", "--overlays", "all"],
        ["classify", inputs / "bad" / "damaged.dcm", "--out", out / "one.json", "--resume"],
    ):
        r = runner.invoke(app, [str(a) for a in [*args, "--model-dir", tiny_model_dir, *flags]])
        assert r.exit_code == 1, r.output
        texts.append(r.output)
    assert "malformed (0008,0060) Modality" in texts[0]
    assert "damaged.dcm" in texts[0] and "nopos" in texts[0]
    texts.append(caplog.text)
    texts.append(_files_text(out))
    assert len(caplog.records) > 3 and (out / "seg" / "summary.json").exists()
    for text in texts:
        found = [s for s in SECRETS if s in text]
        assert not found, (found, text[:2000])
