"""``hostnet exporter``: serve Prometheus metrics (see hostnet.service.exporter for the metrics)."""

from __future__ import annotations

import click

from hostnet.errors import UsageError


@click.command("exporter")
@click.option("--listen", default="127.0.0.1:9469", show_default=True, metavar="HOST:PORT",
              help="Address to serve /metrics on ([::1]:9469 for IPv6).")
@click.option("--allow-remote", is_flag=True,
              help="Allow a --listen address other than loopback (the metrics name your "
              "namespaces; put a firewall or a proxy with TLS in front).")
@click.option("--netns", "netns", multiple=True, metavar="NAME",
              help="Also read this named network namespace (repeatable; needs root).")
@click.option("--all-netns", is_flag=True,
              help="Also read every namespace in /run/netns, listed again at each scrape.")
@click.option("--node-metrics/--no-node-metrics", default=True, show_default=True,
              help="Also expose node_exporter's node_nf_conntrack_* names (leave out when "
              "node_exporter runs on the same host).")
@click.option("--findings-interval", type=click.FloatRange(min=0), default=60.0,
              show_default=True, metavar="SECONDS",
              help="Refresh hostnet_findings and the kernel log count this often (0: off).")
def exporter(listen: str, allow_remote: bool, netns: tuple[str, ...], all_netns: bool,
             node_metrics: bool, findings_interval: float) -> int:
    """Serve conntrack metrics for Prometheus, read from the kernel at each scrape.

    Never walks the conntrack table: a scrape costs the same at any table size. Listens on
    loopback unless --allow-remote is given. Reading other namespaces needs root
    (CAP_SYS_ADMIN for setns).
    """
    import signal
    import threading

    from hostnet.service.exporter import ExporterConfig, Targets, parse_listen, serve

    if netns and all_netns:
        raise UsageError("--netns and --all-netns do not combine",
                         hint="--all-netns already includes every named namespace")
    where = parse_listen(listen)
    if not where.loopback and not allow_remote:
        raise UsageError(
            f"--listen {where} is not a loopback address",
            hint="add --allow-remote to serve other hosts (and firewall the port), or scrape "
            "through a local proxy",
        )
    if netns:
        from hostnet.observe.roots import check_namespaces

        check_namespaces(list(netns))  # fail now on a typo rather than serve an empty one
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    config = ExporterConfig(where, Targets(tuple(netns), all_netns), node_metrics,
                            findings_interval)

    def ready(at: object) -> None:
        click.echo(f"hostnet exporter: serving http://{at}/metrics", err=True)

    serve(config, stop, ready)
    return 0
