"""Logging is set once for every package: a gateway module's record carries the request
id, in the configured format, as a service's does."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from services.common.web import LOGGED_PACKAGES, configure_logging, request_id_var


@pytest.fixture
def restored_loggers() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in LOGGED_PACKAGES]
    saved = [(logger.handlers[:], logger.level) for logger in loggers]
    yield
    for logger, (handlers, level) in zip(loggers, saved, strict=True):
        logger.handlers[:] = handlers
        logger.setLevel(level)


@pytest.mark.parametrize("name", ["gateway.feedback", "ptychobench.data", "services.common.web"])
def test_a_module_log_record_carries_the_request_id_as_json(
    name: str, restored_loggers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json")
    token = request_id_var.set("r-7")
    try:
        logging.getLogger(name).info("stored %d predictions", 2)
    finally:
        request_id_var.reset(token)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["logger"] == name
    assert record["request_id"] == "r-7"
    assert record["message"] == "stored 2 predictions"


def test_every_package_is_covered() -> None:
    assert set(LOGGED_PACKAGES) >= {"services", "gateway", "ptychobench", "training", "ptychoagent"}
