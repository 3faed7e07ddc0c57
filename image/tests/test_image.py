"""The edge box image, booted: its root filesystem (image/build.sh) under systemd-nspawn, with systemd as
PID 1 and no network but loopback, checked from inside the container (nsenter) as an admin would.

The built root filesystem is never changed: the container runs on an overlay of it. Needs root and
systemd-container (`make test-image` installs it). Not part of `make test`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEALTH = "http://127.0.0.1:8099/api/v1/system/health"
# A drop-in of the test's own, in /run: gone with the container.
DROP_IN = "/run/systemd/system/invispose.service.d"


class Box:
    """A booted container: run commands in it, read its console."""

    def __init__(self, root: Path, process: subprocess.Popen[bytes], console: Path) -> None:
        self.root = root
        self.process = process
        self.console = console
        self.init_pid = 0

    def run(
        self, *command: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [
                "nsenter",
                "-t",
                str(self.init_pid),
                "-a",
                "env",
                "-i",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                *command,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{command} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        return result

    def sh(self, script: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run("sh", "-c", script, check=check, timeout=timeout)

    def health(self) -> tuple[int, dict[str, object]]:
        script = (
            "import json, urllib.request, urllib.error\n"
            "try:\n"
            f"    answer = urllib.request.urlopen('{HEALTH}', timeout=5)\n"
            "except urllib.error.HTTPError as error:\n"
            "    answer = error\n"
            "print(answer.status, answer.read().decode())\n"
        )
        out = self.run("python3", "-c", script).stdout
        status, _, body = out.partition(" ")
        return int(status), json.loads(body)

    def wait_for(self, what: str, check: object, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if check():  # type: ignore[operator]
                    return
            except (AssertionError, ValueError, subprocess.TimeoutExpired):
                pass
            time.sleep(1)
        raise AssertionError(
            f"{what}: not within {timeout_s} s\n{self.console.read_text(errors='replace')[-3000:]}"
        )


def _init_of(nspawn_pid: int) -> int:
    """The container's systemd: the child of systemd-nspawn."""
    children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text().split()
    return int(children[0]) if children else 0


