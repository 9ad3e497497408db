"""An advertiser's IP allow-list (docs/postbacks.md check 3a): addresses and CIDR ranges,
IPv4 and IPv6, parsed once per definitions version and matched on every postback."""

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: More entries than any advertiser's servers need; bounds the work of every postback.
MAX_ENTRIES = 100

#: Answers an allow-list remembers, by address (its advertiser's servers are a few; the
#: bound keeps a flood of other addresses from growing it).
REMEMBERED = 256


def parse_entry(entry: str) -> Network:
    """One entry as a network: an address is a network of one (``/32``, ``/128``). Host bits
    set under the prefix (``10.0.0.7/24``) are cleared: the range meant is plain.
    ``::ffff:a.b.c.d`` is stored as ``a.b.c.d``: the same server."""
    network = ipaddress.ip_network(entry.strip(), strict=False)
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}", strict=False)
    return network


def normalise_allow_list(entries: Iterable[str]) -> list[str]:
    """The entries as stored: each parsed and written canonically, blanks and repeats
    dropped, order kept. Raises ``ValidationError`` naming the entries that are neither an
    address nor a CIDR range."""
    if isinstance(entries, str) or not isinstance(entries, Iterable):
        raise ValidationError("A list of IP addresses or CIDR ranges is expected.")
    kept: list[str] = []
    bad: list[str] = []
    for entry in entries:
        if not isinstance(entry, str):
            bad.append(repr(entry))
            continue
        if not entry.strip():
            continue
        try:
            text = str(parse_entry(entry))
        except ValueError:
            bad.append(entry.strip()[:60])
            continue
        if text not in kept:
            kept.append(text)
    if bad:
        raise ValidationError(
            "Not an IP address or CIDR range: %(bad)s.", params={"bad": ", ".join(bad)}
        )
    if len(kept) > MAX_ENTRIES:
        raise ValidationError(f"At most {MAX_ENTRIES} addresses or ranges.")
    return kept


def validate_allow_list(value: object) -> None:
    normalise_allow_list(value)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class AllowList:
    """The networks a postback may come from; empty: any address."""

    networks: tuple[Network, ...] = ()
    #: Admits no address at all (what a prediction assumes of a list it does not know).
    nobody: bool = False
    #: ``permits``' answers so far, by address: parsing one costs more than the rest of
    #: the check (the list lives as long as its definitions version).
    _answers: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, entries: Iterable[str] | None) -> "AllowList":
        """From stored entries. One that does not parse (edited outside the forms) is left
        out rather than failing every postback; it can match nothing anyway."""
        networks = []
        for entry in entries or ():
            try:
                networks.append(parse_entry(entry))
            except (TypeError, ValueError):
                continue
        return cls(tuple(networks))

    def __bool__(self) -> bool:
        """Whether a list is set (an empty one admits any address)."""
        return bool(self.networks) or self.nobody

    def permits(self, ip: str | None) -> bool:
        """Whether a request from ``ip`` may pass: always with an empty list; never from an
        address that cannot be parsed (or none at all). ``::ffff:a.b.c.d`` is ``a.b.c.d``."""
        if self.nobody:
            return False
        if not self.networks:
            return True
        if not ip:
            return False
        answer = self._answers.get(ip)
        if answer is None:
            answer = self._admits(ip)
            if len(self._answers) >= REMEMBERED:
                self._answers.clear()
            self._answers[ip] = answer
        return answer

    def _admits(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(
            address.version == network.version and address in network for network in self.networks
        )


EMPTY = AllowList()
