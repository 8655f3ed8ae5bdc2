"""Render the benchmark table (markdown) from a pytest-benchmark JSON and a footprint JSON.

    python benchmarks/render.py bench.json footprint.json > benchmarks/README.md

Every figure comes from one of the two files; targets are issue 4's. Ratios against Keras pair
timings of the same model and batch size from the same pytest run.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

#: runs/bundled: the bundled models' weights as Keras checkpoints, so Keras runs the same
#: weights (export/from_onnx.py rebuilds them from the ONNX files; the last step of
#: training/make_bundled_models.sh links the original checkpoints there instead)
COMMANDS = """\
# the environment of the README's test command (.venv: pip install -e ".[test,train]"; the
# [test] extra brings imagecodecs, whose benchmarks have it in their names)
.venv/bin/python export/from_onnx.py --model-dir models --out runs/bundled
ICHINFER_MODEL_DIR=models ICHINFER_KERAS_DIR=runs/bundled \\
  .venv/bin/python -m pytest benchmarks --benchmark-only --benchmark-json bench.json
.venv/bin/python benchmarks/footprint.py --model-dir models --keras-dir runs/bundled \\
  --out footprint.json
# then the [gdcm] extra, same machine, same environment plus python-gdcm
.venv/bin/pip install -e ".[gdcm]"
ICHINFER_MODEL_DIR=models .venv/bin/python -m pytest benchmarks --benchmark-only \\
  -k "(jpeg_lossless or decode_series or classify_and_segment_cq500 or cq500_gdcm) \\
      and not imagecodecs" \\
  --benchmark-json bench-gdcm.json
.venv/bin/python benchmarks/footprint.py --model-dir models --keras-dir runs/bundled \\
  --out footprint-gdcm.json
.venv/bin/pip uninstall -y python-gdcm
.venv/bin/python benchmarks/render.py bench.json footprint.json \\
  --gdcm bench-gdcm.json footprint-gdcm.json > benchmarks/README.md"""


def _ms(s: float | None) -> str:
    if s is None:
        return "—"
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def _ok(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**not met**")


def _near(value: float, target: float, fmt: str) -> str:
    """``value`` as ``fmt`` (e.g. ``"{:.2f}×"``), with more digits where the rounded figure
    would sit on the other side of ``target`` than the value does (2.4974 is not "2.50"). The
    targets lie on the format's grid, so only a value just short of one can round onto it."""
    if value < target and fmt.format(value) == fmt.format(target):
        return fmt.replace(".2f", ".4f").replace(".0%", ".2%").format(value)
    return fmt.format(value)


class Bench:
    def __init__(self, data: dict) -> None:
        self.data = data
        self.items = data["benchmarks"]

    def find(self, pattern: str) -> list[dict]:
        return [b for b in self.items if re.fullmatch(pattern, b["name"])]

    def one(self, pattern: str) -> dict | None:
        found = self.find(pattern)
        return found[0] if found else None

    @staticmethod
    def median(b: dict | None) -> float | None:
        return None if b is None else b["stats"]["median"]


def matmul_rate(bench: Bench) -> float | None:
    b = bench.one(r"test_numpy_matmul")
    return None if b is None else b["extra_info"]["flops"] / b["stats"]["median"]


