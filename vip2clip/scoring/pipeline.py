"""The distributed scoring job: listing -> read -> decode -> inference -> results -> commits.

Everything runs as one streaming Ray Data pipeline; the driver plans it, holds a
few counters and commits the data files the writer tasks report, progressively:

    list (one streaming read task, a block per page)
      -> drop objects already scored (incremental) or already committed by this run (resume)
      -> read bytes (CPU tasks, retried)  -> decode + resize (CPU tasks)
      -> inference (actor pool, detector loaded once per actor, GPUs when present)
      -> decision, mask PNG, region statistics (CPU tasks)
      -> Parquet data files of the Iceberg table (CPU tasks)
      -> snapshots committed by the driver every N rows / T seconds, the last one final

Every object that reaches the read stage ends as exactly one row (``ok`` or
``error`` with a reason). Readers see committed snapshots only; a killed driver
loses only its uncommitted interval, and the same command resumes the run.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
from pyiceberg.expressions import BooleanExpression

from vip2clip import storage
from vip2clip.data.decode import (
    OBJECT_MISSING,
    PERMISSION_DENIED,
    READ_FAILED,
    REFUSED_READ_REASONS,
    TRANSIENT_REASONS,
)
from vip2clip.errors import ConfigError, Vip2ClipError
from vip2clip.ops.connect import connect_ray
from vip2clip.results import (
    IDENTITY_COLUMNS,
    STATUS_ERROR,
    STATUS_OK,
    ResultsTable,
    RunState,
    TableRef,
    resolve_catalog,
)
from vip2clip.results import table as results_table
from vip2clip.results.filters import all_of, any_of, equal, is_in, negate, run_rows
from vip2clip.scoring import identity, source, stages
from vip2clip.scoring.commits import CommitPolicy, ProgressiveCommitter, write_results
from vip2clip.scoring.config import ScoringConfig
from vip2clip.scoring.inference import InferenceWorker
from vip2clip.scoring.sizing import plan_actors

logger = logging.getLogger(__name__)

JOB_KIND = "score"
UNKNOWN_MODEL = "unknown"  # model id reported when the detector failed to load
PROBE_CPUS = 1
COUNTER_LISTED = "listed"
COUNTER_SKIPPED = "skipped"
# Rows for which nothing was read (refused before opening, or failed).
READ_REASONS = frozenset({OBJECT_MISSING, PERMISSION_DENIED, READ_FAILED}) | REFUSED_READ_REASONS
DECODED_BYTES_PER_PIXEL = 4  # RGBA / CMYK, the widest mode decode_image returns
# Postprocessing is its own task stage (the memory hint keeps Ray Data from fusing it into
# the inference actors): float anomaly maps become compact PNG rows before the writers.
POSTPROCESS_TASK_MEMORY = 768 * 1024**2  # measured ~560 MiB per worker (torch, PNG, maps)
# A Ray worker with torch imported (the preprocessing module imports it) measured ~600 MiB.
LOAD_TASK_BASE_MEMORY = 640 * 1024**2


@dataclass(frozen=True)
class ModelInfo:
    """What the driver needs to know about the detector before scoring."""

    model_id: str
    image_size: int


@dataclass(frozen=True)
class RunPlan:
    """What this invocation does to its run id, decided before anything streams."""

    run_id: str
    run_date: str
    model: ModelInfo
    state: RunState  # the run's state when this invocation started
    branch: str  # where commits go: main, or the run's replace branch (--full re-run)

    @property
    def replacing(self) -> bool:
        """Whether the rows go to a branch and replace the run's rows on main at the end."""
        return self.branch != results_table.MAIN


