"""FallbackTTS, the TTS cache, the registry, audio helpers and the speech benchmark."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from livetwin.errors import BackendError, ConfigError, InputError
from livetwin.events import SpeechAudio
from livetwin.speech import audio as audio_mod
from livetwin.speech import registry
from livetwin.speech.base import TTSBackend, VoiceSettings
from livetwin.speech.cache import CachedTTS, TTSCache, cache_key, default_dir
from livetwin.speech.espeak import EspeakTTS
from livetwin.speech.fallback import FallbackTTS
from tests.fakes_tts import FakeTTS, tone

TEXT = "One. Two. Three."


def collect(tts: TTSBackend, text: str = TEXT, lang: str = "en") -> list[SpeechAudio]:
    async def run() -> list[SpeechAudio]:
        return [a async for a in tts.stream(text, lang=lang)]

    return asyncio.run(asyncio.wait_for(run(), 10))  # never a hang, even if a test is wrong


# ---------------------------------------------------------------- fallback


def test_primary_serves_when_healthy() -> None:
    a, b = FakeTTS(), FakeTTS()
    assert len(collect(FallbackTTS([a, b]))) == 3
    assert a.spoken == ["One.", "Two.", "Three."] and b.spoken == []


def test_switches_on_error_without_repeating_spoken_sentences() -> None:
    a, b = FakeTTS(fail_after=1), FakeTTS()
    assert len(collect(FallbackTTS([a, b]))) == 3
    assert a.spoken == ["One."] and b.spoken == ["Two.", "Three."]


def test_hanging_backend_times_out_and_falls_back() -> None:
    a, b = FakeTTS(hang=True), FakeTTS()
    t0 = time.perf_counter()
    assert len(collect(FallbackTTS([a, b], timeout_s=0.2))) == 3
    # one timeout, then the hanging backend cools down instead of costing every sentence
    assert time.perf_counter() - t0 < 1.0 and a.calls == 1


def test_slow_backend_alone_gives_a_clear_timeout() -> None:
    with pytest.raises(BackendError, match=r"no audio within 0\.1 s"):
        collect(FallbackTTS([FakeTTS(delay_s=5)], timeout_s=0.1))


@pytest.mark.parametrize("garbage", ["nan", "loud", "type"])
def test_garbage_audio_falls_back(garbage: str) -> None:
    a, b = FakeTTS(garbage=garbage), FakeTTS()
    out = collect(FallbackTTS([a, b]))
    assert len(out) == 3 and b.spoken == ["One.", "Two.", "Three."]
    with pytest.raises(BackendError, match="fake"):
        collect(FallbackTTS([FakeTTS(garbage=garbage)]))


def test_garbage_timings_are_dropped_audio_kept() -> None:
    out = collect(FallbackTTS([FakeTTS(garbage="timings")]))
    assert len(out) == 3 and all(a.words == () for a in out)


def test_retries_retryable_errors_then_all_failed() -> None:
    a = FakeTTS(fail_times=1)
    assert len(collect(FallbackTTS([a], retries=1))) == 3
    a, b = FakeTTS(fail_times=99), FakeTTS(fail_times=99, error=BackendError("down"))
    with pytest.raises(BackendError, match="Every TTS backend failed") as info:
        collect(FallbackTTS([a, b]))
    assert info.value.retryable


def test_input_errors_fall_through_and_surface() -> None:
    refuse = FakeTTS(fail_times=99, error=InputError("no zh in this voice"))
    assert len(collect(FallbackTTS([refuse, FakeTTS()]))) == 3
    with pytest.raises(InputError, match="no zh"):
        collect(FallbackTTS([FakeTTS(fail_times=99, error=InputError("no zh in this voice"))]))


def test_cooldown_then_primary_again() -> None:
    now = [0.0]
    a, b = FakeTTS(fail_times=1, error=BackendError("x")), FakeTTS()
    tts = FallbackTTS([a, b], cooldown_s=30, clock=lambda: now[0])
    collect(tts, "One.")
    collect(tts, "Two.")
    assert b.spoken == ["One.", "Two."]
    now[0] = 31.0
    collect(tts, "Three.")
    assert a.spoken == ["Three."]


def test_fallback_to_real_espeak() -> None:
    out = collect(FallbackTTS([FakeTTS(hang=True), EspeakTTS()], timeout_s=0.2))
    assert len(out) == 3 and all(a.words for a in out)


# ---------------------------------------------------------------- cache


def test_cache_roundtrip_and_cached_tts_serves_repeats(tmp_path: Path) -> None:
    fake = FakeTTS()
    tts = CachedTTS(fake, TTSCache(tmp_path))
    first = collect(tts)
    again = collect(tts)
    assert fake.spoken == ["One.", "Two.", "Three."] and tts.hits == 3
    for x, y in zip(first, again, strict=True):
        assert np.array_equal(x.pcm, y.pcm) and x.words == y.words
        assert x.sample_rate == y.sample_rate
    assert not list(tmp_path.glob("*.tmp"))


def test_cache_key_depends_on_everything() -> None:
    base = cache_key("espeak", VoiceSettings(), "en", "Hi.")
    assert base != cache_key("piper", VoiceSettings(), "en", "Hi.")
    assert base != cache_key("espeak", VoiceSettings(rate=1.1), "en", "Hi.")
    assert base != cache_key("espeak", VoiceSettings(), "de", "Hi.")
    assert base != cache_key("espeak", VoiceSettings(), "en", "Hi!")


def test_cache_is_bounded_lru(tmp_path: Path) -> None:
    one = tone(0.2)
    size = len(audio_bytes := one.pcm.tobytes())
    assert size > 0 and audio_bytes
    cache = TTSCache(tmp_path, max_bytes=int(size * 3.5))
    for k in "abc":
        cache.put(k, [one])
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("d", [one])
    assert cache.get("b") is None and cache.get("a") is not None
    assert cache.size_bytes <= cache.max_bytes
    reopened = TTSCache(tmp_path, max_bytes=cache.max_bytes)
    assert sorted(p.stem for p in tmp_path.glob("*.npz")) == ["a", "c", "d"]
    assert reopened.get("d") is not None


def test_damaged_entry_is_a_miss(tmp_path: Path) -> None:
    cache = TTSCache(tmp_path)
    cache.put("k", [tone()])
    (tmp_path / "k.npz").write_bytes(b"not a zip")
    assert cache.get("k") is None and not (tmp_path / "k.npz").exists()


def test_cache_lives_under_livetwin_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    monkeypatch.setenv("LIVETWIN_HOME", str(tmp_path))
    assert default_dir() == tmp_path / "cache" / "tts"
    tts = CachedTTS(EspeakTTS())
    first = collect(tts, "Cached line.")
    assert collect(tts, "Cached line.")[0].words == first[0].words and tts.hits == 1
    assert list((tmp_path / "cache" / "tts").glob("*.npz"))


# ---------------------------------------------------------------- registry


def test_registry() -> None:
    assert isinstance(registry.create("espeak"), EspeakTTS)
    assert set(registry.BACKENDS) >= {"espeak", "piper", "http", "gpt-sovits"}
    for name in registry.BACKENDS:  # every entry imports and is named as registered
        assert registry.backend_class(name).name == name
    with pytest.raises(ConfigError, match="espeak, gpt-sovits, http, piper"):
        registry.create("festival")


# ---------------------------------------------------------------- audio helpers


def test_loudness_matches_bs1770_reference() -> None:
    sr = 48000
    sine = np.sin(2 * np.pi * 997 * np.arange(sr * 3) / sr).astype(np.float32)
    assert audio_mod.loudness(sine, sr) == pytest.approx(-3.01, abs=0.05)
    quiet = 0.05 * sine
    assert audio_mod.loudness(audio_mod.normalize_loudness(quiet, sr), sr) == pytest.approx(
        -16.0, abs=0.05)
    assert audio_mod.loudness(np.zeros(sr, np.float32), sr) == float("-inf")


def test_espeak_speech_to_broadcast_loudness() -> None:
    speech = collect(EspeakTTS(), "This is a normal sentence for the stream.")[0]
    out = audio_mod.normalize_loudness(speech.pcm, speech.sample_rate)
    assert audio_mod.loudness(out, speech.sample_rate) == pytest.approx(-16.0, abs=1.5)
    assert np.abs(out).max() <= 10 ** (-1 / 20) + 1e-6


def test_resample_fade_and_pydub() -> None:
    x = tone(1.0, 22050).pcm
    y = audio_mod.resample(x, 22050, 48000)
    assert len(y) == 48000 and y.dtype == np.float32
    f = audio_mod.fade(x, 22050)
    assert f[0] == 0 and f[-1] == 0 and np.array_equal(f[5000:6000], x[5000:6000])
    back, sr = audio_mod.from_segment(audio_mod.to_segment(x, 22050))
    assert sr == 22050 and np.allclose(back, x, atol=1e-3)


# ---------------------------------------------------------------- benchmark


def test_speech_figures_smoke() -> None:
    from livetwin.speech.benchmark import speech_figures

    figures = speech_figures(runs=5)["espeak"]
    assert figures["ttfa_p50_ms"] < 200 and figures["rtf"] < 0.5
    for lang in ("en", "zh", "de"):
        t = figures["timing"][lang]
        assert t["words_measured"] >= 3 and t["median_abs_error_ms"] < 20
