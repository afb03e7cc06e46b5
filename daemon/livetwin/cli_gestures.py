"""The `livetwin gestures` commands (registered by cli.build_parser): `list` the library,
`plan` the gestures for a text, and `guide` the streamer through recording them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from livetwin.errors import InputError

PLAN_EPILOG = """Word timings: without --voice they are estimated from the text (about 4
syllables per second; a Chinese character is a syllable; pauses at punctuation), so the
times are those of a typical TTS, not of a particular voice. With --voice espeak[:VOICE]
the text is synthesised with espeak-ng (about 40 ms a sentence) and its real word timings
are used."""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this part's sub-commands to the `livetwin` parser."""
    g = sub.add_parser("gestures", help="the gesture library, gesture plans, recording guide")
    gs = g.add_subparsers(dest="gestures_command", metavar="COMMAND",
                          parser_class=type(g))
    g.set_defaults(func=lambda args: _usage(g))

    ls = gs.add_parser("list", help="list the gesture library")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.add_argument("--category", help="only this category (deictic, emblem, beat, head, "
                    "face, body, cue)")
    ls.set_defaults(func=cmd_list)

    p = gs.add_parser("plan", help="plan the gestures for a text",
                      epilog=PLAN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("text", help="what the twin says")
    p.add_argument("--lang", default="en", help="language of TEXT: en, zh or de")
    p.add_argument("--json", action="store_true", help="print the cues as JSON")
    p.add_argument("--intent", action="append", default=[], metavar="INTENT",
                   help="an intent of the line (e.g. follow, cart), repeatable")
    p.add_argument("--density", type=float, default=None,
                   help="0..1: how many optional gestures (default 0.5); follow/cart "
                   "gestures are always placed")
    p.add_argument("--avatar", help="plan only what this avatar can render (its recorded "
                   "clips plus head motions and on-screen cues); default: every gesture")
    p.add_argument("--voice", help="espeak[:VOICE]: real word timings from espeak-ng "
                   "(default: estimated, see below)")
    p.set_defaults(func=cmd_plan)

    gd = gs.add_parser("guide", help="print the shot list for recording gesture clips")
    gd.add_argument("--level", choices=["essential", "recommended", "all"],
                    default="recommended", help="which gestures (default: recommended)")
    gd.add_argument("--only", help="exactly these gesture ids, comma-separated, in order")
    gd.add_argument("--lead-in", type=float, default=60.0, metavar="SECONDS",
                    help="seconds of natural talk before the gestures (default 60)")
    gd.add_argument("--page", type=Path, metavar="FILE", help="also write the guide as a "
                    "page (.md or .html)")
    gd.add_argument("--sidecar", type=Path, metavar="FILE", help="also write the "
                    "`clone --gestures` file with the clip times (e.g. gestures.yaml)")
    gd.set_defaults(func=cmd_guide)

    mk = gs.add_parser("marks", help="suggest gesture clip times from the hands in a "
                       "recorded take (mediapipe hands)")
    mk.add_argument("video", type=Path, help="the take recorded along the guide")
    mk.add_argument("--guide", type=Path, metavar="FILE", help="the sidecar the guide wrote "
                    "(gesture id -> start/end); without it every hand movement is listed")
    mk.add_argument("--out", type=Path, required=True, metavar="FILE",
                    help="the `clone --gestures` file to write")
    mk.set_defaults(func=cmd_marks)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _print(text: str) -> None:
    from livetwin.cli import out

    out.print(text, highlight=False, soft_wrap=True)


def cmd_list(args: argparse.Namespace) -> int:
    """Print the library."""
    from rich.table import Table

    from livetwin.cli import out
    from livetwin.gesture.library import default_library

    gestures = list(default_library())
    if args.category:
        gestures = [g for g in gestures if g.category == args.category]
        if not gestures:
            raise InputError(f"--category {args.category!r}: no such category; use deictic, "
                             "emblem, beat, head, face, body or cue.")
    if args.json:
        print(json.dumps([g.summary() for g in gestures], ensure_ascii=False, indent=1))
        return 0
    table = Table(title=f"{len(gestures)} gestures")
    for col in ("id", "category", "direction", "intents", "renders without a clip"):
        table.add_column(col)
    for g in gestures:
        table.add_row(g.id, g.category, g.direction or "", ", ".join(g.intents),
                      g.procedural or "")
    out.print(table)
    return 0


def _espeak_words(text: str, lang: str, voice: str) -> tuple[Any, ...]:
    """Real word timings from espeak-ng, the sentences laid end to end."""
    import asyncio

    from livetwin.events import WordTiming
    from livetwin.speech.base import VoiceSettings
    from livetwin.speech.espeak import EspeakTTS

    async def run() -> list[WordTiming]:
        tts = EspeakTTS()
        words: list[WordTiming] = []
        offset = 0.0
        try:
            async for s in tts.stream(text, lang=lang, settings=VoiceSettings(voice=voice)):
                words += [WordTiming(w.word, w.start + offset, w.end + offset)
                          for w in s.words]
                offset += s.duration
        finally:
            await tts.aclose()
        return words

    return tuple(asyncio.run(run()))


def cmd_plan(args: argparse.Namespace) -> int:
    """Plan and print the gesture cues for TEXT."""
    from livetwin.gesture.avatar import renderable
    from livetwin.gesture.library import default_library
    from livetwin.gesture.planner import DEFAULT_DENSITY, GesturePlanner
    from livetwin.speech.normalize import canonical_lang, normalize

    lang = canonical_lang(args.lang)
    density = DEFAULT_DENSITY if args.density is None else args.density
    if not 0.0 <= density <= 1.0:
        raise InputError(f"--density {density}: give a number from 0 to 1.")
    lib = default_library()
    unknown = sorted(set(args.intent) - {i for g in lib for i in g.intents})
    if unknown:
        raise InputError(f"--intent {unknown[0]!r} is not an intent of the gesture library; "
                         "see `livetwin gestures list`.")
    available = None
    if args.avatar:
        from livetwin.render.say import resolve_avatar

        available = renderable(resolve_avatar(args.avatar), lib)
    spoken = normalize(args.text, lang)
    if not spoken:
        raise InputError("TEXT has nothing to say once markup, emoji and symbols are removed; "
                         "give some words.")
    words = None
    if args.voice:
        backend, _, voice = args.voice.partition(":")
        if backend != "espeak":
            raise InputError(f"--voice {args.voice!r}: only espeak[:VOICE] gives timings "
                             "here; leave --voice out to estimate them.")
        words = _espeak_words(spoken, lang, voice)
    planner = GesturePlanner(lib, available=available, density=density)
    plan = planner.plan(spoken, lang=lang, words=words, intents=args.intent)
    if args.json:
        print(json.dumps([c.as_json() for c in plan.cues], ensure_ascii=False, indent=1))
        return 0
    _print(f"{len(plan.cues)} gesture(s), word timings {plan.timings}"
           f"{' (espeak-ng)' if words else ' from the text'}; intents: "
           f"{', '.join(sorted(plan.intents)) or 'none'}")
    for c in plan.cues:
        q = c.cue
        _print(f"  {q.start:6.2f}-{q.end:5.2f} s  stroke {q.stroke:5.2f} s on "
               f"'{q.word}'  {q.gesture} ({c.reason}: {c.trigger})")
    return 0


def cmd_guide(args: argparse.Namespace) -> int:
    """Print the recording guide; write it as a page and the clone sidecar if asked."""
    import yaml

    from livetwin.gesture.guide import make_guide

    if not 0 <= args.lead_in <= 600:
        raise InputError(f"--lead-in {args.lead_in}: give 0 to 600 seconds.")
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    try:
        guide = make_guide(level=args.level, only=only, lead_in_s=args.lead_in)
    except KeyError as exc:
        raise InputError(f"--only: {exc.args[0]!r} is not a gesture id; see `livetwin "
                         "gestures list`.") from None
    if any(s.gesture.record == "never" for s in guide.shots):
        raise InputError("--only: on-screen cues are drawn by livetwin, not recorded; leave "
                         "them out.")
    page = guide.markdown()
    print(page)
    for path, text in ((args.page, guide.html() if args.page and args.page.suffix.lower()
                        in (".html", ".htm") else page),
                       (args.sidecar, yaml.safe_dump(guide.sidecar(), sort_keys=False))):
        if path is None:
            continue
        if not path.parent.is_dir():
            raise InputError(f"{path}: the folder {path.parent} does not exist.")
        path.write_text(text, encoding="utf-8")
        from livetwin.cli import err

        err.print(f"wrote {path}", highlight=False)
    return 0


def cmd_marks(args: argparse.Namespace) -> int:
    """Suggest clip times from the take's hand movements and write the clone sidecar."""
    import yaml

    from livetwin.avatar.gesture_clips import load_sidecar
    from livetwin.cli import _native_logs_hidden, err
    from livetwin.gesture.marks import hand_activity, suggest

    guide = None
    if args.guide:
        guide = {s.id: {"start": s.start, "end": s.end} for s in load_sidecar(args.guide)}
    if not args.out.parent.is_dir():
        raise InputError(f"--out {args.out}: the folder {args.out.parent} does not exist.")
    with _native_logs_hidden(args.debug):
        times, active = hand_activity(args.video)
    marks = suggest(times, active, guide)
    if not marks:
        raise InputError(f"{args.video}: no hand movement found; record the gestures with "
                         "your hands in the picture, or give --guide.")
    data = {"gestures": {m.id: {"start": m.start, "end": m.end} for m in marks}}
    args.out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    for m in marks:
        how = "from the hands" if m.found else "guide's times (no hand movement seen)"
        _print(f"{m.id:24s} {m.start:7.2f}-{m.end:7.2f} s  {how}")
    err.print(f"wrote {args.out}; check it, then: livetwin clone {args.video} --name NAME "
              f"--consent CONSENT.yaml --gestures {args.out}", highlight=False)
    return 0
