"""What the serving loop reads from the database: which runs have due work (every refresh), and
what a run's calls need (once per run, again when its pass or its key changes)."""

from dataclasses import dataclass, field, replace

from django.db.models import Count, Exists, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.core.ids import RunId
from apps.keys.base_url import effective_base_url
from apps.keys.models import ProviderKey
from apps.keys.services import key_secret
from apps.lanes.gate import LaneRef
from apps.lanes.limits import Limits, key_limits, limit_group
from apps.providers.prompts import CallSpec
from apps.runs.models import Block, BlockStatus, Run, RunKey, RunKeyState, RunMode
from apps.runs.services.lifecycle import run_pause_for_deleted_key


@dataclass(frozen=True)
class Demand:
    """An active run with due work, as one refresh saw it."""

    run_id: RunId
    owner_id: int
    key_id: int | None
    key_revision: int
    current_pass: int
    parallelism: int
    priority: int
    # Blocks claimed by every worker, this one included.
    claimed: int
    # A cacheable run whose first call has not answered yet goes one call at a time.
    cache_warmed: bool = True
    # Changes when a key leaves or rejoins the run's pool: the context is loaded again.
    pool_revision: int = 0


@dataclass(frozen=True)
class RunContext:
    """What a run's calls need. One context is one route: a key of the run's pool and one of its
    models (`key_id`, `lane`, `limits`, `api_key`, `spec.model`); the run's slot holds the context
    of its first key and primary model, whose `routes` are every route of the run:
    `routes[model_index]` the contexts of each active key of its pool for that model, in pool order
    (apps/runs/serving/pool.py chooses among them)."""

    run_id: RunId
    owner_id: int
    key_id: int
    # The key's revision when its secret was read: a 401 on an old secret must not condemn a key its
    # owner has fixed since (apps.keys.services.key_mark_invalid).
    key_revision: int
    current_pass: int
    spec: CallSpec
    pack_size: int
    lane: LaneRef
    limits: Limits
    api_key: str
    base_url: str
    routes: tuple[tuple["RunContext", ...], ...] = ()
    # The keys whose workspace's cache holds the run's prefix (RunKey.cache_warmed) when loaded.
    warm_keys: frozenset[int] = frozenset()
    # Every key's secret of the pool (redacted from whatever a write stores).
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def routes_for(self, model_index: int) -> tuple["RunContext", ...]:
        if not self.routes:
            return (self,)
        return self.routes[min(model_index, len(self.routes) - 1)]


def runs_with_due_work() -> list[Demand]:
    """Active runs with due pending blocks, with how many blocks each has claimed. EXISTS and a
    count of claimed blocks only: a refresh never walks a run's finished blocks."""
    now = timezone.now()
    claimed = (
        Block.objects.filter(run=OuterRef("pk"), status=BlockStatus.CLAIMED)
        .order_by().values("run").annotate(n=Count("id")).values("n")
    )
    rows = (
        Run.objects.active()
        .filter(effective_mode=RunMode.LIVE)  # batch-mode runs go through apps/runs/batching/
        .filter(Exists(Block.objects.due(now).filter(run=OuterRef("pk"))))
        .annotate(claimed=Coalesce(Subquery(claimed), 0))
        .values_list("pk", "owner_id", "key_id", "key__revision", "current_pass", "parallelism",
                     "priority", "claimed", "cache_warmed", "options", "pool_revision")
    )
    return [Demand(*row[:8], cache_warmed=row[8] or not (row[9] or {}).get("cache"), pool_revision=row[10])
            for row in rows]


def load_context(run_id: RunId) -> RunContext | None:
    """None when the run is gone or cannot call (its key was deleted: the run pauses; no key of its
    pool is left: it is paused, or about to be, by the refusal that emptied it)."""
    run = Run.objects.select_related("key").filter(pk=run_id).first()
    if run is None:
        return None
    members = list(RunKey.objects.filter(run_id=run.pk).select_related("key").order_by("position"))
    if members:
        keys = [m.key for m in members if m.state == RunKeyState.ACTIVE]
        warm = frozenset(m.key_id for m in members if m.cache_warmed)
        if not keys:
            return None
    else:  # a run made before pools: its key alone
        if run.key is None:
            run_pause_for_deleted_key(run_id=run.pk)
            return None
        keys, warm = [run.key], frozenset([run.key.pk]) if run.cache_warmed else frozenset()
    spec = run.call_spec
    secrets = tuple(key_secret(key=key) for key in keys)
    routes = tuple(
        tuple(_route(run, key, replace(spec, model=model), secret)
              for key, secret in zip(keys, secrets, strict=True))
        for model in run.models
    )
    return replace(routes[0][0], routes=routes, warm_keys=warm, secrets=secrets)


def _route(run: Run, key: ProviderKey, spec: CallSpec, secret: str) -> RunContext:
    return RunContext(
        run_id=run.pk, owner_id=run.owner_id, key_id=key.pk, key_revision=key.revision,
        current_pass=run.current_pass, spec=spec, pack_size=max(1, run.pack_size),
        lane=LaneRef(key_id=key.pk, group=limit_group(spec.model)),
        limits=key_limits(tier=key.tier, rpm=key.rpm_limit, itpm=key.itpm_limit, otpm=key.otpm_limit,
                          model=spec.model),
        api_key=secret, secrets=(secret,),
        base_url=effective_base_url(provider=key.provider, base_url=key.base_url),
    )
