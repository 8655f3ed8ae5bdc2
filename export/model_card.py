"""Render models/README.md (the model card) from what the commands measured.

    python export/model_card.py            # reads models/manifest.json + models/evaluation.json

Every figure in the card comes from ``models/manifest.json`` (written by ``export/to_onnx.py``:
parameters, training validation, quantization check) or ``models/evaluation.json`` (written by
``training/evaluate.py`` on held-out phantoms and the real scans), or, for the candidates that
were not bundled, their own ``training/evaluate.py`` output kept in ``training/trials/``
(``CANDIDATES``). Nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural")
SHORT = {
    "any": "any",
    "epidural": "EDH",
    "intraparenchymal": "IPH",
    "intraventricular": "IVH",
    "subarachnoid": "SAH",
    "subdural": "SDH",
}


def f3(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.3f}"


def with_interval(value, interval, series: int | None = None, what: str = "") -> str:
    """``0.866 (0.788–0.947)``, or with ``what`` ``0.836 (0.717–0.983; 5 series with it)``;
    where no interval was drawn, the number of series behind the value instead (an evaluation
    from before intervals were recorded: the value alone)."""
    if interval:
        more = f"; {series} series {what}" if what and series is not None else ""
        return f"{f3(value)} ({f3(interval[0])}–{f3(interval[1])}{more})"
    if series is not None:
        return f"{f3(value)} ({series} series)"
    return f3(value)


def classifier_rows(evaluation: dict) -> list[str]:
    head = (
        "| model | slices | "
        + " | ".join(f"AUC {SHORT[k]}" for k in LABELS)
        + " | weighted log loss | s |"
    )
    rows = [head, "|" + " --- |" * (len(LABELS) + 4)]
    for c in evaluation.get("classifiers", []):
        ci, n = c.get("auc_ci95", {}), c.get("positive_series", {})
        aucs = " | ".join(with_interval(c["auc"][k], ci.get(k), n.get(k)) for k in LABELS)
        rows.append(
            f"| `{c['model']}` | {c['slices']} | {aucs} | {f3(c['weighted_log_loss'])} "
            f"| {c['seconds']} |"
        )
    return rows


def operating_rows(evaluation: dict) -> list[str]:
    rows = [
        "| model | label | threshold | sensitivity | specificity |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in evaluation.get("classifiers", []):
        for k in LABELS:
            at = c["at_default_thresholds"][k]
            rows.append(
                f"| `{c['model']}` | {k} | {f3(at['threshold'])} | "
                f"{f3(at['sensitivity'])} | {f3(at['specificity'])} |"
            )
    return rows


def series_rows(evaluation: dict) -> list[str]:
    """Per classifier and label: the series verdict (highest slice against the series
    threshold) next to the highest slice against the slice threshold, series-level."""
    rows = [
        "| model | label | series with it | series threshold | sensitivity | specificity | "
        "at the slice threshold: sensitivity / specificity |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in evaluation.get("classifiers", []):
        series = c.get("series")
        if not series:
            continue
        for k in LABELS:
            v, s = series[k]["verdict"], series[k]["at_slice_threshold"]
            rows.append(
                f"| `{c['model']}` | {k} | {series[k]['positive_series']} / {series['series']} | "
                f"{f3(v['threshold'])} | {f3(v['sensitivity'])} | {f3(v['specificity'])} | "
                f"{f3(s['sensitivity'])} / {f3(s['specificity'])} |"
            )
    return rows


def series_rule_rows(manifest: dict) -> list[str]:
    """How each classifier's series thresholds were set (from the manifest)."""
    by_rule: dict[str, list[str]] = {}
    for name, entry in sorted(manifest.get("models", {}).items()):
        if entry.get("series_threshold_rule"):
            by_rule.setdefault(entry["series_threshold_rule"], []).append(f"`{name}`")
    return [f"- {', '.join(names)}: {rule}." for rule, names in by_rule.items()]


