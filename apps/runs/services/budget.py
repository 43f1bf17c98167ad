"""Budgets: a hard cap on what a run spends, call by call.

What is reserved, and when (the run row's `reserved_usd`, always changed under the run's row lock):
- a claim reserves each block's worst case (apps.runs.estimates.block_reservation) before any call is
  made for it (apps.runs.services.claiming); that pays for the first call of a block, alone or packed;
- a pack whose reply does not map onto its blocks is split, and each smaller call reserves again
  before it starts (`budget_reserve_call`): its worst case (estimates.call_reservation), less what the
  blocks still hold beyond what the calls above it have already spent. Without this, a run packed 8 a
  call whose packs keep failing to parse spent 1.44x its budget (up to 15 calls for 8 blocks);
- retries are claims again, reserved like the first.
A call that cannot be reserved is not made: its blocks go back to wait for the budget (decisions:
BUDGET_WAIT), and once nothing is in flight the next claim pauses the run by its budget. Every
reservation stays on the blocks until their outcome is written, where the call's real cost replaces
it (outcomes.count_on_run). So `cost_usd + reserved_usd` is never below what was spent, and never above
the budget: spent <= budget on every path.

The messages a person reads about a budget are made here too, with amounts in dollars as people write
them (never `$0E-8`): the smallest budget that works, what the next block could cost and what is left.
"""

from dataclasses import replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING
from uuid import UUID

from django.db import transaction
from django.db.models import Expression, F, Max, TextField
from django.db.models.functions import Cast, Coalesce

from apps.core.db import OctetLength
from apps.core.formatting import format_usd
from apps.core.ids import RunId
from apps.providers.prompts import CallSpec, metadata_fields
from apps.runs.estimates import MONEY, block_reservation, call_reservation
from apps.runs.models import Block, BlockStatus, Run
from apps.runs.transitions import lock_run

if TYPE_CHECKING:
    from apps.runs.services.claiming import ClaimedBlock

# Budgets are kept to four places (lifecycle.BUDGET_PLACES): a minimum is shown rounded up to them.
CENT_FRACTION = Decimal("0.0001")


def run_budget(run: Run) -> Decimal | None:
    budget = (run.options or {}).get("max_cost_usd")
    return None if budget is None else Decimal(str(budget))


def usd_at_least(amount: Decimal) -> str:
    """An amount a budget must reach, rounded up to the budget's four places: "$0.0013", "$0.05",
    "$1.2346" (setting exactly that budget works)."""
    value = max(amount, Decimal(0)).quantize(CENT_FRACTION, rounding=ROUND_CEILING)
    text = f"{value:.4f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${int(whole):,}.{cents.ljust(2, '0')}"


def usd_left(amount: Decimal) -> str:
    """What is left of a budget, never shown more than it is (rounded down), never negative."""
    value = max(amount, Decimal(0))
    if value >= Decimal("0.01"):
        value = value.quantize(CENT_FRACTION, rounding=ROUND_FLOOR)
    return format_usd(value)


# --- the worst case of one block -------------------------------------------------------------------

def prompt_bytes(run: Run) -> Expression:
    """What a block adds to its call's prompt, in bytes, for its worst case: its input, and its
    metadata (at most 8 KB) when the template names a field of it."""
    if metadata_fields(run.prompt_template):
        return OctetLength("input") + Coalesce(OctetLength(Cast("metadata", TextField())), 0)
    return OctetLength("input")


def block_worst_usd(run: Run, nbytes: int) -> Decimal:
    """What the call of a block of `nbytes` prompt bytes (its input, and metadata it names) could
    cost at most: what a claim reserves for it."""
    return spec_block_worst_usd(run.budget_spec, pack_size=run.pack_size, batch=run.in_batch_mode,
                                nbytes=nbytes)


def spec_block_worst_usd(spec: CallSpec, *, pack_size: int, batch: bool, nbytes: int) -> Decimal:
    """block_worst_usd for settings not yet stored as a run (the preflight)."""
    reservation = block_reservation(spec, pack_size=pack_size, batch=batch)
    return (reservation.fixed_usd + reservation.per_byte_usd * nbytes).quantize(MONEY, rounding=ROUND_CEILING)


