"""``hostnet conntrack size``: how big the conntrack table should be, step by step."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

import click

from hostnet.cli.common import format_option, root_option

T = TypeVar("T")


def _parse(kind: str, text: str | None, parse: Callable[[str], T]) -> T | None:
    from hostnet.errors import UsageError

    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise UsageError(f"{kind}: {exc}", hint="see 'hostnet conntrack size --help'") from None


@click.command("size")
@click.option("--rate", metavar="N/s", help="New connections per second (e.g. 2000/s, 90000/m).")
@click.option("--established-lifetime", metavar="DURATION",
              help="How long a typical connection stays open (e.g. 30s, 5m, 2h; default "
              "60s, stated in the steps).")
@click.option("--timeout-established", metavar="S", type=click.IntRange(min=1), default=None,
              help="TCP established timeout to assume (default: this host's value); it only "
              "caps the lifetime.")
@click.option("--ram", metavar="SIZE", help="RAM to size for (e.g. 8G; default: this host's).")
@click.option("--cpus", type=click.IntRange(min=1), default=None,
              help="CPU count (default: this host's).")
@click.option("--allow-lower", is_flag=True, help="Allow recommending less than the current max.")
@root_option
@format_option("text", "json")
def size(
    rate: str | None, established_lifetime: str | None, timeout_established: int | None,
    ram: str | None, cpus: int | None, allow_lower: bool, root_path: str | None, fmt: str,
) -> int:
    """Recommend nf_conntrack_max and buckets from RAM, CPUs, the observed count and an
    optional traffic profile (Little's law: entries = new flows/s x seconds each flow stays),
    with the memory it costs and the lines to persist it. Never proposes more than the kernel
    accepts or than fits in a quarter of RAM; exit 2 when the inputs cannot fit."""
    from hostnet.cli.common import open_root
    from hostnet.conntrack import sizing
    from hostnet.observe.host import Want, observe

    req = sizing.SizeRequest(
        rate=_parse("--rate", rate, sizing.parse_rate),
        established_lifetime=_parse("--established-lifetime", established_lifetime,
                                    sizing.parse_duration),
        timeout_established=timeout_established,
        ram=_parse("--ram", ram, sizing.parse_size), cpus=cpus, allow_lower=allow_lower)
    with open_root(root_path) as root:
        host = observe(root, want=Want(composition=False, log=False))
    result, inp = sizing.size_host(host, req)
    if fmt == "json":
        data = result.to_dict()
        data["current"] = {"nf_conntrack_max": inp.current_max,
                           "nf_conntrack_buckets": inp.current_buckets,
                           "nf_conntrack_count": inp.count}
        click.echo(json.dumps(data, indent=2))
        return 0
    click.echo("How the size is worked out:")
    for number, step in enumerate(result.steps, start=1):
        click.echo(f"  {number}. {step}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}")
    click.echo("")
    click.echo(result.suggestion())
    click.echo("")
    click.echo("Apply now: sysctl -p /etc/sysctl.d/90-hostnet.conf (buckets resize under a global "
               "lock: a brief stall on a big table)")
    return 0
