"""`python -m vispod.generator`: the generator service (gRPC 8081, metrics 8082, Kafka consumers)."""

from vispod.generator.service import main

if __name__ == "__main__":
    main()
