"""RTMP against a real nginx-rtmp: push, play back, kill the server mid-stream, restart
it; the RTMP sink reconnects while the UDP sink and the clock go on undisturbed.

CI installs nginx with the RTMP module (make sysdeps: nginx-light, libnginx-mod-rtmp);
there a missing nginx is a failure, elsewhere the test is skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from livetwin.output.live import LiveOutput
from livetwin.output.sinks import RtmpSink, UdpTsSink
from tests.fakes_output import (
    MarkerSource,
    decoded_from,
    free_tcp_port,
    free_udp_port,
    marker_offsets,
    spawn_reader,
)

FPS = 25
RTMP_MODULES = [Path("/usr/lib/nginx/modules/ngx_rtmp_module.so"),
                Path("/usr/lib64/nginx/modules/ngx_rtmp_module.so")]


def _skip_outside_ci(reason: str) -> None:
    """CI installs nginx + the RTMP module (make sysdeps), so there it is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must have it (make sysdeps installs nginx-light and "
                    "libnginx-mod-rtmp)")
    pytest.skip(reason)


class Nginx:
    """One nginx with the RTMP module, in a temp prefix, on free ports, in the foreground."""

    def __init__(self, prefix: Path) -> None:
        self.binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(self.binary).is_file():
            _skip_outside_ci("nginx is not installed")
        module = next((m for m in RTMP_MODULES if m.is_file()), None)
        if module is None:
            _skip_outside_ci("the nginx RTMP module is not installed")
        self.prefix = prefix
        self.rtmp_port, self.http_port = free_tcp_port(), free_tcp_port()
        temp = "\n".join(f"  {k}_temp_path {prefix}/{k};"
                         for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        self.conf = prefix / "nginx.conf"
        self.conf.write_text(f"""
load_module {module};
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
rtmp {{ server {{ listen 127.0.0.1:{self.rtmp_port};
  application live {{ live on; record off; }} }} }}
http {{ access_log off;
{temp}
  server {{ listen 127.0.0.1:{self.http_port}; location /stat {{ rtmp_stat all; }} }} }}
""")
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, key: str = "key") -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{key}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-p", str(self.prefix), "-c", str(self.conf),
             "-e", str(self.prefix / "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.prefix / "error.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"nginx exited with {self.proc.returncode}: {log}")
            try:
                socket.create_connection(("127.0.0.1", self.rtmp_port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail("nginx did not listen within 10 s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stat(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/stat",
                                    timeout=5) as r:
            return str(r.read().decode())


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Nginx]:
    server = Nginx(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _wait(pred, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _play(url: str, seconds: float) -> None:
    d = decoded_from(spawn_reader(url, seconds, "flv").communicate(timeout=60)[0])
    assert d.error is None, d.error
    assert d.codecs == {"video": "h264", "audio": "aac"}
    assert len(d.video_times) >= (seconds - 1.5) * FPS, len(d.video_times)
    offs = marker_offsets(d)
    assert offs and max(abs(o) for o in offs) < 1 / FPS, offs


@pytest.mark.slow
def test_rtmp_survives_a_server_restart_without_disturbing_udp(nginx: Nginx) -> None:
    udp_port = free_udp_port()
    udp_reader = spawn_reader(f"udp://127.0.0.1:{udp_port}", 60.0, "mpegts")  # to the end
    time.sleep(1.0)
    src = MarkerSource(size=(320, 240), fps=FPS, marker_every=FPS)
    rtmp = RtmpSink(nginx.url())
    out = LiveOutput(src, [UdpTsSink(f"udp://127.0.0.1:{udp_port}?pkt_size=1316"), rtmp])
    out.start()
    try:
        assert _wait(lambda: rtmp.stats().state == "connected", 10), rtmp.stats()
        time.sleep(1.0)
        _play(nginx.url(), 4.0)
        assert "<name>key</name>" in nginx.stat() and "<publishing/>" in nginx.stat()

        nginx.kill()  # the server dies mid-stream
        assert _wait(lambda: rtmp.stats().failures >= 1, 10), rtmp.stats()
        time.sleep(2.0)  # retrying against a closed port
        assert rtmp.stats().state == "retrying"

        nginx.start()  # back on the same port: the sink reconnects by itself
        assert _wait(lambda: rtmp.stats().connects == 2, 20), rtmp.stats()
        time.sleep(1.0)
        _play(nginx.url(), 4.0)
    finally:
        out.stop()
    st = out.stats()
    udp = decoded_from(udp_reader.communicate(timeout=60)[0])
    print("output:", st.max_gap_ms, st.long_gaps, st.sinks)
    # the UDP sink never noticed: every frame, evenly spaced, over the whole restart
    assert udp.error is None and udp.codecs == {"video": "h264", "audio": "aac"}
    steps = {round(b - a, 4) for a, b in zip(udp.video_times, udp.video_times[1:],
                                             strict=False)}
    assert steps == {1 / FPS}
    assert st.frames >= 10 * FPS and len(udp.video_times) >= st.frames - FPS
    assert st.sinks[0].failures == 0 and st.sinks[0].dropped == 0
    # and neither did the clock. Target: hand-off gaps within 1.5 periods. Seen here on
    # two cores shared with other test runs: usually 44-79 ms (1.1-2 periods), with rare
    # scheduler hiccups of ~250 ms. Asserted: 99 % of the hand-offs within 1.5 periods and
    # none over 10 periods (0.4 s, under a receiver's buffer; OBS buffers ~0.5 s). The
    # stall this guards against, FFmpeg connecting RTMP with the GIL held, measured
    # 180-190 ms on every (re)connect before the relay process.
    assert st.long_gap_count <= st.frames / 100, st.long_gaps
    assert st.max_gap_ms <= 10 * 1000 / FPS, st.long_gaps
    assert abs(st.av_offset_s) < 1 / FPS
