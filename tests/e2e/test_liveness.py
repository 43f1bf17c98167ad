"""`worker_alive` against a real worker process: alive while it runs, not once it is killed."""

import socket

import pytest
from django.core.management import CommandError, call_command

from tests.e2e.conftest import wait_for


def answers(node: str) -> bool:
    try:
        call_command("worker_alive", "--node", node, "--timeout", "1")
    except CommandError:
        return False
    return True


def test_worker_alive_answers_for_a_running_worker_and_not_for_a_killed_one(stack):
    node = f"w1@{socket.gethostname()}"
    stack.worker("w1", concurrency=1)
    wait_for(lambda: answers(node), timeout=90, what="w1 answers ping", stack=stack)
    stack.kill("w1")
    with pytest.raises(CommandError, match="no answer to ping"):
        call_command("worker_alive", "--node", node, "--timeout", "1")