def headline(bench: Bench, fp: dict) -> list[list[str]]:
    rows: list[list[str]] = []
    imp = fp.get("import_ichinfer", {})
    if "median_s" in imp:
        tf = imp["tensorflow_imported"] or imp["keras_imported"]
        rows.append(["`import ichinfer` (median, fresh process)", _ms(imp["median_s"]), "≤ 0.5 s",
                     _ok(imp["median_s"] <= 0.5 and not tf)])
        rows.append(["TensorFlow / Keras imported by `import ichinfer`", "yes" if tf else "no",
                     "never", _ok(not tf)])
    both = bench.one(r"test_classify_and_segment_cq500")
    if both:
        rows.append(["CQ500 238 slices, classify + segment, end to end (one decode)",
                     _ms(Bench.median(both)), "≤ 10 s", _ok(Bench.median(both) <= 10)])
    assess = bench.one(r"test_assess_cq500")
    if assess:
        rows.append(["CQ500 238 slices, classify + segment + bleed measurements "
                     "(`segment --subtypes`), end to end", _ms(Bench.median(assess)), "≤ 10 s",
                     _ok(Bench.median(assess) <= 10)])
    c40 = bench.one(r"test_classify_40")
    if c40:
        rows.append(["40-slice series, classify, end to end", _ms(Bench.median(c40)), "≤ 1 s",
                     _ok(Bench.median(c40) <= 1)])
    for b in bench.find(r"test_onnxruntime\[(.+)\.onnx-(1|32)\]"):
        m = re.fullmatch(r"test_onnxruntime\[(.+)-(\d+)\]", b["name"])
        assert m
        file, batch = m.group(1), int(m.group(2))
        stem = file.split(".")[0]
        keras = bench.one(rf"test_keras\[{re.escape(stem)}\.onnx-predict-{batch}\]")
        if keras is None:
            continue
        ratio = Bench.median(keras) / Bench.median(b)
        # Keras' predict times can be bimodal (e.g. 455 or 655 ms a round), so its median
        # depends on the mix of rounds; the target is judged against its fastest round too
        fastest = keras["stats"]["min"] / Bench.median(b)
        quant = file != f"{stem}.onnx"
        target = 3.0 if batch == 1 else (2.5 if quant else 1.3)
        what = "latency" if batch == 1 else "throughput"
        separate = (f"{_near(ratio, target, '{:.2f}×')} ({_ms(Bench.median(b))} vs "
                    f"{_ms(Bench.median(keras))}); {_near(fastest, target, '{:.2f}×')} vs "
                    f"Keras' fastest round ({_ms(keras['stats']['min'])})")
        paired = bench.one(rf"test_keras_paired\[{re.escape(file)}-{batch}\]")
        if paired:  # alternating rounds: the targets are judged on these pairs
            e = paired["extra_info"]
            p_ratio, p_fastest = e["paired_ratio_median"], e["keras_fastest_s"] / e[
                "onnxruntime_median_s"]
            rows.append([f"{file} batch {batch} {what} vs Keras `predict` (same weights, "
                         f"alternating rounds)",
                         f"{_near(p_ratio, target, '{:.2f}×')} (median of {e['rounds']} "
                         f"pairs; {_ms(e['onnxruntime_median_s'])} vs "
                         f"{_ms(e['keras_median_s'])}); {_near(p_fastest, target, '{:.2f}×')} "
                         f"vs Keras' fastest ({_ms(e['keras_fastest_s'])}); "
                         f"separate tests: {separate}",
                         f"≥ {target:g}× (both)", _ok(min(p_ratio, p_fastest) >= target)])
            continue
        rows.append([f"{file} batch {batch} {what} vs Keras `predict` (same weights, same run)",
                     separate, f"≥ {target:g}× (both)", _ok(min(ratio, fastest) >= target)])
    for b in bench.find(r"test_onnxruntime\[(.+)-(8|32)\]"):
        model, batch = b["extra_info"]["model"], b["extra_info"]["batch"]
        whole = bench.one(rf"test_onnxruntime_whole_batch\[{re.escape(model)}-{batch}\]")
        if not whole or b["extra_info"].get("lanes", 1) < 2:
            continue
        separate = (f"{Bench.median(whole) / Bench.median(b):.2f}× "
                    f"({_ms(Bench.median(b))} vs {_ms(Bench.median(whole))})")
        paired = bench.one(rf"test_lanes_paired\[{re.escape(model)}-{batch}\]")
        if paired:
            e = paired["extra_info"]
            ratios = [w / n for n, w in zip(e["lanes_s"], e["whole_s"], strict=True)]
            measured = (f"{e['paired_ratio_median']:.2f}× (median of {e['rounds']} pairs, "
                        f"{min(ratios):.2f}–{max(ratios):.2f}× over the pairs; "
                        f"{_ms(e['lanes_median_s'])} vs {_ms(e['whole_median_s'])}); "
                        f"separate tests: {separate}")
        else:
            measured = separate
        rows.append([f"{model} batch {batch}: {b['extra_info']['lanes']} lanes of one slice vs "
                     "one run of the whole batch (whole-batch time / lanes time)", measured,
                     "(no target)", "—"])
    cli = fp.get("cold_cli", {})
    if "keras_first_result_s" in cli:
        ratio = cli["keras_first_result_s"] / cli["ichinfer_classify_s"]
        rows.append(["cold CLI, process start to first result (one slice) vs Keras script",
                     f"{ratio:.2f}× ({_ms(cli['ichinfer_classify_s'])} vs "
                     f"{_ms(cli['keras_first_result_s'])})", "≥ 5×", _ok(ratio >= 5)])
    mem = fp.get("peak_memory", {})
    if "peak_rss_bytes" in mem:
        mb = mem["peak_rss_bytes"] / 2**20
        rows.append(["peak resident memory, classify + segment CQ500", f"{mb:.0f} MiB", "≤ 400 MB",
                     _ok(mem["peak_rss_bytes"] <= 400e6)])
    for key, what in [("peak_memory_cli", "`ichinfer segment --subtypes` CQ500 (the command: "
                                          "measurements, masks, overlays written; it decodes "
                                          "beside a worker process)"),
                      ("peak_memory_cli_one_process", "the same command with "
                                                      "`--decode-processes 1`"),
                      ("peak_memory_cli_dicom", "the same command with `--dicom-out` (DICOM SEG "
                                                "and overlay series, highdicom)")]:
        mem = fp.get(key, {})
        if "peak_tree_pss_bytes" in mem:  # the command's whole process tree
            b = mem["peak_tree_pss_bytes"]
            rows.append([f"peak memory (PSS of all its processes, summed), {what}",
                         f"{b / 2**20:.0f} MiB ({mem['wall_s']:.2f} s, one run)", "≤ 400 MB",
                         _ok(b <= 400e6)])
        elif "peak_rss_bytes" in mem:
            mb = mem["peak_rss_bytes"] / 2**20
            rows.append([f"peak resident memory, {what}", f"{mb:.0f} MiB", "≤ 400 MB",
                         _ok(mem["peak_rss_bytes"] <= 400e6)])
    inst = fp.get("installed", {})
    if inst.get("tensorflow_bytes"):
        share = inst["runtime_bytes"] / inst["tensorflow_bytes"]
        rows.append(["runtime environment size vs TensorFlow + Keras",
                     f"{share:.1%} ({inst['runtime_bytes'] / 2**20:.0f} MiB vs "
                     f"{inst['tensorflow_bytes'] / 2**20:.0f} MiB)", "≤ 25%", _ok(share <= 0.25)])
        sizes, versions = inst.get("runtime_distributions", {}), inst.get("runtime_versions", {})
        largest = sorted(sizes, key=sizes.get, reverse=True)[:3]
        if versions:
            rows.append(["its largest distributions", "; ".join(
                f"{k} {versions.get(k, '?')}: {sizes[k] / 2**20:.0f} MiB" for k in largest),
                "(no target)", "—"])
        if inst.get("nifti_extra_bytes"):
            total = inst["runtime_bytes"] + inst["nifti_extra_bytes"]
            rows.append(["with the [nifti] extra (nibabel, for NIfTI input)",
                         f"{total / inst['tensorflow_bytes']:.1%} ({total / 2**20:.0f} MiB)",
                         "(no target)", "—"])
    rate = matmul_rate(bench)
    if rate:
        rows.append(["numpy float32 matmul rate (2048³, same run)", f"{rate / 1e9:.0f} GFLOP/s",
                     "(reference)", "—"])
        for b in bench.find(r"test_onnxruntime\[.+-32\]"):
            fl = b["extra_info"].get("flops_per_slice")
            if not fl:
                continue
            model = b["extra_info"]["model"]
            achieved = fl * b["extra_info"]["batch"] / Bench.median(b)
            separate = (f"{_near(achieved / rate, 0.4, '{:.0%}')} ({achieved / 1e9:.1f} "
                        f"GFLOP/s against {rate / 1e9:.0f}, {fl / 1e9:.2f} GFLOP/slice)")
            paired = bench.one(rf"test_flop_rate_paired\[{re.escape(model)}\]")
            if paired is None:
                rows.append([f"{model} batch 32: achieved FLOP rate / matmul rate", separate,
                             "≥ 40%", _ok(achieved / rate >= 0.4)])
                continue
            e = paired["extra_info"]
            ratio = e["paired_ratio_median"]
            vs_fastest = e["model_median_flops_per_s"] / e["matmul_fastest_flops_per_s"]
            rows.append([f"{model} batch 32: achieved FLOP rate / matmul rate (alternating "
                         "rounds)",
                         f"{_near(ratio, 0.4, '{:.0%}')} (median of {e['rounds']} pairs; "
                         f"{e['model_median_flops_per_s'] / 1e9:.1f} GFLOP/s against "
                         f"{e['matmul_median_flops_per_s'] / 1e9:.0f}); "
                         f"{_near(vs_fastest, 0.4, '{:.0%}')} against "
                         f"matmul's fastest round "
                         f"({e['matmul_fastest_flops_per_s'] / 1e9:.0f} GFLOP/s); "
                         f"separate tests: {separate}",
                         "≥ 40% (both)", _ok(min(ratio, vs_fastest) >= 0.4)])
    procs = bench.one(r"test_cq500_decode_processes\[classify_and_segment\]")
    if procs and both:
        rows.append(["CQ500 classify + segment with 2 decode processes (this one and a worker; "
                     "the command line's default, the library's opt-in)",
                     f"{_ms(Bench.median(procs))} ({Bench.median(both) / Bench.median(procs):.2f}× "
                     "the default)", "(no target)", "—"])
    mem = fp.get("peak_memory_decode_processes", {})
    if "peak_tree_pss_bytes" in mem:
        tree = mem["peak_tree_pss_bytes"]
        rows.append(["peak memory, same run with 2 decode processes (PSS of all processes, "
                     "summed)", f"{tree / 2**20:.0f} MiB", "≤ 400 MB", _ok(tree <= 400e6)])
    for b in [*bench.find(r"test_(classify|segment|classify_and_segment|assess)_(40|cq500)"),
              *bench.find(r"test_cq500_decode_processes\[.+\]"), *bench.find(r"test_cq500_gdcm"),
              *bench.find(r"test_cq500_imagecodecs\[.+\]")]:
        frac = b["extra_info"].get("decode_preprocess_fraction")
        if frac is None:
            continue
        rows.append([f"{b['group'].removeprefix('end to end: ')}: decode + preprocessing + "
                     "writing share", f"{frac:.0%} (outside inference: "
                     f"{b['extra_info']['outside_inference_fraction']:.0%})", "≤ 25%",
                     _ok(frac <= 0.25)])
    return rows