def segmenter_rows(evaluation: dict) -> list[str]:
    rows = [
        "| model | slices (with bleed) | Dice, pooled | Dice, mean over bleeding slices | "
        "plain 50–90 HU masking: pooled / mean | volume: median relative error (series) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in evaluation.get("segmenters", []):
        vol = s["volume_median_relative_error"]
        plain = with_interval(
            s["plain_masking_dice_pooled"], s.get("plain_masking_dice_pooled_ci95")
        )
        rows.append(
            f"| `{s['model']}` | {s['slices']} ({s['bleeding_slices']}) | "
            f"{with_interval(s['dice_pooled'], s.get('dice_pooled_ci95'))} | "
            f"{f3(s['dice_mean_bleeding_slices'])} | {plain} / "
            f"{f3(s['plain_masking_dice_mean_bleeding_slices'])} | "
            f"{'n/a' if vol is None else f'{vol:.1%}'} ({s['volume_series']}) |"
        )
    return rows


def real_rows(evaluation: dict) -> list[str]:
    rows = [
        "| model | CQ500-CT-0 slices flagged `any` | series `any` probability | series verdict | "
        "known-negative RSNA samples flagged | all 23 RSNA samples flagged |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in evaluation.get("real", []):
        cq = r.get("cq500_ct0")
        cq_txt = (
            f"{cq['flagged_any']} / {cq['slices']} ({cq['flagged_fraction']:.1%})" if cq else "n/a"
        )
        cq_p = f3(cq["series_any_probability"]) if cq else "n/a"
        verdict = cq.get("series_verdict") if cq else None
        called = [SHORT[k] for k in LABELS if verdict and verdict[k]]
        v_txt = "n/a" if verdict is None else (", ".join(called) if called else "no bleed")
        neg = r.get("rsna_known_negatives_flagged")
        rows.append(
            f"| `{r['model']}` | {cq_txt} | {cq_p} | {v_txt} | "
            f"{'n/a' if neg is None else f'{neg} / 3'} | "
            f"{r.get('rsna_samples_flagged_any', 'n/a')} / {r.get('rsna_samples', 'n/a')} |"
        )
    return rows


def real_segmenter_rows(evaluation: dict) -> list[str]:
    rows = [
        "| model | CQ500-CT-0 slices with any mask | volume marked (all of it false) |",
        "| --- | --- | --- |",
    ]
    for r in evaluation.get("real_segmenters", []):
        cq = r["cq500_ct0"]
        marked = f"{cq['slices_marked']} / {cq['slices']}"
        rows.append(f"| `{r['model']}` | {marked} | {cq['volume_ml']:.1f} mL |")
    return rows


def real_label_rows(evaluation: dict) -> list[str]:
    rows = [
        "| model | " + " | ".join(f"{SHORT[k]} flagged" for k in LABELS) + " |",
        "|" + " --- |" * (len(LABELS) + 1),
    ]
    for r in evaluation.get("real", []):
        by = r.get("cq500_ct0_flagged_by_label")
        if by:
            rows.append(f"| `{r['model']}` | " + " | ".join(str(by[k]) for k in LABELS) + " |")
    return rows


def model_rows(manifest: dict) -> list[str]:
    rows = [
        "| file | task | precision | parameters | bytes | sha256 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, e in sorted(manifest["models"].items()):
        rows.append(
            f"| `{name}` | {e.get('task')} | {e.get('precision')} | "
            f"{e.get('params', '(as its float model)')} | {e.get('bytes')} | "
            f"`{e['sha256'][:16]}…` |"
        )
    return rows


def quant_rows(manifest: dict) -> list[str]:
    """Each quantization check: float32's and int8's figure, and the largest change from one to
    the other (for a classifier the label that lost most, which the export's rule judges, as
    the lowest AUC alone can hide it)."""
    rows = [
        "| model | float32 (validation) | int8 (validation) | largest change | kept |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, e in sorted(manifest["models"].items()):
        q = e.get("quantization")
        if not q:
            continue
        if "min_auc" in q["fp32"]:
            a, b = f"min AUC {f3(q['fp32']['min_auc'])}", f"min AUC {f3(q['int8']['min_auc'])}"
            # export/to_onnx.py's worst_change, with its label (this renderer stays stdlib-only)
            fp32, int8 = q["fp32"]["auc"], q["int8"]["auc"]
            worst = min((k for k in fp32 if not math.isnan(fp32[k])),
                        key=lambda k: int8[k] - fp32[k])
            change = f"{int8[worst] - fp32[worst]:+.3f} ({worst})"
        else:
            a, b = f"Dice {f3(q['fp32']['dice_pooled'])}", f"Dice {f3(q['int8']['dice_pooled'])}"
            change = f"{q['int8']['dice_pooled'] - q['fp32']['dice_pooled']:+.3f}"
        rows.append(f"| `{name}` | {a} | {b} | {change} | {'yes' if q['kept'] else 'no'} |")
    return rows


def training_rows(manifest: dict) -> list[str]:
    rows = [
        "| model | command | training slices | validation slices | seconds |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, e in sorted(manifest["models"].items()):
        t = e.get("training")
        if t:
            rows.append(
                f"| `{name}` | `{t['command']}` | {t['n_train_slices']} | "
                f"{t['n_val_slices']} | {t['train_seconds']} |"
            )
    return rows


def target_rows(manifest: dict, evaluation: dict) -> list[str]:
    """The issue's targets next to what was measured (default models)."""
    rows = ["| target | measured | met |", "| --- | --- | --- |"]
    default_cls = manifest.get("defaults", {}).get("classify")
    default_seg = manifest.get("defaults", {}).get("segment")
    cls = {c["model"]: c for c in evaluation.get("classifiers", [])}
    seg = {c["model"]: c for c in evaluation.get("segmenters", [])}
    real = {r["model"]: r for r in evaluation.get("real", [])}

    def met(ok: bool) -> str:
        return "yes" if ok else "**no**"

    if default_cls in cls:
        c = cls[default_cls]
        aucs = [v for v in c["auc"].values() if not math.isnan(v)]
        low = min((v, k) for k, v in c["auc"].items() if not math.isnan(v))[1]
        series = c.get("positive_series", {}).get(low)
        rows.append(
            f"| phantom per-label AUC ≥ 0.97 (`{default_cls}`) | lowest {low} "
            f"{with_interval(c['auc'][low], c.get('auc_ci95', {}).get(low), series, 'with it')}"
            f" | {met(c['auc'][low] >= 0.97)} |"
        )
        if "seed_cnn.onnx" in cls:
            mine = sum(aucs) / len(aucs)
            base = [v for v in cls["seed_cnn.onnx"]["auc"].values() if not math.isnan(v)]
            rows.append(
                f"| default classifier clearly ahead of `seed_cnn` | mean AUC {mine:.3f} vs "
                f"{sum(base) / len(base):.3f} | {met(mine > sum(base) / len(base) + 0.05)} |"
            )
    if default_seg in seg:
        sg = seg[default_seg]
        d = sg["dice_pooled"]
        n = sg.get("bleeding_series")
        rows.append(
            f"| phantom Dice ≥ 0.85 (`{default_seg}`, pooled) | "
            f"{with_interval(d, sg.get('dice_pooled_ci95'), n, 'with a bleed')} | "
            f"{met(d >= 0.85)} |"
        )
    r = real.get(default_cls)
    if r and r.get("cq500_ct0"):
        frac = r["cq500_ct0"]["flagged_fraction"]
        rows.append(
            f"| CQ500-CT-0 (normal by majority read): ≤ 5 % of slices flagged `any` | "
            f"{frac:.1%} | {met(frac <= 0.05)} |"
        )
    if r and r.get("rsna_known_negatives_flagged") is not None:
        n = r["rsna_known_negatives_flagged"]
        rows.append(
            f"| none of the 3 known-negative RSNA samples flagged | {n} flagged | {met(n == 0)} |"
        )
    rows.append(
        "| real bleeds: ≥ 90 % of bleeding slices found; segmenter beats plain masking | "
        "not measurable here: no labelled real bleeds are available to the project | — |"
    )
    return rows


#: the bundle before stage L's segmenter replaced stage H's, as its row in both candidates' tables
BUNDLED_BEFORE_L = "stage G's classifier, stage H's segmenter at 0.65 (bundled before stage L)"
#: candidates scored like the bundled models (``training/evaluate.py``) on the test phantoms of
#: the stage-C generator (``phantoms-test``, seed 99), shown side by side
CANDIDATES = (
    (
        "classifier and segmenter bundled before (stage A; pre-activation segmenter), "
        "thresholds re-set on the current `phantoms-val`",
        "training/trials/previous-bundle-evaluation.json",
    ),
    (
        "stage B (classifier with `--hu-shift 15`; Conv-BN-ReLU segmenter)",
        "training/trials/stage-b-evaluation.json",
    ),
    (
        "stage C (phantoms without dense dural folds or muscle at real density)",
        "training/trials/stage-c-evaluation.json",
    ),
    (
        "stage D (its segmenter on 45 % bleeding slices)",
        "training/trials/stage-d-evaluation.json",
    ),
    (
        "stage E (stage D's classifier, stage E's segmenter)",
        "training/trials/stage-e-evaluation.json",
    ),
    (
        "stage F (bundled before: stage F's classifier, stage E's segmenter)",
        "training/trials/stage-f-evaluation.json",
    ),
    (BUNDLED_BEFORE_L, "training/trials/stage-g-evaluation.json"),
)
#: the stages the bundled models come from (``training/make_bundled_models.sh``), as their row
#: in the candidates' table on the current test phantoms (``models/evaluation.json``); they
#: were not scored on ``phantoms-test``
BUNDLED = "**bundled (stage X's classifier, stage Y's segmenter at 0.70)**"
#: the bundle before stage P's classifier replaced stage G's
BUNDLED_BEFORE_P = "stage G's classifier, stage L's segmenter (bundled before stage P)"
#: the bundle before stage X's classifier replaced stage P's
BUNDLED_BEFORE_X = "stage P's classifier, stage L's segmenter (bundled before stage X)"
#: the bundle before stage Y's segmenter replaced stage L's
BUNDLED_BEFORE_Y = "stage X's classifier, stage L's segmenter (bundled before stage Y)"
#: the bundle before stage Y's mask threshold was chosen again (0.80 -> 0.95, same weights)
BUNDLED_BEFORE_Y_THRESHOLD = (
    "stage X's classifier, stage Y's segmenter at 0.80 (bundled before its threshold rule)"
)
#: the bundle before the mask threshold was chosen on the runtime's masks (0.95 -> 0.70)
BUNDLED_BEFORE_Z_THRESHOLD = (
    "stage X's classifier, stage Y's segmenter at 0.95 (bundled before the runtime's "
    "threshold rule)"
)
#: earlier stages on stage D's generator's test phantoms (``models/evaluation.json``'s)
REPLACED_ON_CURRENT_TEST = (
    ("stage C", "training/trials/stage-c-evaluation-test2.json"),
    ("stage D", "training/trials/stage-d-evaluation-test2.json"),
    ("stage E", "training/trials/stage-e-evaluation-test2.json"),
    (
        "stage F (bundled before: with stage E's segmenter)",
        "training/trials/stage-f-evaluation-test2.json",
    ),
    (BUNDLED_BEFORE_L, "training/trials/stage-h-evaluation-test2.json"),
    (BUNDLED_BEFORE_P, "training/trials/bundle-before-p-evaluation-test2.json"),
    (BUNDLED_BEFORE_X, "training/trials/bundle-before-x-evaluation-test2.json"),
    (BUNDLED_BEFORE_Y, "training/trials/bundle-before-y-evaluation-test2.json"),
    (BUNDLED_BEFORE_Y_THRESHOLD,
     "training/trials/bundle-before-threshold-y-evaluation-test2.json"),
    (BUNDLED_BEFORE_Z_THRESHOLD,
     "training/trials/bundle-before-threshold-z-evaluation-test2.json"),
)


#: later candidates the selection rules did not bundle, on the same test phantoms
NOT_CHOSEN_ON_CURRENT_TEST = (
    (
        "stage I (not bundled: stage I's classifier, stage H's segmenter)",
        "training/trials/stage-i-evaluation-test2.json",
    ),
    (
        "stage J (not bundled: stage G's classifier, stage J's segmenter at 0.5)",
        "training/trials/stage-j-evaluation-test2.json",
    ),
)


def candidate_rows(entries: list[tuple[str, dict]]) -> list[str]:
    def row(name: str, ev: dict) -> str:
        clf = next(c for c in ev["classifiers"] if c["model"] == "densenet25d.onnx")
        seg = next(s for s in ev["segmenters"] if s["model"] == "densenet_unet.onnx")
        real = next((r for r in ev.get("real", []) if r["model"] == "densenet25d.onnx"), None)
        auc = clf["auc"]
        low = min(auc, key=auc.get)
        cq = f"{real['cq500_ct0']['flagged_any']} / {real['cq500_ct0']['slices']}" if real else "—"
        neg = f"{real['rsna_known_negatives_flagged']} / 3" if real else "—"
        marked = next(
            (r for r in ev.get("real_segmenters", []) if r["model"] == "densenet_unet.onnx"), None
        )
        ml = f"{marked['cq500_ct0']['volume_ml']:.1f} mL" if marked else "—"
        return (
            f"| {name} | {f3(auc['any'])} | {f3(sum(auc.values()) / len(auc))} | "
            f"{f3(auc[low])} ({low}) | {f3(seg['dice_pooled'])} | {cq} | {neg} | {ml} |"
        )

    rows = [
        "| candidate | `any` AUC | mean label AUC | lowest label AUC | Dice (pooled) | "
        "CQ500 slices flagged `any` | known negatives flagged | CQ500 volume segmented |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    return rows + [row(name, ev) for name, ev in entries]


def _read(path: str, root: Path) -> dict:
    return json.loads((root / path).read_text())


def _read_all(pairs: tuple[tuple[str, str], ...], root: Path) -> list[tuple[str, dict]]:
    """(row name, evaluation) for each (row name, path) pair."""
    return [(name, _read(path, root)) for name, path in pairs]


def candidates_old_test(root: Path = ROOT) -> list[str]:
    return candidate_rows(_read_all(CANDIDATES, root))


def candidates_current_test(evaluation: dict, root: Path = ROOT) -> list[str]:
    return candidate_rows(
        [
            *_read_all(REPLACED_ON_CURRENT_TEST, root),
            (BUNDLED, evaluation),
            *_read_all(NOT_CHOSEN_ON_CURRENT_TEST, root),
        ]
    )


#: the bundle on a larger test set (``training/evaluate.py`` over several folders)
LARGER_TEST = "training/trials/bundle-evaluation-test2-test5.json"


def render(manifest: dict, evaluation: dict, template: str, root: Path = ROOT) -> str:
    larger = _read(LARGER_TEST, root) if (root / LARGER_TEST).exists() else {}
    tables = {
        "TARGETS": target_rows(manifest, evaluation),
        "MODELS": model_rows(manifest),
        "TRAINING": training_rows(manifest),
        "CLASSIFIERS": classifier_rows(evaluation),
        "OPERATING": operating_rows(evaluation),
        "SERIES": series_rows(evaluation),
        "SERIES-RULES": series_rule_rows(manifest),
        "SEGMENTERS": segmenter_rows(evaluation),
        "REAL": real_rows(evaluation),
        "REAL-LABELS": real_label_rows(evaluation),
        "REAL-SEGMENTERS": real_segmenter_rows(evaluation),
        "QUANT": quant_rows(manifest),
        "CANDIDATES": candidates_old_test(root),
        "CANDIDATES-CURRENT": candidates_current_test(evaluation, root),
        "LARGER-CLASSIFIERS": classifier_rows(larger),
        "LARGER-SEGMENTERS": segmenter_rows(larger),
    }
    out = template
    for key, rows in tables.items():
        out = out.replace(f"<!-- {key} -->", "\n".join(rows))
    out = out.replace("<!-- TEST-DATA -->", evaluation.get("data", "n/a"))
    out = out.replace("<!-- LARGER-TEST-DATA -->", larger.get("data", "n/a"))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, default=ROOT / "models")
    p.add_argument("--template", type=Path, default=ROOT / "export" / "model_card.md")
    args = p.parse_args(argv)
    manifest = json.loads((args.models / "manifest.json").read_text())
    evaluation = json.loads((args.models / "evaluation.json").read_text())
    text = render(manifest, evaluation, args.template.read_text())
    (args.models / "README.md").write_text(text)
    print(f"wrote {args.models / 'README.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
