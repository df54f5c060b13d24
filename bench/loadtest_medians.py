#!/usr/bin/env python3
"""Median figures of repeated `crew loadtest --json` runs read from stdin."""
import json
import statistics
import sys

rows = [json.loads(line) for line in sys.stdin if line.strip()]
if not rows:
    sys.exit("no loadtest output")


def med(key):
    return statistics.median(r[key] for r in rows)


first = rows[0]
ok = all(r["invariants"]["ok"] for r in rows)
tps = [r["tasks_per_sec"] for r in rows]
print(f"runs {len(rows)}  tasks {first['tasks']}  shape {first['shape']}  "
      f"fsync {first['fsync']}  concurrency {first['concurrency']}")
print(f"  tasks/s median {med('tasks_per_sec'):,.0f}  (min {min(tps):,.0f}, max {max(tps):,.0f})")
print(f"  baseline CAF msgs/s median {med('baseline_caf_msgs_per_sec'):,.0f}")
print(f"  latency p50 {med('latency_p50_ms'):.2f} ms  p99 {med('latency_p99_ms'):.2f} ms")
print(f"  peak RSS {med('peak_rss_kb'):,.0f} KiB  ({med('rss_per_task_bytes'):.0f} bytes/task)")
print(f"  events {first['events']}  invariants {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
