"""The distributed scoring job: listing -> read -> decode -> inference -> results -> commit.

Everything runs as one streaming Ray Data pipeline; the driver only plans it,
holds a few counters and commits the staged Parquet files at the end:

    list (one streaming read task, a block per page)
      -> drop already-scored objects (incremental; sorted key array in the object store)
      -> read bytes (CPU tasks, retried)  -> decode + resize (CPU tasks)
      -> inference (actor pool, detector loaded once per actor, GPUs when present)
      -> decision, mask PNG, region statistics (CPU tasks)
      -> Parquet into the run's staging folder -> ResultsStore.commit

Every object that reaches the read stage ends as exactly one row (``ok`` or
``error`` with a reason). Nothing is visible to readers before the commit, so
a killed run leaves only staging garbage that the next run removes.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads

from vip2clip import storage
from vip2clip.data.decode import OBJECT_MISSING, PERMISSION_DENIED, READ_FAILED
from vip2clip.errors import ClusterError, ConfigError, Vip2ClipError
from vip2clip.results import STATUS_ERROR, STATUS_OK, CommitInfo, ResultsStore
from vip2clip.scoring import identity, source, stages
from vip2clip.scoring.config import ScoringConfig
from vip2clip.scoring.inference import InferenceWorker
from vip2clip.scoring.sizing import plan_actors

logger = logging.getLogger(__name__)

JOB_KIND = "score"
UNKNOWN_MODEL = "unknown"  # model id reported when the detector failed to load
PROBE_CPUS = 1
COUNTER_LISTED = "listed"
COUNTER_SKIPPED = "skipped"
READ_REASONS = frozenset({OBJECT_MISSING, PERMISSION_DENIED, READ_FAILED})  # nothing was read
DECODED_BYTES_PER_PIXEL = 4  # RGBA / CMYK, the widest mode decode_image returns
# Postprocessing is its own task stage (the memory hint keeps Ray Data from fusing it into
# the write): the write operator then buffers compact result rows (PNG masks) up to
# rows_per_file, never the float anomaly maps, which would fill the object store and
# backpressure inference.
POSTPROCESS_TASK_MEMORY = 256 * 1024**2
# A Ray worker with torch imported (the preprocessing module imports it) measured ~600 MiB.
LOAD_TASK_BASE_MEMORY = 640 * 1024**2


@dataclass(frozen=True)
class ModelInfo:
    """What the driver needs to know about the detector before scoring."""

    model_id: str
    image_size: int


@dataclass(frozen=True)
class ScoringSummary:
    """Outcome of one scoring run (also stored in the commit manifest)."""

    run_id: str
    run_date: str
    mode: str
    model_id: str
    output: str
    listed: int
    skipped: int
    ok: int
    errors: int
    error_reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    committed_rows: int = 0
    committed_files: int = 0
    manifest_uri: str = ""

    @property
    def scored(self) -> int:
        """Rows written by this run (ok + error)."""
        return self.ok + self.errors

    @property
    def images_per_second(self) -> float:
        """Objects turned into rows per second of wall time."""
        return self.scored / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """The one-line human summary printed at the end of a run."""
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.error_reasons.items()))
        return (
            f"scored run {self.run_id} ({self.mode}, {self.run_date}): "
            f"{self.ok} ok, {self.errors} error{f' ({reasons})' if reasons else ''}, "
            f"{self.skipped} skipped of {self.listed} listed in {self.seconds:.1f} s "
            f"({self.images_per_second:.1f} images/s) -> {self.output}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the manifest and ``--json`` output)."""
        return {**asdict(self), "images_per_second": self.images_per_second}


def run_scoring(config: ScoringConfig) -> ScoringSummary:
    """Score every object of ``config.source`` into ``config.output`` and commit the run.

    Connects to Ray when this process is not connected yet (``config.ray_address``,
    ``RAY_ADDRESS``, or a local instance). Raises a :class:`~vip2clip.errors.Vip2ClipError`
    for user errors; on any failure nothing of this run becomes visible.
    """
    started = time.time()
    run_id, run_date = config.resolved_run_id(), config.resolved_run_date().isoformat()
    logger.info("scoring config: %s", config.safe_dump())
    _connect(config.ray_address)
    _check_source(config)
    store = ResultsStore(config.output, config.storage)
    staging = store.prepare(run_id)
    model = ModelInfo(model_id=UNKNOWN_MODEL, image_size=config.detector.image_size)
    summary: ScoringSummary | None = None
    try:
        model = probe_model(config)
        counter = _new_counter()
        dataset = build_dataset(config, run_id, model, counter, store)
        attempt = storage.join(staging, f"attempt-{uuid.uuid4().hex[:12]}")
        _write(dataset, attempt, config)
        _discard_other_attempts(staging, attempt, config)
        summary = _summarise(config, run_id, run_date, model, counter, attempt, started)
        info = store.commit(run_id, run_date, summary.to_dict())
    except BaseException:
        _push(config, run_id, model.model_id, started, summary, failed=True)
        _abort_quietly(store, run_id)
        raise
    summary = _with_commit(summary, info, started)
    _push(config, run_id, model.model_id, started, summary, failed=False)
    logger.info(summary.line())
    return summary