@dataclass(frozen=True)
class ScoringSummary:
    """Outcome of one scoring run (also stored in the final snapshot's summary)."""

    run_id: str
    run_date: str
    mode: str
    model_id: str
    table: str
    listed: int
    skipped: int
    ok: int
    errors: int
    error_reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    resumed: bool = False
    replaced: bool = False
    commits: int = 0
    snapshot_id: int | None = None

    @property
    def scored(self) -> int:
        """Rows written by this invocation (ok + error)."""
        return self.ok + self.errors

    @property
    def images_per_second(self) -> float:
        """Objects turned into rows per second of wall time."""
        return self.scored / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """The one-line human summary printed at the end of a run."""
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.error_reasons.items()))
        how = "resumed, " if self.resumed else "replaced, " if self.replaced else ""
        return (
            f"scored run {self.run_id} ({how}{self.mode}, {self.run_date}): "
            f"{self.ok} ok, {self.errors} error{f' ({reasons})' if reasons else ''}, "
            f"{self.skipped} skipped of {self.listed} listed in {self.seconds:.1f} s "
            f"({self.images_per_second:.1f} images/s), {self.commits} commits "
            f"-> {self.table} snapshot {self.snapshot_id}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json`` output)."""
        return {**asdict(self), "images_per_second": self.images_per_second}

    def snapshot_properties(self) -> dict[str, str]:
        """The run totals for the final snapshot's summary (strings, no secrets)."""
        prefix = results_table.PROPERTY_PREFIX
        return {
            f"{prefix}listed": str(self.listed),
            f"{prefix}skipped": str(self.skipped),
            f"{prefix}run-ok": str(self.ok),
            f"{prefix}run-errors": str(self.errors),
        }


def run_scoring(config: ScoringConfig) -> ScoringSummary:
    """Score every object of ``config.source`` into the results table, committing as it goes.

    Connects to Ray when this process is not connected yet (``config.ray_address``,
    ``RAY_ADDRESS``, or a local instance). Raises a :class:`~vip2clip.errors.Vip2ClipError`
    for user errors. On any failure the committed snapshots stay (the same command
    resumes after them); nothing uncommitted becomes visible.
    """
    started = time.time()
    run_id, run_date = config.resolved_run_id(), config.resolved_run_date().isoformat()
    logger.info("scoring config: %s", config.safe_dump())
    connect_ray(config.ray_address)
    _check_source(config)
    ref = TableRef(resolve_catalog(config.catalog), config.table)
    results = ResultsTable.open(ref, create=True)
    model_id = UNKNOWN_MODEL
    summary: ScoringSummary | None = None
    try:
        model = probe_model(config)
        model_id = model.model_id
        plan = plan_run(results, config, run_id, run_date, model)
        summary = _execute(config, results, plan, started)
    except BaseException:
        _push(config, run_id, model_id, started, summary, failed=True)
        raise
    _push(config, run_id, model_id, started, summary, failed=False)
    logger.info(summary.line())
    return summary


def plan_run(
    results: ResultsTable, config: ScoringConfig, run_id: str, run_date: str, model: ModelInfo
) -> RunPlan:
    """Decide where this invocation commits: resume, append, or replace on a branch."""
    state = results.run_state(run_id, run_date)
    branch = results_table.MAIN
    if state is RunState.REPLACING:
        branch = results_table.replace_branch(run_id)
    elif state is RunState.COMPLETE and config.mode == "full":
        branch = results.start_replacement(run_id, _run_properties(run_id, run_date, model, config))
    logger.info("run %s is %s; committing to %s", run_id, state.value, branch)
    return RunPlan(run_id, run_date, model, state, branch)


def _execute(
    config: ScoringConfig, results: ResultsTable, plan: RunPlan, started: float
) -> ScoringSummary:
    import ray

    counter = _new_counter()
    dataset = build_dataset(config, plan, counter, results)
    committer = ProgressiveCommitter(
        results,
        _run_properties(plan.run_id, plan.run_date, plan.model, config),
        CommitPolicy(rows=config.commit_every, seconds=config.commit_interval_s),
        branch=plan.branch,
    )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = config.progress
    for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
        committer.add(batch)
    totals: dict[str, int] = ray.get(counter.totals.remote())
    summary = ScoringSummary(
        run_id=plan.run_id,
        run_date=plan.run_date,
        mode=config.mode,
        model_id=plan.model.model_id,
        table=config.table,
        listed=totals.get(COUNTER_LISTED, 0),
        skipped=totals.get(COUNTER_SKIPPED, 0),
        ok=committer.received.ok,
        errors=committer.received.errors,
        error_reasons=dict(committer.received.error_reasons),
        resumed=plan.state in (RunState.IN_PROGRESS, RunState.REPLACING),
        replaced=plan.replacing,
    )
    snapshot_id = committer.commit(final=not plan.replacing, extra=summary.snapshot_properties())
    if plan.replacing:
        final = {**committer.properties, **summary.snapshot_properties()}
        final[results_table.RUN_COMPLETE] = "true"
        snapshot_id = results.publish_replacement(plan.run_id, final)
    values = asdict(summary)
    values.update(seconds=time.time() - started, commits=committer.commits, snapshot_id=snapshot_id)
    return ScoringSummary(**values)


def _run_properties(
    run_id: str, run_date: str, model: ModelInfo, config: ScoringConfig
) -> dict[str, str]:
    return {
        results_table.RUN_ID: run_id,
        results_table.RUN_DATE: run_date,
        results_table.MODEL_ID: model.model_id,
        f"{results_table.PROPERTY_PREFIX}mode": config.mode,
        f"{results_table.PROPERTY_PREFIX}source": storage.redact_userinfo(config.source),
    }


# ----------------------------------------------------------------------------- plan


def build_dataset(config: ScoringConfig, plan: RunPlan, counter: Any, results: ResultsTable) -> Any:
    """The lazy Ray Data pipeline from listing to written data files (nothing runs yet)."""
    import ray

    skip_ref = _skip_keys_task().remote(
        results.ref, skip_filters(config, plan), results.snapshot_id(plan.branch)
    )
    metric_tags = (plan.run_id, plan.model.model_id)
    ds = _listing(config)
    ds = ds.map_batches(
        _select_unscored,
        batch_format="pyarrow",
        batch_size=None,
        fn_kwargs={"scored": [skip_ref], "counter": counter, "metric_tags": metric_tags},
    )
    ds = ds.repartition(target_num_rows_per_block=config.read_batch_size)
    ds = ds.map_batches(
        _load,
        batch_format="pyarrow",
        batch_size=config.read_batch_size,
        fn_kwargs={
            "config": config,
            "image_size": plan.model.image_size,
            "metric_tags": metric_tags,
        },
        memory=_load_task_memory(config),
        # Ray Data retries tasks forever by default; an object that gets its read task
        # killed every time must not stop the night.
        max_retries=config.load_task_max_retries,
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
            "run_id": plan.run_id,
            "cpu_threads": max(1, int(config.cpus_per_actor)),
        },
    )
    ds = ds.map_batches(
        _to_results,
        batch_format="pyarrow",
        batch_size=None,
        fn_kwargs={"run": (plan.run_id, plan.run_date), "metric_tags": metric_tags},
        memory=POSTPROCESS_TASK_MEMORY,
    )
    return ds.map_batches(
        write_results,
        batch_format="pyarrow",
        batch_size=config.rows_per_file,
        fn_kwargs={"ref": results.ref},
    )


