"""Model inference per batch size, for every ONNX file the manifest lists (fp32, int8, fp16),
and the same weights through Keras (``model.predict`` and ``model(x, training=False)``) in the
same run, so ``render.py`` can put the ratio side by side."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import BATCH_SIZES, random_hu, session_info

from ichinfer import runtime

KERAS_BATCH_SIZES = (1, 32)
#: pause before each half of a pair: after ``predict`` TensorFlow stays busy for a while (on the
#: 2-core VM, onnxruntime's int8 segmenter at batch 32 ran about 400 ms 0.2 s after it and 290 ms
#: 1 s after it, as alone), and onnxruntime's thread pool spins after a run
PAUSE_S = 1.0


def _flops(path: Path) -> int | None:
    try:
        from flops import flops_per_slice

        return flops_per_slice(path)
    except ImportError:  # onnx is not a runtime dependency
        return None


@pytest.fixture(scope="module")
def sessions(model_dir: Path):
    cache: dict[str, runtime.Session] = {}

    def get(name: str) -> runtime.Session:
        if name not in cache:
            cache[name] = runtime.get_session(model_dir / name, device="cpu")
        return cache[name]

    return get


@pytest.mark.parametrize("batch", BATCH_SIZES)
def test_onnxruntime(benchmark, sessions, model_file: str, batch: int) -> None:
    session = sessions(model_file)
    spec = session.spec
    x = random_hu(batch, spec.input_size[0], spec.channels)
    session.run(x)  # warm-up: first-run allocations are set-up, not inference
    benchmark.group = f"inference {Path(model_file).name.split('.')[0]} batch {batch}"
    benchmark.extra_info.update(session_info(session), batch=batch, engine="onnxruntime",
                                flops_per_slice=_flops(spec.path))
    y = benchmark(session.run, x)
    assert y.shape[0] == batch


@pytest.mark.parametrize("batch", [b for b in BATCH_SIZES if b > 1])
def test_onnxruntime_whole_batch(benchmark, model_dir: Path, model_file: str, batch: int) -> None:
    """The same batch as one run on all the session's threads (``lanes`` off): what
    ``Session.run`` did before a batch ran slice by slice in parallel lanes."""
    session = runtime.Session(model_dir / model_file, ["CPUExecutionProvider"],
                              runtime.resolve_threads(None))
    session.lanes = 1
    spec = session.spec
    x = random_hu(batch, spec.input_size[0], spec.channels)
    session.run(x)
    benchmark.group = f"inference {Path(model_file).name.split('.')[0]} batch {batch}"
    benchmark.extra_info.update(session_info(session), batch=batch,
                                engine="onnxruntime, whole batch in one run")
    y = benchmark(session.run, x)
    assert y.shape[0] == batch


def _alternating(first, second):
    """``first`` and ``second`` timed alternately, which goes first alternating too, with
    :data:`PAUSE_S` before each: a pytest-benchmark round function and the two lists of seconds
    it fills, pair by pair."""
    a_s: list[float] = []
    b_s: list[float] = []

    def timed(fn, into: list[float]) -> None:
        time.sleep(PAUSE_S)
        t0 = time.perf_counter()
        fn()
        into.append(time.perf_counter() - t0)

    def pair() -> None:
        halves = [(first, a_s), (second, b_s)]
        for fn, into in halves if len(a_s) % 2 == 0 else halves[::-1]:
            timed(fn, into)

    return pair, a_s, b_s


@pytest.mark.parametrize("batch", [b for b in BATCH_SIZES if b > 1])
def test_lanes_paired(benchmark, model_dir: Path, model_file: str, batch: int) -> None:
    """Lanes (how ``Session.run`` runs a batch on the CPU: one slice per run, one
    single-threaded run per core) and one run of the whole batch on all the threads, on the same
    session and batch, alternating round by round: the separate tests above are minutes apart
    and the machine's speed moves more than the difference between the two."""
    session = runtime.Session(model_dir / model_file, ["CPUExecutionProvider"],
                              runtime.resolve_threads(None))
    lanes = session.lanes
    if lanes < 2:
        pytest.skip("one core: a batch runs whole")
    spec = session.spec
    x = random_hu(batch, spec.input_size[0], spec.channels)

    def with_lanes(n: int):
        def run() -> None:
            session.lanes = n
            session.run(x)
        return run

    with_lanes(lanes)()  # warm-up of both sessions (the lanes' single-threaded one is its own)
    with_lanes(1)()
    pair, lanes_s, whole_s = _alternating(with_lanes(lanes), with_lanes(1))
    benchmark.group = f"paired lanes / whole batch, {Path(model_file).name.split('.')[0]} " \
                      f"batch {batch}"
    benchmark.pedantic(pair, rounds=7, iterations=1)
    session.lanes = lanes
    ratios = [w / n for n, w in zip(lanes_s, whole_s, strict=True)]
    benchmark.extra_info.update(
        session_info(session), batch=batch, engine="onnxruntime, lanes and whole batch alternating",
        rounds=len(ratios), paired_ratio_median=statistics.median(ratios),
        lanes_median_s=statistics.median(lanes_s), whole_median_s=statistics.median(whole_s),
        lanes_s=lanes_s, whole_s=whole_s)
    assert len(ratios) == 7


