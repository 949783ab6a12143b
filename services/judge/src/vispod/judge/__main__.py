"""`python -m vispod.judge`: the judge service (gRPC 8081, metrics 8082, Kafka pairing consumer)."""

from vispod.judge.service import main

if __name__ == "__main__":
    main()
