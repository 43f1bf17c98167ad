from tests.runs.conftest import clean_broker, mock, mock_key  # noqa: F401
