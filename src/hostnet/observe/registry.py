"""Every read hostnet may make of a host, declared once.

``observe`` reads through this registry and ``hostnet collect`` stores exactly what it names,
so ``--root SNAPSHOT`` sees what the live host showed. ``tests/unit/test_registry.py`` fails
when a reader asks for a file or command that is not declared here.
"""

from __future__ import annotations

from functools import cache

from hostnet.model.reads import Command, ReadSet

NFT_RULESET = Command("nft-ruleset.json", ("nft", "-j", "list", "ruleset"))
NFT_RULESET_TEXT = Command("nft-ruleset.txt", ("nft", "list", "ruleset"))
IPTABLES = Command("iptables-save.txt", ("iptables-save",))
IP6TABLES = Command("ip6tables-save.txt", ("ip6tables-save",))
#: iptables-legacy's own tables (x_tables, not nftables): invisible to nft and to
#: iptables-nft-save, yet their chains still run on the same hooks.
IPTABLES_LEGACY = Command("iptables-legacy-save.txt", ("iptables-legacy-save",))
IP6TABLES_LEGACY = Command("ip6tables-legacy-save.txt", ("ip6tables-legacy-save",))
IP_ADDR = Command("ip-addr.json", ("ip", "-j", "-d", "addr", "show"), legacy=("ip-link.json",))
IP_ROUTE = Command("ip-route.json", ("ip", "-j", "route", "show", "table", "all"))
IP_NEIGH_PROXY = Command("ip-neigh-proxy.json", ("ip", "-j", "neigh", "show", "proxy"))
CONNTRACK_S = Command("conntrack-S", ("conntrack", "-S"))
DMESG = Command("dmesg", ("dmesg", "--time-format", "iso"))
JOURNAL = Command("journalctl-k", ("journalctl", "-k", "-o", "short-iso", "--no-pager", "-q",
                                   "--grep", "table full|suppressed"))
#: The account database as NSS gives it (what the live reader resolves names with: tap owners
#: and [[vm]] owner/group names, hostnet.observe.vm).
GETENT_PASSWD = Command("getent-passwd", ("getent", "passwd"))
GETENT_GROUP = Command("getent-group", ("getent", "group"))

#: Commands run per namespace (network state).
NETNS_COMMANDS: tuple[Command, ...] = (NFT_RULESET, NFT_RULESET_TEXT, IPTABLES, IP6TABLES,
                                       IPTABLES_LEGACY, IP6TABLES_LEGACY, IP_ADDR, IP_ROUTE,
                                       IP_NEIGH_PROXY, CONNTRACK_S)
#: Commands about the whole host (kernel log, accounts).
HOST_COMMANDS: tuple[Command, ...] = (DMESG, JOURNAL, GETENT_PASSWD, GETENT_GROUP)

#: Files read per namespace (paths relative to the root; /proc/net follows the namespace).
NETNS_FILES: tuple[str, ...] = (
    "proc/net/stat/nf_conntrack",
    "proc/net/tcp",
    "proc/net/tcp6",
    "proc/net/udp",
    "proc/net/udp6",
    "proc/net/route",
    "proc/net/ipv6_route",
    "proc/net/dev",
    "proc/net/snmp",
)
#: Files about the machine.
HOST_FILES: tuple[str, ...] = (
    "proc/meminfo",
    "proc/stat",
    "proc/slabinfo",
    "proc/modules",
    "proc/cmdline",
    "sys/devices/system/cpu/online",
    "sys/devices/system/cpu/possible",
    "etc/sysctl.conf",
    "etc/modules",
    "etc/os-release",
    "proc/config.gz",
    "etc/hostnet/hostnet.toml",  # its [[vm]] entries (hostnet.observe.vm)
    "etc/passwd",  # accounts of a host tree without getent output (hostnet.observe.vm)
    "etc/group",
)
#: Paths whose stat(2) is kept (a snapshot cannot hold device nodes): /dev/net/tun (VM101).
STATS: tuple[str, ...] = ("dev/net/tun",)
#: Files about the running kernel's build, read by lint (built-in or loadable modules).
RELEASE_FILES: tuple[str, ...] = (
    "boot/config-{release}",
    "lib/modules/{release}/modules.builtin",
    "lib/modules/{release}/modules.dep",
)
#: Module states: /sys/module/X/initstate exists only for loadable modules (lint, SC122).
GLOBS: tuple[str, ...] = ("sys/module/*/initstate",)
#: Directories stored whole (configuration read by lint and plan, module parameters).
TREES: tuple[str, ...] = (
    "etc/sysctl.d",
    "run/sysctl.d",
    "usr/local/lib/sysctl.d",
    "usr/lib/sysctl.d",
    "lib/sysctl.d",
    "etc/modprobe.d",
    "run/modprobe.d",
    "usr/local/lib/modprobe.d",
    "usr/lib/modprobe.d",
    "lib/modprobe.d",
    "etc/modules-load.d",
    "run/modules-load.d",
    "usr/local/lib/modules-load.d",
    "usr/lib/modules-load.d",
    "lib/modules-load.d",
    "sys/module/nf_conntrack/parameters",
)
#: The conntrack table itself (big; optional in collect).
CONNTRACK_TABLE = "proc/net/nf_conntrack"
#: Kernel log files under /var/log (with rotations); the doctor scans them.
LOG_GLOBS: tuple[str, ...] = ("kern.log*", "syslog*", "messages*")

