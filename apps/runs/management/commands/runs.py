"""`manage.py runs ACTION ...`: the whole life of runs that already exist, from the command line.

    runs list [--user U] [--status S] [--limit N]
    runs show RUN                    what it did, why it is not moving, its failures, its passes
    runs follow RUN                  progress until it settles (Ctrl-C detaches; the run goes on)
    runs cancel RUN | runs resume RUN
    runs reseed RUN --scope failed|all|filter [--status S] [--error-code C] [--prompt-version V]
                [--pipeline-version V]
                [--model M] [--system TEXT|@file] [--prompt TEXT|@file] [--follow]
    runs export RUN [--format jsonl|csv|parquet] [--failures] [--output FILE]
                                     results (or failures) as JSONL, CSV or Parquet
    runs budget RUN --max-cost-usd 1.50 | --no-budget
    runs delete RUN                  delete an ended run and all of it, in the background

Every change (cancel, resume, reseed, budget, delete) is recorded in the audit trail as the user named
by `--as USER`, else as the OS user (channel "command").

Each action calls the same services and selectors as the API, and checks its input with the API's
serializers; the command runs as the operator, so it sees every user's runs.
"""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from apps.audit.services import actor_for_command
from apps.core.errors import InvalidInput, StateConflict
from apps.core.formatting import format_usd
from apps.failures.models import failure_state
from apps.failures.selectors import failures_list
from apps.runs.auditing import run_audited
from apps.runs.management.commandline import (
    OperatorCommand,
    add_export_arguments,
    at_least_one,
    exported,
    refusal,
    run_named,
    text_option,
    user_named,
    validated,
    wrapped_stream,
    write_export,
)
from apps.runs.models import BlockStatus, Run, RunStatus
from apps.runs.reporting.progress import MANAGE, follow_command, follow_run, summary
from apps.runs.selectors import run_block_status_counts, run_status_text, runs_list
from apps.runs.serializers.inputs import ReseedInputSerializer, RunBudgetInputSerializer, RunFilterSerializer
from apps.runs.services import run_cancel, run_resume, run_set_budget
from apps.runs.services.deletion import run_delete
from apps.runs.services.reseed import run_reseed

RECENT_FAILURES = 5
LIST_COLUMNS = ("{id:<36}  {status:<20}  {done:>13}  {failed:>6}  {cost:>10}  {model:<18}  {created:<16}  "
                "{name}")


