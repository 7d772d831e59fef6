"""Ceremony transcripts: Markdown and HTML records of one ceremony, made from the ledger alone.

A transcript lists every step with its time, actor and digests, the approvals, and QR codes
(SVG) of the plan digest, each bundle digest and the closing checkpoint, so that officers can
file a paper copy and check it later against the audit pack. Text from the ledger is escaped:
Markdown and HTML special characters and control characters are shown, never interpreted.
"""

from __future__ import annotations

import contextlib
import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from console.ceremony.journal import EntryLike, PlanRecord
from console.clock import format_time
from console.errors import ExportError, _inert
from console.exports.durable import fsync_all
from console.exports.qr import qr_svg
from console.files import create_fresh
from console.quorum.words import digest_words

if TYPE_CHECKING:
    from console.workspace import Workspace


@dataclass(frozen=True, slots=True)
class Transcript:
    markdown: str
    html: str
    name: str  # file stem, e.g. 2027-01-15-quarterly-rotation-7f3a19c2
    images: tuple[tuple[str, str], ...] = ()  # (file name, SVG text) the Markdown links to


_MD_QUOTED = str.maketrans({ch: "\\" + ch for ch in "\\`*_{}[]<>()#+!|"})


def _md(text: object) -> str:
    """Plain text made inert for Markdown: control characters escaped, markup characters quoted."""
    return _inert(str(text)).translate(_MD_QUOTED)


def _h(text: object) -> str:
    return html.escape(_inert(str(text)), quote=True)


def _summary(entry: EntryLike) -> str:
    data = entry.data
    parts = []
    for key in ("action", "keyset", "kid", "label", "from", "to", "seq", "sha256", "officer",
                "size", "text", "consumer", "check", "url", "accepted", "answer", "signer"):
        if key in data and not isinstance(data[key], dict | list):
            parts.append(f"{key}={data[key]}")
    if "cka_id" in data:
        parts.append(f"cka_id={data['cka_id']}")
    return ", ".join(parts)


def build_transcript(record: PlanRecord, entries: Sequence[EntryLike]) -> Transcript:
    """Make the transcript of the plan `record` from its ledger `entries` (in ledger order)."""
    plan = record.plan
    digest = record.digest.hex()
    words = " ".join(digest_words(record.digest))
    stem = f"{format_time(record.planned_at)[:10]}-{plan.script}-{record.plan_id}"
    mine = [e.seq for e in entries if e.ceremony == record.plan_id]
    first, last = (min(mine), max(mine)) if mine else (0, -1)
    # The closing checkpoint is recorded by the ledger itself, without a ceremony id.
    leaves = [e for e in entries if e.ceremony == record.plan_id or (
        e.type == "checkpoint.signed" and first <= e.seq <= last)]
    bundles = [e for e in leaves if e.type == "bundle.exported"]
    checkpoints = [e for e in leaves if e.type == "checkpoint.signed"]
    qr_items: list[tuple[str, str]] = [("Plan digest", f"plan-sha256:{digest}")]
    qr_items += [
        # The bundle digest's only QR (none in the export folder: it cannot sign a file made
        # from itself); `verify bundle` prints the same hex, so the two can be compared.
        (f"Bundle {b.data['keyset']} #{b.data['seq']} (SHA-256 of jwks.jwt)", str(b.data["sha256"]))
        for b in bundles
    ]
    closing_note = checkpoints[-1].data.get("note", "") if checkpoints else ""
    if closing_note:
        qr_items.append(("Closing checkpoint", str(closing_note)))

    state = record.state()
    md: list[str] = [
        f"# Ceremony transcript: {_md(plan.script)}",
        "",
        f"- Plan id: `{record.plan_id}`",
        f"- Class: {_md(plan.ceremony_class)} (quorum {plan.quorum_m} of {plan.quorum_n})",
        f"- Script SHA-256: `{plan.inputs.script_sha256}`",
        f"- Keysets: {_md(', '.join(plan.keysets) or '(none)')}",
        f"- Planned: {format_time(record.planned_at)} · expires {format_time(plan.expires_at)}",
        f"- Plan digest (SHA-256 of the JCS plan): `{digest}`",
        f"- Digest words (read aloud at approval): {_md(words)}",
        f"- Outcome: {state}",
        "",
        "## Plan",
        "",
    ]
    for action in plan.actions:
        md.append(f"{action.n}. {_md(action.description)}")
    md += ["", "## Approvals", ""]
    for approval in record.approvals:
        md.append(f"- {_md(approval.officer)}: signature `{approval.signature[:24]}…`")
    md += ["", "## Steps", "", "| seq | time (UTC) | actor | entry | details |",
           "|---:|---|---|---|---|"]
    for e in leaves:
        md.append(
            f"| {e.seq} | {format_time(e.time)} | {_md(e.actor)} | {_md(e.type)} | "
            f"{_md(_summary(e))} |"
        )
    if closing_note:
        md += ["", "## Closing checkpoint", "", "```"]
        md += [_inert(line) for line in str(closing_note).splitlines()]
        md.append("```")
    md += ["", "## QR codes", ""]
    svgs = [qr_svg(payload) for _, payload in qr_items]  # each drawn once, used twice
    images: list[tuple[str, str]] = []
    for index, (title, payload) in enumerate(qr_items, start=1):
        image = f"{stem}-qr{index}.svg"
        images.append((image, svgs[index - 1]))
        md.append(f"- {_md(title)}: `{_inert(payload.splitlines()[0])}`  ")
        md.append(f"  ![QR code: {_md(title)}]({image})")
    md.append("")

    body: list[str] = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Ceremony {_h(record.plan_id)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px;"
        "font-size:90%}code,pre{font-family:monospace}.qr{display:inline-block;margin:1em;"
        "text-align:center;width:14em}.qr svg{width:12em;height:12em}</style></head><body>",
        f"<h1>Ceremony transcript: {_h(plan.script)}</h1>",
        "<ul>",
        f"<li>Plan id: <code>{_h(record.plan_id)}</code></li>",
        f"<li>Class: {_h(plan.ceremony_class)}</li>",
        f"<li>Script SHA-256: <code>{_h(plan.inputs.script_sha256)}</code></li>",
        f"<li>Plan digest: <code>{_h(digest)}</code></li>",
        f"<li>Digest words: {_h(words)}</li>",
        f"<li>Outcome: {_h(state)}</li>",
        "</ul><h2>Approvals</h2><ul>",
    ]
    body += [f"<li>{_h(a.officer)}</li>" for a in record.approvals]
    body.append("</ul><h2>Steps</h2><table><tr><th>seq</th><th>time (UTC)</th><th>actor</th>"
                "<th>entry</th><th>details</th></tr>")
    for e in leaves:
        body.append(
            f"<tr><td>{e.seq}</td><td>{format_time(e.time)}</td><td>{_h(e.actor)}</td>"
            f"<td>{_h(e.type)}</td><td>{_h(_summary(e))}</td></tr>"
        )
    body.append("</table>")
    if closing_note:
        body.append(f"<h2>Closing checkpoint</h2><pre>{_h(closing_note)}</pre>")
    body.append("<h2>QR codes</h2>")
    for (title, _), svg in zip(qr_items, svgs, strict=True):
        body.append(f'<div class="qr">{svg}<br>{_h(title)}</div>')
    body.append("</body></html>\n")
    return Transcript(markdown="\n".join(md), html="\n".join(body), name=stem,
                      images=tuple(images))



