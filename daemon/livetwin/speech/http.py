"""What the HTTP TTS backends share: one request per sentence, timeouts everywhere,
failures translated at the boundary, WAV/PCM bodies decoded to float32 mono.

    httpx.TimeoutException / total time exceeded  -> BackendTimeout
    connection refused, reset or closed early, 5xx -> BackendError(retryable=True)
    4xx                                           -> BackendError(retryable=False, server's text)
    empty, non-audio or truncated body            -> BackendError naming the problem
"""

from __future__ import annotations

import asyncio
import json
import struct
from abc import abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from livetwin.errors import BackendError, BackendTimeout
from livetwin.events import FloatArray, SpeechAudio
from livetwin.speech.base import TTSBackend, VoiceSettings
from livetwin.speech.normalize import sentences_to_speak

_MAX_MESSAGE = 300


@dataclass(frozen=True)
class HTTPTimeouts:
    """Seconds: to connect, between bytes of the answer, and for a whole sentence."""

    connect: float = 5.0
    read: float = 30.0
    total: float = 60.0


class HTTPSpeechBackend(TTSBackend):
    """A TTS server asked once per sentence; subclasses say what to ask and how to read it."""

    def __init__(self, base_url: str, *, timeouts: HTTPTimeouts | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts or HTTPTimeouts()
        self._transport = transport  # injected in tests; None = real network

    @abstractmethod
    def _request(self, sentence: str, lang: str, settings: VoiceSettings
                 ) -> tuple[str, dict[str, Any], dict[str, str]]:
        """(path, JSON body, headers) for one sentence."""

    @abstractmethod
    def _decode(self, body: bytes, content_type: str) -> tuple[FloatArray, int]:
        """The answer's audio as float32 mono and its sample rate."""

    def _check_lang(self, lang: str) -> None:  # most servers take any language
        """Raise InputError when the server cannot speak `lang`."""

    async def stream(self, text: str, *, lang: str, settings: VoiceSettings | None = None
                     ) -> AsyncIterator[SpeechAudio]:
        """One request per sentence; each sentence is yielded as soon as it arrives."""
        self._check_lang(lang)
        settings = settings or VoiceSettings()
        sentences = sentences_to_speak(text)
        timeout = httpx.Timeout(self.timeouts.read, connect=self.timeouts.connect)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                     transport=self._transport) as client:
            for sentence in sentences:
                pcm, rate = await self._fetch(client, sentence, lang, settings)
                yield SpeechAudio(pcm, rate)

    async def _fetch(self, client: httpx.AsyncClient, sentence: str, lang: str,
                     settings: VoiceSettings) -> tuple[FloatArray, int]:
        path, body, headers = self._request(sentence, lang, settings)
        where = f"{self.name} TTS server {self.base_url}"
        try:
            async with asyncio.timeout(self.timeouts.total):
                response = await client.post(path, json=body, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            raise BackendTimeout(f"The {where} did not answer in time; check that it is "
                                 "running and not overloaded.") from None
        except httpx.HTTPError as exc:  # refused, reset, closed before the answer
            raise BackendError(f"Could not reach the {where} ({type(exc).__name__}: {exc}); "
                               "check that it is running.", retryable=True) from None
        if response.status_code >= 400:
            message = _server_message(response)
            raise BackendError(f"The {where} answered {response.status_code}: {message}",
                               retryable=response.status_code >= 500
                               or response.status_code in (408, 429))
        if not response.content:
            raise BackendError(f"The {where} answered with an empty body instead of audio.",
                               retryable=True)
        try:
            return self._decode(response.content, response.headers.get("content-type", ""))
        except ValueError as exc:
            raise BackendError(f"The {where} sent no usable audio: {exc}.",
                               retryable=True) from None


def _server_message(response: httpx.Response) -> str:
    """The error text a server sent: a JSON message/detail/error field, else the body."""
    text = response.text.strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("message", "detail", "error", "Exception"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message", value)
            if value:
                text = str(value)
                break
    return (text or response.reason_phrase or "no message")[:_MAX_MESSAGE]


def decode_wav(body: bytes) -> tuple[FloatArray, int]:
    """A RIFF/WAVE body (PCM 8/16/24/32-bit or float) as float32 mono; ValueError if not."""
    if len(body) < 12 or body[:4] != b"RIFF" or body[8:12] != b"WAVE":
        raise ValueError(f"the body is not a WAV file (starts with {body[:12]!r})")
    pos, fmt = 12, None
    while pos + 8 <= len(body):
        tag, size = body[pos:pos + 4], struct.unpack("<I", body[pos + 4:pos + 8])[0]
        pos += 8
        if tag == b"fmt ":
            if size < 16 or pos + 16 > len(body):
                raise ValueError("the WAV format chunk is truncated")
            fmt = struct.unpack("<HHIIHH", body[pos:pos + 16])
            if fmt[0] == 0xFFFE and size >= 26:  # WAVE_FORMAT_EXTENSIBLE: real tag inside
                fmt = (struct.unpack("<H", body[pos + 24:pos + 26])[0], *fmt[1:])
        elif tag == b"data":
            if fmt is None:
                raise ValueError("the WAV data comes before its format chunk")
            # streaming servers write 0 or 0xFFFFFFFF when the length was unknown
            if size in (0, 0xFFFFFFFF):
                size = len(body) - pos
            elif pos + size > len(body):
                raise ValueError(f"the WAV is truncated ({len(body) - pos} of {size} "
                                 "audio bytes)")
            return _samples(body[pos:pos + size], fmt)
        pos += size + (size & 1)
    raise ValueError("the WAV has no audio data chunk")


def _samples(data: bytes, fmt: tuple[int, ...]) -> tuple[FloatArray, int]:
    tag, channels, rate, _, _, bits = fmt
    if channels < 1 or rate < 1:
        raise ValueError(f"the WAV declares {channels} channels at {rate} Hz")
    width = bits // 8
    usable = len(data) - len(data) % (width * channels or 1)
    raw = data[:usable]
    if tag == 3 and bits in (32, 64):
        pcm = np.frombuffer(raw, "<f4" if bits == 32 else "<f8").astype(np.float32)
    elif tag == 1 and bits == 8:
        pcm = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif tag == 1 and bits in (16, 32):
        dtype = "<i2" if bits == 16 else "<i4"
        pcm = np.frombuffer(raw, dtype).astype(np.float32) / float(2 ** (bits - 1))
    elif tag == 1 and bits == 24:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8
        pcm = ints.astype(np.float32) / float(2 ** 23)
    else:
        raise ValueError(f"the WAV encoding (format {tag}, {bits} bits) is not supported")
    if channels > 1:
        pcm = pcm.reshape(-1, channels).mean(axis=1)
    if pcm.size == 0:
        raise ValueError("the WAV holds no samples")
    return np.ascontiguousarray(pcm, np.float32), int(rate)


def decode_pcm16(body: bytes, rate: int) -> tuple[FloatArray, int]:
    """Raw 16-bit little-endian mono PCM as float32."""
    if len(body) < 2:
        raise ValueError("the raw PCM body holds no samples")
    if body[:4] == b"RIFF":
        return decode_wav(body)
    usable = len(body) - len(body) % 2
    return np.frombuffer(body[:usable], "<i2").astype(np.float32) / 32768.0, rate