def skip_filters(config: ScoringConfig, plan: RunPlan) -> list[BooleanExpression]:
    """Row filters of what this invocation must not score again.

    Always this run's own committed rows (a resume); in incremental mode also every
    final outcome of the same model under the source's prefix (partition and bound
    pruning keep the read to that model's files for that prefix).
    """
    # A run's rows all carry its date: the partition prunes the resume scan to one night.
    filters = [all_of(run_rows(plan.run_id), equal("run_date", plan.run_date))]
    if config.mode == "incremental":
        final = any_of(
            equal("status", STATUS_OK),
            all_of(equal("status", STATUS_ERROR), negate(is_in("error_reason", TRANSIENT_REASONS))),
        )
        prefix = source.listing_prefix(config.source, config.storage)
        filters.append(all_of(results_table.scored_filter(plan.model.model_id, prefix), final))
    return filters


def _load_task_memory(config: ScoringConfig) -> int:
    """Memory reserved per read/decode task: the largest image it may decode, plus slack.

    The reservation bounds how many large decodes a node runs at once. Being a
    task-only resource, it also keeps Ray Data from fusing this stage into the
    inference actors, so GPU actors never sit idle while objects download and decode.
    """
    if config.load_task_memory is not None:
        return config.load_task_memory
    decoded = config.max_pixels * DECODED_BYTES_PER_PIXEL
    return config.max_object_bytes + decoded + LOAD_TASK_BASE_MEMORY


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
    batch: pa.Table, scored: list[Any], counter: Any, metric_tags: tuple[str, str]
) -> pa.Table:
    """Count the listing block and drop objects this invocation must not score again."""
    import ray

    from vip2clip.telemetry.live import PipelineMetrics

    keys = _cached_keys(scored[0])
    kept = keys.unscored(batch) if keys.array.size else batch
    skipped = batch.num_rows - kept.num_rows
    # Keyed by the block's first object: a task Ray re-runs after losing its output
    # reports the same block again, and must not count it twice.
    block_key = str(batch.column("source_uri")[0]) if batch.num_rows else ""
    counts = {COUNTER_LISTED: batch.num_rows, COUNTER_SKIPPED: skipped}
    ray.get(counter.add.remote(block_key, counts))
    metrics = PipelineMetrics(JOB_KIND, *metric_tags)
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
        batch,
        config.storage,
        config.read_attempts,
        image_size,
        config.max_pixels,
        max_object_bytes=config.max_object_bytes,
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