class Command(OperatorCommand):
    help = "List, show, follow, cancel, resume, reseed, export and delete runs and change their budget."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        listing = actions.add_parser("list", help="runs, newest first")
        listing.add_argument("--user", help="only this user's runs")
        listing.add_argument("--status", help=f"only runs in this status ({', '.join(RunStatus.values)})")
        listing.add_argument("--limit", type=at_least_one, default=20, help="at most this many (default 20)")

        for name, text in (("show", "what a run did and why it is not moving"),
                           ("follow", "its progress until it settles; Ctrl-C detaches")):
            actions.add_parser(name, help=text).add_argument("run_id")
        acting = {}
        for name, text in (("cancel", "cancel pending blocks; calls in flight finish"),
                           ("resume", "resume a paused run"),
                           ("delete", "delete an ended run and all of it (in the background)")):
            acting[name] = actions.add_parser(name, help=text)
            acting[name].add_argument("run_id")

        reseed = actions.add_parser("reseed", help="a new pass over some of an ended run's blocks")
        reseed.add_argument("run_id")
        reseed.add_argument("--scope", required=True, help="failed, all, or filter")
        reseed.add_argument("--status", help="with --scope filter: blocks in this status")
        reseed.add_argument("--error-code", help="with --scope filter: blocks that failed with this code")
        reseed.add_argument("--prompt-version", help="with --scope filter: blocks from this prompt")
        reseed.add_argument("--pipeline-version",
                            help="with --scope filter: blocks whose result this build wrote")
        reseed.add_argument("--model", help="run the pass with another model")
        reseed.add_argument("--system", help=r"another system prompt (\n read as newline; @path)")
        reseed.add_argument("--prompt", help=r"another prompt template (\n read as newline; @path)")
        reseed.add_argument("--follow", action="store_true", help="follow the new pass")
        acting["reseed"] = reseed

        export = actions.add_parser("export", help="results (or failures) as JSONL, CSV or Parquet")
        export.add_argument("run_id")
        add_export_arguments(export)

        budget = actions.add_parser("budget", help="set or remove the run's budget")
        budget.add_argument("run_id")
        amount = budget.add_mutually_exclusive_group(required=True)
        amount.add_argument("--max-cost-usd", help="the new budget in dollars, e.g. 1.50")
        amount.add_argument("--no-budget", action="store_true", help="remove the budget")
        acting["budget"] = budget
        for parser_ in acting.values():
            parser_.add_argument("--as", dest="as_user", metavar="USER",
                                 help="the Conveyor user the audit trail records (default: the OS user)")

    def handle(self, *args: Any, **opts: Any) -> None:
        action = getattr(self, f"_{opts['action']}")
        try:
            action(opts)
        except InvalidInput as exc:
            raise refusal(exc) from None
        except StateConflict as exc:
            raise CommandError(str(exc)) from None

    # --- reading ----------------------------------------------------------------------------------

    def _list(self, opts: dict[str, Any]) -> None:
        filters = validated(RunFilterSerializer, {k: opts[k] for k in ("status",) if opts[k]})
        runs = runs_list(user=None, **filters)
        if opts["user"]:
            runs = runs.filter(owner=user_named(opts["user"]))
        rows = list(runs[:opts["limit"]])
        if not rows:
            self.stdout.write("no runs yet; submit one with: " f"{MANAGE} submit FILE --user U --key K")
            return
        self.stdout.write(LIST_COLUMNS.format(id="ID", status="STATUS", done="DONE", failed="FAILED",
                                              cost="COST", model="MODEL", created="CREATED", name="NAME"))
        for run in rows:
            self.stdout.write(LIST_COLUMNS.format(
                id=str(run.pk), status=run_status_text(run),
                done=f"{run.completed_blocks + run.failed_blocks}/{run.total_blocks}",
                failed=run.failed_blocks, cost=format_usd(run.cost_usd), model=run.model[:18],
                created=timezone.localtime(run.created_at).strftime("%Y-%m-%d %H:%M"), name=run.name,
            ))

    def _show(self, opts: dict[str, Any]) -> None:
        run = run_named(opts["run_id"])
        self.stdout.write(summary(run, failures_below=True))
        budget = (run.options or {}).get("max_cost_usd")
        key = f"{run.key.label} (id {run.key_id})" if run.key is not None else "deleted"
        self.stdout.write(f"  owner      {run.owner.get_username()}, key {key}, "
                          f"budget {format_usd(budget) if budget else 'none'}")
        if run.webhook_url:
            self.stdout.write(f"  webhook    {run.webhook_url} (deliveries: admin, or "
                              f"/api/v1/webhooks/deliveries/?run={run.pk})")
        counts = run_block_status_counts(run_id=run.pk)
        self.stdout.write("  by state   " + ", ".join(f"{counts[s]} {s}" for s in BlockStatus.values))
        for run_pass in run.passes.all():
            self.stdout.write(f"  pass {run_pass.number:<5} {run_pass.get_scope_display()}: "
                              f"{run_pass.selected_blocks} blocks, {run_pass.model}")
        failures = list(failures_list(user=None, run=run.pk)[:RECENT_FAILURES])
        if failures:
            self.stdout.write("  recent failures (newest first):")
        for row in failures:
            message = " ".join(row.error_message.split())[:100]
            block_uid = row.block_uid  # type: ignore[attr-defined]  # annotated by failures_list
            self.stdout.write(f"    #{row.pk} {block_uid or '-'}: {row.error_code} "
                              f"[{failure_state(row)}] {message}")
        if run.status in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.CANCELING):
            self.stdout.write(f"  follow     {follow_command(run.pk)}")

    def _follow(self, opts: dict[str, Any]) -> None:
        followed = follow_run(run_named(opts["run_id"]).pk, out=wrapped_stream(self.stderr))
        if not followed.detached:
            self.stdout.write(summary(followed.run))

    def _export(self, opts: dict[str, Any]) -> None:
        run = run_named(opts["run_id"])
        write_export(run, self.stdout, fmt=opts["format"], failures=opts["failures"], output=opts["output"])
        if opts["output"]:
            self.stderr.write(f"{exported(run, failures=opts['failures'])} written to {opts['output']}")

    # --- acting -----------------------------------------------------------------------------------

    def _report(self, run: Run, what: str) -> None:
        self.stdout.write(f"run {run.pk}: {what}; now {run.status}")

    @staticmethod
    def _audited(opts: dict[str, Any], action: str, run_id: Any, operation: Callable[[], Run],
                 **extra: Any) -> Run:
        try:
            actor = actor_for_command(opts.get("as_user"))
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        return run_audited(actor, action, run_id, operation, **extra)

    def _cancel(self, opts: dict[str, Any]) -> None:
        pk = run_named(opts["run_id"]).pk
        self._report(self._audited(opts, "cancel", pk, lambda: run_cancel(run_id=pk)), "cancel requested")

    def _delete(self, opts: dict[str, Any]) -> None:
        pk = run_named(opts["run_id"]).pk
        self._audited(opts, "delete", pk, lambda: run_delete(run_id=pk))
        self.stdout.write(f"run {pk}: deleting in the background (gone from every list now)")

    def _resume(self, opts: dict[str, Any]) -> None:
        pk = run_named(opts["run_id"]).pk
        run = self._audited(opts, "resume", pk, lambda: run_resume(run_id=pk))
        self._report(run, "resumed")
        self.stdout.write(f"follow it with: {follow_command(run.pk)}")

    def _reseed(self, opts: dict[str, Any]) -> None:
        run = run_named(opts["run_id"])
        given = {"scope": opts["scope"], "status": opts["status"], "error_code": opts["error_code"],
                 "prompt_version": opts["prompt_version"], "pipeline_version": opts["pipeline_version"],
                 "model": opts["model"],
                 "system_prompt": None if opts["system"] is None else text_option(opts["system"]),
                 "prompt_template": None if opts["prompt"] is None else text_option(opts["prompt"])}
        changes = validated(ReseedInputSerializer, {k: v for k, v in given.items() if v is not None})
        pk = run.pk
        run = self._audited(opts, "reseed", pk, lambda: run_reseed(run_id=pk, **changes),
                            scope=changes.get("scope"))
        self._report(run, f"pass {run.current_pass} started")
        if opts["follow"]:
            followed = follow_run(run.pk, out=wrapped_stream(self.stderr))
            if not followed.detached:
                self.stdout.write(summary(followed.run))
        else:
            self.stdout.write(f"follow it with: {follow_command(run.pk)}")

    def _budget(self, opts: dict[str, Any]) -> None:
        run = run_named(opts["run_id"])
        value = None if opts["no_budget"] else opts["max_cost_usd"]
        checked = validated(RunBudgetInputSerializer, {"max_cost_usd": value})
        budget: Decimal | None = checked["max_cost_usd"]
        pk = run.pk
        run = self._audited(opts, "budget", pk, lambda: run_set_budget(run_id=pk, max_cost_usd=budget))
        spent = f"spent {format_usd(run.cost_usd)}"
        self._report(run, f"budget {format_usd(budget) if budget is not None else 'removed'} ({spent})")
        if run.status == RunStatus.PAUSED:
            self.stdout.write(f"still paused: {run.paused_reason or run.get_paused_cause_display()}")
