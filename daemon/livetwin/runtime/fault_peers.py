"""The local peers the fault suite (runtime/faults.py) injects its faults through: an
OpenAI-compatible voice and LLM that can hang, fail or answer garbage (`LocalHTTP`),
ngircd and nginx-rtmp that can be killed and started again on the same port, a raw IRC
viewer, and a small tmpfs to fill (root only). Each is a real server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import wave
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from livetwin.runtime.benchmark import _free_port

CHANNEL = "shop"
RTMP_MODULES = (
    Path("/usr/lib/nginx/modules/ngx_rtmp_module.so"),
    Path("/usr/lib64/nginx/modules/ngx_rtmp_module.so"),
)

Answer = tuple[int, str, bytes] | None  # (status, content type, body); None: hang


class LocalHTTP:
    """A threaded HTTP server on a fixed local port that can be stopped (connections are
    then refused) and started again; `answer(path, body)` makes each response."""

    def __init__(self, answer: Callable[[str, bytes], Answer]) -> None:
        self.answer = answer
        self.port = _free_port()
        self.release = threading.Event()  # ends every hanging request
        self.received: list[tuple[float, str]] = []  # (monotonic, body text) on arrival
        self.requests: list[tuple[float, str, int]] = []  # (monotonic, body, status) answered
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listen (again) on the same port."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.received.append((time.monotonic(), body.decode("utf-8", "replace")))
                reply = owner.answer(self.path, body)
                if reply is None:  # hang until released (or the client gives up)
                    owner.release.wait(60.0)
                    reply = (503, "text/plain", b"released")
                owner.requests.append((time.monotonic(), body.decode("utf-8", "replace"), reply[0]))
                with contextlib.suppress(OSError):
                    self.send_response(reply[0])
                    self.send_header("Content-Type", reply[1])
                    self.send_header("Content-Length", str(len(reply[2])))
                    self.end_headers()
                    self.wfile.write(reply[2])

            do_GET = do_POST

            def log_message(self, *args: object) -> None:  # quiet
                pass

        self.release.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop listening; hanging requests end."""
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def tone_wav(seconds: float, rate: int = 22050) -> bytes:
    """A 16-bit mono WAV of a voice-like buzz (the stand-in voice-cloning TTS)."""
    t = np.arange(int(seconds * rate)) / rate
    pcm = 0.3 * np.sin(2 * np.pi * 160 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((pcm * 32767).astype("<i2").tobytes())
    return buf.getvalue()


class VoiceServer(LocalHTTP):
    """An OpenAI-compatible speech server: mode ok | hang | garbage | truncated."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.voiced: list[str] = []  # texts answered with good audio
        self.checks = 0  # check lines said so far (each one unique)
        super().__init__(self._speak)

    def _speak(self, path: str, body: bytes) -> Answer:
        text = json.loads(body or b"{}").get("input", "")
        wav = tone_wav(min(3.0, 0.3 + 0.05 * len(text)))
        if self.mode == "hang":
            return None
        if self.mode == "garbage":
            return 200, "audio/wav", os.urandom(4096)
        if self.mode == "truncated":  # the header promises more audio than is sent
            return 200, "audio/wav", wav[: len(wav) // 3]
        self.voiced.append(text)
        return 200, "audio/wav", wav

    def served(self, text: str) -> int:
        """How many requests for (a sentence of) `text` were answered with good audio."""
        return sum(1 for t in self.voiced if t and t in text)


class SleepyLLM(LocalHTTP):
    """An OpenAI-compatible chat server that answers after `delay_s` (or hangs)."""

    def __init__(self, delay_s: float | None = None) -> None:
        self.delay_s = delay_s
        super().__init__(self._complete)

    def _complete(self, path: str, body: bytes) -> Answer:
        if self.delay_s is None:
            return None
        time.sleep(self.delay_s)
        reply = {"choices": [{"message": {"role": "assistant", "content": "[]"}}]}
        return 200, "application/json", json.dumps(reply).encode()


class IrcServer:
    """ngircd in the foreground on a free local port (restartable)."""

    def __init__(self, tmp: Path) -> None:
        self.port = _free_port()
        self.conf = tmp / "ngircd.conf"
        run_as = "ServerUID = 65534\nServerGID = 65534\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            "[Global]\nName = irc.faults.local\nInfo = livetwin faults\nListen = 127.0.0.1\n"
            f"Ports = {self.port}\nPidFile = {tmp / 'ngircd.pid'}\nMotdPhrase = test\n"
            f"{run_as}[Limits]\nPingTimeout = 120\nPongTimeout = 20\nMaxNickLength = 30\n"
            "[Options]\nPAM = no\nIdent = no\nDNS = no\n",
            encoding="utf-8",
        )
        self.binary = shutil.which("ngircd") or "/usr/sbin/ngircd"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-n", "-f", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, "ngircd")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Nginx:
    """nginx with the RTMP module in a temp prefix, in the foreground (restartable)."""

    def __init__(self, prefix: Path, module: Path) -> None:
        self.binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.prefix, self.port = prefix, _free_port()
        temp = "\n".join(
            f"  {k}_temp_path {prefix}/{k};"
            for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.conf = prefix / "nginx.conf"
        self.conf.write_text(
            f"load_module {module};\ndaemon off;\nmaster_process off;\n"
            f"pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log info;\n"
            "events { worker_connections 64; }\n"
            f"rtmp {{ server {{ listen 127.0.0.1:{self.port};\n"
            "  application live { live on; record off; } } }\n"
            f"http {{ access_log off;\n{temp}\n}}\n",
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/faults"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "-p",
                str(self.prefix),
                "-c",
                str(self.conf),
                "-e",
                str(self.prefix / "error.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, "nginx")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def rtmp_module() -> Path | None:
    """The nginx RTMP module, if nginx and it are installed."""
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").is_file()):
        return None
    return next((m for m in RTMP_MODULES if m.is_file()), None)


def wait_port(port: int, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:g} s")


class Viewer:
    """A raw IRC client in the channel that says numbered lines (a chatting viewer)."""

    def __init__(self, port: int, nick: str = "viewer1") -> None:
        self.port, self.nick = port, nick
        self.sock: socket.socket | None = None

    def connect(self, timeout: float = 10.0) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        sock.sendall(f"NICK {self.nick}\r\nUSER {self.nick} 0 * :v\r\n".encode())
        buf, deadline = b"", time.monotonic() + timeout
        while b" 001 " not in buf and time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("the IRC server closed the connection")
            buf += chunk
        sock.sendall(f"JOIN #{CHANNEL}\r\n".encode())
        self.sock = sock

    def say(self, text: str) -> None:
        assert self.sock is not None
        self.sock.sendall(f"PRIVMSG #{CHANNEL} :{text}\r\n".encode())

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None


def mount_tmpfs(path: Path, size: int) -> bool:
    """Mount a tmpfs of `size` bytes on `path` (root only); False where that fails."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return r.returncode == 0


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)
