"""``hostnet conntrack size``: how big the conntrack table should be, step by step."""

from __future__ import annotations

import json

import click

from hostnet.cli.common import format_option, root_option


def _parse(kind: str, text: str | None, parse: object) -> object:
    from hostnet.errors import UsageError

    if text is None:
        return None
    try:
        return parse(text)  # type: ignore[operator]
    except ValueError as exc:
        raise UsageError(f"{kind}: {exc}", hint="see 'hostnet conntrack size --help'") from None


@click.command("size")
@click.option("--rate", metavar="N/s", help="New connections per second (e.g. 2000/s, 90000/m).")
@click.option("--established-lifetime", metavar="DURATION",
              help="How long a typical connection stays open (e.g. 30s, 5m, 2h).")
@click.option("--timeout-established", metavar="S", type=int, default=None,
              help="TCP established timeout to assume (default: this host's value).")
@click.option("--ram", metavar="SIZE", help="RAM to size for (e.g. 8G; default: this host's).")
@click.option("--cpus", type=int, default=None, help="CPU count (default: this host's).")
@click.option("--allow-lower", is_flag=True, help="Allow recommending less than the current max.")
@root_option
@format_option("text", "json")
def size(
    rate: str | None, established_lifetime: str | None, timeout_established: int | None,
    ram: str | None, cpus: int | None, allow_lower: bool, root_path: str | None, fmt: str,
) -> int:
    """Recommend nf_conntrack_max and buckets from RAM, CPUs, the observed count and an
    optional traffic profile (Little's law: entries = new flows/s x seconds each flow stays),
    with the memory it costs and the lines to persist it."""
    from hostnet.cli.common import open_root
    from hostnet.conntrack import sizing
    from hostnet.errors import UsageError

    with open_root(root_path) as root:
        mem = _parse("--ram", ram, sizing.parse_size) or root.mem_total
        if not mem:
            raise UsageError("cannot tell how much RAM to size for",
                             hint="pass --ram SIZE (e.g. --ram 8G)")
        flows = _parse("--rate", rate, sizing.parse_rate)
        life = _parse("--established-lifetime", established_lifetime, sizing.parse_duration)
        current_timeout = root.sysctl_int("net.netfilter.nf_conntrack_tcp_timeout_established")
        timeout = timeout_established or current_timeout or sizing.DEFAULT_TCP_ESTABLISHED
        time_wait = (root.sysctl_int("net.netfilter.nf_conntrack_tcp_timeout_time_wait")
                     or sizing.DEFAULT_TIME_WAIT)
        if life is not None and flows is None:
            raise UsageError("--established-lifetime needs --rate",
                             hint="give the new connections per second, e.g. --rate 500/s")
        profile = None
        if flows is not None:
            assert isinstance(flows, float)
            profile = sizing.tcp_profile(
                flows, established_lifetime=life if isinstance(life, float) else None,
                timeout_established=timeout, time_wait=time_wait,
            )
        try:
            slab = root.read_text("proc/slabinfo") if root.exists("proc/slabinfo") else None
        except PermissionError:
            slab = None
        inp = sizing.SizingInput(
            mem_bytes=int(mem),  # type: ignore[call-overload]
            cpus=cpus or root.cpu_count,
            kernel=root.kernel_version if root.osrelease else (6, 0, 0),
            current_max=root.sysctl_int("net.netfilter.nf_conntrack_max"),
            current_buckets=root.sysctl_int("net.netfilter.nf_conntrack_buckets"),
            count=root.sysctl_int("net.netfilter.nf_conntrack_count") or 0,
            profile=profile,
            entry_bytes=sizing.slab_entry_bytes(slab) if slab else None,
            allow_lower=allow_lower,
        )
        result = sizing.recommend(inp)
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
