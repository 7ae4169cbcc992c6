"""Which ``callback_url`` the service may call: public hosts only, checked twice.

A callback is a request the service makes on a user's behalf, from inside its own
network. Without a check, a job could make the worker POST to its database, its broker
or a cloud metadata endpoint (server-side request forgery). So a callback URL is
refused when it carries credentials, or when its host is, or resolves to, an address
that is not globally routable: loopback, private, link-local, multicast, reserved,
unspecified, shared (CGNAT) and the like, in any spelling (``127.1``, ``0x7f000001``,
``2130706433``, ``[::1]``, ``[::ffff:127.0.0.1]``).

The check runs at submission (:func:`check_submitted`) and again at send time
(:func:`resolve_target`), since DNS can change in between; the worker then connects to
the very address it checked. ``PPRUNING_CALLBACK_ALLOW_PRIVATE`` turns the address rule
off for a private deployment (and the tests, whose receivers listen on loopback).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackRefused(ValueError):
    """The URL may not be called; the message says why (without echoing internal details)."""


@dataclass(frozen=True)
class Target:
    """Where a callback goes: the URL's host name and port, and the address checked for it."""

    scheme: str
    host: str
    port: int
    address: IPAddress


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is one in any spelling the C resolver accepts, else None.

    ``inet_aton`` reads the legacy IPv4 forms (``127.1``, ``0x7f000001``, ``2130706433``,
    octal parts) that URL parsers pass on as names and resolvers still turn into addresses.
    """
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        pass
    if host and all(ch in "0123456789abcdefxABCDEFX." for ch in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address (an IPv4-mapped IPv6 address is judged as its IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _split(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise CallbackRefused("must not carry credentials (user:password@)")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise CallbackRefused("has an invalid port") from None
    return parts.scheme, parts.hostname, port


def _refuse_unless_public(address: IPAddress, allow_private: bool) -> None:
    if not allow_private and not is_public(address):
        raise CallbackRefused("its host is, or resolves to, an address that is not public; it will not be called")


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (raises ``OSError`` when it does not resolve)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def check_submitted(url: str, *, allow_private: bool) -> None:
    """Refuse ``url`` at submission; a name that does not resolve from here passes (the worker checks again)."""
    _, host, port = _split(url)
    literal = literal_address(host)
    if literal is not None:
        _refuse_unless_public(literal, allow_private)
        return
    try:
        addresses = resolve(host, port)
    except OSError:
        return
    for address in addresses:
        _refuse_unless_public(address, allow_private)


def resolve_target(url: str, *, allow_private: bool) -> Target:
    """The address to connect to for ``url``, resolved and checked now; every address must pass."""
    scheme, host, port = _split(url)
    literal = literal_address(host)
    try:
        addresses = [literal] if literal is not None else resolve(host, port)
    except OSError as exc:
        raise CallbackRefused(f"host {host!r} does not resolve ({exc})") from None
    if not addresses:
        raise CallbackRefused(f"host {host!r} does not resolve")
    for address in addresses:
        _refuse_unless_public(address, allow_private)
    return Target(scheme, host, port, addresses[0])
