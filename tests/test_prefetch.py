"""``pipelines.prefetch.Prefetcher``: one load ahead in a thread, failures reported for their own key."""

from __future__ import annotations

import threading

import pytest

from mrirecon.pipelines.prefetch import Prefetcher


def test_loads_ahead_in_order_and_raises_for_the_right_key():
    in_caller: dict[str, bool] = {}
    main = threading.get_ident()

    def load(key: str) -> str:
        in_caller[key] = threading.get_ident() == main
        if key == "b":
            raise OSError("cannot read b")
        return key.upper()

    with Prefetcher(["a", "b", "c", "d"], load) as reader:
        assert reader.get("a") == "A"
        with pytest.raises(OSError, match="cannot read b"):
            reader.get("b")
        assert reader.get("c") == "C"
        assert reader.get("d") == "D"
    # "a" in the caller (nothing was ahead of it), every later key in the background thread
    assert in_caller == {"a": True, "b": False, "c": False, "d": False}


def test_skipped_and_out_of_order_keys_still_load_once_each_time_asked():
    calls: list[str] = []

    def load(key: str) -> str:
        calls.append(key)
        return key

    with Prefetcher(["a", "b", "c"], load) as reader:
        assert reader.get("a") == "a"  # starts "b" ahead
        assert reader.get("c") == "c"  # "b" skipped: its load is dropped, "c" read now
    assert calls.count("c") == 1 and calls.count("a") == 1


def test_disabled_loads_in_the_caller():
    main = threading.get_ident()
    with Prefetcher(["a", "b"], lambda key: threading.get_ident() == main, enabled=False) as reader:
        assert reader.get("a") and reader.get("b")
