"""The local backend's two decoding engines: the same greedy answers, told apart in the run's identity."""

import pytest

from fctune.offline.generator import generate_examples


@pytest.mark.slow
def test_continuous_and_padded_engines_write_the_same_answers(tiny_model_dir):
    # fp32 on the CPU: no batch-shape rounding, so greedy decoding must give the same tokens whichever way the rows
    # are batched (padded on the left in threes, or continuous with a paged cache)
    from fctune.backends.local import LocalBackend

    rows = generate_examples(12, seed=5)[:4]
    answers, identities = {}, {}
    for engine in ("padded", "continuous"):
        backend = LocalBackend(tiny_model_dir, max_new_tokens=8, batch_size=3, dtype="fp32", engine=engine)
        answers[engine] = {g.id: (g.output, g.completion_tokens, g.finish_reason) for g in backend.generate(rows)}
        identities[engine] = backend.identity()
        assert backend.stats()["examples"] == len(rows)
    assert set(answers["padded"]) == {e.id for e in rows}
    assert answers["continuous"] == answers["padded"]
    assert all(n for _, n, _ in answers["padded"].values())
    assert identities["padded"]["engine"] == "padded" and identities["padded"]["batch_size"] == 3
    assert identities["continuous"]["engine"] == "continuous" and identities["continuous"]["batch_size"] is None


def test_engine_is_checked_and_padded_is_the_default(tiny_model_dir):
    from fctune.backends.local import LocalBackend

    with pytest.raises(ValueError, match="engine 'paged'"):
        LocalBackend(tiny_model_dir, engine="paged")
    assert LocalBackend(tiny_model_dir, device="cpu").engine == "padded"
