"""One pydantic model of livetwin.yaml; each part of livetwin receives only its own slice."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from livetwin.errors import ConfigError

APP_NAME = "livetwin"
log = logging.getLogger(__name__)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CloneConfig(_Section):
    """Settings of `livetwin clone`."""

    min_duration_s: float = Field(10.0, description="Shorter videos are refused.")
    good_duration_s: float = Field(45.0, description="Shorter videos clone with a warning.")
    min_face_px: float = Field(
        40.0, description="Smallest usable distance between the outer eye corners, in pixels."
    )
    atlas_size: int = Field(
        240, ge=16, le=2000, description="Most mouth patches kept in the atlas."
    )
    train_seconds: float = Field(
        60.0, gt=0, description="Most seconds spent training the person audio-to-mouth "
        "model (8 networks on a fixed schedule, 28-38 s on one core; a slower machine cuts "
        "the schedule to fit, and the clone is then no longer reproducible)."
    )
    threads: int = Field(2, ge=1, le=64, description="CPU threads used by clone.")


class PiperConfig(_Section):
    """A Piper voice the user supplies (voice.onnx + voice.onnx.json)."""

    model: Path | None = Field(None, description="Path of the voice's .onnx file.")
    speaker: str | None = Field(None, description="Speaker name or number (multi-speaker).")


class HttpTTSConfig(_Section):
    """An OpenAI-compatible /v1/audio/speech server."""

    base_url: str = Field("http://127.0.0.1:8000", description="Server address.")
    model: str = Field("tts-1", description="Model name the server knows.")
    voice: str = Field("alloy", description="Voice name the server knows (your cloned "
                       "voice's id on a voice-cloning server).")
    api_key: str = Field("", description="Bearer token, if the server needs one.")


class GPTSoVITSConfig(_Section):
    """A GPT-SoVITS api_v2 server cloning the voice from the bundle's voice_ref.wav."""

    base_url: str = Field("http://127.0.0.1:9880", description="Server address.")
    prompt_text: str = Field("", description="What is said in the voice reference clip.")
    prompt_lang: str = Field("en", description="Language of the voice reference clip "
                             "(GPT-SoVITS code: en, zh, ja ...).")


class TTSConfig(_Section):
    """Which voice speaks: a backend by name, then fallbacks tried in order."""

    backend: str = Field("espeak", description="espeak | piper | http | gpt-sovits")
    fallback: list[str] = Field(["espeak"], description="Backends tried when one fails.")
    timeout_s: float = Field(5.0, gt=0, description="Longest wait for one sentence.")
    retry_after_s: float = Field(30.0, gt=0, description="A backend that failed is "
                                 "skipped this long, then tried again with a sentence.")
    cache_mb: int = Field(256, ge=0, description="Disk cache of spoken lines (0 = off).")
    rate: float = Field(1.0, ge=0.5, le=2.0, description="Speaking-rate factor of the live "
                        "voice: 1 is the voice's own pace, 1.2 is 20 % faster.")
    pitch: float = Field(1.0, ge=0.5, le=2.0, description="Pitch factor of the live voice "
                         "(espeak only; other backends ignore it).")
    piper: PiperConfig = PiperConfig()
    http: HttpTTSConfig = HttpTTSConfig()
    gpt_sovits: GPTSoVITSConfig = GPTSoVITSConfig()


class RenderConfig(_Section):
    """The output canvas: size, frame rate, background and the AI-disclosure label."""

    size: str = Field("1280x720", pattern=r"^\d{2,4}x\d{2,4}$",
                      description="Output WIDTHxHEIGHT in pixels (even numbers, 16 to 4096).")
    fps: int = Field(25, ge=1, le=60, description="Output frames per second.")
    background: str = Field("#000000", pattern=r"^#?[0-9a-fA-F]{6}$",
                            description="Canvas colour #RRGGBB where the avatar does not "
                            "cover it.")
    background_image: Path | None = Field(
        None, description="Image shown where the avatar does not cover the canvas (scaled "
        "to cover it, centre-cropped); null: the background colour.")
    label: str = Field("AI-generated host", min_length=1,
                       description='Visible AI-disclosure text, e.g. "AI生成".')
    label_enabled: bool = Field(
        True, description="Show the AI-disclosure label; false turns it off (logged as a "
        "warning; tell viewers another way).")
    label_position: Literal["top-left", "top-right", "bottom-left", "bottom-right"] = Field(
        "top-left", description="Corner of the label.")
    label_font: Path | None = Field(
        None, description="Font file (.ttf/.ttc/.otf) tried first for the label; null: "
        "DejaVu Sans, or a system font that has the label's characters (CJK).")

    @field_validator("label")
    @classmethod
    def _label_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the label is empty; give a text, or set label_enabled: false")
        return v

    def label_text(self) -> str | None:
        """The label to show, None when turned off (logged as a warning)."""
        if not self.label_enabled:
            log.warning("render.label_enabled is false: the visible AI-disclosure label "
                        "is OFF")
            return None
        return self.label


