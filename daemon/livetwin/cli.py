"""The `livetwin` command line. Errors are one clear line on stderr: exit 2 for bad input,
1 for an internal failure; `--debug` shows tracebacks."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from livetwin import __version__
from livetwin.errors import InputError, LivetwinError

out = Console()
err = Console(stderr=True, soft_wrap=True)  # one message = one line, whatever the width

CONSENT_HELP = """consent file (YAML), for example:
  subject: Jane Doe
  statement: I, Jane Doe, agree that livetwin clones my face and voice for my shop's
    livestreams.
  date: 2026-11-24
  contact: jane@example.org"""


class _ArgParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """Bad arguments: one line and exit 2 (argparse's convention too)."""
        err.print(f"[red]error:[/] {message}; see `{self.prog} --help`.", highlight=False)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """All commands and their options."""
    p = _ArgParser(prog="livetwin", description="A real-time, lip-synced twin of a "
                   "livestreamer, cloned from one minute of video.")
    p.add_argument("--version", action="version", version=f"livetwin {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.add_argument("--config", type=Path, help="livetwin.yaml")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgParser)

    c = sub.add_parser("clone", help="clone a person from a video into an avatar bundle",
                       epilog=CONSENT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("video", type=Path, help="about one minute of you speaking to the camera")
    c.add_argument("--name", required=True, help="bundle name (letters, digits, - and _)")
    c.add_argument("--consent", type=Path, help="the person's consent record (required)")
    c.add_argument("--gestures", type=Path, help="gesture clips: id -> start/end seconds")
    c.add_argument("--out", type=Path, default=Path("avatars"), help="folder for NAME.twin")
    c.add_argument("--force", action="store_true", help="replace an existing bundle")
    c.set_defaults(func=cmd_clone)

    d = sub.add_parser("doctor", help="check the environment, or verify an avatar bundle",
                       description="Check Python, packages, codecs, the voice, the label "
                       "font, the disk, the livetwin home, the daemon's API port and OBS's "
                       "port, and say "
                       "what to do for each problem. Exit code: 0 = nothing failed, 1 = a "
                       "check failed, 2 = the avatar bundle given is damaged.")
    d.add_argument("avatar", nargs="?", help="avatar bundle to verify")
    d.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                   help="livetwin.yaml (ports to check)")
    d.add_argument("--json", action="store_true", help="print the checks as JSON")
    d.set_defaults(func=cmd_doctor)

    b = sub.add_parser("bench", help="measure the performance figures")
    b.add_argument("--json", action="store_true", help="print JSON only")
    b.add_argument("--only", action="append", choices=["clone", "render", "speech", "lipsync",
                                                           "redub", "live", "gestures",
                                                           "faults"],
                   help="run only these benchmarks")
    b.add_argument("--video", action="append", type=Path,
                   help="use these videos instead of the shared test clips")
    b.set_defaults(func=cmd_bench)

    s = sub.add_parser("say", help="render the twin saying a text (or a recording) to MP4")
    s.add_argument("avatar", help="avatar bundle (NAME.twin folder, or NAME in ./avatars)")
    s.add_argument("text", nargs="?", help="what to say (or give --audio)")
    s.add_argument("--audio", type=Path, help="drive the mouth with this speech recording")
    s.add_argument("--out", type=Path, required=True, help="output file (.mp4)")
    s.add_argument("--voice", help="BACKEND:VOICE, e.g. espeak:en-us+f3 (default: config)")
    s.add_argument("--lang", default="en", help="language of TEXT: en, zh or de")
    s.add_argument("--size", help="output WIDTHxHEIGHT (default: config render.size, "
                   "1280x720)")
    s.add_argument("--fps", type=int, help="output frame rate (default: config render.fps, 25)")
    s.add_argument("--label", default=None, help='AI-disclosure label text, e.g. "AI生成" '
                   '(default: config render.label, "AI-generated host")')
    s.add_argument("--label-position",
                   choices=["top-left", "top-right", "bottom-left", "bottom-right"],
                   help="corner of the label (default: config render.label_position)")
    s.add_argument("--label-font", type=Path, metavar="FILE",
                   help="font file (.ttf/.ttc/.otf) for the label (default: config "
                   "render.label_font, else DejaVu Sans or a system font with the characters)")
    s.add_argument("--no-label", action="store_true",
                   help="turn the visible AI-disclosure label OFF (logged)")
    s.add_argument("--background", help="canvas colour #RRGGBB (default: config "
                   "render.background, #000000)")
    s.add_argument("--background-image", type=Path, metavar="FILE",
                   help="image shown where the avatar does not cover the canvas (default: "
                   "config render.background_image)")
    s.add_argument("--no-gestures", action="store_true",
                   help="no gestures (default: config gestures.enabled, on)")
    s.add_argument("--gesture-density", type=float, metavar="0..1",
                   help="how many optional gestures (beats, nods): 0 = only those the words "
                   "ask for, 1 = about one per 2 s (default: config gestures.density, 0.5)")
    s.set_defaults(func=cmd_say)

    v = sub.add_parser("serve", help="run the live daemon: the twin, its output and the API")
    v.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="livetwin.yaml")
    v.add_argument("--avatar", default="demo",
                   help="avatar bundle (default: demo, the embedded demo avatar)")
    v.add_argument("--catalog", type=Path, metavar="CATALOG.yaml", help="products to sell")
    v.add_argument("--host", help="address of the API (default: config server.host, "
                   "127.0.0.1)")
    v.add_argument("--port", type=int, help="port of the API (default: config server.port, "
                   "8765; 0: any free port)")
    v.add_argument("--supervise", action="store_true",
                   help="run the daemon as a child process and restart it when it crashes "
                   "(docs/reliability.md)")
    v.add_argument("--no-standby", dest="standby_spare", action="store_false",
                   help="with --supervise: restart cold instead of keeping a loaded spare "
                   "daemon that takes over in about a second (saves ~600 MB of memory)")
    v.add_argument("--standby", action="store_true", help=argparse.SUPPRESS)  # the spare
    v.set_defaults(func=cmd_serve)

    m = sub.add_parser("demo", help="run the whole show on embedded defaults: the demo "
                       "avatar, a demo shop and a simulated audience")
    m.add_argument("--minutes", type=float, help="stop after this many minutes (default: "
                   "run until Ctrl-C)")
    m.add_argument("--avatar", default="demo", help="a cloned avatar instead of the "
                   "embedded demo one")
    m.add_argument("--out", type=Path, default=Path("demo.mp4"),
                   help="where the recording goes (default: demo.mp4)")
    m.add_argument("--port", type=int, help="API/dashboard port (default: config, 8765)")
    m.add_argument("--chat-rate", type=float, metavar="N", help="a busy audience: N chat "
                   "events a second (default: a quiet shop, one every few seconds)")
    m.set_defaults(func=cmd_demo)

    from livetwin import cli_gestures, cli_show

    cli_show.register(sub)  # products, scripts
    cli_gestures.register(sub)  # gestures
    return p


class RichProgress:
    """Clone progress as rich bars on stderr: one bar per step."""

    def __init__(self, progress: Progress) -> None:
        self._p = progress
        self._task: TaskID | None = None

    def step(self, name: str, total: float | None = None) -> None:
        if self._task is not None:
            t = self._p.tasks[self._task]
            self._p.update(self._task, completed=t.total or 1, total=t.total or 1)
        self._task = self._p.add_task(name, total=total)

    def advance(self, amount: float = 1.0) -> None:
        if self._task is not None:
            self._p.advance(self._task, amount)

    def finish(self) -> None:
        self.step("done", 1)
        assert self._task is not None
        self._p.update(self._task, completed=1)


@contextlib.contextmanager
def _native_logs_hidden(debug: bool) -> Iterator[Console]:
    """mediapipe's C++ code (TFLite, absl) logs straight to file descriptor 2; send that to
    /dev/null and yield a console on the real stderr for the progress bars (not with
    --debug)."""
    if debug:
        yield err
        return
    sys.stderr.flush()
    saved = os.dup(2)
    real = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield Console(file=real, soft_wrap=True)
    finally:
        real.close()
        os.dup2(saved, 2)
        os.close(saved)


_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def cmd_clone(args: argparse.Namespace) -> int:
    """Clone a video into NAME.twin."""
    if not args.name or not set(args.name) <= _NAME_OK or len(args.name) > 64:
        raise InputError(f"--name '{args.name}' may only use letters, digits, '-' and '_' "
                         "(at most 64).")
    from livetwin.avatar.clone import clone
    from livetwin.avatar.report import rows_for_table
    from livetwin.config import load_config

    cfg = load_config(args.config).clone
    columns = (TextColumn("{task.description:<34}"), BarColumn(), TextColumn(
        "{task.percentage:>3.0f}%"), TimeElapsedColumn())
    with _native_logs_hidden(args.debug) as console, Progress(
            *columns, console=console, transient=False) as bar:
        prog = RichProgress(bar)
        result = clone(args.video, args.name, args.consent, out_dir=args.out,
                       gestures_path=args.gestures, cfg=cfg, progress=prog, force=args.force)
        prog.finish()
    table = Table(title=f"{result.path}", show_header=True)
    table.add_column("quality")
    table.add_column("value", justify="right")
    for k, v in rows_for_table(result.manifest["quality"]):
        table.add_row(k, v)
    pm = result.manifest.get("person_model") or {}
    for k in ("val_r", "energy_r", "ridge_r"):
        if k in pm:
            table.add_row(f"person_model.{k}", f"{pm[k]:.3f}")
    out.print(table)
    for w in result.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    report = result.path / "report.png"
    out.print(f"avatar written to {result.path} in {result.seconds:.1f} s"
              + (f"; report: {report}" if report.is_file() else ""), highlight=False)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Verify a bundle, or check the environment."""
    if args.avatar:
        from livetwin.avatar import bundle

        check = bundle.verify(bundle.resolve(args.avatar))
        if check.ok:
            n = len(check.manifest.get("components", {}))
            out.print(f"{check.path}: ok ({n} components, hashes match)", highlight=False)
            return 0
        for p in check.problems:
            err.print(f"[red]problem:[/] {check.path}: {p}", highlight=False)
        err.print("the bundle is damaged or was modified; clone it again from the source "
                  "video.")
        return 2
    from livetwin.config import load_config
    from livetwin.doctor import as_json, environment_checks

    with _native_logs_hidden(args.debug):
        checks = environment_checks(load_config(args.config))
    if args.json:
        print(as_json(checks))
    else:
        marks = {"ok": "[green]ok[/]  ", "info": "[cyan]info[/]", "fail": "[red]FAIL[/]"}
        for c in checks:
            out.print(f"{marks[c.status]} {c.name}: {c.detail}", highlight=False,
                      soft_wrap=True)
            if c.fix:
                out.print(f"       -> {c.fix}", highlight=False, soft_wrap=True)
        failed = [c.name for c in checks if not c.ok]
        out.print(f"{len(failed)} problem(s): {', '.join(failed)}" if failed else
                  "no problems found", highlight=False)
    return 0 if all(c.ok for c in checks) else 1


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmarks and print their figures."""
    from livetwin.bench import run_benchmarks

    for v in args.video or []:
        if not v.is_file():
            raise InputError(f"--video {v}: no such file.")
    with _native_logs_hidden(args.debug) as console:
        figures = run_benchmarks(only=args.only, log=None if args.json else console.print,
                                 videos=args.video)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        out.print_json(json.dumps(figures))
    return 0


def cmd_say(args: argparse.Namespace) -> int:
    """Render the twin saying TEXT (or --audio) into an MP4."""
    from livetwin.config import load_config
    from livetwin.render.canvas import parse_colour
    from livetwin.render.say import SayRequest, parse_size, say

    if args.no_label and args.label:
        raise InputError("--no-label and --label contradict each other; give one.")
    if args.gesture_density is not None and not 0 <= args.gesture_density <= 1:
        raise InputError(f"--gesture-density {args.gesture_density}: give a number from 0 "
                         "to 1.")
    cfg = load_config(args.config)
    rc = cfg.render  # the command line overrides the config's render section
    try:
        background = parse_colour(args.background or rc.background)
    except ValueError as exc:
        raise InputError(f"--background: {exc}.") from None
    if args.no_label:
        label = None
    elif args.label:
        label = args.label
    else:  # render.label_enabled: false is an explicit choice too (warned below)
        label = rc.label if rc.label_enabled else None
    req = SayRequest(out=args.out, text=args.text, audio=args.audio, voice=args.voice,
                     lang=args.lang, size=parse_size(args.size or rc.size),
                     fps=rc.fps if args.fps is None else args.fps,
                     label=label, label_position=args.label_position or rc.label_position,
                     background=background,
                     background_image=args.background_image or rc.background_image,
                     label_font=args.label_font or rc.label_font,
                     gestures=cfg.gestures.enabled and not args.no_gestures,
                     gesture_density=(cfg.gestures.density if args.gesture_density is None
                                      else args.gesture_density))
    if label is None:
        why = "--no-label" if args.no_label else "render.label_enabled: false"
        err.print(f"[yellow]warning:[/] the visible AI-disclosure label is OFF ({why}); "
                  "viewers must be told another way that this host is AI-generated.",
                  highlight=False)
    columns = (TextColumn("{task.description:<10}"), BarColumn(), TextColumn(
        "{task.completed}/{task.total} frames"), TimeElapsedColumn())
    with _native_logs_hidden(args.debug) as console, Progress(
            *columns, console=console, transient=False) as bar:
        task = bar.add_task("rendering", total=None)

        def progress(done: int, total: int) -> None:
            if done == 1 or done == total or done % 10 == 0:
                bar.update(task, completed=done, total=total)

        result = say(args.avatar, req, cfg, progress=progress)
    out.print(f"wrote {result.path}: {result.frames} frames, {result.duration_s:.2f} s at "
              f"{result.size[0]}x{result.size[1]} {result.fps} fps ({result.sentences} "
              f"sentence(s), mouth from {result.mouth_source}); rendered at "
              f"{result.render_fps:.1f} frames/s = {result.realtime_factor:.2f}x real time "
              f"(speech synthesis/decoding {result.tts_s:.2f} s)", highlight=False)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the live daemon until Ctrl-C / SIGTERM."""
    from livetwin.config import load_config
    from livetwin.server.serve import ServeOptions, run

    if args.port is not None and not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: give a port from 1 to 65535 (0: any free one).")
    cfg = load_config(args.config)
    if args.supervise:  # the config is checked above: a bad one exits 2 once, here
        from livetwin.runtime.supervise import STANDBY_AFTER_S, Supervisor, child_command

        after = os.environ.get("LIVETWIN_STANDBY_AFTER_S", str(STANDBY_AFTER_S))
        try:
            after_s = float(after)
        except ValueError:
            raise InputError(f"LIVETWIN_STANDBY_AFTER_S={after!r}: give seconds, e.g. "
                             f"{STANDBY_AFTER_S:g}.") from None
        serve_args = _serve_args(args)
        spare = child_command([*serve_args, "--standby"]) if args.standby_spare else None
        return Supervisor(child_command(serve_args), standby_command=spare,
                          standby_after_s=after_s).run()
    opts = ServeOptions(avatar=args.avatar, catalog=args.catalog, host=args.host,
                        port=args.port)
    rc = run(cfg, opts, announce=lambda text: out.print(text, highlight=False, soft_wrap=True),
             quiet=lambda: _native_logs_hidden(args.debug),
             standby=_wait_to_take_over if args.standby else None)
    err.print("livetwin serve: stopped.")
    # Everything is stopped, flushed and closed here; the interpreter's own teardown of
    # torch, mediapipe and onnxruntime would add 1-2 s to a SIGTERM, so skip it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def _wait_to_take_over() -> None:
    """The spare daemon's wait: the supervisor writes "go" on its stdin when the running
    daemon died; end of input means it is not needed (exit quietly)."""
    err.print("livetwin serve: loaded and standing by (takes over when the running daemon "
              "stops).", highlight=False)
    if sys.stdin.readline().strip() != "go":
        sys.stdout.flush()
        os._exit(0)
    err.print("livetwin serve: taking over.", highlight=False)


def _serve_args(args: argparse.Namespace) -> list[str]:
    """The `livetwin serve` arguments of `args`, without --supervise (for the child)."""
    out = ["--debug"] if args.debug else []
    out += ["serve", "--avatar", args.avatar]
    if args.config is not None:
        out += ["--config", str(args.config)]
    for flag, value in (("--catalog", args.catalog), ("--host", args.host),
                        ("--port", args.port)):
        if value is not None:
            out += [flag, str(value)]
    return out


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo show (runtime/demo.py) until --minutes or Ctrl-C."""
    from livetwin.config import load_config
    from livetwin.runtime.demo import MAX_CHAT_RATE, run_demo

    if args.minutes is not None and not 0 < args.minutes <= 24 * 60:
        raise InputError(f"--minutes {args.minutes:g}: give a duration from 0 to 1440.")
    if args.port is not None and not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: give a port from 1 to 65535 (0: any free one).")
    if args.out.suffix.lower() != ".mp4":
        raise InputError(f"--out {args.out}: the recording is an MP4; give a name ending "
                         "in .mp4.")
    if args.chat_rate is not None and not 0 < args.chat_rate <= MAX_CHAT_RATE:
        raise InputError(f"--chat-rate {args.chat_rate:g}: give a rate from 0 to "
                         f"{MAX_CHAT_RATE:g} chat events a second.")
    cfg = load_config(args.config)
    rc = run_demo(cfg, minutes=args.minutes, avatar=args.avatar, out=args.out,
                  port=args.port, chat_rate=args.chat_rate,
                  announce=lambda text: out.print(text, highlight=False, soft_wrap=True),
                  quiet=lambda: _native_logs_hidden(args.debug))
    err.print("livetwin demo: stopped.")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM into an exception so clean-up (no half bundle) runs as for Ctrl-C.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `livetwin` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except LivetwinError as exc:
        if args.debug:
            raise
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted; nothing was left half-written.")
        return 130
    except Exception as exc:
        if args.debug:
            raise
        err.print(f"[red]internal error:[/] {type(exc).__name__}: {exc} (run with --debug "
                  "for details, and please report it).", highlight=False, soft_wrap=True)
        return 1




if __name__ == "__main__":
    sys.exit(main())