@pytest.fixture(scope="module")
def box(request: pytest.FixtureRequest) -> Iterator[Box]:
    rootfs: Path = request.config.getoption("--rootfs").resolve()
    if os.geteuid() != 0:
        pytest.fail("the image test boots a container: run it as root")
    if not (rootfs / "opt/invispose/current/bin/invispose").exists():
        pytest.fail(f"{rootfs} is not a built image: run `make image ARCH=amd64` first")
    if shutil.which("systemd-nspawn") is None:
        pytest.fail("systemd-nspawn is missing: apt-get install systemd-container")
    work = Path(tempfile.mkdtemp(prefix="invispose-box-"))
    merged, upper, scratch = work / "root", work / "upper", work / "work"
    for path in (merged, upper, scratch):
        path.mkdir()
    subprocess.run(
        [
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={rootfs},upperdir={upper},workdir={scratch}",
            str(merged),
        ],
        check=True,
    )
    console = work / "console.log"
    with console.open("wb") as out:
        process = subprocess.Popen(
            [
                "systemd-nspawn",
                "--quiet",
                "--register=no",
                "--keep-unit",
                "--private-network",
                "--machine=invispose-test",
                "-D",
                str(merged),
                "--boot",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    the_box = Box(merged, process, console)
    try:
        deadline = time.monotonic() + 30
        while not the_box.init_pid and time.monotonic() < deadline:
            assert process.poll() is None, console.read_text(errors="replace")
            time.sleep(0.2)
            the_box.init_pid = _init_of(process.pid)
        the_box.wait_for(
            "systemd finished booting",
            lambda: (
                the_box.run("systemctl", "is-system-running", check=False).stdout.strip()
                in ("running", "degraded")
            ),
            180,
        )
        yield the_box
    finally:
        process.send_signal(signal.SIGTERM)  # systemd-nspawn shuts the container down cleanly
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        subprocess.run(["umount", str(merged)], check=False)
        shutil.rmtree(work, ignore_errors=True)


def test_the_appliance_serves_health_as_its_own_user(box: Box) -> None:
    box.wait_for("the appliance is healthy", lambda: box.health()[0] == 200, 120)
    status, body = box.health()
    assert status == 200 and body["status"] == "healthy"
    user = box.run("systemctl", "show", "invispose", "-p", "User", "--value").stdout.strip()
    assert user == "invispose"
    assert (
        box.run("systemctl", "show", "invispose", "-p", "StatusText", "--value").stdout.strip() == "running"
    )


def test_the_first_boot_made_the_secrets_and_printed_the_setup_url(box: Box) -> None:
    assert "InvisPose is set up. Open http://invispose.local:8099/" in box.console.read_text(errors="replace")
    modes = box.sh(
        "stat -c '%n %a %U:%G' /etc/invispose/secrets.yaml /etc/mosquitto/invispose.passwd "
        "/etc/mosquitto/certs/invispose.key /etc/mosquitto/certs/ca.key"
    ).stdout.split("\n")
    assert modes[:4] == [
        "/etc/invispose/secrets.yaml 640 root:invispose",
        "/etc/mosquitto/invispose.passwd 640 root:mosquitto",
        "/etc/mosquitto/certs/invispose.key 640 root:mosquitto",
        "/etc/mosquitto/certs/ca.key 600 root:root",
    ]
    assert "\\4:8099" in box.sh("cat /etc/issue.d/invispose.issue").stdout


def test_the_unit_is_hardened(box: Box) -> None:
    report = box.run("systemd-analyze", "security", "invispose.service", "--no-pager").stdout
    exposure = float(re.search(r"Overall exposure level for invispose.service: ([0-9.]+)", report).group(1))  # type: ignore[union-attr]
    print(f"systemd-analyze security invispose.service: exposure {exposure}")
    assert exposure <= 2.0, report
    shown = box.run(
        "systemctl",
        "show",
        "invispose",
        "-p",
        "ProtectSystem",
        "-p",
        "NoNewPrivileges",
        "-p",
        "Restart",
        "-p",
        "WatchdogUSec",
        "-p",
        "Type",
    ).stdout
    for expected in (
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "Restart=on-failure",
        "WatchdogUSec=30s",
        "Type=notify",
    ):
        assert expected in shown


def test_the_broker_needs_the_password_on_every_listener_and_keeps_retained_messages(box: Box) -> None:
    password = box.sh(
        "sed -n 's/^mqtt_password: \"\\(.*\\)\"$/\\1/p' /etc/invispose/secrets.yaml"
    ).stdout.strip()
    assert len(password) == 48
    refused = box.sh("mosquitto_pub -h localhost -p 1883 -t t -m x", check=False)
    assert refused.returncode != 0 and "not authorised" in refused.stderr + refused.stdout
    auth = f"-u invispose -P {password}"
    box.sh(f"mosquitto_pub -h localhost -p 1883 {auth} -t invispose/test -m kept -r -q 1")
    box.sh(f"mosquitto_pub -h localhost -p 8883 --cafile /etc/invispose/mqtt-ca.crt {auth} -t t -m tls -q 1")
    websockets = (
        "import asyncio, aiomqtt\n"
        "async def main():\n"
        "    async with aiomqtt.Client(\n"
        f"        'localhost', 9001, transport='websockets', username='invispose', password='{password}'\n"
        "    ):\n"
        "        print('connected')\n"
        "asyncio.run(main())\n"
    )
    assert box.run("/opt/invispose/current/bin/python", "-c", websockets).stdout.strip() == "connected"
    box.run("systemctl", "restart", "mosquitto")
    box.wait_for(
        "the broker is back",
        lambda: box.run("systemctl", "is-active", "mosquitto", check=False).stdout.strip() == "active",
        30,
    )
    kept = box.sh(f"mosquitto_sub -h localhost -p 1883 {auth} -t invispose/test -C 1 -W 10")
    assert kept.stdout.strip() == "kept"  # persistence: the retained message survived the restart


def test_journald_is_bounded_and_time_sync_is_on(box: Box) -> None:
    journal = box.run("journalctl", "-b", "-u", "systemd-journald", "--no-pager").stdout
    assert re.search(r"System Journal \(/var/log/journal/.*max 64\.0M", journal), journal
    assert box.run("systemctl", "is-enabled", "systemd-timesyncd").stdout.strip() == "enabled"


def test_the_watchdog_restarts_a_stalled_appliance(box: Box) -> None:
    box.sh(
        f"mkdir -p {DROP_IN} && printf '[Service]\\nWatchdogSec=3\\nRestartSec=1\\n' > {DROP_IN}/test.conf "
        "&& systemctl daemon-reload && systemctl restart invispose"
    )
    try:
        box.wait_for("the appliance is healthy", lambda: box.health()[0] == 200, 120)
        time.sleep(8)  # several watchdog periods: fed while the pipeline runs
        assert box.run("systemctl", "show", "invispose", "-p", "NRestarts", "--value").stdout.strip() == "0"
        pid = box.run("systemctl", "show", "invispose", "-p", "MainPID", "--value").stdout.strip()
        box.run("kill", "-STOP", pid)  # the pipeline stalls
        box.wait_for(
            "systemd restarted the stalled appliance",
            lambda: (
                box.run("systemctl", "show", "invispose", "-p", "NRestarts", "--value").stdout.strip() == "1"
            ),
            60,
        )
        assert "watchdog timeout" in box.run("journalctl", "-u", "invispose", "--no-pager").stdout.lower()
        box.wait_for("the appliance is healthy again", lambda: box.health()[0] == 200, 120)
    finally:
        box.sh(f"rm -rf {DROP_IN} && systemctl daemon-reload && systemctl restart invispose")


def _wheel(tmp_path: Path, version: str, breakage: str = "") -> Path:
    """A wheel of this checkout with another version (and, to test rollback, something broken)."""
    source = tmp_path / f"src-{version}"
    shutil.copytree(
        REPO, source, ignore=shutil.ignore_patterns(".venv", "build", "data", "node_modules", ".git", "*.pyc")
    )
    init = source / "appliance" / "__init__.py"
    init.write_text(re.sub(r'__version__ = "[^"]+"', f'__version__ = "{version}"', init.read_text()))
    if breakage:
        with (source / "appliance" / "app.py").open("a") as app:
            app.write(breakage)
    out = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(source)],
        check=True,
    )
    return out / f"invispose-{version}-py3-none-any.whl"


