"""`livetwin say` end to end on a real clone (tedlieu): the MP4's streams, size, rate and
duration, audio length, the mouth moving while speaking and closed in the padding, the
AI-disclosure label, `--audio`, and one-line errors that leave no file behind. Saves a
frame grid to /tmp/say_check/ for a person to look at."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest

from livetwin.config import Config
from livetwin.render import say as say_mod
from livetwin.render.canvas import Canvas

from .test_compositor import apertures

pytestmark = [pytest.mark.media, pytest.mark.slow]

CHECK_DIR = Path("/tmp/say_check")
TEXT = "Hello there, and welcome back. Today we look at two new jackets."
SIZE, FPS = (960, 540), 30
U8 = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("home")
    return {**os.environ, "LIVETWIN_HOME": str(home)}


@pytest.fixture(scope="module")
def ted(ted_twin: Path) -> Path:
    return ted_twin


def run_say(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "livetwin.cli", "say", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False,
                          env=env)


@pytest.fixture(scope="module")
def spoken(ted, env, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("say_out") / "hello.mp4"
    proc = run_say(env, str(ted), TEXT, "--out", str(out), "--size", f"{SIZE[0]}x{SIZE[1]}",
                   "--fps", str(FPS))
    return out, proc


def decode(path: Path) -> tuple[list[U8], npt.NDArray[np.float32]]:
    frames: list[U8] = []
    audio: list[npt.NDArray[np.float32]] = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
    with av.open(str(path)) as c:
        rs = av.AudioResampler(format="flt", layout="mono", rate=48000)
        for f in c.decode(audio=0):
            for o in rs.resample(f):
                audio.append(o.to_ndarray().reshape(-1))
    return frames, np.concatenate(audio)


def tts_seconds(text: str) -> list[float]:
    """What the configured TTS gives for `text`, sentence by sentence."""
    from livetwin.speech.normalize import normalize
    from livetwin.speech.registry import from_config

    tts = from_config(Config().tts.model_copy(update={"cache_mb": 0}))

    async def run() -> list[float]:
        return [s.duration async for s in tts.stream(normalize(text, "en"), lang="en")]

    return asyncio.run(run())


def test_say_text_writes_h264_aac_mp4(spoken) -> None:  # type: ignore[no-untyped-def]
    out, proc = spoken
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "x real time" in proc.stdout and "frames/s" in proc.stdout
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".part")]
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.codec_context.name == "h264" and v.codec_context.pix_fmt == "yuv420p"
        assert (v.codec_context.width, v.codec_context.height) == SIZE
        assert v.average_rate == FPS
        assert a.codec_context.name == "aac" and a.codec_context.sample_rate == 48000
        v_s = float(v.duration * v.time_base)
        a_s = float(a.duration * a.time_base)
    sentences = tts_seconds(TEXT)
    pad, pause = say_mod.PAD_S, say_mod.PAUSE_S
    expected = 2 * pad + sum(math.ceil(s * FPS) / FPS for s in sentences) \
        + pause * (len(sentences) - 1)
    assert abs(v_s - expected) <= 2 / FPS, (v_s, expected)
    assert abs(a_s - v_s) <= 0.05, (a_s, v_s)


def test_say_audio_and_mouth(spoken) -> None:  # type: ignore[no-untyped-def]
    out, proc = spoken
    assert proc.returncode == 0, proc.stderr
    frames, audio = decode(out)
    n = len(frames)
    assert abs(len(audio) / 48000 - n / FPS) <= 0.05
    # the speech sits between the paddings; the paddings are silent
    pad = round(say_mod.PAD_S * FPS)
    spf = 48000 // FPS
    loud = np.flatnonzero(np.abs(audio) > 0.02)
    assert loud[0] >= (pad - 1) * spf and loud[-1] <= (n - pad + 1) * spf
    speech = sum(tts_seconds(TEXT))
    assert len(loud) and (loud[-1] - loud[0]) / 48000 <= speech + 2 * say_mod.PAUSE_S
    # mouth: measured on the face region scaled back to the source size
    canvas = Canvas((256, 256), SIZE)
    x0, y0, x1, y1 = canvas.placement.dest
    faces = [cv2.resize(f[y0:y1, x0:x1], (256, 256), interpolation=cv2.INTER_AREA)
             for f in frames]
    ap = apertures(faces)
    assert np.isfinite(ap).mean() > 0.9
    edge = np.concatenate([ap[:pad - 4], ap[n - pad + 4:]])
    talk = ap[pad:n - pad]
    assert np.nanmax(edge) < np.nanpercentile(talk, 80), (np.nanmax(edge), talk)
    assert np.nanstd(talk) > 2 * np.nanstd(edge) + 1e-3
    # the frame grid a person looks at
    CHECK_DIR.mkdir(parents=True, exist_ok=True)
    picks = np.linspace(0, n - 1, 12).round().astype(int)
    tiles = [cv2.resize(frames[i], (SIZE[0] // 2, SIZE[1] // 2), interpolation=cv2.INTER_AREA)
             for i in picks]
    for t, i in zip(tiles, picks, strict=True):
        cv2.putText(t, f"{i}", (SIZE[0] // 2 - 60, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8,
                    (255, 255, 0), 2, cv2.LINE_AA)
    rows = [np.hstack(tiles[r * 3:(r + 1) * 3]) for r in range(4)]
    cv2.imwrite(str(CHECK_DIR / "say_grid.png"), np.vstack(rows)[..., ::-1])
    cv2.imwrite(str(CHECK_DIR / "say_frame.png"), frames[n // 2][..., ::-1])


def test_label_visible_by_default(spoken) -> None:  # type: ignore[no-untyped-def]
    out, proc = spoken
    assert proc.returncode == 0, proc.stderr
    frames, _ = decode(out)
    frame = frames[len(frames) // 2]
    labelled = Canvas((256, 256), SIZE)
    bare = Canvas((256, 256), SIZE, label=None)
    assert labelled.label_box is not None
    lx0, ly0, lx1, ly1 = labelled.label_box
    src = np.full((256, 256, 3), 90, np.uint8)
    without = bare.compose(src)[ly0:ly1, lx0:lx1].astype(np.int16)
    got = frame[ly0:ly1, lx0:lx1].astype(np.int16)
    assert np.abs(got - without).mean() > 8  # the box darkens/lightens the region
    assert (got.max(axis=2) > 200).mean() > 0.05  # white text
    # and the mouth is far from the label
    fx0, fy0, _, fy1 = labelled.placement.dest
    assert lx1 <= fx0 or ly1 <= fy0 + (fy1 - fy0) // 2


def test_say_with_recorded_audio(ted, env, media, tmp_path) -> None:  # type: ignore[no-untyped-def]
    wav = tmp_path / "cut.wav"
    pcm = say_mod.read_audio_file(media("en_cosyvoice_cross_lingual_prompt_14s.wav"))[:5 * 48000]
    import wave

    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())
    out = tmp_path / "rec.mp4"
    proc = run_say(env, str(ted), "--audio", str(wav), "--out", str(out), "--size", "320x240")
    assert proc.returncode == 0, proc.stderr
    assert "person-model" in proc.stdout
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == (320, 240)
        assert abs(float(v.duration * v.time_base) - (5.0 + 2 * say_mod.PAD_S)) <= 0.08
        assert c.streams.audio[0].codec_context.name == "aac"


BAD = {
    "missing avatar": ["no_such_avatar", "hi", "--out", "{out}"],
    "empty text": ["{ted}", "   ", "--out", "{out}"],
    "text and audio": ["{ted}", "hi", "--audio", "{wav}", "--out", "{out}"],
    "unreadable audio": ["{ted}", "--audio", "{junk}", "--out", "{out}"],
    "bad size": ["{ted}", "hi", "--size", "640x", "--out", "{out}"],
    "odd size": ["{ted}", "hi", "--size", "641x360", "--out", "{out}"],
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_one_line_exit_2(case, ted, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from livetwin import cli

    monkeypatch.setenv("LIVETWIN_HOME", str(tmp_path / "home"))
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all" * 100)
    wav = tmp_path / "x.wav"
    wav.write_bytes(b"")
    out = tmp_path / "out.mp4"
    args = [a.format(ted=ted, out=out, wav=wav, junk=junk) for a in BAD[case]]
    try:
        rc = cli.main(["say", *args])
    except SystemExit as exc:
        rc = int(exc.code or 0)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.count("\n") == 0 and err.startswith("error:"), err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_say_demo_renders_the_embedded_photo_avatar(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`demo` names the embedded demo avatar: built on first use, then a normal MP4 whose
    mouth moves while speaking."""
    out = tmp_path / "demo.mp4"
    proc = run_say(env, "demo", "Hello, I am the demo host.", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    frames, audio = decode(out)
    assert frames[0].shape == (720, 1280, 3)
    assert len(audio) > 48_000
    ap = apertures(frames)
    assert np.isfinite(ap).mean() > 0.8  # the face is small in the astronaut portrait
    assert np.nanpercentile(ap, 95) - np.nanpercentile(ap, 5) > 0.03
