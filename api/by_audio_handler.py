"""ByAudioFunction: POST /recommendations/by-audio, from the extractor's container image.

The route needs the CNN, and TensorFlow does not fit the ApiFunction zip, so
API Gateway sends this one path to a function built from the extractor's image
(ImageConfig Command override). It serves the API's own resolver (api.app:
CORS, validation, error shape) with the same index cache and result shaping.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from api.app import create_app, resolve
from api.routes import by_audio

logger = Logger()
app = create_app(by_audio.router)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
