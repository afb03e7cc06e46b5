"""Quality checks on a source video, run before any heavy work.

Each check either raises MediaError (one sentence: what is wrong, what to do) or returns
warnings for the clone report. Thresholds are measured on the clips in ../shared/media.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import av
import cv2
import numpy as np
import numpy.typing as npt

from livetwin.avatar.ingest import MediaInfo, _open, _upright, shrink
from livetwin.config import CloneConfig
from livetwin.errors import MediaError

SAMPLES = 16
DETECT_SIDE = 640
# Face-detection box width / interocular distance, measured on the shared clips (1.69-1.72).
BOX_PER_IOD = 1.7
DARK_ERROR, DARK_WARN = 35.0, 70.0  # mean luma of the face box, 0..255
# Laplacian variance of the face at 64 px width: coarse enough that codec block noise does
# not count as detail. Shared clips: 112-2200; Gaussian blur sigma 3/4/5/6 px on the 256 px
# clip, H.264: 67/37/24/17.
SHARP_SIDE = 64
BLUR_ERROR, BLUR_WARN = 30.0, 80.0
SPEECH_DBFS = -45.0  # quieter than this is no usable speech
SILENT_TRACK_DBFS = -55.0


@dataclass
class FaceSample:
    """What face detection saw on one sampled frame."""

    time: float
    faces: int
    box: tuple[int, int, int, int] | None = None  # x, y, w, h in source pixels (largest)
    luma: float = 0.0
    sharpness: float = 0.0
    touches_edge: bool = False


@dataclass
class QualityReport:
    """Warnings and numbers gathered by the checks."""

    warnings: list[str] = field(default_factory=list)
    numbers: dict[str, float] = field(default_factory=dict)


def check_duration(info: MediaInfo, cfg: CloneConfig, report: QualityReport) -> None:
    """Refuse clips that are too short; warn when below the length that clones well."""
    report.numbers["duration_s"] = round(info.duration, 2)
    if info.duration < cfg.min_duration_s:
        raise MediaError(
            f"{info.path.name} is {info.duration:.1f} s long; clone needs at least "
            f"{cfg.min_duration_s:.0f} s (about one minute works best): record a longer video."
        )
    if info.duration < cfg.good_duration_s:
        report.warnings.append(
            f"the video is {info.duration:.0f} s long; with less than "
            f"{cfg.good_duration_s:.0f} s the twin has fewer mouth shapes and idle moments."
        )


class FaceDetector:
    """Counts faces and measures the largest one (mediapipe full-range face detection)."""

    def __init__(self) -> None:
        import mediapipe as mp

        self._det = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=0.5
        )

    def __call__(self, rgb: npt.NDArray[np.uint8], t: float, scale: float = 1.0
                 ) -> FaceSample:
        """Detect on `rgb`; `scale` maps the image back to source pixels."""
        s = _detect(self._det, rgb, t)
        if s.box and scale != 1.0:
            s.box = tuple(round(v / scale) for v in s.box)  # type: ignore[assignment]
        return s

    def close(self) -> None:
        self._det.close()


def keyframe_faces(info: MediaInfo, n: int = SAMPLES) -> list[FaceSample]:
    """Detect faces on up to `n` keyframes: demuxing finds them without decoding and a
    keyframe decodes alone, so obviously unusable videos are refused before tracking."""
    detector = FaceDetector()
    samples = []
    with _open(info.path) as container:
        vs = container.streams.video[0]
        try:
            keys = sorted(p.pts for p in container.demux(vs) if p.is_keyframe and p.pts is not None)
        except av.error.FFmpegError:
            keys = []
        tb = float(vs.time_base or 1e-6)
        t0 = keys[0] * tb if keys else 0.0
        for i in sorted(set(np.linspace(0, len(keys) - 1, min(n, len(keys))).astype(int))):
            try:
                container.seek(keys[i], stream=vs, backward=True)
                frame = next(container.decode(vs))
            except (av.error.FFmpegError, StopIteration):
                continue
            rgb = _upright(frame.to_ndarray(format="rgb24"), info.rotation)
            samples.append(detector(rgb, keys[i] * tb - t0))
    detector.close()
    return samples


def _detect(detector: object, rgb: npt.NDArray[np.uint8], t: float) -> FaceSample:
    small, _scale = shrink(rgb, DETECT_SIDE)
    result = detector.process(small)  # type: ignore[attr-defined]
    dets = [d for d in (result.detections or []) if d.score[0] >= 0.5]
    if not dets:
        return FaceSample(t, 0)
    h, w = rgb.shape[:2]
    boxes = []
    for d in dets:
        bb = d.location_data.relative_bounding_box
        boxes.append((bb.xmin * w, bb.ymin * h, bb.width * w, bb.height * h))
    x, y, bw, bh = max(boxes, key=lambda b: b[2] * b[3])
    edge = x < 0 or y < 0 or x + bw > w or y + bh > h
    xi, yi = max(int(x), 0), max(int(y), 0)
    crop = rgb[yi : int(y + bh), xi : int(x + bw)]
    luma, sharp = _luma_sharpness(crop)
    # A second face counts only if it is not tiny next to the main one (posters, screens).
    faces = sum(1 for b in boxes if b[2] * b[3] >= 0.2 * bw * bh)
    return FaceSample(t, faces, (int(x), int(y), int(bw), int(bh)), luma, sharp, edge)


def _luma_sharpness(crop: npt.NDArray[np.uint8]) -> tuple[float, float]:
    if crop.size == 0:
        return 0.0, 0.0
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    side = SHARP_SIDE
    gray = cv2.resize(gray, (side, max(8, round(side * gray.shape[0] / max(gray.shape[1], 1)))),
                      interpolation=cv2.INTER_AREA)
    return float(gray.mean()), float(cv2.Laplacian(gray, cv2.CV_32F).var())


def check_faces(samples: list[FaceSample], cfg: CloneConfig, report: QualityReport) -> None:
    """Judge one face, its size, light and sharpness over the sampled frames."""
    n = max(len(samples), 1)
    with_face = [s for s in samples if s.faces >= 1]
    several = sum(1 for s in samples if s.faces > 1)
    report.numbers["face_found_share"] = round(len(with_face) / n, 2)
    if len(with_face) < 0.5 * n:
        raise MediaError(
            "no face was found in most of the video; film yourself facing the camera, "
            "with your whole face in the picture."
        )
    if several > 0.5 * n:
        raise MediaError(
            "more than one face is visible in most of the video; clone needs a video "
            "of one person alone in the picture."
        )
    if several:
        report.warnings.append(f"a second face is visible in {several} of {n} sampled frames.")
    iod = float(np.median([s.box[2] for s in with_face if s.box])) / BOX_PER_IOD
    report.numbers["face_size_px"] = round(iod, 1)
    if iod < cfg.min_face_px:
        raise MediaError(
            f"the face is too small (about {iod:.0f} px between the eyes, at least "
            f"{cfg.min_face_px:.0f} needed); move closer to the camera or film at a "
            "higher resolution."
        )
    _check_light(with_face, report)
    missing = n - len(with_face) + sum(1 for s in with_face if s.touches_edge)
    if missing > 0.2 * n:
        report.warnings.append(
            f"the face leaves the picture in about {100 * missing / n:.0f}% of the video; "
            "those parts will not be used."
        )


def _check_light(samples: list[FaceSample], report: QualityReport) -> None:
    luma = float(np.median([s.luma for s in samples]))
    sharp = float(np.median([s.sharpness for s in samples]))
    report.numbers["face_luma"] = round(luma, 1)
    report.numbers["face_sharpness"] = round(sharp, 1)
    if luma < DARK_ERROR:
        raise MediaError(
            f"the face is too dark (brightness {luma:.0f}/255); film with more light on "
            "your face."
        )
    if luma < DARK_WARN:
        report.warnings.append(f"the face is dim (brightness {luma:.0f}/255); more light helps.")
    if sharp < BLUR_ERROR:
        raise MediaError(
            "the face is too blurry to clone; film with the camera in focus and steady."
        )
    if sharp < BLUR_WARN:
        report.warnings.append("the face looks soft or blurry; a sharper video clones better.")


def speech_activity(pcm: npt.NDArray[np.float32] | None, rate: int,
                    times: npt.NDArray[np.float64], fps: float) -> npt.NDArray[np.float32]:
    """Voice activity (0/1) per video frame from short-time energy against the noise floor."""
    out = np.zeros(len(times), np.float32)
    if pcm is None or not len(pcm):
        return out
    half = max(int(rate / fps / 2), 1)
    idx = np.clip((times * rate).astype(np.int64), 0, len(pcm) - 1)
    csum = np.concatenate([[0.0], np.cumsum(pcm.astype(np.float64) ** 2)])
    lo, hi = np.clip(idx - half, 0, len(pcm)), np.clip(idx + half, 0, len(pcm))
    rms = np.sqrt((csum[hi] - csum[lo]) / np.maximum(hi - lo, 1))
    db = 20 * np.log10(rms + 1e-9)
    floor = float(np.percentile(db, 10))
    active = (db > max(floor + 12.0, SPEECH_DBFS)).astype(np.float32)
    # Bridge gaps shorter than 0.25 s: pauses between syllables are still speech.
    k = max(int(0.25 * fps), 1)
    return np.clip(np.convolve(active, np.ones(k) / k, mode="same") * k, 0, 1).round().astype(
        np.float32
    )


def check_audio(pcm: npt.NDArray[np.float32] | None, rate: int,
                report: QualityReport) -> bool:
    """Warn when there is no audio or no speech; True when speech is present."""
    if pcm is None or len(pcm) < rate:
        report.warnings.append(
            "the video has no audio, so no person audio-to-mouth model is trained; the twin "
            "lip-syncs from phoneme timings only."
        )
        return False
    frame = int(0.03 * rate)
    n = len(pcm) // frame
    rms = np.sqrt(np.mean(pcm[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
    db = 20 * np.log10(rms + 1e-9)
    loud = float(np.percentile(db, 90))
    floor = float(np.percentile(db, 10))
    voiced_share = float(np.mean(db > max(floor + 12.0, SPEECH_DBFS)))
    report.numbers["audio_level_dbfs"] = round(loud, 1)
    report.numbers["speech_share"] = round(voiced_share, 2)
    if loud < SILENT_TRACK_DBFS or voiced_share < 0.1:
        report.warnings.append(
            "no speech was found in the audio, so no person audio-to-mouth model is trained; "
            "the twin lip-syncs from phoneme timings only."
        )
        return False
    return True
