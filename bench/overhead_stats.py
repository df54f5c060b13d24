#!/usr/bin/env python3
"""Medians of alternating `crew loadtest --json` runs with observability on
and off, read from stdin."""
import json
import statistics
import sys

rows = [json.loads(line) for line in sys.stdin if line.strip()]
on = [r["tasks_per_sec"] for r in rows if r["observability"]["metrics"]]
off = [r["tasks_per_sec"] for r in rows if not r["observability"]["metrics"]]
ok = all(r["invariants"]["ok"] for r in rows)
m_on, m_off = statistics.median(on), statistics.median(off)
first = rows[0]
print(f"pairs {len(on)}  tasks {first['tasks']}  shape {first['shape']}")
print(f"  all on (metrics + JSONL + live OTLP): median {m_on:,.0f} tasks/s  "
      f"{sorted(round(x) for x in on)}")
print(f"  all off:                              median {m_off:,.0f} tasks/s  "
      f"{sorted(round(x) for x in off)}")
print(f"  on/off ratio {m_on / m_off:.3f} (loss {100 * (1 - m_on / m_off):.1f}%)  "
      f"invariants {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
