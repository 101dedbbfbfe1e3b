"""Network policy: which proxies are trusted, which sources may post webhooks.

Two settings, both validated at start-up so a typo stops the service instead of silently
trusting (or refusing) the wrong addresses:

- ``RECEIVER_FORWARDED_ALLOW_IPS``: peers whose ``X-Forwarded-For``/``X-Forwarded-Proto``
  uvicorn believes (its ``forwarded_allow_ips``). uvicorn itself turns an unparsable entry
  into a literal host name that never matches, which hides typos; we refuse them.
- ``RECEIVER_WEBHOOK_ALLOW_NETWORKS``: when set, the webhook path answers 403 to client
  addresses outside these networks. The address checked is ``scope["client"]``, i.e. the
  one left *after* uvicorn's proxy-header processing: the real client behind a trusted
  proxy, the peer itself otherwise.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

FORWARDED_ALLOW_IPS = "RECEIVER_FORWARDED_ALLOW_IPS"
WEBHOOK_ALLOW_NETWORKS = "RECEIVER_WEBHOOK_ALLOW_NETWORKS"


def split(raw: str | None) -> tuple[str, ...]:
    """The non-empty, stripped items of a comma-separated value."""
    return tuple(item.strip() for item in (raw or "").split(",") if item.strip())


def parse_networks(items: Iterable[str], variable: str) -> tuple[Network, ...]:
    """Each item as a network (a bare address is a /32 or /128); ConfigError names
    ``variable`` and the bad item."""
    networks = []
    for item in items:
        try:
            # strict=False: 10.1.2.3/8 means 10.0.0.0/8, as in every firewall config.
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"{variable} must be comma-separated IP addresses or CIDR networks"
                f" like 10.0.0.0/8, got {item!r}"
            ) from None
    return tuple(networks)


def check_forwarded_allow_ips(items: tuple[str, ...]) -> None:
    """Refuse entries uvicorn would silently ignore; ``*`` must stand alone."""
    if not items:
        raise ConfigError(
            f"{FORWARDED_ALLOW_IPS} is empty: name your proxy's address (127.0.0.1 by default)"
        )
    if "*" in items:
        if len(items) > 1:
            raise ConfigError(f"{FORWARDED_ALLOW_IPS}: '*' trusts everyone; list nothing else")
        return
    parse_networks(items, FORWARDED_ALLOW_IPS)


def uvicorn_forwarded_allow_ips(items: tuple[str, ...]) -> str:
    """The value for ``uvicorn.Config(forwarded_allow_ips=...)``."""
    return ",".join(items)


@dataclass(frozen=True, slots=True)
class AllowList:
    """Source networks allowed to post webhooks."""

    networks: tuple[Network, ...]

    @classmethod
    def from_settings(cls, items: tuple[str, ...]) -> AllowList | None:
        """None when no allow-list is configured (every source is allowed)."""
        return cls(parse_networks(items, WEBHOOK_ALLOW_NETWORKS)) if items else None

    def allows(self, host: str | None) -> bool:
        """Whether ``host`` (scope["client"][0]) lies in one of the networks.

        Unknown (None) or non-IP clients (a unix socket path) are refused: an allow-list
        that lets through what it cannot check would be no allow-list.
        """
        return host is not None and _allows(self.networks, host)


@functools.lru_cache(maxsize=4096)  # MTA posts from a handful of addresses
def _allows(networks: tuple[Network, ...], host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; match them as IPv4.
        address = address.ipv4_mapped
    return any(address in network for network in networks)
