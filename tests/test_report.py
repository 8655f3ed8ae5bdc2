"""The one-page HTML report: self-contained, no patient identifiers, renders in a browser."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from ichinfer.cli import app

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


@pytest.fixture(scope="module")
def report_html(phantom_study, tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    res = CliRunner().invoke(app, ["report", str(phantom_study.folder), "--out", str(out),
                                   "--model-dir", str(tiny_model_dir), "--quiet"])
    assert res.exit_code == 0, res.output
    return out


def test_report_is_self_contained_and_complete(report_html, phantom_study):
    html = report_html.read_text()
    assert "NOT FOR CLINICAL USE" in html
    assert "tiny_classify" in html and "0.0-test" in html  # model versions
    assert "Bleed volume" in html and "ABC/2" in html and "Separate bleeds" in html
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(images) >= 3
    assert not re.search(r"(src|href)=['\"](?!data:)", html)  # nothing fetched from outside
    ds = pydicom.dcmread(next(phantom_study.folder.glob("*.dcm")), stop_before_pixels=True)
    for kw in ("PatientName", "PatientID"):
        value = str(ds.get(kw) or "")
        if value:
            assert value not in html, f"{kw} must not appear in the report"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it)")
def test_report_renders_in_headless_chromium(report_html, tmp_path):
    png = tmp_path / "report.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}",
           "--window-size=1200,1600", report_html.resolve().as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert png.is_file() and png.stat().st_size > 10_000
    import cv2

    img = cv2.imread(str(png))
    assert img is not None and img.shape[:2] == (1600, 1200)
    assert img.std() > 20  # not blank
    # the red notice box and the dark overlay pictures are on the page
    b, g, r = (img[..., k].astype(int) for k in range(3))
    assert ((r > 150) & (g < 80) & (b < 80)).sum() > 500
    assert (img.max(axis=-1) < 30).mean() > 0.05
    assert np.isfinite(img.mean())


def test_report_takes_the_segmenters_settings_and_says_them(phantom_study, tiny_model_dir,
                                                            tmp_path):
    texts = []
    for extra in ([], ["--mask-threshold", "0.3", "--mirror", "--gate"]):
        out = tmp_path / f"r{len(extra)}.html"
        res = CliRunner().invoke(app, ["report", str(phantom_study.folder), "--out", str(out),
                                       "--model-dir", str(tiny_model_dir), "--quiet", *extra])
        assert res.exit_code == 0, res.output
        texts.append(out.read_text())
    assert "mask threshold 0.30; each slab also mirrored" in texts[1]
    assert "mask threshold 0.30" not in texts[0] and "mirrored" not in texts[0]
    assert "; masks only on slices the classifier calls" in texts[1]
    assert "masks only on" not in texts[0]
    assert "<th>run with</th>" in texts[0]