#: Scalar sysctl keys the doctor reads in every namespace (role expectations add theirs).
SCALAR_KEYS: tuple[str, ...] = (
    "kernel.pid_max",
    "kernel.dmesg_restrict",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.ipv4.ip_forward",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv6.conf.all.forwarding",
    # conntrack: current names, then the names older kernels used
    "net.netfilter.nf_conntrack_count",
    "net.ipv4.netfilter.ip_conntrack_count",
    "net.netfilter.nf_conntrack_max",
    "net.nf_conntrack_max",
    "net.ipv4.netfilter.ip_conntrack_max",
    "net.netfilter.nf_conntrack_buckets",
    "net.ipv4.netfilter.ip_conntrack_buckets",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_syn_sent",
    "net.netfilter.nf_conntrack_tcp_timeout_syn_recv",
    "net.netfilter.nf_conntrack_tcp_timeout_fin_wait",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
    "net.netfilter.nf_conntrack_tcp_timeout_last_ack",
    "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
    "net.netfilter.nf_conntrack_tcp_timeout_close",
    "net.netfilter.nf_conntrack_tcp_timeout_max_retrans",
    "net.netfilter.nf_conntrack_tcp_timeout_unacknowledged",
    "net.netfilter.nf_conntrack_udp_timeout",
    "net.netfilter.nf_conntrack_udp_timeout_stream",
    "net.netfilter.nf_conntrack_icmp_timeout",
    "net.netfilter.nf_conntrack_icmpv6_timeout",
    "net.netfilter.nf_conntrack_generic_timeout",
    "net.netfilter.nf_conntrack_expect_max",
)
#: Per-interface keys read for all, default and every interface under conf/.
CONF_LEAVES: dict[str, tuple[str, ...]] = {
    "ipv4": ("forwarding", "accept_redirects", "secure_redirects", "shared_media",
             "send_redirects", "accept_source_route", "rp_filter", "log_martians",
             "proxy_arp"),
    "ipv6": ("forwarding", "accept_ra", "autoconf", "disable_ipv6", "accept_redirects"),
}


@cache
def scalar_keys() -> tuple[str, ...]:
    """SCALAR_KEYS plus every key a role profile has an expectation on (sorted, unique)."""
    from hostnet.knowledge.roles import ROLES, load

    keys = set(SCALAR_KEYS)
    for name in ROLES:
        keys.update(load(name).expectations)
    return tuple(sorted(keys))


READS = ReadSet(netns_files=NETNS_FILES, host_files=HOST_FILES, trees=TREES,
                netns_commands=NETNS_COMMANDS, host_commands=HOST_COMMANDS,
                log_globs=LOG_GLOBS, table=CONNTRACK_TABLE, release_files=RELEASE_FILES,
                globs=GLOBS, stats=STATS)