def _abort_quietly(store: ResultsStore, run_id: str) -> None:
    """Drop the failed run's staging; a cleanup failure must not hide the real error."""
    try:
        store.abort(run_id)
    except Exception as exc:
        logger.warning("could not clean staging of run %s (next run will): %s", run_id, exc)


# ----------------------------------------------------------------------------- plan


def build_dataset(
    config: ScoringConfig, run_id: str, model: ModelInfo, counter: Any, store: ResultsStore
) -> Any:
    """The lazy Ray Data pipeline from listing to result rows (nothing runs yet)."""
    import ray

    scored_ref = None
    if config.mode == "incremental":
        scored_ref = _scored_keys_task().remote(store.uri, config.storage, model.model_id, run_id)
    ds = _listing(config)
    ds = ds.map_batches(
        _select_unscored,
        batch_format="pyarrow",
        batch_size=None,
        fn_kwargs={"scored": [scored_ref], "counter": counter, "run_id": run_id, "model": model},
    )
    ds = ds.repartition(target_num_rows_per_block=config.read_batch_size)
    ds = ds.map_batches(
        _load,
        batch_format="pyarrow",
        batch_size=config.read_batch_size,
        fn_kwargs={
            "config": config,
            "image_size": model.image_size,
            "metric_tags": (run_id, model.model_id),
        },
        memory=_load_task_memory(config),
    )
    actors = plan_actors(
        ray.cluster_resources(),
        num_actors=config.num_actors,
        gpus_per_actor=config.gpus_per_actor,
        cpus_per_actor=config.cpus_per_actor,
        min_actors=config.min_actors,
    )
    logger.info("inference pool: %s", actors)
    ds = ds.map_batches(
        InferenceWorker,
        batch_format="pyarrow",
        batch_size=config.batch_size,
        compute=ray.data.ActorPoolStrategy(
            min_size=actors.min_actors,
            max_size=actors.num_actors,
            initial_size=actors.num_actors,
        ),
        num_gpus=actors.gpus_per_actor,
        num_cpus=actors.cpus_per_actor,
        fn_constructor_kwargs={
            "detector_config": config.detector,
            "storage_config": config.storage,
            "image_threshold": config.image_threshold,
            "pixel_threshold": config.pixel_threshold,
            "run_id": run_id,
            "cpu_threads": max(1, int(config.cpus_per_actor)),
        },
    )
    return ds.map_batches(
        _to_results,
        batch_format="pyarrow",
        batch_size=None,
        fn_kwargs={"metric_tags": (run_id, model.model_id)},
        memory=POSTPROCESS_TASK_MEMORY,
    )


def _load_task_memory(config: ScoringConfig) -> int:
    """Memory reserved per read/decode task: the largest image it may decode, plus slack.

    The reservation bounds how many large decodes a node runs at once. Being a
    task-only resource, it also keeps Ray Data from fusing this stage into the
    inference actors, so GPU actors never sit idle while objects download and decode.
    """
    if config.load_task_memory is not None:
        return config.load_task_memory
    return config.max_pixels * DECODED_BYTES_PER_PIXEL + LOAD_TASK_BASE_MEMORY


def _listing(config: ScoringConfig) -> Any:
    import ray.data

    pa_fs, _ = storage.pyarrow_filesystem(config.source, config.storage)
    if source.is_manifest(config.source, config.storage):
        reader = source.manifest_reader(config.source)
        path = storage.filesystem(config.source, config.storage)[1]
        base = config.source.rsplit("/", 1)[0]
        ds = reader(path, filesystem=pa_fs)
        ds = ds.map_batches(
            source.manifest_to_listing, batch_format="pyarrow", fn_kwargs={"base": base}
        )
        ds = ds.repartition(target_num_rows_per_block=config.listing_page_size)
        return ds.map_batches(
            source.fill_identity,
            batch_format="pyarrow",
            fn_kwargs={"storage_config": config.storage},
        )
    datasource = source.listing_datasource(
        config.source, config.extensions, config.storage, config.listing_page_size
    )
    # One listing task; its page blocks are split downstream (no up-front block split).
    return ray.data.read_datasource(datasource, override_num_blocks=1)