def extra_rows(bench: Bench, fp: dict, extra: str = "gdcm") -> list[list[str]]:
    """A JPEG Lossless decoder extra (``gdcm`` or ``imagecodecs``) against pylibjpeg, each
    pair from the same run."""
    rows = []
    pairs = [
        ("read one CQ500 slice to HU", rf"test_read_jpeg_lossless_cq500\[{extra}\]",
         r"test_read_jpeg_lossless_cq500\[pylibjpeg\]"),
        ("decode CQ500 onto the model grid (238 slices, 1 thread)",
         rf"test_decode_series_cq500\[1, {extra}\]", r"test_decode_series_cq500\[1\]"),
        ("decode CQ500 onto the model grid (238 slices, 2 threads)",
         rf"test_decode_series_cq500\[2, {extra}\]", r"test_decode_series_cq500\[2\]"),
        ("decode CQ500 onto the model grid (238 slices, 2 processes)",
         rf"test_decode_series_cq500\[2 processes, {extra}\]",
         r"test_decode_series_cq500\[2 processes\]"),
        ("CQ500 classify + segment, end to end (one decode)",
         r"test_cq500_gdcm" if extra == "gdcm" else r"test_cq500_imagecodecs\[0\]",
         r"test_classify_and_segment_cq500"),
    ]
    if extra == "imagecodecs":  # the GDCM run has no end-to-end test with decode processes
        pairs.append(("CQ500 classify + segment, end to end (one decode), 2 decode processes",
                      r"test_cq500_imagecodecs\[2\]",
                      r"test_cq500_decode_processes\[classify_and_segment\]"))
    for what, mine, base in pairs:
        g, p = bench.one(mine), bench.one(base)
        if g and p:
            rows.append([what, f"{_ms(Bench.median(g))} vs {_ms(Bench.median(p))} "
                         f"({Bench.median(p) / Bench.median(g):.2f}× faster)", "(no target)", "—"])
    mem = fp.get(f"peak_memory_{extra}", {})
    if "peak_rss_bytes" in mem:
        rss = mem["peak_rss_bytes"]
        rows.append([f"peak resident memory, classify + segment CQ500, {extra} decoding",
                     f"{rss / 2**20:.0f} MiB", "≤ 400 MB", _ok(rss <= 400e6)])
    inst = fp.get("installed", {})
    if inst.get(f"{extra}_extra_bytes") and inst.get("tensorflow_bytes"):
        total = inst["runtime_bytes"] + inst[f"{extra}_extra_bytes"]
        share = total / inst["tensorflow_bytes"]
        rows.append(["runtime environment with the extra vs TensorFlow + Keras",
                     f"{share:.1%} ({total / 2**20:.0f} MiB)", "≤ 25%", _ok(share <= 0.25)])
    return rows