def largest_block_worst_usd(run: Run) -> Decimal:
    """The worst case of the run's largest block: the smallest budget under which every block can be
    called at least once."""
    largest = Block.objects.filter(run_id=run.pk).aggregate(n=Max(prompt_bytes(run)))["n"] or 0
    return block_worst_usd(run, largest)


def next_block_worst_usd(run: Run) -> Decimal | None:
    """The worst case of the block a claim would take next (None: nothing is waiting)."""
    nbytes = (Block.objects.filter(run_id=run.pk, status=BlockStatus.PENDING)
              .order_by("block_index").values_list(prompt_bytes(run), flat=True).first())
    return None if nbytes is None else block_worst_usd(run, nbytes)


def budget_below_one_block(run: Run) -> str | None:
    """At create: why the budget could never pay for the run's largest block (None: it can), naming
    the smallest budget that works. The caller refuses the run (nothing is created)."""
    budget = run_budget(run)
    if budget is None:
        return None
    return below_one_block(budget=budget, worst=largest_block_worst_usd(run), model=run.model)


def below_one_block(*, budget: Decimal, worst: Decimal, model: str) -> str | None:
    if worst <= budget:
        return None
    minimum = usd_at_least(worst)
    return (f"this run's largest block could cost up to {minimum} (its prompt, and max_tokens of output "
            f"at {model}'s prices): set a budget of at least {minimum}")


# --- what a person reads ---------------------------------------------------------------------------

def paused_reason(*, next_worst: Decimal, left: Decimal, budget: Decimal) -> str:
    return (f"paused: the next block could cost up to {usd_at_least(next_worst)} and {usd_left(left)} "
            f"is left of its budget of {usd_at_least(budget)}")


def spent_reason(*, budget: Decimal, cost: Decimal) -> str:
    return f"paused: its budget of {usd_at_least(budget)} is spent ({format_usd(cost)})"


def resume_refusal(run: Run) -> str | None:
    """Why a run paused by its budget cannot resume as it is (None: it can). Resumed, it would only
    pause again at its first claim, having done nothing."""
    budget = run_budget(run)
    if budget is None:
        return None
    left = budget - run.cost_usd - run.reserved_usd
    worst = next_block_worst_usd(run)
    if worst is None or worst <= left:
        return None
    needed = run.cost_usd + run.reserved_usd + worst
    return (f"its next block could cost up to {usd_at_least(worst)} and {usd_left(left)} of its budget "
            f"of {usd_at_least(budget)} is left; raise the budget to at least {usd_at_least(needed)} "
            "to resume it")


# --- reserving the calls of a split ----------------------------------------------------------------

@transaction.atomic
def budget_reserve_call(*, run_id: RunId, token: UUID, blocks: "list[ClaimedBlock]",
                        spent_usd: Decimal) -> "list[ClaimedBlock] | None":
    """Reserve a split's call of `blocks` before it starts; None when the budget cannot pay for it.

    The blocks already hold a reservation (their claim's, and earlier top-ups); the calls above this
    one have spent `spent_usd` of it. Only what the call's worst case needs beyond the rest is
    reserved, shared evenly onto the blocks (so that writing their outcome gives it back, and lease
    expiry or a release does too). Returns the blocks with their new reservations."""
    from apps.runs.services.team_budget import team_room  # it reads this module's amounts

    run = lock_run(run_id)
    budget = run_budget(run)
    room = team_room(run, lock=True) if run.team_id is not None else None
    if budget is None and room is None:
        return blocks
    texts = [b.input + (str(b.metadata) if b.metadata else "") for b in blocks]
    worst = call_reservation(run.budget_spec, texts)
    held = sum((b.reserved_usd for b in blocks), Decimal(0)) - spent_usd
    short = worst - held
    if short <= 0:
        return blocks
    share = (short / len(blocks)).quantize(MONEY, rounding=ROUND_CEILING)
    if budget is not None and run.cost_usd + run.reserved_usd + share * len(blocks) > budget:
        return None
    if room is not None and share * len(blocks) > room.left:
        return None
    topped = Block.objects.filter(id__in=[b.id for b in blocks], status=BlockStatus.CLAIMED,
                                  lease_token=token).update(reserved_usd=F("reserved_usd") + share)
    if topped:
        Run.objects.filter(pk=run.pk).update(reserved_usd=F("reserved_usd") + share * topped)
    return [replace(b, reserved_usd=b.reserved_usd + share) for b in blocks]
