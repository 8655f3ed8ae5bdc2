"""A one-page, self-contained HTML report per input: verdict, measurements, key slices.

Everything is inline (CSS, and the overlays as base64 PNG), so the file can be mailed or
archived alone. The report names series by UID and slices by index and position; it never
carries patient identifiers such as (0010,0010) Patient's Name or (0010,0020) Patient ID.
"""

from __future__ import annotations

import base64
import datetime as _dt
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from ichinfer import __version__
from ichinfer.classification import Classifier
from ichinfer.labels import LABELS
from ichinfer.pipeline import PathInput, failures_of, scan_inputs
from ichinfer.results import Failure, atomic_write_bytes
from ichinfer.segmentation import Segmenter
from ichinfer.study import SeriesAssessment, iter_assessments

NOTICE = ("Research software. NOT FOR CLINICAL USE: not a medical device, not validated for "
          "diagnosis; every finding must be checked by a qualified reader on the original images.")
KEY_SLICES = 3

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;color:#1b1f24;
max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid #ccd;
padding-bottom:4px}.sub{color:#57606a;font-size:13px}
.notice{background:#fff1f0;border:2px solid #cf222e;color:#82071e;padding:10px 14px;
font-weight:600;margin:12px 0 16px;border-radius:6px}
.verdict{font-size:20px;font-weight:700;padding:8px 12px;border-radius:6px;display:inline-block}
.pos{background:#ffebe9;color:#a40e26}.neg{background:#dafbe1;color:#116329}
table{border-collapse:collapse;font-size:14px;margin:6px 0}
td,th{border:1px solid #d0d7de;padding:4px 10px;text-align:right}th{background:#f6f8fa}
td:first-child,th:first-child{text-align:left}tr.yes td{font-weight:700;color:#a40e26}
.cols{display:flex;gap:28px;flex-wrap:wrap;align-items:flex-start}
figure{margin:0;display:inline-block;text-align:center;font-size:13px}
figure img{width:300px;height:300px;object-fit:contain;background:#000;border-radius:4px;
display:block}.slices{display:flex;gap:14px;flex-wrap:wrap}
footer{margin-top:26px;font-size:12px;color:#57606a}
"""


@dataclass
class Report:
    """What :func:`build_report` produced."""

    html: str
    series: list[SeriesAssessment]
    failures: list[Failure] = field(default_factory=list)
    skipped: list[Failure] = field(default_factory=list)


def build_report(
    paths: PathInput, *, classifier: Classifier, segmenter: Segmenter, key_slices: int = KEY_SLICES,
    gate: bool = False,
) -> Report:
    """Classify and segment every series under ``paths`` and render the report; series that
    fail are listed in the report and in :attr:`Report.failures`. ``gate``: masks only on the
    slices the classifier calls ``any`` (:func:`ichinfer.study.assess_series`)."""
    scan = scan_inputs(paths, on_error="collect")
    failures = failures_of(scan.failures)
    series = list(iter_assessments(scan.series, classifier=classifier, segmenter=segmenter,
                                   gate=gate, on_error="collect", failures=failures))
    models = [classifier.spec.describe(), segmenter.describe(classifier if gate else None)]
    html = render_html(series, models=models, failures=failures, key_slices=key_slices)
    return Report(html=html, series=series, failures=failures,
                  skipped=failures_of(scan.skipped))


def _run_settings(model: dict[str, Any]) -> str:
    """How a segmenter ran its model (``Segmenter.describe``); empty for a classifier."""
    if "mask_threshold" not in model:
        return ""
    text = f"mask threshold {model['mask_threshold']:.2f}"
    text += "; each slab also mirrored, maps averaged" if model.get("mirror") else ""
    return text + ("; masks only on slices the classifier calls 'any'" if model.get("gate")
                   else "")


def _png_data_uri(rgb: Any) -> str:
    from ichinfer.overlay import encode_png  # opencv stays in overlay.py

    return "data:image/png;base64," + base64.b64encode(encode_png(rgb)).decode("ascii")


def _fmt(value: float | None, spec: str = ".1f", unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def _verdict_table(a: SeriesAssessment) -> str:
    c = a.classification
    probs, verdict, thresholds = c.probabilities, c.verdict, c.verdict_thresholds
    rows = []
    for label in LABELS:
        yes = verdict[label]
        rows.append(f"<tr class='{'yes' if yes else ''}'><td>{escape(label)}</td>"
                    f"<td>{probs[label]:.3f}</td><td>{thresholds[label]:.3f}</td>"
                    f"<td>{'YES' if yes else 'no'}</td></tr>")
    return ("<table><tr><th>finding</th><th>probability</th><th>series threshold</th>"
            "<th>call</th></tr>" + "".join(rows) + "</table>")


def _measurements_table(a: SeriesAssessment) -> str:
    m = a.measurements
    seg = a.segmentation
    largest = m.largest
    rows = [("Bleed volume (masks)", _fmt(m.volume_ml, ".1f", " mL")),
            ("Separate bleeds", str(m.n_bleeds))]
    if largest is not None:
        rows += [
            ("Largest bleed: volume", _fmt(largest.volume_ml, ".1f", " mL")),
            ("Largest bleed: ABC/2", _fmt(largest.abc2_ml, ".1f", " mL")
             + f" (A {largest.a_mm:.0f} × B {largest.b_mm:.0f} × C "
               f"{_fmt(largest.c_mm, '.0f')} mm)"),
        ]
    if m.largest_area_index is not None:
        sl = seg.slices[m.largest_area_index]
        rows.append(("Largest cross-section",
                     f"{m.largest_area_mm2 / 100:.1f} cm² on slice {sl.index + 1} "
                     f"({sl.location_mm:.1f} mm)"))
    if m.by_subtype:
        for name, sub in m.by_subtype.items():
            if sub.n_slices:
                rows.append((f"{name} (classifier and mask agree)",
                             f"{_fmt(sub.volume_ml, '.1f', ' mL')} on {sub.n_slices} slice(s)"))
    body = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<table><tr><th>measurement</th><th>value</th></tr>{body}</table>"


def _key_slices(a: SeriesAssessment, k: int) -> str:
    c, seg, m = a.classification, a.segmentation, a.measurements
    picks = [s.index for s in c.key_slices(k)]
    if m.largest_area_index is not None and m.largest_area_index not in picks:
        picks.append(m.largest_area_index)
    figures = []
    for i in sorted(picks):  # head to foot
        s, mask = c.slices[i], seg.slices[i]
        uri = _png_data_uri(seg.overlay(i))
        figures.append(
            f"<figure><img alt='slice {i + 1}' src='{uri}'><figcaption>slice {i + 1} of "
            f"{len(c.slices)} · {s.location_mm:.1f} mm<br>p(any) {s.probabilities['any']:.2f} · "
            f"bleed {mask.area_mm2 / 100:.1f} cm²</figcaption></figure>")
    return "<div class='slices'>" + "".join(figures) + "</div>"


def _series_html(a: SeriesAssessment, number: int, k: int) -> str:
    c = a.classification
    called = [label for label in LABELS[1:] if c.verdict[label]]
    if c.verdict["any"]:
        text = "Hemorrhage suspected" + (f": {', '.join(called)}" if called else "")
        verdict = f"<span class='verdict pos'>{escape(text)}</span>"
    else:
        verdict = "<span class='verdict neg'>No hemorrhage detected</span>"
    spacing = _fmt(c.spacing_mm, ".2f", " mm")
    warnings = "".join(f"<li>{escape(w)}</li>" for w in c.warnings)
    return (
        f"<h2>Series {number}: …{escape(c.series_uid[-16:])}</h2>"
        f"<div class='sub'>{len(c.slices)} slices, spacing {spacing}; slices are numbered "
        "head to foot</div><p>" + verdict + "</p>"
        f"<div class='cols'><div>{_verdict_table(a)}</div><div>{_measurements_table(a)}</div>"
        "</div>" + (f"<ul class='sub'>{warnings}</ul>" if warnings else "")
        + "<h3 style='font-size:15px'>Key slices (bleed in blue)</h3>" + _key_slices(a, k)
    )


def render_html(
    assessments: Sequence[SeriesAssessment],
    *,
    models: Sequence[dict[str, Any]] = (),
    failures: Sequence[Failure] = (),
    key_slices: int = KEY_SLICES,
    generated: _dt.datetime | None = None,
) -> str:
    """The report's HTML (a complete, self-contained document)."""
    when = (generated or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    studies = sorted({a.classification.study_uid for a in assessments})
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>ichinfer report (not for clinical use)</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Intracranial hemorrhage: automated analysis</h1>",
        f"<div class='sub'>Study {escape(', '.join('…' + s[-16:] for s in studies) or 'n/a')}"
        f" · {len(assessments)} series · generated {when}</div>",
        f"<div class='notice'>{escape(NOTICE)}</div>",
    ]
    if not assessments:
        parts.append("<p>No series could be analysed.</p>")
    for n, a in enumerate(assessments, start=1):
        parts.append(_series_html(a, n, key_slices))
    if failures:
        items = "".join(f"<li>{escape(os.path.basename(f.path) or f.path)}: {escape(f.reason)}"
                        "</li>" for f in failures)
        parts.append(f"<h2>Inputs not analysed</h2><ul>{items}</ul>")
    model_rows = "".join(
        f"<tr><td>{escape(str(m.get('task', '')))}</td><td>{escape(str(m.get('name', '')))}</td>"
        f"<td>{escape(str(m.get('version', '')))}</td><td>{escape(str(m.get('file', '')))}</td>"
        f"<td>{escape(_run_settings(m))}</td>"
        f"<td>{escape(str(m.get('training_data', '')))}</td></tr>" for m in models)
    parts.append(
        "<h2>Models</h2><table><tr><th>task</th><th>name</th><th>version</th><th>file</th>"
        f"<th>run with</th><th>trained on</th></tr>{model_rows}</table>"
        "<footer>Volumes: mask area × distance between slice positions. ABC/2: A the longest "
        "axis on the slice of largest area, B the longest chord perpendicular to it, C the "
        "slice count × spacing (valid for roughly ellipsoidal bleeds). Subtype volumes count "
        f"the mask on slices where the classifier calls the subtype. ichinfer {__version__}. "
        f"{escape(NOTICE)}</footer></body></html>")
    return "".join(parts)


def write_report(report_html: str, path: str | os.PathLike) -> None:
    atomic_write_bytes(path, report_html.encode("utf-8"))