def table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def details(bench: Bench) -> str:
    out = []
    groups: dict[str, list[dict]] = {}
    for b in bench.items:
        groups.setdefault(b["group"] or "", []).append(b)
    rows = []
    for group in sorted(groups):
        for b in sorted(groups[group], key=lambda b: b["stats"]["median"]):
            info = b["extra_info"]
            notes = []
            for key in ("engine", "provider", "intra_op_threads", "lanes", "transfer_syntax",
                        "read", "decode_threads", "decode_processes", "jpeg_lossless_decoder",
                        "slices"):
                if key in info:
                    notes.append(f"{key}={info[key]}")
            if "stages_s" in info:
                st = info["stages_s"]
                notes.append("stages: " + ", ".join(f"{k} {_ms(v)}" for k, v in st.items()
                                                    if k != "total"))
            s = b["stats"]
            rows.append([group, f"`{b['name']}`", _ms(s["median"]), _ms(s["min"]),
                         str(s["rounds"]), "; ".join(notes)])
    out.append(table(rows, ["group", "benchmark", "median", "min", "rounds", "notes"]))
    return "\n".join(out)


def render(bench_path: Path, footprint_path: Path | None, draft: str | None,
           gdcm: list[Path] | None = None) -> str:
    data = json.loads(bench_path.read_text())
    bench = Bench(data)
    fp = json.loads(footprint_path.read_text()) if footprint_path else {}
    mi = data.get("machine_info", {})
    ich = mi.get("ichinfer", {})
    parts = ["# Benchmarks", ""]
    if draft:
        parts += [f"> **DRAFT** — {draft}", ""]
    fp_name = footprint_path.name if footprint_path else "—"
    parts += [
        "Produced by the commands below; every figure is from "
        f"`{bench_path.name}` (pytest-benchmark) or `{fp_name}`"
        " (`benchmarks/footprint.py`). Targets are those of issue 4. Medians.",
        "",
        table([
            ["date", str(ich.get("date", data.get("datetime", "?")))],
            ["machine", f"{mi.get('node', '?')} ({mi.get('system', '?')} {mi.get('release', '')})"],
            ["CPU", str(ich.get("cpu_model", mi.get("cpu", {}).get("brand_raw", "?")))],
            ["cores", f"{ich.get('physical_cores', '?')} physical, "
                      f"{ich.get('logical_cpus', '?')} logical"],
            ["load average at start (1, 5, 15 min)",
             ", ".join(f"{v:.1f}" for v in ich.get("load_average_at_start") or [])],
            ["software", ", ".join(
                [f"python {mi.get('python_version', '?')}", f"onnxruntime "
                 f"{ich.get('onnxruntime', '?')}", f"numpy {ich.get('numpy', '?')}"]
                + [f"{k} {ich[k]}" for k in ("pydicom", "opencv-python-headless") if ich.get(k)])],
            ["models", str(ich.get("model_dir", "?"))],
            ["commit", str(data.get("commit_info", {}).get("id", "?"))[:12]
             + (" (dirty)" if data.get("commit_info", {}).get("dirty") else "")],
        ], ["", ""]),
        "",
        "```sh",
        COMMANDS,
        "```",
        "",
        "## Against the targets",
        "",
        table(headline(bench, fp), ["figure", "measured", "target", ""]),
        "",
        "FLOP rates are judged on `test_flop_rate_paired`: a batch of 32 through the runtime "
        "and numpy's float32 matrix multiply alternating, round by round, as the Keras ratios "
        "below; a rate counts as met only when it holds against both matmul's median and its "
        "fastest round. The separate tests' figures are shown beside them. "
        "FLOP rates are against numpy's float32 matrix multiply in the same run, which is not "
        "the CPU's peak: int8 kernels (VNNI) do four times the operations per instruction, and "
        "onnxruntime's float32 convolutions can beat that reference, so a rate can exceed 100 %. "
        "The reference moves with the machine more than onnxruntime's rates do (numpy's matmul "
        "is tuned per CPU family), so compare rates in GFLOP/s across machines, not fractions.",
        "",
        "The Keras ratios are judged on `test_keras_paired`: onnxruntime and Keras' `predict` "
        "alternating on the same batch, round by round, so both halves of a pair meet the "
        "machine in the same state; the ratios from the separate tests, minutes apart, are "
        "shown beside them and move more from run to run. Keras' `predict` rounds can fall into "
        "two speeds within one run (the raw rounds are in `bench.json`), so a ratio counts as "
        "met only when it holds against both Keras' median and its fastest round.",
        "",
        "`lanes` is how ichinfer runs a batch on the CPU: a batch of at least that many slices "
        "runs one slice per run, that many single-threaded runs at a time "
        "(`ichinfer.runtime.Session.run`); `test_onnxruntime_whole_batch` times the same batch "
        "as one run on all the session's threads, the way it ran before, and "
        "`test_lanes_paired` runs the two alternately on one session, round by round (above 1× "
        "lanes are faster).",
        "",
        *_imagecodecs_section(bench, fp),
        *(_gdcm_section(*gdcm) if gdcm else []),
        "## Every benchmark",
        "",
        details(bench),
        "",
    ]
    return "\n".join(parts)


