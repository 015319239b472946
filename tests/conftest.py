"""Test-wide settings: no test reaches AWS, a developer's running local stack, or the internet."""

from __future__ import annotations

import os

# Every AWS call a template function makes in any test is checked against its policy.
pytest_plugins = ["iam_recorder"]

# Dummy credentials and region for moto; an endpoint left over from `make up` must not leak in.
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SECURITY_TOKEN="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled",
    POWERTOOLS_METRICS_NAMESPACE="soundslike-tests",
    POWERTOOLS_DEV="false",
)
