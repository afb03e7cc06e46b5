"""An OpenAI-compatible speech server: `POST /v1/audio/speech`, one request per sentence."""

from __future__ import annotations

from typing import Any, Literal

import httpx

from livetwin.events import FloatArray
from livetwin.speech.base import VoiceSettings
from livetwin.speech.http import HTTPSpeechBackend, HTTPTimeouts, decode_pcm16, decode_wav

PCM_RATE = 24000  # what OpenAI's "pcm" format is: 16-bit mono at 24 kHz


class OpenAISpeechTTS(HTTPSpeechBackend):
    """OpenAI's speech API or any server that speaks it (no timings)."""

    name = "http"
    gives_timings = False

    def __init__(self, base_url: str, *, model: str = "tts-1", voice: str = "alloy",
                 api_key: str = "", response_format: Literal["wav", "pcm"] = "wav",
                 pcm_rate: int = PCM_RATE, timeouts: HTTPTimeouts | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, timeouts=timeouts, transport=transport)
        self.model, self.voice, self.response_format = model, voice, response_format
        self.pcm_rate = pcm_rate
        self._api_key = api_key

    def _request(self, sentence: str, lang: str, settings: VoiceSettings
                 ) -> tuple[str, dict[str, Any], dict[str, str]]:
        body = {"model": self.model, "input": sentence, "voice": settings.voice or self.voice,
                "response_format": self.response_format,
                "speed": min(4.0, max(0.25, settings.rate))}
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        return "/v1/audio/speech", body, headers

    def _decode(self, body: bytes, content_type: str) -> tuple[FloatArray, int]:
        if self.response_format == "pcm":
            return decode_pcm16(body, self.pcm_rate)
        return decode_wav(body)
