"""Mutation fuzzing of the DICOM reader (tests/fuzz_dicom.py): 600 seeded, reproducible cases.

Each mutant must end in a result or an :class:`ichinfer.IchInferError` naming the file: no other
exception, no case over its time limit (``signal.alarm`` in the child) and no crash: the batch
runs in a child process, so a segfault or a Rust panic that kills it fails this test, and
``progress.txt`` names the case. No error message may carry a patient identifier.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

N_CASES = 600
SEED = 20240
ROOT = Path(__file__).parents[1]


def test_mutated_dicom_ends_in_a_result_or_an_ichinfer_error(tiny_model_dir, tmp_path):
    work = tmp_path / "fuzz"
    env = {**os.environ, "RUST_BACKTRACE": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "fuzz_dicom.py"), str(work), str(tiny_model_dir),
         str(N_CASES), str(SEED)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )
    progress = (work / "progress.txt").read_text() if (work / "progress.txt").exists() else ""
    assert proc.returncode == 0, f"fuzz child died (rc {proc.returncode}) at {progress}\n" + (
        proc.stderr[-3000:])
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\nfuzz: {report['cases']} cases, seed {report['seed']}: {report['outcomes']}")
    assert report["findings"] == []
    assert sum(report["outcomes"].values()) == N_CASES
    assert report["outcomes"].get("result", 0) > 0  # some mutants are still valid images
