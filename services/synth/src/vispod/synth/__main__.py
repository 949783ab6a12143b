"""`python -m vispod.synth`: run the synth service (gRPC 8081, metrics 8082, Kafka consumer)."""

from vispod.synth.service import main

if __name__ == "__main__":
    main()
