"""The HTTP TTS backends against real local servers speaking their protocols.

One threaded `http.server` on 127.0.0.1 plays both an OpenAI-compatible speech server and
GPT-SoVITS api_v2; a knob chooses how it answers (audio, hang, 500, 400, garbage, empty,
truncated WAV, closed connection, slow). Every test runs under a hard time limit.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
import wave
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from livetwin.errors import BackendError, BackendTimeout, InputError
from livetwin.events import SpeechAudio
from livetwin.speech.base import VoiceSettings
from livetwin.speech.gpt_sovits import GPTSoVITSTTS
from livetwin.speech.http import HTTPTimeouts, decode_wav
from livetwin.speech.http_openai import OpenAISpeechTTS

T = TypeVar("T")
RATE = 24000
FAST = HTTPTimeouts(connect=1.0, read=0.5, total=1.0)
HARD_LIMIT = 10.0


def tone_wav(text: str, rate: int = RATE, channels: int = 1) -> bytes:
    """A tone whose length follows the text (50 ms per character)."""
    n = int(rate * 0.05 * max(1, len(text)))
    t = np.arange(n) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    if channels > 1:
        pcm = np.repeat(pcm[:, None], channels, axis=1).reshape(-1)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


class Server:
    """The test server's state: the knob, and every request it received."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.delay = 0.0
        self.requests: list[tuple[str, dict[str, Any], dict[str, str], float]] = []
        self.release = threading.Event()  # ends hanging handlers at teardown


