"""espeak backend: audio with word and phoneme timings that cover it, in en/zh/de."""

# ruff: noqa: RUF001, RUF003 - Chinese punctuation (，。！？) is the point here

from __future__ import annotations

import asyncio
import itertools
import re
import time

import pytest

from livetwin.errors import ConfigError, InputError
from livetwin.events import SpeechAudio
from livetwin.speech import espeak
from livetwin.speech.base import VoiceSettings
from livetwin.speech.espeak import EspeakTTS
from livetwin.speech.normalize import normalize


def synth(text: str, lang: str, settings: VoiceSettings | None = None) -> list[SpeechAudio]:
    async def run() -> list[SpeechAudio]:
        return [a async for a in EspeakTTS().stream(text, lang=lang, settings=settings)]

    return asyncio.run(run())


def assert_covers(audio: SpeechAudio) -> None:
    """Timings are monotonic, inside the audio, and leave no long stretch untimed."""
    dur = audio.duration
    assert audio.sample_rate == 22050 and dur > 0.3
    ph = audio.phonemes
    assert ph[0].start == 0.0 and ph[-1].end == pytest.approx(dur, abs=1e-6)
    for a, b in itertools.pairwise(ph):
        assert a.start < a.end <= dur
        assert b.start == pytest.approx(a.end)  # contiguous: pauses are "_" phonemes
    words = audio.words
    assert words, "no word timings"
    for a, b in itertools.pairwise(words):
        assert 0 <= a.start < a.end <= b.start <= dur
        assert b.start - a.end < 0.6, f"untimed gap between {a.word!r} and {b.word!r}"
    assert dur - words[-1].end < 0.5  # only the sentence-final pause is left
    sounding = [p for p in ph if p.phoneme != espeak.SILENCE]
    assert sounding and sounding[0].start >= words[0].start - 1e-6


PRICES = [
    ("en", "Today this blender costs only 99 yuan!", "ninety-nine yuan",
     ["ninety-nine", "yuan"]),
    ("zh", "这款搅拌机今天只要99元！", "九十九元", ["九十九", "元"]),
    ("de", "Heute kostet der Mixer nur 99 Euro.", "neunundneunzig Euro",
     ["neunundneunzig", "Euro"]),
]


@pytest.mark.parametrize(("lang", "text", "spoken", "words"), PRICES)
def test_price_sentence_is_read_in_its_language_with_covering_timings(
        lang: str, text: str, spoken: str, words: list[str]) -> None:
    said = normalize(text, lang)
    assert spoken in said and "99" not in said
    out = synth(said, lang)
    assert len(out) == 1
    assert_covers(out[0])
    got = [w.word for w in out[0].words]
    for word in words:
        assert word in got
    if lang == "zh":  # timings name the Chinese words, not the pinyin espeak read
        assert "".join(got) == re.sub(r"[^\u4e00-\u9fff]", "", said)
    else:
        assert got == [t.strip(",.!?") for t in said.split()]


def test_sentences_stream_one_by_one_in_each_language() -> None:
    out = synth("Hello there. How are you today? Fine!", "en")
    assert [[w.word for w in a.words] for a in out] == [
        ["Hello", "there"], ["How", "are", "you", "today"], ["Fine"]]
    assert len(synth("你好。今天天气很好！我们开始吧？", "zh")) == 3
    assert len(synth("Guten Tag. Wie geht es?", "de")) == 2


def test_rate_pitch_and_voice_settings() -> None:
    text = "This sentence is spoken at two different speeds."
    normal = synth(text, "en")[0].duration
    fast = synth(text, "en", VoiceSettings(rate=2.0))[0].duration
    assert fast < 0.7 * normal
    assert synth(text, "en", VoiceSettings(pitch=1.5, voice="en-gb+f3"))[0].duration > 0.5
    assert synth("你好", "zh", VoiceSettings(voice="+f2"))[0].duration > 0.3
    with pytest.raises(ConfigError, match="no voice"):
        synth(text, "en", VoiceSettings(voice="klingon-xx"))
    with pytest.raises(ConfigError, match="cmn-latn-pinyin"):
        synth("你好", "zh", VoiceSettings(voice="de"))


def test_unsupported_language_names_the_supported_ones() -> None:
    with pytest.raises(InputError, match="en, zh, de"):
        synth("Bonjour", "fr")


def test_empty_and_emoji_only_text_give_no_audio() -> None:
    assert synth("", "en") == []
    assert synth("   \n ", "de") == []
    assert normalize("😀🎉👍🏽", "en") == ""
    assert synth("😀🎉👍🏽", "en") == []  # even unnormalised, espeak never spells emoji


def test_markup_is_never_interpreted() -> None:
    spoken, _ = espeak._prepare('Hi <break time="9s"/> <speak>there</speak>', "en")
    assert "<" not in spoken and ">" not in spoken
    # as SSML this would be a nine-second pause; as text it is a short line
    out = synth('Hi <break time="9s"/> there.', "en")
    assert sum(a.duration for a in out) < 4.0


def test_long_text_streams_and_first_sentence_is_fast() -> None:
    text = " ".join(f"This is sentence number {i} of a very long text." for i in range(220))
    assert len(text) > 10_000
    tts = EspeakTTS()

    async def run() -> tuple[float, int]:
        await tts.warm_up()
        t0 = time.perf_counter()
        gen = tts.stream(normalize(text, "en"), lang="en")
        await anext(gen)
        first = time.perf_counter() - t0
        await anext(gen)
        await gen.aclose()
        return first, tts.synthesised

    first, done = asyncio.run(run())
    assert first < 0.3
    assert done == 3  # warm-up + two sentences: nothing ran ahead of the consumer


def test_cancelling_the_consumer_stops_synthesis() -> None:
    text = " ".join(f"Sentence {i} keeps the synthesiser busy for a while." for i in range(300))
    tts = EspeakTTS()

    async def run() -> tuple[int, int]:
        got_one = asyncio.Event()

        async def consume() -> None:
            async for _ in tts.stream(text, lang="en"):
                got_one.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(got_one.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        at_cancel = tts.synthesised
        await asyncio.sleep(0.3)
        return at_cancel, tts.synthesised

    at_cancel, later = asyncio.run(run())
    assert later == at_cancel < 300
    assert espeak.LIBRARY_LOCK.acquire(timeout=2)  # the worker let go of the library
    espeak.LIBRARY_LOCK.release()


def test_concurrent_streams_are_serialised_safely() -> None:
    tts = EspeakTTS()

    async def one(text: str, lang: str) -> list[str]:
        return [w.word async for a in tts.stream(text, lang=lang) for w in a.words]

    async def run() -> list[list[str]]:
        jobs = [one("Red green blue.", "en"), one("Rot grün blau.", "de"),
                one("红色，绿色。", "zh"), one("One two three.", "en")]
        return list(await asyncio.gather(*jobs))

    red, rot, zh, one_two = asyncio.run(run())
    assert red == ["Red", "green", "blue"] and rot == ["Rot", "grün", "blau"]
    assert one_two == ["One", "two", "three"] and "".join(zh) == "红色绿色"
