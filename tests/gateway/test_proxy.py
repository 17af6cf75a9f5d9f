from __future__ import annotations

import random
import uuid

from gateway.errors import printable
from gateway.http.pools import Answer
from gateway.proxy import MODEL_MESSAGE_CHARS, client_request_id, fast_uuid4, model_error
from gateway.snapshot import DeploymentRoute


def test_fast_uuid4_is_a_valid_version_4_uuid() -> None:
    rng = random.Random(3)
    ids = {fast_uuid4(rng.getrandbits(128)) for _ in range(1000)}
    assert len(ids) == 1000
    for text in list(ids)[:50] + [fast_uuid4(0), fast_uuid4(2**128 - 1)]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_client_request_id() -> None:
    assert client_request_id(b"abc-DEF_09") == b"abc-DEF_09"
    assert client_request_id(b"x" * 41) == b"x" * 40
    for bad in (None, b"", b"a b", b"a;b", b"\xc3\xa9", b"a\r\nb"):
        assert client_request_id(bad) is None


def test_printable_never_echoes_control_characters() -> None:
    assert printable("blue") == "blue"
    assert printable("evil\x1b[31m\x00\u00e9") == "evil?[31m??"
    assert printable("x" * 100, limit=10) == "x" * 10 + "..."


def test_a_models_long_message_is_cut_not_dropped() -> None:
    """MLflow's schema errors often pass 1000 characters; the client still gets them."""
    blue = DeploymentRoute("blue", "main", ())
    message = '{"message": "Failed to enforce schema ' + "x" * 5000 + '"}'
    error = model_error(blue, Answer(400, "Bad Request", (), message.encode(), 0.01))
    assert error.status == 424 and error.model_status == 400
    assert error.message.startswith("the model in deployment 'blue' answered 400 Bad Request: "
                                    '{"message": "Failed to enforce schema xxx')
    assert error.message.endswith("x...") and len(error.message) < MODEL_MESSAGE_CHARS + 100
    assert model_error(blue, Answer(500, "Internal Server Error", (), b"", 0.01)).message == (
        "the model in deployment 'blue' answered 500 Internal Server Error")
