"""The bad-input corpus: small broken, odd and non-CT inputs, generated into a folder.

``make_corpus(root)`` writes a good 3-slice CT series (``root/good``) and one case per kind of
bad input, each described by a :class:`Case`: what ``ichinfer.classify(case.path)`` should end
in (the exception class and a regex its message must match, or ``None`` when the input is
processed), and what happens to the file inside a series folder (``"skipped"`` for non-image
DICOM). ``python tests/bad_inputs.py`` runs the corpus through the API and prints the figures.
"""

from __future__ import annotations

import gzip
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]

from dicom_factory import make_ct_dataset, phantom_hu, write  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.uid import UID, RLELossless, SecondaryCaptureImageStorage, generate_uid  # noqa: E402


@dataclass
class Case:
    name: str
    path: Path
    #: exception class name ``classify(path)`` raises, or None when the input is processed
    kind: str | None
    #: regex the message (or, when processed, a series warning) must match
    match: str
    #: "failed" or "skipped": what a folder scan does with it beside good files
    in_folder: str = "failed"
    #: the file cannot be read (simulated with a patched open() when running as root)
    unreadable: bool = False


def _series(folder: Path, zs: list[float], **overrides) -> list[str]:
    series_uid = overrides.pop("SeriesInstanceUID", None) or generate_uid()
    paths = []
    for k, z in enumerate(zs):
        fields = {"ImagePositionPatient": [-8.0, -8.0, z], "InstanceNumber": k + 1,
                  "SeriesInstanceUID": series_uid, **overrides}
        paths.append(write(make_ct_dataset(**fields), folder / f"slice{k:02d}.dcm"))
    return paths


