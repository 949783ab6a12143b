"""`python -m vispod.voice`: the voice service (gRPC 8081, metrics 8082, DialogueGenerated consumer)."""

from vispod.voice.service import main

if __name__ == "__main__":
    main()