def _select_unscored(
    batch: pa.Table, scored: list[Any], counter: Any, run_id: str, model: ModelInfo
) -> pa.Table:
    """Count the listing block and drop objects this model already scored (incremental)."""
    import ray

    from vip2clip.telemetry.live import PipelineMetrics

    keys = _cached_keys(scored[0])
    kept = batch
    if keys is not None and keys.array.size:
        kept = keys.unscored(batch)
    skipped = batch.num_rows - kept.num_rows
    # Keyed by the block's first object: a task Ray re-runs after losing its output
    # reports the same block again, and must not count it twice.
    block_key = str(batch.column("source_uri")[0]) if batch.num_rows else ""
    counts = {COUNTER_LISTED: batch.num_rows, COUNTER_SKIPPED: skipped}
    ray.get(counter.add.remote(block_key, counts))
    metrics = PipelineMetrics(JOB_KIND, run_id, model.model_id)
    metrics.objects("listed", batch.num_rows)
    if skipped:
        metrics.objects("skipped", skipped)
    return kept


def _load(
    batch: pa.Table, config: ScoringConfig, image_size: int, metric_tags: tuple[str, str]
) -> pa.Table:
    """Read + decode one block (CPU task) and record the stage metrics."""
    from vip2clip.telemetry.live import PipelineMetrics

    out = stages.load_objects(
        batch, config.storage, config.read_attempts, image_size, config.max_pixels
    )
    metrics = PipelineMetrics(JOB_KIND, *metric_tags)
    rows = out.select(["status", "error_reason", "read_ms", "decode_ms", "object_size"])
    for row in rows.to_pylist():
        if row["read_ms"] is not None:
            metrics.observe_latency("read", row["read_ms"] / stages.MS_PER_S)
        if row["decode_ms"] is not None:
            metrics.observe_latency("decode", row["decode_ms"] / stages.MS_PER_S)
        if row["status"] != STATUS_OK:
            metrics.error(row["error_reason"])
        if row["error_reason"] not in READ_REASONS:
            metrics.bytes_read(row["object_size"] or 0)
    ok = sum(1 for s in out.column("status").to_pylist() if s == STATUS_OK)
    metrics.objects("read", out.num_rows)
    metrics.objects("decoded", ok)
    return out


def _to_results(batch: pa.Table, metric_tags: tuple[str, str]) -> pa.Table:
    """Scored block -> result rows (CPU task), recording postprocessing time."""
    from vip2clip.telemetry.live import PipelineMetrics

    start = time.perf_counter()
    out = stages.to_results(batch)
    metrics = PipelineMetrics(JOB_KIND, *metric_tags)
    metrics.observe_latency("postprocess", time.perf_counter() - start)
    metrics.objects("written", out.num_rows)
    return out


# ----------------------------------------------------------------------------- incremental


_KEY_CACHE: dict[str, identity.ScoredKeys] = {}


def _cached_keys(ref: Any) -> identity.ScoredKeys | None:
    """Resolve the scored-keys object once per worker process."""
    if ref is None:
        return None
    import ray

    key = ref.hex()
    if key not in _KEY_CACHE:
        _KEY_CACHE.clear()  # one run at a time per process; don't keep old runs' arrays
        _KEY_CACHE[key] = ray.get(ref)
    return _KEY_CACHE[key]


def _scored_keys_task() -> Any:
    import ray

    @ray.remote(num_cpus=1, max_retries=2)
    def scored_keys(
        uri: str, storage_config: Any, model_id: str, run_id: str
    ) -> identity.ScoredKeys:
        store = ResultsStore(uri, storage_config)
        return identity.ScoredKeys.from_table(
            store.scored_identities(model_id, exclude_run_id=run_id)
        )

    return scored_keys


# ----------------------------------------------------------------------------- write + summary


def _write(dataset: Any, staging: str, config: ScoringConfig) -> None:
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = config.progress
    pa_fs, path = storage.pyarrow_filesystem(staging, config.storage)
    dataset.write_parquet(path, filesystem=pa_fs, min_rows_per_file=config.rows_per_file)


def _discard_other_attempts(staging: str, attempt: str, config: ScoringConfig) -> None:
    """Delete staged output of earlier attempts of this run id.

    ``ResultsStore.prepare`` already emptied the staging folder, but tasks of a
    killed earlier driver can still finish a write after that; their files must
    not be committed with this attempt.
    """
    fs, root = storage.filesystem(staging, config.storage)
    _, keep = storage.filesystem(attempt, config.storage)
    fs.invalidate_cache(root)  # other processes wrote here since this process last listed
    try:
        entries = fs.ls(root, detail=False)
    except FileNotFoundError:
        return
    for entry in entries:
        if str(entry).rstrip("/") != keep.rstrip("/"):
            logger.warning("discarding stale staged output %s", entry)
            fs.rm(entry, recursive=True)


