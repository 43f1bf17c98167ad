"""`manage.py teams ...`: teams, members and spend limits from the command line, through the same
services as the API (a team admin's operations, for an operator).

    teams list
    teams create NAME --admin USER
    teams add TEAM USER [--role admin|member|viewer]
    teams role TEAM USER ROLE
    teams remove TEAM USER
    teams limit TEAM AMOUNT|none [--period month|rolling_days] [--window-days N] [--member USER]
    teams delete TEAM   (its keys, runs, pipelines, members: in the background; refused while it works)

Every change takes `--as USER`: the Conveyor user the audit trail records (default: the OS user).
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.services import Actor, actor_for_command
from apps.core.errors import InvalidInput, StateConflict
from apps.teams.auditing import (
    member_add_audited,
    member_remove_audited,
    member_set_role_audited,
    spend_limit_set_audited,
    team_create_audited,
)
from apps.teams.deletion import team_delete
from apps.teams.models import Membership, Role, SpendPeriod, Team
from apps.teams.services import user_named


class Command(BaseCommand):
    help = "Teams, their members' roles, and their spend limits."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list")
        create = sub.add_parser("create")
        create.add_argument("name")
        create.add_argument("--admin", required=True, help="username or email of its first admin")
        add = sub.add_parser("add")
        add.add_argument("team")
        add.add_argument("user")
        add.add_argument("--role", default=Role.MEMBER)
        role = sub.add_parser("role")
        role.add_argument("team")
        role.add_argument("user")
        role.add_argument("role")
        remove = sub.add_parser("remove")
        remove.add_argument("team")
        remove.add_argument("user")
        limit = sub.add_parser("limit")
        limit.add_argument("team")
        limit.add_argument("amount", help="dollars per period, or `none`")
        limit.add_argument("--period", default=SpendPeriod.MONTH)
        limit.add_argument("--window-days")
        limit.add_argument("--member", help="a member's own limit within the team")
        delete = sub.add_parser("delete")
        delete.add_argument("team")
        for changing in (create, add, role, remove, limit, delete):
            changing.add_argument(
                "--as",
                dest="as_user",
                metavar="USER",
                help="the Conveyor user the audit trail records (default: the OS user)",
            )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except (InvalidInput, StateConflict) as exc:
            field = getattr(exc, "field", None)
            raise CommandError(f"{field}: {exc.message}" if field else exc.message) from None

    @staticmethod
    def _actor(options: dict[str, Any]) -> Actor:
        try:
            return actor_for_command(options.get("as_user"))
        except LookupError as exc:
            raise CommandError(str(exc)) from None

    def _team(self, name: str) -> Team:
        team = Team.objects.filter(name=name, deleting_at__isnull=True).first()
        if team is None:
            raise CommandError(f"No team {name!r}.")
        return team

    def _member(self, team: Team, ref: str) -> Membership:
        rows = Membership.objects.select_related("user", "team")
        row = rows.filter(team=team, user=user_named(ref)).first()
        if row is None:
            raise CommandError(f"{ref} is not a member of team {team.name}.")
        return row

    def _list(self, options: dict[str, Any]) -> None:
        for team in Team.objects.prefetch_related("memberships__user"):
            limit = f"${team.limit_usd} per {team.period}" if team.limit_usd is not None else "no limit"
            members = ", ".join(f"{m.user.get_username()} ({m.role})" for m in team.memberships.all())
            deleting = " (being deleted)" if team.deleting_at else ""
            self.stdout.write(f"{team.name}{deleting}: {limit}; {members}")

    def _create(self, options: dict[str, Any]) -> None:
        actor = self._actor(options)
        team = team_create_audited(actor=actor, creator=user_named(options["admin"]), name=options["name"])
        self.stdout.write(f"team {team.name} created (id {team.pk})")

    def _add(self, options: dict[str, Any]) -> None:
        actor = self._actor(options)
        row = member_add_audited(
            actor=actor, team=self._team(options["team"]), user_ref=options["user"], role=options["role"]
        )
        self.stdout.write(f"{row.user.get_username()} added to {row.team.name} as {row.role}")

    def _role(self, options: dict[str, Any]) -> None:
        actor = self._actor(options)
        row = member_set_role_audited(
            actor=actor,
            membership=self._member(self._team(options["team"]), options["user"]),
            role=options["role"],
        )
        self.stdout.write(f"{row.user.get_username()} is now {row.role} of {row.team.name}")

    def _remove(self, options: dict[str, Any]) -> None:
        actor = self._actor(options)
        row = self._member(self._team(options["team"]), options["user"])
        member_remove_audited(actor=actor, membership=row, leaving=row.user_id == actor.user_id)
        self.stdout.write(f"{options['user']} removed from {options['team']}")

    def _limit(self, options: dict[str, Any]) -> None:
        actor = self._actor(options)
        team = self._team(options["team"])
        holder = self._member(team, options["member"]) if options["member"] else team
        amount = None if options["amount"].lower() == "none" else options["amount"]
        spend_limit_set_audited(
            actor=actor,
            holder=holder, limit_usd=amount, period=options["period"], window_days=options["window_days"]
        )
        self.stdout.write(f"limit set: {amount or 'none'}")

    def _delete(self, options: dict[str, Any]) -> None:
        actor = self._actor(options)
        team = Team.objects.filter(name=options["team"]).first()  # one being deleted: to finish it
        if team is None:
            raise CommandError(f"No team {options['team']!r}.")
        team_delete(team_id=team.pk, actor=actor)
        self.stdout.write(
            f"team {team.name}: deleting in the background (keys, runs, pipelines, members); "
            "audit records stay"
        )
