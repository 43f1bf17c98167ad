import asyncio
from typing import Any

from apps.pipelines.models import Pipeline
from apps.pipelines.services.creation import pipeline_create
from apps.pipelines.transitions import PIPELINE_ENDED
from apps.runs.services.submission import BlockSpec
from apps.runs.serving.loop import ServingLoop
from tests.factories import MODEL


def serve_pipeline(pipeline: Pipeline, *, rounds: int = 20) -> Pipeline:
    """Serving loops in this process, as workers would, until the pipeline ends. Each loop looks for
    new work (later steps' handed-on blocks) every 50 ms and ends when it has had none for 0.5 s."""
    for _ in range(rounds):
        loop = ServingLoop(worker="test-worker", slice_seconds=30.0, idle_exit_seconds=0.5,
                           refresh_seconds=0.05)
        asyncio.run(loop.run())
        pipeline.refresh_from_db()
        if pipeline.status in PIPELINE_ENDED:
            break
    return pipeline


def step(name: str, **settings: Any) -> dict[str, Any]:
    settings.setdefault("model", MODEL)
    return {"name": name, **settings}


def items(texts: dict[str, str]) -> list[BlockSpec]:
    return [BlockSpec(uid=uid, input=text, line=n) for n, (uid, text) in enumerate(texts.items(), start=1)]


def make_pipeline(owner: Any, key: Any, steps: list[dict[str, Any]], texts: dict[str, str], **kwargs: Any
                  ) -> Pipeline:
    return pipeline_create(owner=owner, key=key, steps=steps, items=items(texts), **kwargs)
