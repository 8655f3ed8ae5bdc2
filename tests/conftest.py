"""Shared pytest fixtures: where the real test scans live, and the marker for tests using them."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).parents[1].parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "shared_data: needs the real scans in ../shared/data (skipped when absent)"
    )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ``../shared/data`` folder of real scans; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test scans not found at {SHARED_DATA} (../shared/data is absent)")
    return SHARED_DATA


# --- runtime fixtures: tiny models with the bundled models' contract, a small phantom study ---


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder with tiny ONNX models and a manifest (see tests/tiny_models.py)."""
    from tiny_models import write_model_dir

    return write_model_dir(tmp_path_factory.mktemp("models"))


class PhantomStudy:
    def __init__(self, folder: Path, n_slices: int, study) -> None:
        self.folder, self.n_slices, self.study = folder, n_slices, study


@pytest.fixture(scope="session")
def phantom_study(tmp_path_factory: pytest.TempPathFactory) -> PhantomStudy:
    """One small positive phantom series (128², 5 mm) written in the RSNA layout."""
    from training.synth import make_study, write_study

    study = make_study(3, size=128, positive=True, thin=False)
    root = tmp_path_factory.mktemp("phantom")
    write_study(study, root)
    folder = root / "stage_2_train"
    return PhantomStudy(folder, len(list(folder.glob("*.dcm"))), study)


@pytest.fixture(scope="session")
def labelled_phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four small phantom series (96², 5 mm; the first and third bleed) in the RSNA layout,
    with ``stage_2_train.csv`` and ``studies.csv``."""
    from training.synth import make_study, write_label_csv, write_studies_csv, write_study

    root = tmp_path_factory.mktemp("labelled_phantoms")
    records = [
        write_study(make_study(700 + i, size=96, positive=i % 2 == 0, thin=False), root,
                    study_index=i)
        for i in range(4)
    ]
    write_label_csv(records, root / "stage_2_train.csv")
    write_studies_csv(records, root / "studies.csv")
    return root
