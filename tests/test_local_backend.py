"""The local backend's decoding engines: the same greedy answers, told apart in the run's identity."""

import pytest

from fctune.offline.generator import generate_examples


@pytest.mark.slow
def test_every_engine_writes_the_same_answers(tiny_model_dir, monkeypatch):
    # fp32 on the CPU: no batch-shape rounding, so greedy decoding must give the same tokens whichever way the rows
    # are batched (padded on the left in threes; the same over a static cache, the second batch of one row filled
    # up to three with copies; or continuous with a paged cache)
    from transformers.cache_utils import StaticCache

    from fctune.backends.local import STATIC_CACHE_MIN, LocalBackend

    static_caches = []  # the static engine must really decode over a static cache (one length for the call)
    made = StaticCache.__init__

    def spy(self, *a, **kw):
        static_caches.append(kw.get("max_cache_len"))
        made(self, *a, **kw)

    monkeypatch.setattr(StaticCache, "__init__", spy)
    rows = generate_examples(12, seed=5)[:4]
    answers, identities = {}, {}
    for engine in ("padded", "static", "continuous"):
        backend = LocalBackend(tiny_model_dir, max_new_tokens=8, batch_size=3, dtype="fp32", engine=engine)
        answers[engine] = {g.id: (g.output, g.completion_tokens, g.finish_reason) for g in backend.generate(rows)}
        identities[engine] = backend.identity()
        assert backend.stats()["examples"] == len(rows)
    assert set(answers["padded"]) == {e.id for e in rows}
    assert answers["continuous"] == answers["padded"]
    assert answers["static"] == answers["padded"]
    assert len(static_caches) == 2 and len(set(static_caches)) == 1 and static_caches[0] == STATIC_CACHE_MIN
    assert all(n for _, n, _ in answers["padded"].values())
    assert identities["padded"]["engine"] == "padded" and identities["padded"]["batch_size"] == 3
    assert identities["continuous"]["engine"] == "continuous" and identities["continuous"]["batch_size"] is None
    assert identities["static"]["engine"] == "static" and identities["static"]["batch_size"] == 3


def test_engine_is_checked_and_padded_is_the_default(tiny_model_dir):
    from fctune.backends.local import LocalBackend

    with pytest.raises(ValueError, match="engine 'paged'"):
        LocalBackend(tiny_model_dir, engine="paged")
    assert LocalBackend(tiny_model_dir, device="cpu").engine == "padded"
