"""A pipeline through real serving loops and the mock provider over HTTP: every item's path through
the steps is exact, items flow to later steps while earlier ones still run, the pipeline ends once."""

import pytest
from django.db.models import Min

from apps.pipelines.models import PipelineItem
from apps.pipelines.selectors import item_paths
from apps.runs.models import Block
from tests.pipelines.helpers import make_pipeline, serve_pipeline, step

pytestmark = pytest.mark.django_db(transaction=True)

GRADE = {
    "type": "object",
    "properties": {"score": {"type": "integer"}, "label": {"type": "string"}},
    "required": ["score", "label"],
    "additionalProperties": False,
}
# One number per essay: the mock's integer field takes a number of the text, so the score is known.
ESSAYS = {f"e{i}": f"An essay, graded {2 * i} of a hundred." for i in range(50)}
REFUSED = {f"r{i}": f"A refused essay, graded {i} [[mock:refusal]]" for i in range(3)}
STEPS = [
    step("grade", output_schema=GRADE, prompt_template="Grade this essay: {input}", parallelism=2,
         max_attempts=1),
    step("feedback", input="The essay scored {steps.grade.output.score}: {input}",
         filter="steps.grade.output.score < 60", prompt_template="Write feedback. {input}"),
    step("summary", input="{steps.feedback.output}", prompt_template="Summarise: {input}"),
]


def expected_path(uid: str) -> list[tuple[str, str]]:
    if uid.startswith("r"):
        return [("grade", "failed")]
    if int(uid[1:]) * 2 < 60:
        return [("grade", "succeeded"), ("feedback", "succeeded"), ("summary", "succeeded")]
    return [("grade", "succeeded"), ("feedback", "filtered")]


@pytest.fixture
def finished(owner, mock_key):
    pipeline = make_pipeline(owner, mock_key, STEPS, {**ESSAYS, **REFUSED}, name="essays")
    return serve_pipeline(pipeline)


def test_every_item_takes_exactly_its_path(finished):
    paths = {row["uid"]: [(p["step"], p["status"]) for p in row["path"]] for row in item_paths(finished)}
    assert paths == {uid: expected_path(uid) for uid in [*ESSAYS, *REFUSED]}


def test_the_pipeline_and_every_step_end_with_counts_that_add_up(finished):
    assert finished.status == "complete" and finished.ended_at is not None
    runs = {s.name: s.run for s in finished.steps.select_related("run")}
    assert {name: (r.status, r.total_blocks, r.completed_blocks, r.failed_blocks)
            for name, r in runs.items()} == {
        "grade": ("complete", 53, 50, 3),
        "feedback": ("complete", 30, 30, 0),
        "summary": ("complete", 30, 30, 0),
    }
    assert dict(PipelineItem.objects.filter(pipeline=finished).values_list("uid", "status")) == {
        **{f"e{i}": "done" if i < 30 else "filtered" for i in range(50)},
        **dict.fromkeys(REFUSED, "failed"),
    }


def test_a_later_step_reads_the_earlier_steps_output_fields(finished):
    block = Block.objects.get(run__pipeline_step__pipeline=finished, run__pipeline_step__name="feedback",
                              uid="e7")
    assert block.input == "The essay scored 14: An essay, graded 14 of a hundred."


def test_the_first_item_reaches_the_last_step_before_the_first_step_ends(finished):
    runs = {s.name: s.run for s in finished.steps.select_related("run")}
    first_in_last_step = runs["summary"].blocks.aggregate(first=Min("created_at"))["first"]
    assert first_in_last_step < runs["grade"].finished_at