class GesturesConfig(_Section):
    """`gestures:` body language planned from the words (docs/gestures.md)."""

    enabled: bool = Field(True, description="Plan and show gestures while the twin speaks.")
    density: float = Field(0.5, ge=0, le=1, description="Optional gestures (beats, nods "
                           "...): 0 = only the ones the words ask for (follow, cart), 1 = "
                           "one about every 2 s of speech.")


class ServerConfig(_Section):
    """The HTTP/WebSocket API of `livetwin serve`."""

    host: str = Field("127.0.0.1", description="Address to listen on (loopback: this "
                      "machine only; 0.0.0.0 exposes the API to the network).")
    port: int = Field(8765, ge=1, le=65535, description="TCP port of the API.")
    token: str | None = Field(None, min_length=16, description="Bearer token of the API; "
                              "null: generated on first run and kept in the livetwin home "
                              "folder (LIVETWIN_TOKEN overrides both).")


class LiveConfig(_Section):
    """The fixed lines of the live show's operator buttons (until the show director)."""

    lang: str = Field("en", description="Language of the live lines: en, zh or de.")
    call_to_follow: str = Field(
        "If you like what you see, hit follow so you don't miss the next deal!",
        min_length=1, description="Said on the call_to_follow command.")
    point_to_cart: str = Field(
        "The link is in the cart below: tap it to order while the price lasts.",
        min_length=1, description="Said on the point_to_cart command.")


class OutputConfig(_Section):
    """Where the live output goes and how it is encoded (size and fps: `render`)."""

    obs_url: str = Field("udp://127.0.0.1:9999?pkt_size=1316",
                         description="MPEG-TS over UDP for OBS's Media Source; empty = off.")
    rtmp_url: str = Field("", description="rtmp://server/app/key to push to; empty = off.")
    record_dir: Path | None = Field(
        None, description="Directory of MP4 recordings of the live output; null = off.")
    preview_fps: float = Field(2.0, ge=0, le=30,
                               description="JPEG previews per second for the dashboard "
                               "(0 = off).")
    crf: int = Field(21, ge=0, le=51, description="H.264 quality (lower = better, larger).")
    video_bitrate_kbps: int = Field(4000, ge=100, le=50000,
                                    description="Cap of the video bitrate (VBV).")
    audio_bitrate_kbps: int = Field(128, ge=32, le=512, description="AAC bitrate.")
    keyframe_s: float = Field(
        0.25, gt=0, le=10,
        description="Seconds between keyframes. OBS starts playing at a keyframe and keeps "
                    "the delay it joined with: 1 s gave 0.9-1.3 s of lag in OBS, 0.25 s gives "
                    "0.2-0.5 s for about 20 % more bits.")


class ShowConfig(_Section):
    """The show director: language, pacing limits and the audience strategy."""

    lang: str = Field("en", pattern=r"^(en|zh|de)$",
                      description="Language of generated scripts and fillers: en, zh or de.")
    max_gap_s: float = Field(6.0, gt=0.5, le=120,
                             description="Longest silence between lines while on air; a "
                             "filler line fills it.")
    repeat_window_s: float = Field(600.0, ge=0, le=86_400,
                                   description="The same line is not said again within this "
                                   "many seconds.")
    strategy: Path | None = Field(None, description="Audience tiers YAML; null: the shipped "
                                  "scripts_templates/strategy.yaml.")
    templates: Path | None = Field(None, description="Folder of script templates (en.yaml, "
                                   "...); null: the shipped scripts_templates/.")


class StoreConfig(_Section):
    """Where catalog, scripts and transcript are kept."""

    url: str | None = Field(None, description="SQLAlchemy URL, e.g. postgresql+psycopg://"
                            "...; null: SQLite file livetwin.db in the livetwin home.")


