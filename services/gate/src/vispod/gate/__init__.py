"""vispod gate: evaluation, reports and evaluation-gated adapter promotion."""
