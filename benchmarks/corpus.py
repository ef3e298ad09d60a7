"""The training corpus and the shifted set as they are being made: speed, rejections,
and what they contain against the benchmark's test split.

Reads the work units a `ptychoagent sim` run has finished so far (a run in progress is
fine; nothing is started or changed), so it can be run beside `make corpus`:

1. **Speed** — labelled samples per hour of reconstruction time (the units' own
   seconds) and per hour of wall time (first to last unit written), and the ratio of
   seconds per sample to the benchmark set's (``data/ptychobench-sim/metadata.json``,
   made by the same generator without variation: the baseline in the same table).
2. **Rejections per recipe** — for each planned fault, how many attempts were dropped
   and why (clean reconstruction too poor, no label confirmed, diverged) and how many
   samples ended with another fault or clean; fix verifications that did not help.
3. **Distributions** — shares of labels, letters, sample types, instruments, scan
   patterns, renderings and parameter wordings in each set beside the benchmark's test
   split, so a skew is seen before anything is trained on it.

    .venv/bin/python benchmarks/corpus.py [--sets data/corpus data/shifted]
        [--reference data/ptychobench-sim] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ptychobench.sim.render import draw_rendering
from ptychobench.sim.wording import draw_style


def _units(root: Path, kind: str) -> list[dict[str, Any]]:
    folder = root / "work" / kind
    units = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            unit = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        unit["_mtime"] = path.stat().st_mtime
        units.append(unit)
    return units


def _reason(text: str) -> str:
    if "too poor" in text:
        return "clean too poor"
    if "no label" in text:
        return "no label confirmed"
    return "diverged"


def speed(records: list[dict[str, Any]], reference_seconds: float | None) -> dict[str, Any]:
    made = [r for r in records if not r.get("failed")]
    seconds = sum(r.get("seconds", 0.0) for r in made)
    times = sorted(r["_mtime"] for r in records)
    wall = times[-1] - times[0] if len(times) > 1 else 0.0
    per_sample = seconds / len(made) if made else None
    return {
        "samples": len(made),
        "failed": len(records) - len(made),
        "per_compute_hour": round(3600 * len(made) / seconds, 1) if seconds else None,
        "per_wall_hour": round(3600 * (len(times) - 1) / wall, 1) if wall else None,
        "seconds_per_sample": round(per_sample, 2) if per_sample else None,
        "ratio_to_benchmark": (
            round(per_sample / reference_seconds, 2) if per_sample and reference_seconds else None
        ),
    }


def rejections(
    records: list[dict[str, Any]], verified: list[dict[str, Any]]
) -> dict[str, dict[str, int]]:
    table: dict[str, Counter[str]] = {}
    for record in records:
        if "planned_faults" not in record:  # a failed unit of an older generator
            planned = "(failed, plan not recorded)"
        else:
            planned = "+".join(record["planned_faults"] or ["(clean)"])
        row = table.setdefault(planned, Counter())
        row["planned"] += 1
        for dropped in record.get("dropped_attempts", []):
            row[_reason(dropped["reason"])] += 1
        if record.get("failed"):
            row["left out"] += 1
        elif record.get("injected_faults") != record.get("planned_faults"):
            row["ended otherwise"] += 1
    helped = Counter("helped" if v.get("helped") else "did not help" for v in verified)
    result = {name: dict(row) for name, row in sorted(table.items())}
    result["(fix verification)"] = dict(helped)
    return result


def _shares(values: Iterable[str]) -> dict[str, float]:
    counts = Counter(values)
    total = sum(counts.values()) or 1
    return {name: round(count / total, 3) for name, count in counts.most_common()}


def distributions(
    records: list[dict[str, Any]], settings: Mapping[str, Any]
) -> dict[str, dict[str, float]]:
    made = [r for r in records if not r.get("failed")]
    variation, seed = settings.get("variation", "none"), settings.get("seed", 0)

    def rendering(r: dict[str, Any]) -> str:
        d = draw_rendering(variation, seed, r["index"])
        colour = d.colormap or f"grey{d.bit_depth}"
        return f"{colour} {d.file_format}{' wrapped' if d.wrapped else ''}"

    def wording(r: dict[str, Any]) -> str:
        style, shuffled = draw_style(variation, seed, r["index"])
        return (style.name if style else "listing") + (" shuffled" if shuffled else "")

    return {
        "labels": _shares(label for r in made for label in r["artifacts"]),
        "letters": _shares(letter for r in made for letter in r.get("letters", [])),
        "sample types": _shares(r["sample_type"] for r in made),
        "instruments": _shares(r["instrument"] for r in made),
        "scan": _shares(r["parameters"]["scan"].split(",")[0] for r in made),
        "rendering": _shares(rendering(r) for r in made),
        "wording": _shares(wording(r) for r in made),
    }


def reference(root: Path) -> tuple[list[dict[str, Any]], float | None]:
    """The benchmark set's test-split records and its seconds per sample."""
    metadata = json.loads((root / "metadata.json").read_text())
    test_ids = {
        entry["metadata"]["id"]
        for entry in json.loads(
            (root / "annotations" / "artifact_detection_split" / "test.json").read_text()
        )
    }
    records = [json.loads(line) for line in (root / "samples.jsonl").read_text().splitlines()]
    per_sample = metadata["reconstruction_seconds"] / max(len(records), 1)
    return [r for r in records if r["id"] in test_ids], per_sample


