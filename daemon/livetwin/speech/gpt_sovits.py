"""GPT-SoVITS api_v2 (`POST /tts`): the streamer's own voice, cloned from the avatar
bundle's voice reference clip, one request per sentence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from livetwin.errors import InputError
from livetwin.events import FloatArray
from livetwin.speech.base import VoiceSettings
from livetwin.speech.http import HTTPSpeechBackend, HTTPTimeouts, decode_wav

# GPT-SoVITS v2 speaks Chinese, English, Japanese, Korean and Cantonese; of livetwin's
# languages, German is missing.
_LANGS = {"en": "en", "zh": "zh"}


class GPTSoVITSTTS(HTTPSpeechBackend):
    """A GPT-SoVITS api_v2 server cloning the voice of `voice_ref` (no timings)."""

    name = "gpt-sovits"
    gives_timings = False

    def __init__(self, base_url: str, voice_ref: str | Path, *, prompt_text: str = "",
                 prompt_lang: str = "en", server_ref_path: str | None = None,
                 timeouts: HTTPTimeouts | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, timeouts=timeouts, transport=transport)
        ref = Path(voice_ref).expanduser()
        if server_ref_path is None and not ref.is_file():
            raise InputError(f"The voice reference clip {ref} does not exist; clone the "
                             "avatar again or give the bundle's voice_ref.wav.")
        # the server opens the clip itself: by default it shares this machine's files
        self.ref_audio_path = server_ref_path or str(ref.resolve())
        self.prompt_text = prompt_text
        self.prompt_lang = _LANGS.get(prompt_lang, prompt_lang)

    def _check_lang(self, lang: str) -> None:
        if lang not in _LANGS:
            raise InputError(f"GPT-SoVITS cannot speak {lang!r}; use it for "
                             f"{' or '.join(_LANGS)}, or choose another voice for {lang}.")

    def _request(self, sentence: str, lang: str, settings: VoiceSettings
                 ) -> tuple[str, dict[str, Any], dict[str, str]]:
        body = {"text": sentence, "text_lang": _LANGS[lang],
                "ref_audio_path": self.ref_audio_path, "prompt_text": self.prompt_text,
                "prompt_lang": self.prompt_lang, "media_type": "wav",
                "streaming_mode": False, "speed_factor": settings.rate,
                "text_split_method": "cut0"}  # livetwin already sends one sentence
        return "/tts", body, {}

    def _decode(self, body: bytes, content_type: str) -> tuple[FloatArray, int]:
        return decode_wav(body)
