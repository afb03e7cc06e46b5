"""`make demo` from a fresh copy of the repository (issue 10): the files git knows are
copied into an empty directory and `make demo MINUTES=...` runs there with nothing set up
(it creates its own .venv). It must end by itself, leave a `demo.mp4` with the twin
talking and sound, and a transcript with script lines, chat answers and greetings.

Reported (printed with -s): the time from `make demo` to the first spoken line, and the
disk the environment takes. Uses the machine's pip cache, as a newcomer's second try
would; a cold cache adds the download time of torch and friends."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MINUTES = 1.0
pytestmark = pytest.mark.slow


def _copy_checkout(dst: Path) -> None:
    """The files a fresh clone would have (tracked, plus new files git does not ignore)."""
    names = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)


def _du_mb(path: Path) -> float:
    return (
        sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6
    )


def lip_motion(video: Path, every: int = 5) -> tuple[float, float]:
    """Mean change of the mouth opening between sampled frames (MediaPipe face mesh, inner
    lips over face height) while the recording sounds and while it is silent: a talking
    twin moves its lips with the sound and holds them still between lines."""
    import mediapipe as mp

    opening: list[float] = []
    times: list[float] = []
    with mp.solutions.face_mesh.FaceMesh(max_num_faces=1) as mesh, av.open(str(video)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i % every:
                continue
            found = mesh.process(frame.to_ndarray(format="rgb24")).multi_face_landmarks
            if found:
                lm = found[0].landmark
                opening.append(abs(lm[13].y - lm[14].y) / abs(lm[10].y - lm[152].y))
                times.append(float(frame.time or 0.0))
        c.seek(0)
        rate = c.streams.audio[0].sample_rate
        audio = np.concatenate([f.to_ndarray().mean(axis=0) for f in c.decode(audio=0)])
    assert len(opening) > 20, "no face found in the recording"
    loud = np.array(
        [
            np.sqrt(np.mean(audio[int(max(0.0, t - 0.1) * rate) : int((t + 0.1) * rate)] ** 2))
            > 0.02
            for t in times
        ]
    )
    change = np.abs(np.diff(np.array(opening)))
    talking, quiet = loud[1:] & loud[:-1], ~loud[1:] & ~loud[:-1]
    assert talking.sum() > 10, "the twin hardly spoke"
    return float(change[talking].mean()), float(change[quiet].mean()) if quiet.any() else 0.0


def test_make_demo_from_a_fresh_copy(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.fail("make is not installed; install it (Debian: apt-get install make)")
    repo = tmp_path / "livetwin"
    repo.mkdir()
    _copy_checkout(repo)
    assert not (repo / ".venv").exists()
    home = tmp_path / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH", "LIVETWIN_"))
    }
    env["LIVETWIN_HOME"] = str(home)
    env["PATH"] = ":".join(
        p for p in env.get("PATH", "").split(":") if not p.startswith(str(ROOT / ".venv"))
    )
    t0 = time.monotonic()
    proc = subprocess.Popen(
        ["make", "demo", f"MINUTES={MINUTES}"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out: list[str] = []
    url: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            m = re.search(r"dashboard (http://\S+)/\?token=(\S+)", line)
            if m:
                url[:] = [m.group(1), m.group(2)]

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    first_line_s = None
    deadline = time.monotonic() + 20 * 60
    while proc.poll() is None:
        assert time.monotonic() < deadline, "make demo did not end:\n" + "".join(out[-40:])
        if url and first_line_s is None:
            try:
                lines = httpx.get(
                    f"{url[0]}/api/transcript",
                    timeout=2,
                    headers={"Authorization": f"Bearer {url[1]}"},
                ).json()
            except httpx.HTTPError:
                lines = []
            if lines:
                first_line_s = time.monotonic() - t0
        time.sleep(0.5)
    reader.join(5)
    assert proc.stdout is not None
    proc.stdout.close()
    total_s = time.monotonic() - t0
    log = "".join(out)
    assert proc.returncode == 0, log[-4000:]
    assert first_line_s is not None, "no line was spoken while the demo ran:\n" + log[-3000:]
    assert url and url[1], "make demo did not print the dashboard address with its token"

    # the recording: the twin talking, with sound
    video = repo / "demo.mp4"
    assert video.is_file(), log[-2000:]
    with av.open(str(video)) as c:
        duration = float(c.duration or 0) / 1e6
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    assert duration > MINUTES * 60 * 0.8
    assert np.abs(audio).max() > 0.05, "the recording is silent"
    talking, quiet = lip_motion(video)  # about 0.009 vs 0.002 when this was written
    assert talking > 0.003 and talking > 2 * quiet, (talking, quiet)

    # the transcript (kept in the demo's store): scripts, answers and greetings
    with sqlite3.connect(home / "demo" / "demo.db") as db:
        sources = {r[0] for r in db.execute("select source from transcript")}
    assert {"script", "answer", "greeting"} <= sources, sources

    venv_mb = _du_mb(repo / ".venv")
    print(
        f"\nmake demo: first spoken line after {first_line_s:.0f} s, whole run "
        f"{total_s:.0f} s ({MINUTES:g} min show); .venv takes {venv_mb:.0f} MB; "
        f"demo.mp4 {duration:.0f} s"
    )
