"""`/api/v1/pipelines/`: create with steps and items as JSON, read it rolled up and its items' paths;
bad input is a 400 naming the step and field, and nothing is created."""

import pytest

from apps.pipelines.models import Pipeline, PipelineItem
from apps.runs.models import Block, Run
from tests.api.conftest import api, fresh_throttles  # noqa: F401 (the API tests' fixtures)
from tests.factories import MODEL

pytestmark = pytest.mark.django_db

GRADE = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"],
         "additionalProperties": False}


def body(key, **changes):
    spec = {
        "key": key.pk, "name": "essays",
        "steps": [
            {"name": "grade", "model": MODEL, "output_schema": GRADE},
            {"name": "feedback", "model": MODEL, "input": "Score {steps.grade.output.score}: {input}",
             "filter": "steps.grade.output.score < 60"},
        ],
        "items": [{"uid": "a", "input": "essay a", "metadata": {"student": 1}}, {"input": "essay b"}],
    }
    spec.update(changes)
    return spec


@pytest.fixture
def client(api, owner):  # noqa: F811
    return api(owner)


def test_a_pipeline_is_created_with_a_run_per_step_and_its_items_in_step_one(client, offline_key):
    response = client.post("/api/v1/pipelines/", body(offline_key), format="json")
    assert response.status_code == 201, response.data
    data = response.data
    assert [(s["position"], s["name"], s["total_blocks"], s["items_in_step"]) for s in data["steps"]] == [
        (1, "grade", 2, 2), (2, "feedback", 0, 0)]
    assert data["items"] == {"moving": 2, "done": 0, "failed": 0, "filtered": 0, "fanned_out": 0}
    first = Run.objects.get(pk=data["steps"][0]["run_id"])
    assert sorted(first.blocks.values_list("uid", flat=True)) == ["a", "line-2"]


def test_the_pipeline_reads_back_with_its_items_paths(client, offline_key):
    created = client.post("/api/v1/pipelines/", body(offline_key), format="json").data
    detail = client.get(f"/api/v1/pipelines/{created['id']}/")
    items = client.get(f"/api/v1/pipelines/{created['id']}/items/")
    assert detail.status_code == 200 and detail.data["total_items"] == 2
    assert [(i["uid"], i["status"], [(p["step"], p["status"], p["stale"]) for p in i["path"]])
            for i in items.data["results"]] == [
        ("a", "moving", [("grade", "pending", False)]),
        ("line-2", "moving", [("grade", "pending", False)]),
    ]
    assert items.data["results"][0]["path"][0]["model"] == MODEL


def test_another_users_pipeline_is_not_found(api, outsider, client, offline_key):  # noqa: F811
    created = client.post("/api/v1/pipelines/", body(offline_key), format="json").data
    assert api(outsider).get(f"/api/v1/pipelines/{created['id']}/").status_code == 404
    assert api(outsider).get("/api/v1/pipelines/not-a-uuid/").status_code == 404


def bad(client, key, **changes):
    response = client.post("/api/v1/pipelines/", body(key, **changes), format="json")
    assert response.status_code == 400, response.data
    assert (Pipeline.objects.count(), Run.objects.count(), Block.objects.count(),
            PipelineItem.objects.count()) == (0, 0, 0, 0)
    return response.data["error"]["fields"] if "error" in response.data else response.data


def steps_with(second: dict) -> list[dict]:
    return [{"name": "grade", "model": MODEL, "output_schema": GRADE}, {"name": "feedback", "model": MODEL,
                                                                         **second}]


def test_a_step_naming_a_step_after_it_is_refused(client, offline_key):
    steps = [{"name": "grade", "model": MODEL, "output_schema": GRADE},
             {"name": "feedback", "model": MODEL, "input": "{steps.summary.output}"},
             {"name": "summary", "model": MODEL}]
    fields = bad(client, offline_key, steps=steps)
    assert "steps.1.input" in str(fields) and "summary" in str(fields)


def test_a_field_no_earlier_schema_has_is_refused(client, offline_key):
    fields = bad(client, offline_key, steps=steps_with({"input": "{steps.grade.output.grade}"}))
    assert "steps.1.input" in str(fields) and "'grade'" in str(fields)


def test_a_field_of_a_free_text_step_is_refused(client, offline_key):
    steps = [{"name": "draft", "model": MODEL}, {"name": "polish", "model": MODEL,
                                                  "input": "{steps.draft.output.title}"}]
    fields = bad(client, offline_key, steps=steps)
    assert "steps.1.input" in str(fields) and "free text" in str(fields)


def test_a_filter_over_a_missing_field_or_unreadable_is_refused(client, offline_key):
    assert "steps.1.filter" in str(bad(client, offline_key,
                                       steps=steps_with({"filter": "steps.grade.output.mark < 60"})))
    assert "steps.1.filter" in str(bad(client, offline_key,
                                       steps=steps_with({"filter": "__import__('os') < 1"})))


def test_more_steps_than_allowed_are_refused(client, offline_key, settings):
    settings.CONVEYOR = {**settings.CONVEYOR, "PIPELINE_MAX_STEPS": 2}
    steps = [{"name": f"s{i}", "model": MODEL} for i in range(3)]
    assert "at most 2" in str(bad(client, offline_key, steps=steps))


def test_a_bad_run_setting_names_the_step(client, offline_key):
    fields = bad(client, offline_key, steps=steps_with({"model": "claude-imaginary-9"}))
    assert "steps.1.model" in str(fields) and "feedback" in str(fields)


def test_an_item_without_a_metadata_field_a_step_names_is_refused(client, offline_key):
    fields = bad(client, offline_key, steps=steps_with({"input": "{metadata.student}: {input}"}))
    assert "items.1.metadata" in str(fields)


def test_more_items_than_a_run_may_have_are_refused_as_too_large(client, offline_key, settings):
    settings.MAX_UPLOAD_BLOCKS = 1
    response = client.post("/api/v1/pipelines/", body(offline_key), format="json")
    assert response.status_code == 413
    assert not Pipeline.objects.exists()


def test_the_owner_lists_their_pipelines_and_no_one_elses(api, outsider, client, offline_key):  # noqa: F811
    created = client.post("/api/v1/pipelines/", body(offline_key), format="json").data
    assert [p["id"] for p in client.get("/api/v1/pipelines/").data["results"]] == [created["id"]]
    assert api(outsider).get("/api/v1/pipelines/").data["results"] == []


def test_items_can_be_listed_by_status(client, offline_key):
    created = client.post("/api/v1/pipelines/", body(offline_key), format="json").data
    url = f"/api/v1/pipelines/{created['id']}/items/"
    assert len(client.get(url, {"status": "moving"}).data["results"]) == 2
    assert client.get(url, {"status": "done"}).data["results"] == []
    assert client.get(url, {"status": "lost"}).status_code == 400
