"""The one check of a base64 field (:data:`ptychowire.base.Base64`, whose pattern the
OpenAPI document states): the strict decoder, where the bytes are used, which refuses
with a 422 that says "not valid base64" (and a 415 when the bytes are no image).
"""

from __future__ import annotations

import base64
import binascii

from services.common.errors import InvalidInput


def decode_base64(text: str, field: str = "image_base64") -> bytes:
    """The bytes of a base64 field, or a 422 naming the field: anything the strict
    decoder refuses (a character outside the alphabet, a non-ASCII one included, bad
    padding) is the client's error, never a 500."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidInput(f"{field} is not valid base64: {error}") from error
