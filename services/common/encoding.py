"""Base64 text as a request or response field, described in the OpenAPI document (a
generated client sees the pattern and the encoding).

The pattern is the canonical form: the standard alphabet in groups of four, padded, no
whitespace; everything it admits ``base64.b64decode(text, validate=True)`` decodes. It is
stated, not enforced by the model: the one check is that decoder, where the bytes are
used, which refuses with a 422 that says "not valid base64" (and a 415 when the bytes are
no image).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from pydantic import Field

from services.common.errors import InvalidInput

BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"

Base64 = Annotated[
    str,
    Field(
        json_schema_extra={"pattern": BASE64_PATTERN, "format": "byte", "contentEncoding": "base64"}
    ),
]
"""Standard, padded base64 (``format: byte`` in OpenAPI's words)."""


def decode_base64(text: str, field: str = "image_base64") -> bytes:
    """The bytes of a base64 field, or a 422 naming the field: anything the strict
    decoder refuses (a character outside the alphabet, a non-ASCII one included, bad
    padding) is the client's error, never a 500."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidInput(f"{field} is not valid base64: {error}") from error
