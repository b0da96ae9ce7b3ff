"""The GPU check's report: one JSON and one markdown file, rewritten atomically after every figure and every step,
so a run stopped at any moment (even by SIGKILL) leaves the story up to its last figure."""

from __future__ import annotations

import datetime as _dt
import math
import traceback
from pathlib import Path

import numpy as np

from inference.files import write_atomic, write_json_atomic

JSON_FILE = "gpu_check.json"
MD_FILE = "gpu_check.md"
FORMAT = 1
STATUSES = ("running", "ok", "failed", "skipped")


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def plain(value):
    """``value`` as JSON can hold it: numpy scalars and arrays, paths and tuples made plain; floats kept to 6
    significant digits."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if not math.isfinite(v) or v == 0 else float(f"{v:.6g}")
    if isinstance(value, Path):
        return str(value)
    return value


def shown(value) -> str:
    """A figure as the markdown and the console show it (4 significant digits)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(shown(v) for v in value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k} {shown(v)}" for k, v in value.items())
    return str(value)


class Step:
    """One step's record: figures (printed as they come), checks, parts skipped with their reason, the error."""

    def __init__(self, report: "Report", n: int, name: str, title: str, budget_s: float):
        self.report = report
        self.record = {"n": n, "name": name, "title": title, "status": "running", "budget_s": budget_s,
                       "seconds": None, "started": now(), "figures": {}, "units": {}, "checks": [], "skipped": [],
                       "notes": [], "error": None}

    def figure(self, key: str, value, unit: str = "") -> None:
        value = plain(value)
        self.record["figures"][key] = value
        if unit:
            self.record["units"][key] = unit
        print(f"  {key}: {shown(value)}{' ' + unit if unit else ''}", flush=True)
        self.report.save()

    def check(self, name: str, met: bool, value, target: str, kind: str = "assert") -> bool:
        """An ``assert`` (correctness: unmet fails the step) or a ``target`` (a goal: unmet is reported, not a
        failure)."""
        met = bool(met)
        self.record["checks"].append({"name": name, "kind": kind, "value": plain(value), "target": target,
                                      "met": met})
        word = ("PASS" if met else "FAIL") if kind == "assert" else ("met" if met else "MISSED")
        print(f"  [{word}] {name}: {shown(plain(value))} (target: {target})", flush=True)
        self.report.save()
        return met

    def skip(self, part: str, reason: str) -> None:
        self.record["skipped"].append({"part": part, "reason": reason})
        print(f"  {part}: skipped: {reason}", flush=True)
        self.report.save()

    def note(self, text: str) -> None:
        self.record["notes"].append(text)
        print(f"  {text}", flush=True)
        self.report.save()

    def fail(self, error: BaseException, message: str | None = None) -> None:
        tail = "".join(traceback.format_exception(type(error), error, error.__traceback__)).splitlines()[-15:]
        self.record["error"] = {"type": type(error).__name__, "message": message or str(error),
                                "traceback_tail": tail}

    @property
    def failed_asserts(self) -> list[dict]:
        return [c for c in self.record["checks"] if c["kind"] == "assert" and not c["met"]]

    def finish(self, status: str, seconds: float) -> None:
        assert status in STATUSES
        self.record.update(status=status, seconds=round(seconds, 2))
        over = seconds > self.record["budget_s"]
        print(f"  -> {status} in {seconds:.1f} s (budget {self.record['budget_s']:g} s{', OVER' if over else ''})",
              flush=True)
        self.report.save()


class Report:
    def __init__(self, out: Path, head: dict):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.data = {"format": FORMAT, **head, "started": now(), "updated": None, "finished": None, "seconds": None,
                     "steps": [], "summary": {}}
        self.steps: list[Step] = []

    def step(self, n: int, name: str, title: str, budget_s: float) -> Step:
        s = Step(self, n, name, title, budget_s)
        self.steps.append(s)
        self.data["steps"].append(s.record)
        return s

    def summary(self) -> dict:
        counts = {k: sum(s.record["status"] == k for s in self.steps) for k in STATUSES}
        missed = [c["name"] for s in self.steps for c in s.record["checks"] if c["kind"] == "target" and not c["met"]]
        return {**counts, "targets_missed": missed}

    def finish(self, seconds: float) -> None:
        self.data.update(finished=now(), seconds=round(seconds, 1))
        self.save()

    def save(self) -> None:
        self.data.update(updated=now(), summary=self.summary())
        write_json_atomic(self.out / JSON_FILE, self.data)
        text = markdown(self.data)
        write_atomic(self.out / MD_FILE, lambda f: f.write(text.encode("utf-8")))


def _checks_table(checks: list[dict]) -> list[str]:
    lines = ["| check | kind | value | target | result |", "| --- | --- | --- | --- | --- |"]
    for c in checks:
        result = ("pass" if c["met"] else "**FAIL**") if c["kind"] == "assert" else (
            "met" if c["met"] else "**missed**")
        cells = (c["name"], c["kind"], shown(c["value"]), c["target"], result)
        lines.append("| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |")
    return lines


def overview(d: dict) -> list[str]:
    """The head of the report: the command, the verdict, each step's status and time, every check (what the console
    prints last)."""
    s = d["summary"]
    lines = [f"# GPU check: {d['device']}", "",
             f"`{d['command']}` ({d['mode']}), started {d['started']}, "
             + (f"finished {d['finished']} in {d['seconds']} s (budget {d['budget_s']} s)." if d["finished"]
                else f"**not finished** (last written {d['updated']})."), "",
             f"Steps: {s.get('ok', 0)} ok, {s.get('failed', 0)} failed, {s.get('skipped', 0)} skipped"
             + (f"; targets missed: {', '.join(s['targets_missed'])}" if s.get("targets_missed") else "") + ".", "",
             "| step | status | seconds | budget s |", "| --- | --- | --- | --- |"]
    for st in d["steps"]:
        seconds = "" if st["seconds"] is None else st["seconds"]
        lines.append(f"| {st['n']}. {st['title']} | {st['status']} | {seconds} | {st['budget_s']:g} |")
    checks = [dict(c, name=f"{st['n']}. {c['name']}") for st in d["steps"] for c in st["checks"]]
    return lines + (["", *_checks_table(checks)] if checks else [])


def markdown(d: dict) -> str:
    lines = overview(d)
    for key, text in d.get("definitions", {}).items():
        lines += ["", f"**{key}**: {text}"]
    for st in d["steps"]:
        lines += ["", f"## {st['n']}. {st['title']}: {st['status']}", ""]
        units = st.get("units", {})
        lines += [f"- {k}: {shown(v)}{' ' + units[k] if k in units else ''}" for k, v in st["figures"].items()]
        if st["checks"]:
            lines += ["", *_checks_table(st["checks"])]
        if st["skipped"]:
            lines += [""] + [f"- skipped: {x['part']} ({x['reason']})" for x in st["skipped"]]
        if st["notes"]:
            lines += [""] + [f"- note: {x}" for x in st["notes"]]
        if st["error"]:
            e = st["error"]
            lines += ["", f"**Error** ({e['type']}): {e['message']}", "", "```", *e["traceback_tail"], "```"]
    return "\n".join(lines) + "\n"
