"""`python -m vispod.metrics`: run the metrics service (gRPC 8081, metrics HTTP 8082, Kafka consumer)."""

from vispod.metrics.service import main

if __name__ == "__main__":
    main()
