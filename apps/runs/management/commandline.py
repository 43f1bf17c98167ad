"""What the run commands (submit, runs, export, compare, in commands/) share: finding the user, key and
run that an argument names, checking settings with the API's own input serializers, and turning every
refusal into one CommandError that names the option at fault.
"""

import json
import os
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from rest_framework import serializers

from apps.keys.models import ProviderKey
from apps.runs.models import Run
from apps.runs.selectors import run_results
from config.api.errors import flatten_errors

# Settings whose command-line option is not simply --the-field-name.
OPTION_FOR_FIELD = {"system_prompt": "--system", "prompt_template": "--prompt", "cache": "--cache"}
_ESCAPE = re.compile(r"\\(\\|n|t)")
_ESCAPED = {"\\": "\\", "n": "\n", "t": "\t"}


def option_name(field: str) -> str:
    """`options.max_cost_usd` -> `--max-cost-usd`: how the person typed it."""
    name = field.rsplit(".", 1)[-1]
    return OPTION_FOR_FIELD.get(name, "--" + name.replace("_", "-"))


def validated(serializer_class: type[serializers.Serializer], data: dict[str, Any]) -> dict[str, Any]:
    """The API's input serializer over the command's options: the same checks, the same messages."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        problems = [f"{option_name(field)} ({field}): {' '.join(messages)}"
                    for field, messages in flatten_errors(serializer.errors).items()]
        raise CommandError("; ".join(problems))
    return dict(serializer.validated_data)


def text_option(value: str) -> str:
    """A prompt given on the command line: `@path` reads the file as it is; otherwise the escapes \\n,
    \\t and \\\\ are turned into a newline, a tab and a backslash (a shell passes them literally)."""
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise CommandError(f"no such file: {value[1:]}")
        return path.read_text(encoding="utf-8")
    return _ESCAPE.sub(lambda match: _ESCAPED[match.group(1)], value)


def user_named(username: str) -> Any:
    User = get_user_model()
    user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
    if user is None:
        raise CommandError(f"no user {username!r}; create one with: uv run python manage.py "
                           f"createsuperuser --username {username}")
    return user


def key_of(user: Any, ref: str) -> ProviderKey:
    """One of the user's keys, by id or label."""
    keys = ProviderKey.objects.filter(owner=user)
    key = (keys.filter(pk=int(ref)) if ref.isdigit() else keys.filter(label=ref)).first()
    if key is None:
        labels = ", ".join(keys.values_list("label", flat=True)) or "none yet: add one with add_key"
        raise CommandError(f"user {user.get_username()!r} has no key {ref!r} (their keys: {labels})")
    return key


def run_named(run_id: str) -> Run:
    try:
        run = Run.objects.select_related("owner", "key").filter(pk=run_id).first()
    except ValidationError:  # a malformed id reads as "no such run" too
        run = None
    if run is None:
        raise CommandError(f"no run {run_id}; list them with: uv run python manage.py runs list")
    return run


def write_results(run_id: Any, out: TextIO) -> int:
    """Every block's result as JSONL (the API's results/ format), in block order; returns the count.

    A reader that stops early (`... | head`) ends the export quietly, as any Unix tool does."""
    written = 0
    try:
        for row in run_results(run_id=run_id):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            written += 1
        out.flush()
    except BrokenPipeError:
        # Nothing more can be written; point stdout at /dev/null so the interpreter's final flush
        # does not fail again on the way out.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return written
