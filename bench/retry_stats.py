#!/usr/bin/env python3
"""Medians of alternating `crew loadtest --json` runs with retries on and off
(same failure rate), read from stdin."""
import json
import statistics
import sys

rows = [json.loads(line) for line in sys.stdin if line.strip()]
on = [r for r in rows if r["retry_attempts"] > 1]
off = [r for r in rows if r["retry_attempts"] <= 1]
ok = all(r["invariants"]["ok"] for r in rows)
m_on = statistics.median(r["tasks_per_sec"] for r in on)
m_off = statistics.median(r["tasks_per_sec"] for r in off)
print(f"pairs {len(on)}  tasks {rows[0]['tasks']}  shape {rows[0]['shape']}  "
      f"fail rate {rows[0]['fail_rate']}")
print(f"  retries on  ({on[0]['retry_attempts']} attempts): median {m_on:,.0f} tasks/s, "
      f"failed tasks {on[0]['counts'].get('failed', 0)}")
print(f"  retries off:                median {m_off:,.0f} tasks/s, "
      f"failed tasks {off[0]['counts'].get('failed', 0)}")
print(f"  on/off {m_on / m_off:.3f}  invariants {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