def staged_outcomes(staging: str, storage_config: Any) -> Counter[tuple[str, str | None]]:
    """``(status, error_reason) -> rows`` over the staged files, reading two columns only."""
    pa_fs, path = storage.pyarrow_filesystem(staging, storage_config)
    counts: Counter[tuple[str, str | None]] = Counter()
    try:
        dataset = pads.dataset(path, format="parquet", filesystem=pa_fs)
    except (FileNotFoundError, pa.ArrowInvalid):
        return counts
    for batch in dataset.to_batches(columns=["status", "error_reason"]):
        grouped = (
            pa.Table.from_batches([batch])
            .group_by(["status", "error_reason"])
            .aggregate([([], "count_all")])
        )
        for row in grouped.to_pylist():
            counts[(row["status"], row["error_reason"])] += row["count_all"]
    return counts


def _summarise(
    config: ScoringConfig,
    run_id: str,
    run_date: str,
    model: ModelInfo,
    counter: Any,
    staging: str,
    started: float,
) -> ScoringSummary:
    import ray

    totals: dict[str, int] = ray.get(counter.totals.remote())
    outcomes = staged_outcomes(staging, config.storage)
    reasons = {str(r): n for (s, r), n in outcomes.items() if s == STATUS_ERROR}
    return ScoringSummary(
        run_id=run_id,
        run_date=run_date,
        mode=config.mode,
        model_id=model.model_id,
        output=config.output,
        listed=totals.get(COUNTER_LISTED, 0),
        skipped=totals.get(COUNTER_SKIPPED, 0),
        ok=sum(n for (s, _), n in outcomes.items() if s == STATUS_OK),
        errors=sum(reasons.values()),
        error_reasons=reasons,
        seconds=time.time() - started,
    )


def _with_commit(summary: ScoringSummary, info: CommitInfo, started: float) -> ScoringSummary:
    values = asdict(summary)
    values.update(
        seconds=time.time() - started,
        committed_rows=info.rows,
        committed_files=len(info.files),
        manifest_uri=info.manifest_uri,
    )
    return ScoringSummary(**values)


def _push(
    config: ScoringConfig,
    run_id: str,
    model_id: str,
    started: float,
    summary: ScoringSummary | None,
    *,
    failed: bool,
) -> None:
    from vip2clip.telemetry.push import JobSummary, push_job_summary

    job = JobSummary(
        job_kind=JOB_KIND,
        job_name=config.job_name,
        run_id=run_id,
        model_id=model_id,
        start_time=started,
        end_time=time.time(),
        objects_ok=summary.ok if summary else 0,
        objects_error=summary.errors if summary else 0,
        objects_skipped=summary.skipped if summary else 0,
        exit_status=1 if failed else 0,
    )
    push_job_summary(config.push, job)


# ----------------------------------------------------------------------------- plumbing


def probe_model(config: ScoringConfig) -> ModelInfo:
    """Load the detector once in a CPU task: fail fast on a bad checkpoint, learn its id."""
    import ray

    @ray.remote(num_cpus=PROBE_CPUS, num_gpus=0, max_retries=0)
    def probe(detector_config: Any, storage_config: Any) -> ModelInfo:
        from vip2clip.model import load_detector

        on_cpu = detector_config.model_copy(update={"device": "cpu"})
        detector = load_detector(on_cpu, storage_config)
        return ModelInfo(model_id=detector.identity, image_size=detector.image_size)

    try:
        info: ModelInfo = ray.get(probe.remote(config.detector, config.storage))
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, Vip2ClipError):
            raise exc.cause from None  # a user error (bad checkpoint, no weights): one line
        raise
    return info


def _new_counter() -> Any:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    class RunCounter:
        """Run-wide counts the streaming stages report (listed, skipped), per block."""

        def __init__(self) -> None:
            self.by_block: dict[str, dict[str, int]] = {}

        def add(self, block_key: str, counts: dict[str, int]) -> None:
            self.by_block[block_key] = counts

        def totals(self) -> dict[str, int]:
            total: Counter[str] = Counter()
            for counts in self.by_block.values():
                total.update(counts)
            return dict(total)

    # On the driver's node: it lives exactly as long as the run does, whichever
    # worker nodes are lost meanwhile.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return RunCounter.options(scheduling_strategy=here).remote()  # type: ignore[attr-defined]


def _connect(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    try:
        ray.init(address=address or os.environ.get("RAY_ADDRESS"), log_to_driver=True)
    except (ConnectionError, RuntimeError) as exc:
        where = address or "RAY_ADDRESS/local"
        raise ClusterError(f"cannot connect to Ray at {where}: {exc}") from None


def _check_source(config: ScoringConfig) -> None:
    if not config.source.strip():
        raise ConfigError("source is empty; give an s3:// prefix, a folder or a manifest")
    source.check_source(config.source, config.storage)