def _imagecodecs_section(bench: Bench, fp: dict) -> list[str]:
    rows = extra_rows(bench, fp, "imagecodecs")
    if not rows:
        return []
    return [
        "## With the opt-in `[imagecodecs]` extra",
        "",
        "libjpeg-turbo (imagecodecs) decoding JPEG Lossless, in the same run as the tables above "
        "(the `[test]` extra installs it; every benchmark without `imagecodecs` in its name "
        "decodes with pylibjpeg, `ICHINFER_JPEG_LOSSLESS_DECODER=pylibjpeg`, as the base "
        "install does). Its decode + preprocessing share is among the targets above.",
        "",
        table(rows, ["figure", "measured", "target", ""]),
        "",
    ]


def _gdcm_section(bench_path: Path, footprint_path: Path) -> list[str]:
    data = json.loads(bench_path.read_text())
    bench = Bench(data)
    date = data.get("machine_info", {}).get("ichinfer", {}).get("date", data.get("datetime", "?"))
    return [
        "## With the opt-in `[gdcm]` extra",
        "",
        f"From `{bench_path.name}` and `{footprint_path.name}` ({date}, the same machine and "
        "environment plus `python-gdcm`; the last commands above). Each pair is from one run: "
        "the pylibjpeg figure with `ICHINFER_JPEG_LOSSLESS_DECODER=pylibjpeg`. With GDCM "
        "installed, `import pydicom` loads it whichever decoder is used.",
        "",
        table(extra_rows(bench, json.loads(footprint_path.read_text()), "gdcm"),
              ["figure", "measured", "target", ""]),
        "",
        details(bench),
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bench", type=Path, help="pytest --benchmark-json output")
    ap.add_argument("footprint", type=Path, nargs="?", help="benchmarks/footprint.py output")
    ap.add_argument("--draft", help="label the table as a draft, with this reason")
    ap.add_argument("--gdcm", type=Path, nargs=2, metavar=("BENCH", "FOOTPRINT"),
                    help="a run with the [gdcm] extra installed, shown in its own section")
    args = ap.parse_args(argv)
    print(render(args.bench, args.footprint, args.draft, args.gdcm))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
