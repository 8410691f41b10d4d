"""MDM T01/T02 (add), T08 (replace) and T11 (cancel) → DocumentReference.

The id comes from (ODS, TXA-12 unique document number), so a replacement or a
cancellation lands on the same DocumentReference as a new version.
"""

from __future__ import annotations

from ..hl7 import Segment
from .datatypes import Ctx, codeable, org_ref, practitioner_ref
from .ids import stable_id
from .results import attachment, text_attachment

_DOC_STATUS = {"AU": "final", "LA": "final", "DO": "preliminary", "IP": "preliminary",
               "IN": "preliminary", "PA": "preliminary", "DI": "preliminary",
               "AM": "amended"}
CANCEL_EVENTS = ("T11",)


def document_reference(ctx: Ctx, event: str, txa: Segment, obxs: list[Segment],
                       patient_ref: dict, encounter_ref: dict | None) -> dict:
    number = ctx.text(txa.get(12, comp=1))
    if not number:
        raise ctx.error("TXA", "TXA-12", "no unique document number")
    res: dict = {
        "resourceType": "DocumentReference",
        "id": stable_id(ctx.ods, number),
        "masterIdentifier": {"system": ctx.system(ctx.config.document_system),
                             "value": number},
        "status": "entered-in-error" if event in CANCEL_EVENTS else "current",
        "subject": patient_ref,
        "custodian": org_ref(ctx.ods),
    }
    doc_status = _DOC_STATUS.get(txa.get(17, comp=1).upper())
    if doc_status:
        res["docStatus"] = doc_status
    typ = codeable(ctx, txa.get(2), "TXA-2")
    if typ:
        res["type"] = typ
    when = txa.get(6, comp=1) or txa.get(4, comp=1)
    where = "TXA-6" if txa.get(6, comp=1) else "TXA-4"
    date = ctx.instant(when, where)
    if date:
        res["date"] = date
    authors = [r for r in (practitioner_ref(ctx, rep) for rep in ctx.reps(txa.field(5))) if r]
    if authors:
        res["author"] = authors
    authenticator = practitioner_ref(ctx, ctx.reps(txa.field(22))[0]) if txa.field(22) else None
    if authenticator:
        res["authenticator"] = authenticator
    parent = ctx.text(txa.get(13, comp=1))
    if parent and parent != number:
        res["relatesTo"] = [{"code": "replaces", "target": {
            "type": "DocumentReference",
            "identifier": {"system": ctx.system(ctx.config.document_system), "value": parent}}}]
    first_obx = obxs[0] if obxs else None
    title = (ctx.text(txa.get(2, comp=2))
             or (ctx.text(first_obx.get(3, comp=2)) if first_obx is not None else "")
             or ctx.text(txa.get(2, comp=1)))
    content = _content(ctx, obxs, title)
    if not content:
        if event not in CANCEL_EVENTS:
            raise ctx.error("OBX", "OBX-5", "document message without any content (OBX-5)")
        content = [{"attachment": {"contentType": "text/plain",
                                   "title": f"{title or 'Document'} (cancelled)"}}]
    res["content"] = content
    ctx_part: dict = {}
    if encounter_ref:
        ctx_part["encounter"] = [encounter_ref]
    if ctx_part:
        res["context"] = ctx_part
    return res


def _content(ctx: Ctx, obxs: list[Segment], title: str) -> list[dict]:
    """ED OBX → one attachment each; text OBX lines → one text/plain attachment."""
    content: list[dict] = []
    lines: list[str] = []
    text_created: str | None = None
    for obx in obxs:
        vtype = obx.get(2, comp=1).upper()
        if vtype in ("ED", "RP"):
            for rep in ctx.reps(obx.field(5)):
                if vtype == "RP":
                    c = ctx.comps(rep)
                    att = {"url": ctx.text(c[0])} if c and c[0] else None
                else:
                    att = attachment(ctx, rep, "OBX-5")
                if att:
                    if title:
                        att["title"] = title
                    created = ctx.datetime(obx.get(14, comp=1), "OBX-14")
                    if created:
                        att["creation"] = created
                    content.append({"attachment": att})
        else:
            if not lines:
                text_created = ctx.datetime(obx.get(14, comp=1), "OBX-14")
            lines.extend(ctx.text(r) for r in ctx.reps(obx.field(5)))
    if lines:
        att = text_attachment("\n".join(lines), title)
        if text_created:
            att["creation"] = text_created
        content.append({"attachment": att})
    return content
