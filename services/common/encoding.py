"""Base64 text as a request or response field, described in the OpenAPI document (a
generated client sees the pattern and the encoding).

The pattern is the canonical form: the standard alphabet in groups of four, padded, no
whitespace; everything it admits ``base64.b64decode(text, validate=True)`` decodes. It is
stated, not enforced by the model: the one check is that decoder, where the bytes are
used, which refuses with a 422 that says "not valid base64" (and a 415 when the bytes are
no image).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"

Base64 = Annotated[
    str,
    Field(
        json_schema_extra={"pattern": BASE64_PATTERN, "format": "byte", "contentEncoding": "base64"}
    ),
]
"""Standard, padded base64 (``format: byte`` in OpenAPI's words)."""
