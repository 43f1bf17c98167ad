"""The catalog's output limits: what submission checks max_tokens against, before any call is made."""

import pytest

from apps.providers.catalog import catalog, get_model
from mock_provider.models import find_model


def test_haiku_4_5_writes_at_most_64000_output_tokens():
    assert get_model("claude-haiku-4-5").max_output_tokens == 64_000


@pytest.mark.parametrize("model_id", catalog().ids())
def test_every_catalog_model_has_an_output_limit(model_id):
    assert get_model(model_id).max_output_tokens, model_id


@pytest.mark.parametrize("model_id", catalog().ids())
def test_the_bundled_mock_refuses_max_tokens_at_the_same_limit_as_the_catalog(model_id):
    mock_model = find_model(model_id)
    assert mock_model is not None, model_id
    assert mock_model.max_output_tokens == get_model(model_id).max_output_tokens, model_id
