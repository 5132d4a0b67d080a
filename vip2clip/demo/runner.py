"""``vip2clip demo``: the whole system on one machine, offline, in a few minutes.

1. start a local multi-node Ray cluster (token auth) and an embedded S3 endpoint;
2. generate a labelled auxiliary dataset and a "night archive" (with a few broken files);
3. train the learner with Ray Train (checkpoints on S3);
4. evaluate on a held-out domain (zero-shot) and store the F1-max thresholds;
5. score the archive with Ray Data into an Apache Iceberg table (SQLite catalog and
   warehouse in the work folder), committing snapshots as rows arrive;
6. run example SQL queries and write the HTML report; stop what was started.

With a real backbone/learner/source given, the same command scores real images.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import yaml
from pydantic import Field

from vip2clip.config import MAX_IMAGE_SIZE, FrozenConfig
from vip2clip.model import BackboneSpec, DetectorConfig, load_backbone, load_learner
from vip2clip.results import TableRef, resolve_catalog
from vip2clip.storage import SafeUri, StorageConfig, join, write_bytes

TRAIN_DOMAINS = ("wood", "fabric", "metal", "tiles")
HELD_OUT_DOMAIN = "pills"
BUCKET = "vip2clip-demo"
DEMO_TAPS = (1, 2, 3, 4)
DEMO_CATALOG = "demo"
DEMO_TABLE = "demo.results"
CATALOG_DB = "catalog.db"
WAREHOUSE = "warehouse"
PYICEBERG_FILE = ".pyiceberg.yaml"
# Broken objects mixed into the archive: each must come out as an error row.
BROKEN_OBJECTS = {
    "broken/empty.png": b"",
    "broken/truncated.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01",
    "broken/not-an-image.png": b"<html><body>404 Not Found</body></html>",
}

if TYPE_CHECKING:
    from vip2clip.scoring import ScoringSummary

Echo = Callable[[str], None]
T = TypeVar("T")


class DemoConfig(FrozenConfig):
    """What the demo runs; defaults take a few minutes on 2 CPU cores."""

    workdir: str = Field(default="demo-output", description="local folder: catalog, report")
    storage: Literal["s3", "local"] = Field(
        default="s3", description="s3: embedded S3 endpoint; local: folders under workdir"
    )
    seed: int = 0
    image_size: int = Field(default=112, ge=32, le=MAX_IMAGE_SIZE)
    archive_count: int = Field(default=120, ge=1)
    epochs: int = Field(default=3, ge=1)
    train_workers: int = Field(default=2, ge=1)
    worker_nodes: int = Field(default=1, ge=0, description="Ray nodes besides the head")
    backbone: BackboneSpec = Field(default_factory=BackboneSpec.tiny)
    learner: SafeUri | None = Field(default=None, description="skip training: use this learner")
    source: SafeUri | None = Field(default=None, description="score these images, not the archive")


@dataclass(frozen=True)
class DemoResult:
    """Where the demo left its outputs."""

    learner_uri: str
    table: str
    pyiceberg_home: Path  # holds the .pyiceberg.yaml naming the demo's catalog
    run_id: str
    report_path: Path
    rows_ok: int
    rows_error: int
    seconds: float


def run_demo(config: DemoConfig, echo: Echo = print) -> DemoResult:
    """Run every stage; return where things are. Stops the services it started."""
    started = time.monotonic()
    _check_inputs(config)
    workdir = Path(config.workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    with _services(config, workdir, echo) as root:
        result = _stages(config, root, workdir, echo)
    elapsed = time.monotonic() - started
    echo(f"demo finished in {elapsed:.0f} s")
    return DemoResult(**{**result.__dict__, "seconds": elapsed})


def _check_inputs(config: DemoConfig) -> None:
    """Read given weights and learner before any service starts: a bad or refused file
    ends the demo at once with its one-line reason."""
    if config.backbone.weights:
        load_backbone(config.backbone)
    if config.learner:
        load_learner(config.learner)


@contextlib.contextmanager
def _services(config: DemoConfig, workdir: Path, echo: Echo) -> Iterator[str]:
    """Embedded S3 (or a local folder) plus a local Ray cluster; yields the data root URI."""
    from vip2clip.local_cluster import LocalCluster

    with contextlib.ExitStack() as stack:
        env: dict[str, str] = {}
        if config.storage == "s3":
            from vip2clip.demo.local_s3 import local_s3

            s3 = stack.enter_context(local_s3())
            s3.create_bucket(BUCKET)
            env = s3.env
            root = f"s3://{BUCKET}"
            echo(f"embedded S3 endpoint at {s3.endpoint} (bucket {BUCKET})")
        else:
            root = str(workdir / "data")
        env = {**env, **demo_catalog_env(workdir)}
        _reset_table(workdir)
        stack.enter_context(_environment(env))
        cluster = LocalCluster(extra_env=env)
        stack.enter_context(_environment(cluster.env))
        stack.enter_context(cluster)
        for _ in range(config.worker_nodes):
            cluster.add_worker(num_cpus=2)
        echo(
            f"Ray cluster up: head {cluster.address} + {config.worker_nodes} worker node(s), "
            f"dashboard {cluster.dashboard_url}, token auth on"
        )
        cluster.connect(log_to_driver=False)
        import ray

        stack.callback(ray.shutdown)
        yield root


def _stages(config: DemoConfig, root: str, workdir: Path, echo: Echo) -> DemoResult:
    storage = StorageConfig()
    detector = DetectorConfig(
        backbone=config.backbone,
        image_size=config.image_size,
        taps=DEMO_TAPS if config.backbone.model == "vip2clip-tiny" else None,
        seed=config.seed,
    )
    learner = config.learner or _train(config, root, detector, storage, echo)
    detector = detector.model_copy(update={"learner": learner})
    if config.learner is None:
        _evaluate(config, root, detector, storage, echo)
    source = config.source or _archive(config, root, storage, echo)
    summary = _score(config, source, detector, storage, echo)
    _queries(summary.run_id, echo)
    report = workdir / "report.html"
    from vip2clip.report import write_report

    write_report(str(report), _table_ref(), summary.run_id)
    echo(f"report: {report}")
    echo(
        f"results: Iceberg table {DEMO_TABLE} in {workdir}; query it with "
        f'`PYICEBERG_HOME={workdir} vip2clip query "SELECT ..." --catalog {DEMO_CATALOG} '
        f"--table {DEMO_TABLE}`"
    )
    return DemoResult(
        learner, DEMO_TABLE, workdir, summary.run_id, report, summary.ok, summary.errors, 0.0
    )


def demo_catalog_env(workdir: Path) -> dict[str, str]:
    """pyiceberg settings of the demo's catalog: SQLite and warehouse in ``workdir``.

    The table outlives the demo (its sources on the embedded S3 do not); the same
    settings are written to ``workdir/.pyiceberg.yaml`` for querying it afterwards.
    """
    prefix = f"PYICEBERG_CATALOG__{DEMO_CATALOG.upper()}__"
    return {
        f"{prefix}TYPE": "sql",
        f"{prefix}URI": f"sqlite:///{workdir / CATALOG_DB}",
        f"{prefix}WAREHOUSE": (workdir / WAREHOUSE).as_uri(),
    }


def _reset_table(workdir: Path) -> None:
    """A demo starts from an empty catalog and writes where to find it afterwards."""
    (workdir / CATALOG_DB).unlink(missing_ok=True)
    shutil.rmtree(workdir / WAREHOUSE, ignore_errors=True)
    settings = {
        key.removeprefix(f"PYICEBERG_CATALOG__{DEMO_CATALOG.upper()}__").lower(): value
        for key, value in demo_catalog_env(workdir).items()
    }
    config = {"catalog": {DEMO_CATALOG: settings}}
    (workdir / PYICEBERG_FILE).write_text(yaml.safe_dump(config), encoding="utf-8")


def _table_ref() -> TableRef:
    return TableRef(resolve_catalog(DEMO_CATALOG), DEMO_TABLE)


def _train(
    config: DemoConfig, root: str, detector: DetectorConfig, storage: StorageConfig, echo: Echo
) -> str:
    from vip2clip.data.datasets import DatasetSpec
    from vip2clip.data.synthetic import generate_dataset
    from vip2clip.training import TrainingConfig
    from vip2clip.training.config import OptimizerConfig, ScalingSettings
    from vip2clip.training.trainer import run_training

    aux = join(root, "auxiliary")
    generate_dataset(
        aux,
        domains=TRAIN_DOMAINS,
        n_train_good=2,
        n_test_good=6,
        n_test_bad=10,
        image_size=config.image_size,
        seed=config.seed,
        storage=storage,
    )
    echo(f"auxiliary dataset ({', '.join(TRAIN_DOMAINS)}) written to {aux}")
    training = TrainingConfig(
        dataset=DatasetSpec(uri=aux, format="mvtec", split="test"),
        detector=detector,
        optimizer=OptimizerConfig(epochs=config.epochs, batch_size=4 * config.train_workers),
        scaling=ScalingSettings(workers=config.train_workers, use_gpu=False),
        storage_uri=join(root, "runs"),
        run_name=f"demo-{config.seed}",
    )
    echo(
        f"training the learner: {config.train_workers} Ray Train workers, "
        f"{config.epochs} epochs, checkpoints in {training.storage_uri}"
    )
    result = _timed(lambda: run_training(training), "training", echo)
    echo(f"learner: {result.learner_uri}")
    return result.learner_uri


def _evaluate(
    config: DemoConfig, root: str, detector: DetectorConfig, storage: StorageConfig, echo: Echo
) -> None:
    from vip2clip.data.datasets import DatasetSpec
    from vip2clip.data.synthetic import generate_dataset
    from vip2clip.eval.evaluate import EvaluateConfig, evaluate

    held_out = join(root, "held-out")
    generate_dataset(
        held_out,
        domains=(HELD_OUT_DOMAIN,),
        n_train_good=1,
        n_test_good=8,
        n_test_bad=8,
        image_size=config.image_size,
        seed=config.seed + 1,
        storage=storage,
    )
    evaluation = EvaluateConfig(
        detector=detector,
        dataset=DatasetSpec(uri=held_out, format="mvtec", split="test"),
        output=join(root, "evaluation"),
        write_thresholds=True,
        progress=False,
    )
    result = _timed(lambda: evaluate(evaluation), "zero-shot evaluation", echo)
    from vip2clip.eval.table import render_markdown

    echo(f"zero-shot on the unseen '{HELD_OUT_DOMAIN}' domain:\n{render_markdown(result.report)}")
    echo("F1-max thresholds stored in the learner; scoring uses them")


def _archive(config: DemoConfig, root: str, storage: StorageConfig, echo: Echo) -> str:
    from vip2clip.data.synthetic import generate_archive

    archive = join(root, "archive", "night-1")
    generate_archive(
        archive,
        count=config.archive_count,
        image_size=config.image_size * 2,
        defect_rate=0.2,
        seed=config.seed + 2,
        storage=storage,
    )
    for key, data in BROKEN_OBJECTS.items():
        write_bytes(join(archive, key), data, storage)
    echo(
        f"night archive: {config.archive_count} images + {len(BROKEN_OBJECTS)} broken objects "
        f"in {archive}"
    )
    return archive


def _score(
    config: DemoConfig,
    source: str,
    detector: DetectorConfig,
    storage: StorageConfig,
    echo: Echo,
) -> ScoringSummary:
    from vip2clip.scoring import ScoringConfig, run_scoring

    scoring = ScoringConfig(
        source=source,
        table=DEMO_TABLE,
        catalog=DEMO_CATALOG,
        detector=detector,
        storage=storage,
        mode="full",
        num_actors=2,
        batch_size=8,
        progress=False,
    )
    summary = _timed(lambda: run_scoring(scoring), "scoring", echo)
    echo(summary.line())
    return summary


def _queries(run_id: str, echo: Echo) -> None:
    from vip2clip.query.engines import query_table

    examples = {
        "top 5 anomalies": (
            "SELECT source_uri, round(image_score, 4) AS score, is_anomalous, "
            "round(anomalous_area_fraction, 4) AS area FROM results WHERE status = 'ok' "
            "ORDER BY image_score DESC LIMIT 5"
        ),
        "rows by status and reason": (
            "SELECT status, coalesce(error_reason, '') AS reason, count(*) AS n FROM results "
            "GROUP BY ALL ORDER BY n DESC"
        ),
    }
    for title, sql in examples.items():
        table = query_table(sql, _table_ref(), run_id=run_id)
        echo(f"SQL — {title}:\n{table.to_pandas().to_string(index=False)}")


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _timed(fn: Callable[[], T], what: str, echo: Echo) -> T:
    started = time.monotonic()
    value = fn()
    echo(f"{what} took {time.monotonic() - started:.0f} s")
    return value