class LLMConfig(_Section):
    """An optional OpenAI-compatible LLM server that drafts scripts (templates otherwise)."""

    backend: str = Field("none", description="none (templates only) | openai (any "
                         "OpenAI-compatible server: Ollama, vLLM, llama.cpp server).")
    base_url: str = Field("http://127.0.0.1:11434/v1", description="Server address up to "
                          "/v1.")
    model: str = Field("qwen2.5:7b-instruct", description="Model name the server knows.")
    api_key: str = Field("", description="Bearer token, if the server needs one.")
    timeout_s: float = Field(30.0, gt=0, le=600, description="Longest wait for one answer.")
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature: "
                               "lower keeps drafts closer to the catalog wording.")


class TwitchChatConfig(_Section):
    """Reading a Twitch channel's chat (IRC with IRCv3 tags)."""

    channel: str = Field("", description="Channel to join (without #); empty = off.")
    nick: str = Field("justinfan12345", description="Login; justinfan... reads anonymously.")
    token: str = Field("", description="oauth:... token, if the nick needs one.")
    url: str = Field("ircs://irc.chat.twitch.tv:6697",
                     description="irc://, ircs:// (TLS) or wss:// (WebSocket) server address.")


class YouTubeChatConfig(_Section):
    """Polling a YouTube live chat through the Data API (liveChatMessages.list)."""

    live_chat_id: str = Field("", description="The broadcast's liveChatId; empty = off.")
    api_key: str = Field("", description="A YouTube Data API key.")
    base_url: str = Field("https://www.googleapis.com/youtube/v3",
                          description="API root (a test or proxy may point elsewhere).")


class ChatConfig(_Section):
    """Live chat: answer confidence, flow control and platform connectors (docs/chat.md)."""

    threshold: float = Field(0.75, ge=0, le=2, description="Lowest answer score spoken; "
                             "below it a question goes to the operator queue.")
    user_interval_s: float = Field(4.0, gt=0, description="One message per user per this "
                                   "many seconds, after a burst of user_burst.")
    user_burst: int = Field(3, ge=1, le=100, description="Messages one viewer may send "
                            "at once before the per-user rate applies.")
    dedupe_window_s: float = Field(20.0, ge=0, description="Identical messages within this "
                                   "window are collapsed into the first.")
    max_age_s: float = Field(45.0, gt=0, description="A reply not started by then is "
                             "dropped (stale).")
    queue_size: int = Field(64, ge=1, le=10_000, description="Replies waiting at most.")
    deflect_interval_s: float = Field(8.0, ge=0, description="At most one neutral "
                                      "(deflecting) line per this many seconds.")
    greeting_interval_s: float = Field(5.0, gt=0, description="At most one greeting or "
                                       "thanks per this many seconds.")
    twitch: TwitchChatConfig = TwitchChatConfig()
    youtube: YouTubeChatConfig = YouTubeChatConfig()


class Config(_Section):
    """The whole of livetwin.yaml."""

    clone: CloneConfig = CloneConfig()
    tts: TTSConfig = TTSConfig()
    render: RenderConfig = RenderConfig()
    gestures: GesturesConfig = GesturesConfig()
    server: ServerConfig = ServerConfig()
    live: LiveConfig = LiveConfig()
    output: OutputConfig = OutputConfig()
    show: ShowConfig = ShowConfig()
    store: StoreConfig = StoreConfig()
    llm: LLMConfig = LLMConfig()
    chat: ChatConfig = ChatConfig()


def home_dir() -> Path:
    """Where livetwin keeps config, token, database, caches and logs."""
    env = os.environ.get("LIVETWIN_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME))


def validation_message(exc: ValidationError, text: str, path: Path, unknown: str) -> str:
    """One sentence for the first problem pydantic found in the YAML file `path` (whose
    text is `text`): the file and line, the dotted key, and what is wrong. `unknown`
    names what an unrecognised key is ("setting", "field")."""
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    line = _line_of(text, loc)
    where = f"{path}:{line}" if line else str(path)
    key = ".".join(str(p) for p in loc)
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown {unknown} '{key}'; check its spelling."
    return f"{where}: '{key}': {err['msg']}."


def _line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the key at `loc` in YAML `text`, when it can be found."""
    try:
        node: Any = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def load_config(path: Path | None) -> Config:
    """Load and validate livetwin.yaml; defaults when `path` is None."""
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML; fix the syntax there.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections.")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, text, path, "setting")) from None