def _to_results(batch: pa.Table, run: tuple[str, str], metric_tags: tuple[str, str]) -> pa.Table:
    """Scored block -> result rows of the run (CPU task), recording postprocessing time."""
    from vip2clip.telemetry.live import PipelineMetrics

    start = time.perf_counter()
    out = stages.to_results(batch, run_id=run[0], run_date=run[1])
    metrics = PipelineMetrics(JOB_KIND, *metric_tags)
    metrics.observe_latency("postprocess", time.perf_counter() - start)
    metrics.objects("written", out.num_rows)
    return out


# ----------------------------------------------------------------------------- skip keys


_KEY_CACHE: dict[str, identity.ScoredKeys] = {}


def _cached_keys(ref: Any) -> identity.ScoredKeys:
    """Resolve the skip-keys object once per worker process."""
    import ray

    key = ref.hex()
    if key not in _KEY_CACHE:
        _KEY_CACHE.clear()  # one run at a time per process; don't keep old runs' arrays
        _KEY_CACHE[key] = ray.get(ref)
    return _KEY_CACHE[key]


def _skip_keys_task() -> Any:
    import ray

    return ray.remote(num_cpus=1, max_retries=2)(skip_keys)


def skip_keys(
    ref: TableRef, filters: list[BooleanExpression], snapshot_id: int | None
) -> identity.ScoredKeys:
    """Identity keys of the rows matching any of ``filters`` in one snapshot.

    Reads the identity columns only, batch by batch, from the files that partition
    and column-bound pruning leave.
    """
    if snapshot_id is None:
        return identity.ScoredKeys.empty()
    results = ResultsTable.open(ref)
    tables = (
        pa.Table.from_batches([b])
        for f in filters
        for b in results.batches(f, IDENTITY_COLUMNS, snapshot_id)
    )
    return identity.ScoredKeys(identity.sorted_keys(tables), with_mtime=True)


# ----------------------------------------------------------------------------- summary


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
    """The detector's content identity, computed in a CPU task without building the model.

    The task reads the learner (and hashes the backbone file, cached on that node), so
    a bad checkpoint fails fast with a one-line error before any actor starts.
    """
    import ray

    @ray.remote(num_cpus=PROBE_CPUS, num_gpus=0, max_retries=0)
    def probe(detector_config: Any, storage_config: Any) -> ModelInfo:
        from vip2clip.model import detector_identity
        from vip2clip.model.backbone import read_state_dict
        from vip2clip.storage import local_copy

        if detector_config.backbone.weights:  # refuse a bad or hostile file in one line here
            read_state_dict(local_copy(detector_config.backbone.weights, storage_config))
        return ModelInfo(
            model_id=detector_identity(detector_config, storage_config),
            image_size=detector_config.image_size,
        )

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


def _check_source(config: ScoringConfig) -> None:
    if not config.source.strip():
        raise ConfigError("source is empty; give an s3:// prefix, a folder or a manifest")
    source.check_source(config.source, config.storage)
