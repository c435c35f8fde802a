#!/usr/bin/env python3
"""Build the no_call test suite (comparison_framework/test_splits/no_call_test.jsonl): rows where the right answer is
no call (no offered tool fits the request, or the data's answer is text), the safety capability's rows. Given a
model's predictions (--predictions PRED.jsonl --model NAME), score them into <model>_no_call.json.

With no arguments it builds from the offline source, excluding the prepared train/val rows.
"""

from fctune.suites import suite_main

if __name__ == "__main__":
    raise SystemExit(suite_main("no_call"))
