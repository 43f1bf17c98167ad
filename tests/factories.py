"""Small typed builders for the rows tests need; they go through the same services as users do."""

from typing import Any

from apps.core.crypto import encrypt_secret
from apps.keys.models import ProviderKey
from apps.runs.models import Run
from apps.runs.services import BlockSpec, run_create
from apps.teams.models import Membership, Team

MODEL = "claude-haiku-4-5"
SECRET = "sk-ant-mock-test"


def make_key(owner: Any, *, base_url: str = "", secret: str = SECRET, label: str = "main",
             team: Team | None = None) -> ProviderKey:
    """A key row as key_create would store it, without the validation call."""
    return ProviderKey.objects.create(
        owner=owner, label=label, secret_ciphertext=encrypt_secret(secret), suffix=secret[-4:],
        base_url=base_url, is_valid=True, team=team,
    )


def make_team(name: str, **members: Any) -> Team:
    """A team with members by role: make_team("acme", admin=alice, member=bob, viewer=carol)."""
    team = Team.objects.create(name=name)
    for role, user in members.items():
        Membership.objects.create(team=team, user=user, role=role)
    return team


def make_run(owner: Any, key: ProviderKey, inputs: list[str], **options: Any) -> Run:
    blocks = [BlockSpec(uid=f"b{i}", input=text) for i, text in enumerate(inputs)]
    options.setdefault("model", MODEL)
    return run_create(owner=owner, key=key, blocks=blocks, **options)
