"""A mock of the Anthropic Messages API, served over real HTTP for the official SDK.

See docs/mock-provider.md. Entry points: `running_mock` / `running_mock_process` (testing.py),
`MockServer` (server.py), `python manage.py mock_provider`.
"""
