"""The no-op objective of bench/dispatch.py: returns at once with a metric derived from the config."""
import zlib


def noop(config, context):
    return {"valid_accuracy": (zlib.crc32(repr(sorted(config.items())).encode()) % 10007) / 10007.0}
