"""The Letter of Acknowledgement (step 7): a PDF confirming the provisional opening of a
Party's section, with its Request ID, Party, administrators and the provisional status."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from xml.sax.saxutils import escape

from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer

from international_registry.portal.store import Person


def letter_pdf(request_id: str, party: str, people: Sequence[Person], opened_at: datetime) -> bytes:
    """The letter's PDF bytes."""
    styles = getSampleStyleSheet()
    out = io.BytesIO()
    document = SimpleDocTemplate(
        out, pagesize=A4, title=f"Letter of Acknowledgement {request_id}",
        author="UNFCCC secretariat, international registry", leftMargin=2.5 * cm,
        rightMargin=2.5 * cm,
    )  # fmt: skip
    names = "".join(f"<br/>&nbsp;&nbsp;{escape(p.name)} &lt;{escape(p.email)}&gt;" for p in people)
    paragraphs = [
        ("Title", "Letter of Acknowledgement"),
        ("Normal", f"International registry, Party section of <b>{escape(party)}</b>"),
        ("Normal", f"Request ID: <b>{escape(request_id)}</b>"),
        ("Normal", f"Date: {opened_at:%d/%m/%Y}"),
        (
            "Normal",
            "The secretariat acknowledges the Party Section Opening Request above and "
            f"confirms that the section of {escape(party)} in the international registry "
            "is opened <b>provisionally</b>.",
        ),
        ("Normal", f"Party Section Administrators:{names}"),
        (
            "Normal",
            "Until further notice the section and its accounts, including the accounts "
            "of authorized entities, remain provisional, pending identity verification "
            "of each administrator and authorized representative. On completion the "
            "provisional status is removed from the section and its accounts.",
        ),
        ("Normal", "Please quote the Request ID in all communication with the secretariat."),
    ]
    flow: list[Flowable] = []
    for style, text in paragraphs:
        flow += [Paragraph(text, styles[style]), Spacer(1, 0.4 * cm)]
    document.build(flow)
    return out.getvalue()
