"""`python -m vispod.judge`: the judge service (gRPC 8081, metrics 8082, Kafka pairing consumer)."""

from vispod.common.settings import load_settings
from vispod.judge.service import main
from vispod.judge.settings import JudgeSettings

if __name__ == "__main__":
    main(load_settings(JudgeSettings))
