"""Writing the finished podcast: 16-bit WAV (soundfile) and Ogg Opus (the opusenc program, with chapters).

Samples arrive in blocks and leave at once, so a long podcast never sits in memory. Chapters follow
the Vorbis-comment convention players read from Ogg files: CHAPTER001=00:01:02.500, CHAPTER001NAME=...
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import TracebackType

import numpy as np

from vispod.voice.audio import SAMPLE_RATE, to_pcm16


class EncodeError(RuntimeError):
    pass


def timestamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def chapter_comments(chapters: list[tuple[str, float]]) -> list[str]:
    out = []
    for i, (title, start) in enumerate(chapters, 1):
        out += [f"CHAPTER{i:03d}={timestamp(start)}", f"CHAPTER{i:03d}NAME={title}"]
    return out


class PodcastWriter:
    """Context manager: `write(block)` float samples in [-1, 1]; both files are complete after exit."""

    def __init__(self, wav_path: Path, opus_path: Path, chapters: list[tuple[str, float]], *, title: str = "",
                 opusenc: str = "opusenc", bitrate_kbps: int = 48, complexity: int = 5) -> None:
        import soundfile as sf  # deferred: libsndfile, only when audio is written

        self.wav = sf.SoundFile(str(wav_path), "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16",
                                format="WAV")
        cmd = [opusenc, "--quiet", "--raw", "--raw-rate", str(SAMPLE_RATE), "--raw-chan", "1", "--raw-bits", "16",
               "--bitrate", str(bitrate_kbps), "--comp", str(complexity),
               "--title", title or "vispod podcast", "--artist", "vispod"]
        for comment in chapter_comments(chapters):
            cmd += ["--comment", comment]
        try:
            self.opus = subprocess.Popen([*cmd, "-", str(opus_path)], stdin=subprocess.PIPE,
                                         stderr=subprocess.PIPE)
        except OSError as exc:
            self.wav.close()
            raise EncodeError(f"{opusenc}: {exc} (install opus-tools)") from exc

    def write(self, block: np.ndarray) -> None:
        self.wav.write(block)
        assert self.opus.stdin is not None
        self.opus.stdin.write(to_pcm16(block))

    def __enter__(self) -> PodcastWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.wav.close()
        assert self.opus.stdin is not None
        self.opus.stdin.close()
        code = self.opus.wait(timeout=120)
        assert self.opus.stderr is not None
        err = self.opus.stderr.read()
        self.opus.stderr.close()
        if code != 0 and exc_type is None:
            raise EncodeError(f"opusenc exited {code}: {err.decode(errors='replace')[:300]}")
