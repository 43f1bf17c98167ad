"""No admin page ever shows a provider key's secret (nor its ciphertext), even for a run whose calls
carried it and failed."""

import pytest
from django.urls import reverse

from apps.failures.models import DiagnosticLog, PipelineFailure
from tests.factories import SECRET, make_key, make_run
from tests.runs.helpers import serve_until_settled

pytestmark = pytest.mark.django_db(transaction=True)


def test_no_admin_page_of_a_failed_run_shows_the_keys_secret(client, staff, owner, mock):
    key = make_key(owner, base_url=mock.base_url)
    run = serve_until_settled(make_run(owner, key, ["ok", "broken [[mock:status=500]]"], max_attempts=2))
    block = run.blocks.get(uid="b1")
    failure = PipelineFailure.objects.get()
    client.force_login(staff)
    pages = [
        reverse("admin:index"),
        reverse("admin:runs_run_changelist"), reverse("admin:runs_run_change", args=[run.pk]),
        reverse("admin:runs_block_changelist"), reverse("admin:runs_block_change", args=[block.pk]),
        reverse("admin:failures_pipelinefailure_changelist"),
        reverse("admin:failures_pipelinefailure_change", args=[failure.pk]),
        reverse("admin:failures_diagnosticlog_changelist"),
        *(reverse("admin:failures_diagnosticlog_change", args=[pk])
          for pk in DiagnosticLog.objects.values_list("pk", flat=True)),
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        assert SECRET not in html, page
        assert key.secret_ciphertext not in html, page
