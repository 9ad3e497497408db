"""The money rules of SPEC "Money": what a revenue or payout rule earns for one action."""

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
HUNDRED = Decimal("100")
PERCENT_TYPES = frozenset({"CPS"})


def is_percentage(money_type: str) -> bool:
    """A ``CPS`` value is a percentage of the sale amount, so it needs ``amount``."""
    return money_type in PERCENT_TYPES


def earned(*, money_type: str, value: Decimal, amount: Decimal | None) -> Decimal:
    """What one action earns under a rule, in cents, rounded half-up.

    ``CPA``, ``CPL`` and ``FIXED`` earn the value itself; ``CPS`` earns ``value`` percent of
    ``amount`` (10 % of 19.99 is 2.00). The caller checks that ``amount`` is present for
    ``CPS`` before calling; a missing amount here is a programming error.
    """
    if is_percentage(money_type):
        if amount is None:
            raise ValueError("CPS needs the sale amount")
        return (value * amount / HUNDRED).quantize(CENT, rounding=ROUND_HALF_UP)
    return value.quantize(CENT, rounding=ROUND_HALF_UP)
