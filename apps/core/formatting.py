"""How amounts and moments read for a person (command line, admin): one place, so they agree."""

from datetime import datetime
from decimal import Decimal

from django.utils import timezone


def format_usd(value: Decimal | float | int | str | None) -> str:
    """Dollars with the precision that tells something: cents for dollars, four places for cents,
    six below a cent ($12.34, $0.0137, $0.000412)."""
    amount = Decimal(str(value or 0))
    if amount == 0:
        return "$0.00"
    sign, size = ("-" if amount < 0 else ""), abs(amount)
    if size >= 1:
        return f"{sign}${size:,.2f}"
    if size >= Decimal("0.01"):
        return f"{sign}${size:.4f}"
    if size < Decimal("0.000001"):
        return f"{sign}<$0.000001"
    return f"{sign}${size:.6f}"


def format_moment(moment: datetime) -> str:
    """A moment in the server's time zone, to the second, with the zone named (21:40:12 UTC)."""
    local = timezone.localtime(moment)
    return local.strftime("%H:%M:%S %Z")


def counted(number: int, noun: str) -> str:
    """A count and its noun, singular for one: "1 attempt", "3 attempts"."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
