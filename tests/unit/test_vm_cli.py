"""``hostnet vm`` at the command line without touching the host: qemu-args, config errors
(exit 2, file:line, no traceback), help, lazy imports, the contrib unit and udev rule."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hostnet.cli.main import cli

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "contrib/hostnet-vm-watch.service"
UDEV = REPO / "contrib/udev/60-hostnet-tun.rules"
CONFIG = '''
[[vm]]
name = "web1"
tap = "tapweb1"
owner = "root"
mode = "routed"
uplink = "eth0"
addresses = ["203.0.113.11"]
multi_queue = true
queues = 4
'''


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hostnet", *args], capture_output=True,
                          text=True, timeout=60)


def test_qemu_args(tmp_path: Path) -> None:
    cfg = tmp_path / "h.toml"
    cfg.write_text(CONFIG)
    result = CliRunner().invoke(cli, ["vm", "qemu-args", "web1", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        "-netdev tap,id=net-web1,ifname=tapweb1,script=no,downscript=no,vhost=on,queues=4 "
        "-device virtio-net-pci,netdev=net-web1,mac=52:54:00:65:9a:7f,mq=on,vectors=10")
    js = CliRunner().invoke(cli, ["vm", "qemu-args", "web1", "--config", str(cfg),
                                  "--format", "json"])
    assert json.loads(js.output)["args"][0] == "-netdev"


def test_bad_config_exits_2_with_location(tmp_path: Path) -> None:
    cfg = tmp_path / "h.toml"
    cfg.write_text(CONFIG.replace('tap = "tapweb1"', 'tap = "tap/web1"'))
    proc = run("vm", "qemu-args", "web1", "--config", str(cfg))
    assert proc.returncode == 2
    assert f"hostnet: error: {cfg}:4: vm[0].tap: 'tap/web1' contains '/'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_vm_name(tmp_path: Path) -> None:
    cfg = tmp_path / "h.toml"
    cfg.write_text(CONFIG)
    proc = run("vm", "qemu-args", "web9", "--config", str(cfg))
    assert proc.returncode == 2 and "no [[vm]] named 'web9'" in proc.stderr
    assert "configured VMs: web1" in proc.stderr


@pytest.mark.parametrize("sub", ["up", "down", "list", "watch", "qemu-args"])
def test_subcommand_help(sub: str) -> None:
    result = CliRunner().invoke(cli, ["vm", sub, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output
    assert "--config" in result.output


def test_help_and_lint_do_not_import_pydantic_or_pyroute2() -> None:
    code = ("import sys; from hostnet.cli.main import main\n"
            "try:\n    main(['vm', '--help'])\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in ('pydantic', 'pyroute2') if m in sys.modules]\n"
            "print('LOADED', bad)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert "LOADED []" in proc.stdout, proc.stdout + proc.stderr


def test_watch_unit_is_hardened() -> None:
    lines = [x for x in UNIT.read_text().splitlines() if x and not x.startswith("#")]
    fields = {}
    for x in lines:
        if "=" in x:
            key, _, value = x.partition("=")
            fields.setdefault(key, value)
    assert fields["CapabilityBoundingSet"] == "CAP_NET_ADMIN"
    assert fields["NoNewPrivileges"] == "yes" and fields["ProtectSystem"] == "strict"
    assert fields["ProtectKernelTunables"] == "no"  # it writes /proc/sys/net
    assert fields["DevicePolicy"] == "closed" and fields["DeviceAllow"] == "/dev/net/tun rw"
    assert fields["RestrictAddressFamilies"] == "AF_NETLINK AF_UNIX"
    assert fields["ReadWritePaths"] == "/var/lib/hostnet" and fields["Restart"] == "always"
    assert fields["KillSignal"] == "SIGTERM"
    assert fields["ExecStart"].startswith("/usr/local/bin/hostnet vm watch --config ")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_watch_unit_verifies(tmp_path: Path) -> None:
    hostnet = Path(sys.executable).with_name("hostnet")
    unit = tmp_path / "hostnet-vm-watch.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/hostnet", str(hostnet)))
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_udev_rule_gives_group_not_world() -> None:
    (rule,) = [x for x in UDEV.read_text().splitlines() if x and not x.startswith("#")]
    assert 'KERNEL=="tun"' in rule and 'GROUP="kvm"' in rule and 'MODE="0660"' in rule
