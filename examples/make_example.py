"""Regenerate examples/phantom-ct: one synthetic 5 mm head-CT series with a bleed.

    python examples/make_example.py

A phantom from ``training.synth`` (never a real patient), stored JPEG 2000 lossless so the
example stays small and also exercises compressed decoding. Its masks and true volumes go to
``examples/phantom-truth/`` for comparison with ``ichinfer segment``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pydicom  # noqa: E402
from pydicom.uid import JPEG2000Lossless  # noqa: E402

from training.synth import make_study, write_studies_csv, write_study  # noqa: E402

SEED = 20261127
OUT = ROOT / "examples" / "phantom-ct"
TRUTH = ROOT / "examples" / "phantom-truth"


def main() -> int:
    study = make_study(SEED, size=512, positive=True, thin=False,
                       subtypes=("intraparenchymal", "subdural"))
    tmp = ROOT / "examples" / ".tmp-example"
    shutil.rmtree(tmp, ignore_errors=True)
    record = write_study(study, tmp)
    for folder in (OUT, TRUTH):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    for src in sorted((tmp / "stage_2_train").glob("*.dcm")):
        ds = pydicom.dcmread(src)
        ds.compress(JPEG2000Lossless)
        ds.save_as(OUT / src.name, enforce_file_format=True)
    shutil.copytree(tmp / "masks", TRUTH / "masks")
    write_studies_csv([record], TRUTH / "studies.csv")
    shutil.rmtree(tmp)
    size = sum(p.stat().st_size for p in OUT.glob("*.dcm")) / 1e6
    print(f"wrote {len(record.ids)} slices ({size:.1f} MB) to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