def make_handler(state: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            state.requests.append((self.path, body, dict(self.headers), time.monotonic()))
            mode = state.mode
            if state.delay:
                time.sleep(state.delay)
            if mode == "hang":
                state.release.wait(5.0)
                return
            if mode == "close":
                self.close_connection = True
                return  # closes the socket without a word
            if self.path == "/v1/audio/speech" and body.get("response_format") == "pcm":
                data = tone_wav(body["input"])[44:]
                self._send(200, data, "audio/pcm")
            elif self.path in ("/v1/audio/speech", "/tts"):
                text = body.get("input") or body.get("text", "")
                if mode == "500":
                    self._send(500, b'{"error": {"message": "model crashed"}}',
                               "application/json")
                elif mode == "400":
                    self._send(400, b'{"message": "ref_audio_path is required"}',
                               "application/json")
                elif mode == "garbage":
                    self._send(200, b"<html>welcome to nginx</html>", "text/html")
                elif mode == "empty":
                    self._send(200, b"", "audio/wav")
                elif mode == "truncated":
                    self._send(200, tone_wav(text)[:1000], "audio/wav")
                else:
                    self._send(200, tone_wav(text, channels=2 if mode == "stereo" else 1),
                               "audio/wav")
            else:
                self._send(404, b'{"detail": "Not Found"}', "application/json")

        def _send(self, code: int, data: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[Server, str]]:
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(2.0)


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run under a hard limit so that no test can hang."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro_fn(), HARD_LIMIT)

    return asyncio.run(bounded())


async def collect(backend: Any, text: str, lang: str = "en",
                  settings: VoiceSettings | None = None) -> list[SpeechAudio]:
    out = [audio async for audio in backend.stream(text, lang=lang, settings=settings)]
    await backend.aclose()
    return out


@pytest.fixture
def voice_ref(tmp_path: Path) -> Path:
    path = tmp_path / "voice_ref.wav"
    path.write_bytes(tone_wav("reference clip"))
    return path


def backends(url: str, voice_ref: Path) -> list[Any]:
    return [OpenAISpeechTTS(url, api_key="sk-test", timeouts=FAST),
            GPTSoVITSTTS(url, voice_ref, prompt_text="hello there", timeouts=FAST)]


# --- happy path ---------------------------------------------------------------------------


def test_openai_speaks_each_sentence_with_token_and_fields(server: tuple[Server, str]) -> None:
    state, url = server
    tts = OpenAISpeechTTS(url, model="m1", voice="nova", api_key="sk-test", timeouts=FAST)
    out = run(lambda: collect(tts, "Hello there. Only today! Two for one?", "en",
                              VoiceSettings(rate=1.25)))
    assert [a.sample_rate for a in out] == [RATE] * 3
    assert [len(a.pcm) for a in out] == [int(RATE * 0.05 * n) for n in (12, 11, 12)]
    assert all(a.pcm.dtype == np.float32 and a.phonemes == () for a in out)
    assert 0.25 < float(np.abs(out[0].pcm).max()) < 0.35
    path, body, headers, _ = state.requests[0]
    assert path == "/v1/audio/speech"
    assert body == {"model": "m1", "input": "Hello there.", "voice": "nova",
                    "response_format": "wav", "speed": 1.25}
    assert headers["Authorization"] == "Bearer sk-test"
    assert [r[1]["input"] for r in state.requests] == ["Hello there.", "Only today!",
                                                       "Two for one?"]


def test_openai_raw_pcm(server: tuple[Server, str]) -> None:
    _, url = server
    tts = OpenAISpeechTTS(url, response_format="pcm", timeouts=FAST)
    (audio,) = run(lambda: collect(tts, "Hello."))
    assert audio.sample_rate == 24000 and len(audio.pcm) == int(RATE * 0.05 * 6)


def test_gpt_sovits_sends_the_voice_reference(server: tuple[Server, str], voice_ref: Path
                                              ) -> None:
    state, url = server
    state.mode = "stereo"
    tts = GPTSoVITSTTS(url, voice_ref, prompt_text="hello there", prompt_lang="en",
                       timeouts=FAST)
    out = run(lambda: collect(tts, "你好。今天特价！", "zh"))  # noqa: RUF001
    assert len(out) == 2 and out[0].pcm.ndim == 1 and len(out[0].pcm) == int(RATE * 0.05 * 3)
    path, body, _, _ = state.requests[0]
    assert path == "/tts"
    assert body["text"] == "你好。" and body["text_lang"] == "zh"
    assert body["ref_audio_path"] == str(voice_ref.resolve())
    assert body["prompt_text"] == "hello there" and body["prompt_lang"] == "en"
    assert body["media_type"] == "wav" and body["streaming_mode"] is False


def test_gpt_sovits_refuses_german_and_a_missing_clip(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"voice_ref\.wav"):
        GPTSoVITSTTS("http://127.0.0.1:9", tmp_path / "voice_ref.wav")
    (tmp_path / "voice_ref.wav").write_bytes(tone_wav("x"))
    tts = GPTSoVITSTTS("http://127.0.0.1:9", tmp_path / "voice_ref.wav")
    with pytest.raises(InputError, match="cannot speak 'de'"):
        run(lambda: collect(tts, "Guten Tag.", "de"))


# --- streaming and cancellation -----------------------------------------------------------


def test_first_sentence_arrives_before_the_last_is_requested(server: tuple[Server, str]
                                                            ) -> None:
    state, url = server
    state.delay = 0.15
    tts = OpenAISpeechTTS(url, timeouts=FAST)

    async def go() -> tuple[int, float, float]:
        agen = tts.stream("One. Two. Three.", lang="en")
        first = await agen.__anext__()
        seen, at = len(state.requests), time.monotonic()
        rest = [a async for a in agen]
        assert len(first.pcm) > 0 and len(rest) == 2
        return seen, at, state.requests[-1][3]

    seen, first_at, last_requested = run(go)
    assert seen == 1
    assert first_at < last_requested


def test_cancelling_stops_further_requests(server: tuple[Server, str]) -> None:
    state, url = server
    state.delay = 0.1
    tts = OpenAISpeechTTS(url, timeouts=FAST)

    async def go() -> None:
        first = asyncio.Event()

        async def consume() -> None:
            async for _ in tts.stream("One. Two. Three. Four. Five.", lang="en"):
                first.set()

        task = asyncio.create_task(consume())
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        count = len(state.requests)
        await asyncio.sleep(0.4)
        assert len(state.requests) == count <= 2

    run(go)


# --- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [0, 1])
def test_a_hanging_server_times_out_quickly(server: tuple[Server, str], voice_ref: Path,
                                            kind: int) -> None:
    state, url = server
    state.mode = "hang"
    tts = backends(url, voice_ref)[kind]
    start = time.monotonic()
    with pytest.raises(BackendTimeout, match="did not answer in time") as err:
        run(lambda: collect(tts, "Hello."))
    assert err.value.retryable and time.monotonic() - start < 2.0


def test_total_time_per_sentence_is_bounded(server: tuple[Server, str]) -> None:
    state, url = server
    state.delay = 0.6  # each byte comes in time, the whole answer does not
    tts = OpenAISpeechTTS(url, timeouts=HTTPTimeouts(connect=1.0, read=5.0, total=0.3))
    with pytest.raises(BackendTimeout):
        run(lambda: collect(tts, "Hello."))


@pytest.mark.parametrize("kind", [0, 1])
@pytest.mark.parametrize(("mode", "retryable", "message"), [
    ("500", True, "answered 500: model crashed"),
    ("400", False, "answered 400: ref_audio_path is required"),
    ("garbage", True, "not a WAV file"),
    ("empty", True, "empty body"),
    ("truncated", True, "truncated"),
    ("close", True, "Could not reach"),
])
def test_failures_are_translated(server: tuple[Server, str], voice_ref: Path, kind: int,
                                 mode: str, retryable: bool, message: str) -> None:
    state, url = server
    state.mode = mode
    tts = backends(url, voice_ref)[kind]
    with pytest.raises(BackendError, match=message) as err:
        run(lambda: collect(tts, "Hello. World."))
    assert err.value.retryable is retryable
    assert not isinstance(err.value, BackendTimeout)
    assert len(state.requests) == 1  # the first failure ends the utterance


def test_refused_connection_is_retryable() -> None:
    tts = OpenAISpeechTTS("http://127.0.0.1:9", timeouts=FAST)
    with pytest.raises(BackendError, match="Could not reach") as err:
        run(lambda: collect(tts, "Hello."))
    assert err.value.retryable


def test_empty_text_is_an_input_error() -> None:
    tts = OpenAISpeechTTS("http://127.0.0.1:9", timeouts=FAST)
    with pytest.raises(InputError, match="no text"):
        run(lambda: collect(tts, "   "))


def test_wav_decoding_formats() -> None:
    pcm, rate = decode_wav(tone_wav("abc", rate=16000, channels=2))
    assert rate == 16000 and len(pcm) == 2400 and pcm.dtype == np.float32
    floats = np.linspace(-0.5, 0.5, 100, dtype="<f4").tobytes()
    header = (b"RIFF" + (36 + len(floats)).to_bytes(4, "little") + b"WAVEfmt "
              + (16).to_bytes(4, "little")
              + np.array([3, 1], "<u2").tobytes() + np.array([8000, 32000], "<u4").tobytes()
              + np.array([4, 32], "<u2").tobytes()
              + b"data" + (0xFFFFFFFF).to_bytes(4, "little"))  # a streaming header
    pcm, rate = decode_wav(header + floats)
    assert rate == 8000 and len(pcm) == 100 and abs(float(pcm[0]) + 0.5) < 1e-6
    with pytest.raises(ValueError, match="no audio data"):
        decode_wav(tone_wav("a")[:36])