def _print_shares(title: str, columns: dict[str, dict[str, float]]) -> None:
    names = list(dict.fromkeys(name for shares in columns.values() for name in shares))
    print(f"\n{title}")
    print(f"  {'':36s}" + "".join(f"{column:>16s}" for column in columns))
    for name in names:
        cells = "".join(f"{columns[c].get(name, 0.0):>16.3f}" for c in columns)
        print(f"  {name[:36]:36s}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sets", nargs="+", type=Path, default=[Path("data/corpus"), Path("data/shifted")]
    )
    parser.add_argument("--reference", type=Path, default=Path("data/ptychobench-sim"))
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()

    ref_records, ref_seconds = reference(args.reference)
    figures: dict[str, Any] = {"benchmark seconds per sample": round(ref_seconds or 0, 2)}
    columns: dict[str, dict[str, dict[str, float]]] = {}
    ref_dist = distributions(ref_records, {"variation": "none"})
    for root in args.sets:
        settings_path = root / "sim-settings.json"
        if not settings_path.exists():
            print(f"{root}: no sim run here yet")
            continue
        settings = json.loads(settings_path.read_text())
        records, verified = _units(root, "detect"), _units(root, "verify")
        figures[str(root)] = {
            "planned": settings["n"],
            "speed": speed(records, ref_seconds),
            "rejections": rejections(records, verified),
            "distributions": distributions(records, settings),
        }
        s = figures[str(root)]["speed"]
        print(
            f"{root} ({settings.get('variation', 'none')}): {s['samples']} of {settings['n']} "
            f"samples made, {s['failed']} left out, {len(verified)} fixes verified; "
            f"{s['per_compute_hour']} samples per compute hour, {s['per_wall_hour']} per wall "
            f"hour; {s['seconds_per_sample']} s per sample = {s['ratio_to_benchmark']} x the "
            f"benchmark set's {ref_seconds:.2f} s"
        )
        print("  rejections by planned fault (attempts dropped, by reason):")
        for name, row in figures[str(root)]["rejections"].items():
            print(f"    {name:40s} " + ", ".join(f"{k} {v}" for k, v in row.items()))
        for key, shares in figures[str(root)]["distributions"].items():
            columns.setdefault(key, {})[root.name] = shares
    for key, by_set in columns.items():
        _print_shares(key, {**by_set, "benchmark test": ref_dist[key]})
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
