"""`python -m vispod.generator`: the generator service (gRPC 8081, metrics 8082, Kafka consumers)."""

from vispod.common.settings import load_settings
from vispod.generator.service import main
from vispod.generator.settings import GeneratorSettings

if __name__ == "__main__":
    main(load_settings(GeneratorSettings))