def test_an_update_installs_a_newer_wheel_and_a_failing_one_is_rolled_back(box: Box, tmp_path: Path) -> None:
    box.wait_for("the appliance is healthy", lambda: box.health()[0] == 200, 120)
    for wheel in (
        _wheel(tmp_path, "0.1.1"),
        _wheel(
            tmp_path,
            "0.1.2",
            '\n\ndef run(config: AppConfig) -> None:\n    raise RuntimeError("broken on purpose")\n',
        ),
    ):
        shutil.copy(wheel, box.root / "root" / wheel.name)
    good = box.run("invispose-update", "--offline", "/root/invispose-0.1.1-py3-none-any.whl", timeout=600)
    assert "now running 0.1.1" in good.stdout
    assert box.run("readlink", "/opt/invispose/current").stdout.strip() == "/opt/invispose/releases/0.1.1"
    assert box.health()[0] == 200
    bad = box.run(
        "invispose-update",
        "--offline",
        "--timeout",
        "30",
        "/root/invispose-0.1.2-py3-none-any.whl",
        check=False,
        timeout=600,
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "rolling back to 0.1.1" in bad.stderr and "rolled back; running 0.1.1 again" in bad.stderr
    assert box.run("readlink", "/opt/invispose/current").stdout.strip() == "/opt/invispose/releases/0.1.1"
    assert box.run("ls", "/opt/invispose/releases").stdout.split() == ["0.1.0", "0.1.1"]
    assert box.health()[0] == 200
