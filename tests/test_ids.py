"""Task and output ids are digests of exactly the bytes every existing log's ids were
made from: literal ids pin them, and any number of ids made in turn (from one shared
empty digest, copied) are each the digest of their own bytes."""

from __future__ import annotations

from hashlib import blake2b

from flock_es.domain.ids import output_id, task_id


def test_ids_are_the_digests_existing_logs_hold() -> None:
    # Made by the ids module before it copied a shared empty digest (main at 3cf016c).
    assert task_id("r-20261129-000000-abcdef", "writer", 0, ["a-1", "a-2"]) == (
        "t-80a1640ac25a1fca9e1e"
    )
    assert task_id("r-x", "\u00e9", 3, []) == "t-dacfcdb17c1582daeb4e"
    assert output_id("t-0123456789abcdef0123", 0) == "a-3983e45f105e1b467bf5"
    assert output_id("t-x", 12) == "a-4c54a5f54ecea382b826"


def test_ids_made_in_turn_do_not_share_state() -> None:
    for i in range(50):
        data = f"t-{i}\x1f{i % 3}\x1f".encode()
        assert output_id(f"t-{i}", i % 3) == "a-" + blake2b(data, digest_size=10).hexdigest()
        joined = "\x1f".join(["r", "a", str(i), f"a-{i}"]).encode() + b"\x1f"
        expected = "t-" + blake2b(joined, digest_size=10).hexdigest()
        assert task_id("r", "a", i, [f"a-{i}"]) == expected
