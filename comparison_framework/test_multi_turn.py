#!/usr/bin/env python3
"""Build the multi_turn test suite (comparison_framework/test_splits/multi_turn_test.jsonl) and, given a
model's predictions (--predictions PRED.jsonl --model NAME), score them into <model>_multi_turn.json.

With no arguments it builds from the offline source, excluding the prepared train/val rows.
"""

from fctune.suites import suite_main

if __name__ == "__main__":
    raise SystemExit(suite_main("multi_turn"))
