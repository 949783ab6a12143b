"""IPA phonemes from the espeak-ng program (a separate process: espeak-ng is GPL, our code only calls it).

Piper voices were trained on espeak-ng IPA with the clause punctuation kept ("həlˈoʊ, wˈɜːld."). The
program prints one line per clause and drops the punctuation, so it is put back from the text: when
the text's clause marks and the printed lines agree in number they are zipped, else lines are joined
with commas and the text's final mark ends the chunk.
"""

from __future__ import annotations

import re
import subprocess
import unicodedata

_CLAUSE_MARK = re.compile(r"[,.;:!?…]+(?=\s|$)")
_LANGUAGE_SWITCH = re.compile(r"\([a-z]{2,3}(-[a-z0-9]+)?\)")


class PhonemizerError(RuntimeError):
    pass


class Espeak:
    def __init__(self, program: str = "espeak-ng", voice: str = "en-us", timeout_s: float = 30.0) -> None:
        self.program = program
        self.voice = voice
        self.timeout_s = timeout_s

    def ipa_lines(self, text: str) -> list[str]:
        """One IPA line per clause espeak-ng found (text through stdin: never parsed as options)."""
        try:
            proc = subprocess.run([self.program, "-q", "--ipa", "-v", self.voice], input=text, capture_output=True,
                                  text=True, timeout=self.timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PhonemizerError(f"{self.program}: {exc}") from exc
        if proc.returncode != 0:
            raise PhonemizerError(f"{self.program} exited {proc.returncode}: {proc.stderr.strip()[:200]}")
        lines = (_LANGUAGE_SWITCH.sub("", line).strip() for line in proc.stdout.splitlines())
        return [line for line in lines if line]

    def phonemes(self, text: str) -> str:
        """Piper-style phoneme string of one chunk: clauses with their punctuation, NFD-decomposed."""
        lines = self.ipa_lines(text)
        if not lines:
            return ""
        marks = [m.group(0)[0].replace("…", ".") for m in _CLAUSE_MARK.finditer(text)]
        if len(marks) == len(lines) - 1:
            marks.append(".")
        if len(marks) != len(lines):
            final = marks[-1] if marks and text.rstrip()[-1:] in ".!?" else "."
            marks = [","] * (len(lines) - 1) + [final]
        parts = [f"{line}{mark}" for line, mark in zip(lines, marks, strict=True)]
        return unicodedata.normalize("NFD", " ".join(parts))
