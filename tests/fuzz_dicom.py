"""Mutation fuzzing of the DICOM reader, run as a child process by tests/test_fuzz.py.

``python tests/fuzz_dicom.py WORKDIR MODEL_DIR N_CASES SEED`` builds a few valid CT files (explicit
and implicit VR, RLE, enhanced multi-frame), makes ``N_CASES`` mutants of them (flipped bytes,
cut lengths, corrupted tags, VRs and length fields, inserted and deleted bytes), classifies
each with the tiny test model, reads each that scans both ways (straight from the file and by
pydicom: the same HU or an error both ways) and prints one JSON report: how each case ended.
A case may end in a result or an :class:`ichinfer.IchInferError`; anything else, a case over
``CASE_LIMIT_S`` (``signal.alarm``), or an error message holding a patient identifier is listed
as a finding. The parent runs this in a subprocess so that a crash (segfault) fails the test
instead of pytest; ``WORKDIR/progress.txt`` names the case that was running.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
import traceback
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]

from dicom_factory import make_ct_dataset, make_enhanced_ct_dataset, write  # noqa: E402

import ichinfer  # noqa: E402
from ichinfer.classification import Classifier  # noqa: E402

CASE_LIMIT_S = 10
SECRETS = ("Secret^Patient", "SECRET-ID-0001", "SECRET-ACC-01", "19000101")
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"SQ", b"UT", b"UC", b"UR"}


class CaseTimeout(Exception):
    pass


def _on_alarm(signum, frame):  # noqa: ARG001
    raise CaseTimeout(f"case ran over {CASE_LIMIT_S} s")


def base_files(folder: Path) -> list[tuple[str, bytes, bool, int]]:
    """(name, bytes, explicit VR, offset of the first data-set element) of each valid file."""
    from pydicom.uid import RLELossless

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    plain = write(make_ct_dataset(), folder / "explicit.dcm")
    out.append(("explicit", Path(plain).read_bytes(), True, 132))
    raw = write(make_ct_dataset(), folder / "implicit_raw", preamble=False)
    out.append(("implicit_raw", Path(raw).read_bytes(), False, 0))
    rle = make_ct_dataset()
    rle.compress(RLELossless)
    out.append(("rle", Path(write(rle, folder / "rle.dcm")).read_bytes(), True, 132))
    enhanced = make_enhanced_ct_dataset([(-8, -8, z) for z in (0.0, 2.0, 4.0)])
    out.append(("enhanced", Path(write(enhanced, folder / "mf.dcm")).read_bytes(), True, 132))
    return out


def element_offsets(data: bytes, explicit: bool, start: int) -> list[tuple[int, int, int]]:
    """(tag offset, length-field offset, length-field size) of top-level elements, in order.

    Group 0002 is always explicit VR; the walk stops at a sequence or item of undefined length.
    """
    out, pos = [], start
    while pos + 8 <= len(data):
        group = struct.unpack("<H", data[pos : pos + 2])[0]
        is_explicit = explicit or group == 0x0002
        vr = data[pos + 4 : pos + 6]
        if is_explicit and vr in _LONG_VRS:
            len_at, len_size, value_at = pos + 8, 4, pos + 12
        elif is_explicit:
            len_at, len_size, value_at = pos + 6, 2, pos + 8
        else:
            len_at, len_size, value_at = pos + 4, 4, pos + 8
        if value_at > len(data):
            break
        fmt = "<I" if len_size == 4 else "<H"
        length = struct.unpack(fmt, data[len_at : len_at + len_size])[0]
        out.append((pos, len_at, len_size))
        if length == 0xFFFFFFFF:
            break
        pos = value_at + length
    return out


def mutate(data: bytes, offsets: list[tuple[int, int, int]], rng: np.random.Generator) -> bytes:
    """One to three random mutations of ``data``."""
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(0, 7))
        if kind == 0 and buf:  # flipped bytes
            for _ in range(int(rng.integers(1, 9))):
                buf[int(rng.integers(0, len(buf)))] ^= int(rng.integers(1, 256))
        elif kind == 1 and buf:  # cut length
            del buf[int(rng.integers(0, len(buf))) :]
        elif kind == 2 and offsets:  # corrupted tag
            at = offsets[int(rng.integers(0, len(offsets)))][0]
            buf[at : at + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        elif kind == 3 and offsets:  # corrupted VR
            at = offsets[int(rng.integers(0, len(offsets)))][0] + 4
            buf[at : at + 2] = bytes(rng.choice(list(b"ABDFILNOPQSTUW"), 2))
        elif kind == 4 and offsets:  # corrupted length field
            _, at, size = offsets[int(rng.integers(0, len(offsets)))]
            extreme = [0, 1, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, len(buf), int(rng.integers(0, 4096))]
            value = int(rng.choice(extreme)) & ((1 << (8 * size)) - 1)
            buf[at : at + size] = value.to_bytes(size, "little")
        elif kind == 5:  # inserted bytes
            at = int(rng.integers(0, len(buf) + 1))
            buf[at:at] = rng.integers(0, 256, int(rng.integers(1, 17)), dtype=np.uint8).tobytes()
        elif kind == 6 and buf:  # deleted bytes
            at = int(rng.integers(0, len(buf)))
            del buf[at : at + int(rng.integers(1, 17))]
    return bytes(buf)


def run(workdir: Path, model_dir: Path, n_cases: int, seed: int) -> dict:
    bases = base_files(workdir / "bases")
    offsets = {name: element_offsets(data, explicit, start)
               for name, data, explicit, start in bases}
    clf = Classifier(model_dir=model_dir, device="cpu", threads=1, batch_size=4)
    signal.signal(signal.SIGALRM, _on_alarm)
    outcomes: Counter[str] = Counter()
    findings: list[dict] = []
    progress = workdir / "progress.txt"
    for case in range(n_cases):
        rng = np.random.default_rng([seed, case])
        name, data, _, _ = bases[case % len(bases)]
        mutant = mutate(data, offsets[name], rng)
        path = workdir / "cases" / f"case{case:04d}_{name}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(mutant)
        progress.write_text(f"case {case} ({name}) {path}\n")
        signal.alarm(CASE_LIMIT_S)
        try:
            result = clf.classify(path, on_error="raise")
            outcomes["result"] += 1
            text = json.dumps(result.to_dict())
        except ichinfer.IchInferError as err:
            outcomes[type(err).__name__] += 1
            text = str(err)
        except CaseTimeout as err:
            outcomes["hang"] += 1
            findings.append({"case": case, "base": name, "finding": str(err)})
            text = ""
        except KeyboardInterrupt:
            raise
        except BaseException as err:  # noqa: BLE001 - every other exception is a finding
            outcomes["unexpected"] += 1
            findings.append({"case": case, "base": name, "finding": repr(err),
                             "traceback": traceback.format_exc(limit=-8)})
            text = ""
        finally:
            signal.alarm(0)
        leaked = [s for s in SECRETS if s in text]
        if leaked:
            findings.append({"case": case, "base": name, "finding": f"identifier in {text!r}"})
        differs = _read_both_ways(path)
        if differs:
            findings.append({"case": case, "base": name, "finding": differs})
        path.unlink()
    return {"cases": n_cases, "seed": seed, "outcomes": dict(outcomes), "findings": findings}


def _read_both_ways(path: Path) -> str:
    """Where the header scan read a mutant, its slices read straight from the file
    (:class:`ichinfer.dicom.NativePixels`) must give what pydicom's full read gives: the same
    HU, or an error both ways. What differs, or ""."""
    from ichinfer import dicom

    signal.alarm(CASE_LIMIT_S)
    try:
        for rec in dicom.read_header(str(path)).records:
            got = []
            for read in (partial(dicom.read_slice_hu, rec.info),
                         partial(dicom.read_hu, path, frame=rec.info.frame)):
                try:
                    got.append(read())
                except ichinfer.IchInferError:
                    got.append(None)
            fast, full = got
            if (fast is None) != (full is None) or (
                    fast is not None and not np.array_equal(fast, full)):
                return f"frame {rec.info.frame}: read_slice_hu and read_hu differ"
    except CaseTimeout as err:
        return str(err)
    finally:
        signal.alarm(0)
    return ""


if __name__ == "__main__":
    work, models, n, seed_arg = sys.argv[1:5]
    os.makedirs(work, exist_ok=True)
    report = run(Path(work), Path(models), int(n), int(seed_arg))
    print(json.dumps(report))
