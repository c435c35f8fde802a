#!/usr/bin/env python3
"""Does a fine-tuned model end its turn after its first tool call? (RESULTS.md, Gemma's ``extra_call`` failures)

For every row of a suite whose saved prediction holds a ``</tool_call>``, the model is given its own prompt and its
own output up to the end of that first call, and the probability of each stop token (end of turn, EOS) as the next
token is read off. Rows expecting one call should end there; rows expecting two should not.

    python experiments/stop_probe.py --model GGUF --adapter DIR --split single_turn_test.jsonl \
        --predictions LABEL_single_turn_predictions.jsonl --out stop_probe.json
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
from pathlib import Path

from fctune.backends.local import LocalBackend
from fctune.io import read_jsonl_tolerant, write_json_atomic
from fctune.schema import read_examples

CALL_END = "</tool_call>"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter", required=True)
    ap.add_argument("--split", required=True, help="the suite's test split (JSONL)")
    ap.add_argument("--predictions", required=True, help="the model's saved *_predictions.jsonl for that split")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()

    import torch

    backend = LocalBackend(a.model, adapter=a.adapter, device=a.device, dtype="fp32", batch_size=1)
    tok, net = backend.tokenizer, backend.model
    preds = {r["id"]: r["output"] for r in read_jsonl_tolerant(a.predictions)[0]}
    rows, without_call = [], []
    for ex in read_examples(a.split):
        out = preds.get(ex.id) or ""
        if CALL_END not in out:
            without_call.append(ex.id)
            continue
        prefix = backend.prompt_for(ex) + out[: out.index(CALL_END) + len(CALL_END)]
        ids = tok(prefix, add_special_tokens=False, return_tensors="pt").input_ids.to(backend.device)
        with torch.inference_mode():
            probs = net(ids).logits[0, -1].float().softmax(-1)
        rows.append({"id": ex.id, "expected_calls": len(ex.expected.tool_calls),
                     "p_stop": round(float(sum(probs[i] for i in backend.stop_ids)), 4),
                     "next_token": tok.convert_ids_to_tokens(int(probs.argmax()))})

    def summary(n_calls):
        ps = [r["p_stop"] for r in rows if r["expected_calls"] == n_calls]
        return {"rows": len(ps), "mean_p_stop": round(statistics.mean(ps), 4) if ps else None,
                "rows_p_stop_below_half": sum(p < 0.5 for p in ps)}

    result = {"model": a.model, "adapter": a.adapter, "adapter_version_id": backend.adapter_meta.get("version_id"),
              "split": a.split, "split_sha256": hashlib.sha256(Path(a.split).read_bytes()).hexdigest(),
              "predictions": a.predictions,
              "stop_tokens": tok.convert_ids_to_tokens(backend.stop_ids),
              "expecting_one_call": summary(1), "expecting_two_calls": summary(2),
              "rows_without_a_complete_call": without_call, "rows": rows}
    write_json_atomic(a.out, result)
    print({k: result[k] for k in ("stop_tokens", "expecting_one_call", "expecting_two_calls")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