def write_transcript(ws: Workspace, plan_id: str, *,
                     plans: Mapping[str, PlanRecord] | None = None) -> list[Path]:
    """Write the plan's transcript (Markdown, HTML and QR images) unless it exists already;
    return the Markdown and HTML paths. `plans`: the ledger's plans, when the caller has
    replayed them already."""
    from console.ceremony.journal import CEREMONY_ENTRY_TYPES, find_plan, replay_plans
    from console.ledger import EntryFilter

    if plans is None:
        plans = replay_plans(ws.ledger.entries_of_type(*CEREMONY_ENTRY_TYPES))
    record = find_plan(plans, plan_id)
    mine = EntryFilter(ceremony=record.plan_id)
    # The ceremony's own entries, and the checkpoints (recorded without a ceremony id).
    entries = sorted(
        [*ws.ledger.page(0, ws.ledger.count(mine), mine),
         *ws.ledger.entries_of_type("checkpoint.signed")],
        key=lambda e: e.seq)
    transcript = build_transcript(record, entries)
    files = [(f"{transcript.name}.md", transcript.markdown),
             (f"{transcript.name}.html", transcript.html), *transcript.images]
    paths = [ws.transcripts_dir / name for name, _ in files[:2]]
    try:
        ws.transcripts_dir.mkdir(parents=True, exist_ok=True)
        _write_whole([(ws.transcripts_dir / name, text) for name, text in files
                      if not (ws.transcripts_dir / name).exists()])
    except OSError as e:
        raise ExportError(f"cannot write the transcript in {ws.transcripts_dir}: "
                          f"{e.strerror or e}", f"free space on (or repair) the disk, then "
                          f"`ceremony transcript {record.plan_id}`") from e
    return paths


def _write_whole(files: Sequence[tuple[Path, str]]) -> None:
    """Files that each appear whole or not at all: hidden temporary files, synced together,
    renamed; the temporary files are removed when the disk refuses.

    The folder is not synced: a rename lost in a power cut leaves no transcript, and
    `ceremony transcript` writes it again from the ledger (an existing file is never
    rewritten, so a file must never appear under its name before its bytes are on disk)."""
    staged = [(path.with_name(f".{path.name}.tmp"), path, text) for path, text in files]
    handles: list[int] = []
    try:
        for tmp, _, text in staged:
            # Anyone who can write the workspace can plant a link at this predictable name.
            handles.append(create_fresh(tmp, 0o666))
            data = memoryview(text.encode("utf-8"))
            while data:
                data = data[os.write(handles[-1], data):]
        fsync_all(handles)  # each file's bytes on disk before its name appears
        for tmp, path, _ in staged:
            os.replace(tmp, path)
    except OSError:
        for tmp, _, _ in staged:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    finally:
        for fd in handles:
            with contextlib.suppress(OSError):
                os.close(fd)