def make_corpus(root: Path) -> tuple[Path, list[Case]]:
    """Write the corpus under ``root``; return the good series' folder and the cases."""
    good = root / "good"
    _series(good, [0.0, 5.0, 10.0])
    bad = root / "bad"
    bad.mkdir(parents=True)
    cases: list[Case] = []

    def case(name: str, kind: str | None, match: str, **kw) -> Path:
        path = bad / name
        cases.append(Case(name, path, kind, match, **kw))
        return path

    case("zero_byte.dcm", "NotDicomError", r"empty file \(0 bytes\)").write_bytes(b"")
    rng = np.random.default_rng(5)
    case("random_bytes.dcm", "NotDicomError", "not a DICOM file").write_bytes(
        b"\x7f" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())

    whole = Path(write(make_ct_dataset(), root / "src" / "whole.dcm")).read_bytes()
    case("truncated_native.dcm", "InvalidInputError", "truncated: .*Pixel Data").write_bytes(
        whole[: len(whole) - 700])
    rle = make_ct_dataset()
    rle.compress(RLELossless)
    rle_bytes = Path(write(rle, root / "src" / "rle.dcm")).read_bytes()
    case("truncated_compressed.dcm", "InvalidInputError", "truncated: encapsulated").write_bytes(
        rle_bytes[: len(rle_bytes) - 300])

    sr = make_ct_dataset(SOPClassUID="1.2.840.10008.5.1.4.1.1.88.22", Modality="SR",
                         PixelData=None)
    write(sr, case("report_sr.dcm", "NotAnImageError", "not a CT image: Enhanced SR",
                   in_folder="skipped"))
    dose = make_ct_dataset(SOPClassUID="1.2.840.10008.5.1.4.1.1.88.67", Modality="SR",
                           PixelData=None)
    write(dose, case("dose_report.dcm", "NotAnImageError", "Radiation Dose SR",
                     in_folder="skipped"))
    write(make_ct_dataset(PixelData=None),
          case("ct_without_pixels.dcm", "InvalidInputError", r"no \(7FE0,0010\) Pixel Data"))
    write(make_ct_dataset(Modality="MR", SOPClassUID="1.2.840.10008.5.1.4.1.1.4"),
          case("mr_image.dcm", "InvalidInputError", "modality MR, not CT"))
    rgb = make_ct_dataset(SOPClassUID=SecondaryCaptureImageStorage, Modality="OT",
                          SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0,
                          BitsAllocated=8, BitsStored=8, HighBit=7, PixelRepresentation=0)
    rgb.PixelData = np.zeros((32, 32, 3), np.uint8).tobytes()
    rgb.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    write(rgb, case("rgb_secondary_capture.dcm", "NotAnImageError", "Secondary Capture",
                    in_folder="skipped"))
    write(make_ct_dataset(ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"]),
          case("localizer.dcm", "NotAnImageError", "localizer", in_folder="skipped"))
    write(make_ct_dataset(pixels=np.zeros((1, 1), np.int16)),
          case("one_pixel.dcm", "InvalidInputError", "image of 1x1 pixels"))
    big = np.zeros((4096, 4096), np.int16)
    big[1024:3072, 1024:3072] = 1064
    write(make_ct_dataset(pixels=big), case("huge_4096.dcm", None, ""))
    write(make_ct_dataset(pixels=phantom_hu(), RescaleSlope=None, RescaleIntercept=None),
          case("no_rescale.dcm", None, r"Rescale Slope .* absent: assumed 1 / 0"))
    no_position = case("no_position", "SeriesOrderError",
                       r"cannot order 3 slices safely.*Image Position")
    _series(no_position, [0.0, 5.0, 10.0], ImagePositionPatient=None)
    nan = phantom_hu().astype(np.float32)
    nan[3, 3], nan[4, 4] = np.nan, np.inf
    write(make_ct_dataset(pixels=nan, RescaleIntercept=0),
          case("nan_inf_float.dcm", "InvalidInputError", "NaN or infinite"))
    mixed = case("two_series_mixed", None, "")
    _series(mixed, [0.0, 5.0])
    for k, z in enumerate([0.0, 5.0]):
        write(make_ct_dataset(ImagePositionPatient=[-8.0, -8.0, z],
                              SeriesInstanceUID="1.2.3.999"), mixed / f"other{k}.dcm")
    duplicates = case("duplicate_slices", "SeriesOrderError", "duplicate slice positions")
    _series(duplicates, [0.0, 5.0, 5.0])
    mpeg = make_ct_dataset()
    mpeg.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2: no decoder
    mpeg.PixelData = encapsulate([b"\x00" * 64])
    write(mpeg, case("mpeg2.dcm", "UnsupportedTransferSyntaxError", "MPEG2.*not supported"))
    with gzip.open(case("broken_header.nii.gz", "InvalidInputError", "NIfTI|nifti|header"),
                   "wb") as fh:
        fh.write(b"\x5c\x01\x00\x00" + b"\xff" * 344)
    locked = case("unreadable.dcm", "InvalidInputError", "cannot read file: Permission denied",
                  unreadable=True)
    write(make_ct_dataset(), locked)
    os.chmod(locked, 0)
    loop = case("symlink_loop.dcm", "InvalidInputError", "cannot read: .*symbolic links")
    os.symlink(loop.name, loop)
    case("empty_folder", "InvalidInputError", r"no CT images found \(empty folder\)").mkdir()
    case("does_not_exist", "InvalidInputError", "no such file or folder")
    return good, cases


def classify_case(case: Case, model: Path):
    """``(outcome, message)``: outcome is the exception class name, or "result"."""
    import ichinfer

    try:
        result = ichinfer.classify(case.path, model=model, on_error="raise")
    except ichinfer.IchInferError as err:
        return type(err).__name__, str(err)
    warnings = [w for s in result.series for w in s.warnings]
    return "result", f"{len(result.series)} series; " + "; ".join(warnings)


def main() -> None:
    import tempfile

    from tiny_models import write_model_dir

    with tempfile.TemporaryDirectory() as tmp:
        model = write_model_dir(Path(tmp) / "models") / "tiny_classifier.onnx"
        _, cases = make_corpus(Path(tmp) / "corpus")
        clear = 0
        for case in cases:
            if case.unreadable and os.geteuid() == 0:
                print(f"{case.name:28s} (root reads chmod-000 files: see test_bad_inputs.py)")
                clear += 1
                continue
            outcome, message = classify_case(case, model)
            ok = outcome == (case.kind or "result") and re.search(case.match, message)
            ok = ok and (case.kind is None or str(case.path) in message)
            clear += ok and case.kind is not None
            print(f"{case.name:28s} {'ok ' if ok else 'BAD'} {outcome}: {message[-110:]}")
        n_error = sum(c.kind is not None for c in cases)
        print(f"bad-input cases: {len(cases)}; expected to end in an ichinfer error: {n_error}; "
              f"did, with a message naming the file and reason: {clear}; processed "
              f"(with notes where odd): {len(cases) - n_error}")


if __name__ == "__main__":
    main()
