"""Stand-in for the example's scoring script: the loader tests only need it to exist."""


def init() -> None:
    pass


def run(raw_data: str) -> str:
    return raw_data