def test_flop_rate_paired(benchmark, sessions, model_file: str) -> None:
    """A batch of 32 through ``Session.run`` and numpy's float32 matrix multiply (the machine's
    reference, as in ``test_limit.py``) alternating round by round, so each FLOP-rate ratio is of
    two timings taken in the same state of the machine."""
    from test_limit import N, matmul_operands

    session = sessions(model_file)
    spec = session.spec
    flops = _flops(spec.path)
    if not flops:
        pytest.skip("the onnx package is not installed: no FLOP count")
    x = random_hu(32, spec.input_size[0], spec.channels)
    a, b, out = matmul_operands()
    session.run(x)  # warm-up
    np.matmul(a, b, out=out)
    pair, model_s, matmul_s = _alternating(lambda: session.run(x),
                                           lambda: np.matmul(a, b, out=out))
    benchmark.group = "machine limit, paired with numpy's matmul (batch 32)"
    benchmark.pedantic(pair, rounds=9, iterations=1)
    model_rates = [flops * 32 / t for t in model_s]
    matmul_rates = [2 * N**3 / t for t in matmul_s]
    ratios = [m / r for m, r in zip(model_rates, matmul_rates, strict=True)]
    benchmark.extra_info.update(
        session_info(session), batch=32, flops_per_slice=flops, matmul_n=N,
        engine="onnxruntime and numpy matmul, alternating", rounds=len(ratios),
        paired_ratio_median=statistics.median(ratios),
        model_median_flops_per_s=statistics.median(model_rates),
        matmul_median_flops_per_s=statistics.median(matmul_rates),
        matmul_fastest_flops_per_s=max(matmul_rates), model_s=model_s, matmul_s=matmul_s)
    assert len(ratios) == 9


@pytest.fixture(scope="module")
def keras_model(keras_dir: Path):
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed (the [train] extra)")
    keras = pytest.importorskip("keras", reason="Keras is not installed (the [train] extra)")
    import training.models  # noqa: F401 - registers the HUWindows layer

    loaded: dict[str, object] = {}

    def get(stem: str):
        path = keras_dir / f"{stem}.keras"
        if not path.exists():
            pytest.skip(f"no Keras checkpoint {path} (set ICHINFER_KERAS_DIR or --keras-dir)")
        if stem not in loaded:
            loaded[stem] = keras.saving.load_model(path, compile=False)
        return loaded[stem]

    return get


@pytest.mark.parametrize("batch", KERAS_BATCH_SIZES)
@pytest.mark.parametrize("call", ["predict", "call"])
def test_keras(benchmark, keras_model, sessions, model_file: str, call: str, batch: int) -> None:
    stem = Path(model_file).name.split(".")[0]
    if Path(model_file).name != f"{stem}.onnx":
        pytest.skip(f"{model_file} is a variant; Keras runs the float32 weights once per model")
    import tensorflow as tf

    model = keras_model(stem)
    spec = sessions(model_file).spec
    x = random_hu(batch, spec.input_size[0], spec.channels)
    if call == "predict":
        def fn():
            return model.predict(x, batch_size=batch, verbose=0)
    else:
        def fn():
            return np.asarray(model(x, training=False))
    fn()  # warm-up: tracing and graph building are set-up
    benchmark.group = f"inference {stem} batch {batch}"
    benchmark.extra_info.update(engine=f"keras {call}", batch=batch, model=f"{stem}.keras",
                                keras_backend=__import__("keras").backend.backend(),
                                tensorflow=tf.__version__,
                                tf_intra_op_threads=tf.config.threading
                                .get_intra_op_parallelism_threads())
    y = benchmark(fn)
    assert y.shape[0] == batch


@pytest.mark.parametrize("batch", KERAS_BATCH_SIZES)
def test_keras_paired(benchmark, keras_model, sessions, model_file: str, batch: int) -> None:
    """onnxruntime and Keras ``predict`` on the same batch, alternating round by round (which
    goes first alternates too), each pair's times kept. Tests run minutes apart share none of
    the machine's moments (another process, a clock change); the two halves of a pair do, so
    the ratio of their times is what ``render.py`` judges the Keras targets on."""
    stem = Path(model_file).name.split(".")[0]
    model = keras_model(stem)
    session = sessions(model_file)
    spec = session.spec
    x = random_hu(batch, spec.input_size[0], spec.channels)
    pair, ort_s, keras_s = _alternating(
        lambda: session.run(x), lambda: model.predict(x, batch_size=batch, verbose=0))
    session.run(x)  # warm-up: first-run allocations, tracing and graph building are set-up
    model.predict(x, batch_size=batch, verbose=0)
    benchmark.group = f"paired onnxruntime / Keras predict, {stem} batch {batch}"
    benchmark.pedantic(pair, rounds=11 if batch == 1 else 7, iterations=1)
    ratios = [k / o for o, k in zip(ort_s, keras_s, strict=True)]
    benchmark.extra_info.update(
        session_info(session), batch=batch, engine="onnxruntime and keras predict, alternating",
        model=Path(model_file).name, keras_model=f"{stem}.keras", rounds=len(ratios),
        paired_ratio_median=statistics.median(ratios),
        onnxruntime_median_s=statistics.median(ort_s), keras_median_s=statistics.median(keras_s),
        keras_fastest_s=min(keras_s), onnxruntime_s=ort_s, keras_s=keras_s)
    assert len(ratios) >= 7
