"""The trivial scoring script: measures the server, not the model."""

RESULT = [1.0, 2.0, 3.0]


def init():
    pass


def run(raw_data):
    return RESULT
