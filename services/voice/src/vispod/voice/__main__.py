"""`python -m vispod.voice`: the voice service (gRPC 8081, metrics 8082, DialogueGenerated consumer)."""

from vispod.common.settings import load_settings
from vispod.voice.service import main
from vispod.voice.settings import VoiceSettings

if __name__ == "__main__":
    main(load_settings(VoiceSettings))
