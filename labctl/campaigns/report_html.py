"""The run report as one self-contained HTML page: inline style, every image embedded as a base64
data URI, no script and no network resource (no CDN, font or remote image), so the one file can be
mailed and opened anywhere. Every text from the store is escaped."""
from __future__ import annotations

import base64
import datetime
import html
import json
from typing import TYPE_CHECKING, Any

from labctl.routines.figures import Figure, Note, Table
from labctl.routines.figures.base import eng

if TYPE_CHECKING:
    from labctl.campaigns.report import StepReport
    from labctl.campaigns.store import EventRecord, RunRecord

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 0 1.5em 3em; color: #222; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; } h3 { margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; }
figure { margin: 1em 0 1.5em; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #444; max-width: 70em; }
pre { background: #f7f7f7; border: 1px solid #ddd; padding: 0.8em; overflow-x: auto; font-size: 12px; }
.status { display: inline-block; padding: 1px 10px; border-radius: 10px; color: #fff; font-weight: 600; }
.complete { background: #2a7d2e; } .failed { background: #b3261e; } .aborted, .interrupted { background: #b86e00; }
.running { background: #1f5fa8; }
.stopped { border-left: 4px solid #b3261e; background: #fff4f3; padding: 0.5em 1em; margin: 1em 0; }
.note { color: #555; font-style: italic; }
"""

#: Units of the summary keys and limits, by the end of their names.
_SUFFIX_UNITS = (("_S", "S"), ("_V", "V"), ("_A", "A"), ("_ohm", "Ω"), ("_s", "s"), ("_J", "J"))
_LIMIT_UNITS = {"voltage": "V", "width": "s", "compliance": "A", "energy": "J", "resistance": "Ω"}


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _when(t: float | None) -> str:
    if not t:
        return "–"
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def value_text(key: str, value: Any) -> str:
    """A summary or limit value as shown: SI with an engineering prefix where the key names the unit
    (g_mean_S -> "42.1 µS"), other floats to 4 significant digits, long texts cut."""
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value)
    if isinstance(value, float):
        unit = next((u for suffix, u in _SUFFIX_UNITS if key.endswith(suffix)), None)
        if unit is None:
            unit = next((u for word, u in _LIMIT_UNITS.items() if word in key), None)
        return eng(value, unit, 4) if unit else f"{value:.4g}"
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "…"


def _kv(rows: dict[str, Any]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(value_text(k, v))}</td></tr>" for k, v in rows.items())
    return f"<table>{body}</table>" if body else '<p class="note">none</p>'


def _table(columns: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def _summaries(s: StepReport) -> str:
    keys = list(dict.fromkeys(k for g in s.summaries if g["summary"] for k in g["summary"]))
    if not keys:
        return '<p class="note">No unit of this step finished: no summary.</p>'
    columns = (["group"] if any(g["label"] for g in s.summaries) else []) + ["finished"] + keys
    rows = []
    for g in s.summaries:
        summary = g["summary"] or {}
        rows.append(([g["label"]] if "group" in columns else []) + ["yes" if g["done"] else "no"]
                    + [value_text(k, summary.get(k)) for k in keys])
    return _table(columns, rows)


def _items(s: StepReport, counter: list[int]) -> str:
    out = []
    for item in s.items:
        if isinstance(item, Figure):
            counter[0] += 1
            data = base64.b64encode(s.images[id(item)]).decode("ascii")
            out.append(f'<figure id="fig-{counter[0]}"><img src="data:image/png;base64,{data}" '
                       f'alt="{_e(item.name)}"><figcaption><b>Figure {counter[0]}.</b> {_e(item.caption)} '
                       f'<span class="note">({_e(s.files[id(item)])})</span></figcaption></figure>')
        elif isinstance(item, Table):
            out.append(f"<h4>{_e(item.title)}</h4>" + _table(item.columns, item.rows)
                       + (f'<p class="note">{_e(item.note)}</p>' if item.note else ""))
        elif isinstance(item, Note):
            out.append(f'<p class="note">{_e(item.text)}</p>')
    return "\n".join(out)


def render(rec: RunRecord, summary: dict[str, Any], steps: list[StepReport], events: list[EventRecord],
           generated: float) -> str:
    """The page of one run: metadata, identity, limits, why it stopped, per step its summaries and
    figures, errors, events and resumes, and the campaign file as run."""
    status = summary["status"]
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             f"<title>{_e(rec.name)} · {_e(rec.run_id)} · labctl report</title><style>{_STYLE}</style></head><body>",
             f"<h1>{_e(rec.name)}</h1><p>run <code>{_e(rec.run_id)}</code> "
             f"<span class=\"status {_e(status)}\">{_e(status)}</span></p>"]
    description = (rec.campaign.get("campaign") or {}).get("description")
    if description:
        parts.append(f"<p>{_e(description)}</p>")
    if status != "complete":
        stop = next((e.message for e in reversed(events) if e.kind == "stop"), None)
        why = "".join(f"<li>{_e(x)}</li>" for x in rec.errors)
        parts.append(f'<div class="stopped"><b>The run did not complete ({_e(status)}).</b> '
                     f"{_e(stop or 'No stop was recorded (the process ended without one).')}"
                     + (f"<ul>{why}</ul>" if why else "")
                     + f"<p>What it measured before it stopped is shown below: {summary['measurements']} "
                     f"measurements; units done per step in each step's heading.</p></div>")
    duration = (rec.stopped_at - rec.started_at) if rec.started_at and rec.stopped_at else None
    parts.append("<h2>Run</h2>" + _kv({
        "run id": rec.run_id, "status": status, "created": _when(rec.created_at), "started": _when(rec.started_at),
        "stopped": _when(rec.stopped_at), "duration_s": float(duration) if duration is not None else None,
        "labctl": rec.package_version, "backend": rec.backend_kind, "seed": rec.seed, "host": rec.host,
        "campaign file": rec.campaign_path or "–", "units": rec.n_units, "measurements": summary["measurements"],
        "resumes": rec.resumes}))
    parts.append("<h3>Metadata</h3>" + _kv({k: v for k, v in rec.metadata.items() if v not in ("", None)}))
    parts.append("<h3>Instrument and array identity</h3>" + _kv(rec.identity))
    backend = rec.campaign.get("backend") or {}
    parts.append("<h3>Array</h3>" + _kv({k: v for k, v in backend.items() if v is not None}))
    parts.append("<h3>Safety limits</h3>" + _kv({k: v for k, v in (rec.campaign.get("limits") or {}).items()
                                                 if v is not None}))
    toc = "".join(f'<li><a href="#step-{s.index}">step {s.index}: {_e(s.name)} ({_e(s.routine)})</a></li>'
                  for s in steps)
    parts.append(f"<h2>Steps</h2><ul>{toc}</ul>" if toc else "<h2>Steps</h2><p class=\"note\">No step has units.</p>")
    counter = [0]
    for s in steps:
        parts.append(f'<h2 id="step-{s.index}">Step {s.index}: {_e(s.name)} ({_e(s.routine)})</h2>'
                     f"<p>{s.units_done} of {s.units} unit(s) of work done.</p>")
        parts.append("<h3>Summary</h3>" + _summaries(s))
        parts.append("<h3>Figures</h3>" + _items(s, counter))
    parts.append("<h2>Errors</h2>" + ("<ul>" + "".join(f"<li>{_e(x)}</li>" for x in rec.errors) + "</ul>"
                                     if rec.errors else '<p class="note">none</p>'))
    parts.append(f"<h2>Events</h2><p>{rec.resumes} resume(s).</p>"
                 + _table(["time", "event", "message"], [[_when(e.at), e.kind, e.message] for e in events]))
    if rec.telemetry:
        parts.append("<h3>Telemetry</h3>" + _kv(rec.telemetry))
    parts.append(f"<h2>Campaign file</h2><pre>{_e(rec.campaign_toml)}</pre>")
    parts.append(f'<p class="note">Written by labctl {_e(rec.package_version)} on {_e(_when(generated))} from the '
                 f"run store; the figures are also in the report folder as PNG files, the numbers in summary.json."
                 "</p></body></html>\n")
    return "\n".join(parts)
