"""Prompt-prefix sharing between the llama.cpp engine's sequences.

A request admitted while another one on the same adapter holds a common prompt prefix (the system prompt and
instructions) becomes its follower: it waits until its donor has computed that prefix, then takes a copy of the
donor's KV cache up to the common length and prefills only the rest. The copy is exact, but the prompt is then
computed in other batches than alone, which moves its numbers by float rounding: off where a text must not
depend on what runs beside it.
"""

from __future__ import annotations

from vispod.generator.backends.llamacpp_sequence import Seq

MIN_SHARED_PREFIX = 32  # a shorter common prompt prefix is computed again rather than copied


class PrefixSharing:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def donor_for(self, seq: Seq, active: dict[int, Seq]) -> tuple[Seq | None, int]:
        """The active sequence on the same adapter sharing the longest prompt prefix (at least MIN_SHARED_PREFIX
        tokens; never the whole prompt: its last token must be computed for the first logits)."""
        if not self.enabled:
            return None, 0
        best, best_len = None, 0
        prompt = seq.req.prompt
        for other in active.values():
            if other.donor is not None or other.req.adapter != seq.req.adapter:
                continue
            common = _common_prefix(prompt, other.req.prompt, len(prompt) - 1)
            if common > best_len:
                best, best_len = other, common
        return (best, best_len) if best_len >= MIN_SHARED_PREFIX else (None, 0)

    @staticmethod
    def take(active: dict[int, Seq], ctx) -> None:
        """Followers whose donor has computed the shared prefix copy its KV cache (in the llama.cpp context `ctx`)
        up to there; followers whose donor is gone compute their prompt themselves."""
        for seq in list(active.values()):
            donor = seq.donor
            if donor is None:
                continue
            if active.get(donor.seq_id) is not donor:
                seq.donor, seq.shared = None, 0
            elif donor.n_past >= seq.shared:
                # Streams are separate (kv_unified off): the copy takes the donor's whole stream, then the
                # positions past the shared prefix are dropped.
                ctx.kv_cache_seq_cp(donor.seq_id, seq.seq_id, -1, -1)
                ctx.kv_cache_seq_rm(seq.seq_id, seq.shared, -1)
                seq.n_past = seq.shared
                seq.pending = seq.pending[seq.shared:]
                seq.donor = None


def _common_prefix(a: list[int], b: list[int], limit: int) -> int:
    n = min(len(a), len(b), limit)
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
