"""How a word cloud is laid out on a page: the biggest terms in the middle, and a type size the whole
cloud fits in on the big screen. Presentation only: which terms, their counts and their sizes are the
domain's (polls/words.py)."""

import math
from dataclasses import dataclass

from django import template

from polls.words import CloudTerm

register = template.Library()

# Each size class's type, in ems of the cloud's own type (crowdtick.css `.cloud-s1` … `.cloud-s8`).
SIZE_EMS = (1.0, 1.3, 1.6, 1.9, 2.2, 2.5, 2.8, 3.2)
# The big screen's cloud type, largest first, in vh (kiosk.css `.cloud-d1` … `.cloud-d8`).
DENSITY_VH = (5.0, 4.2, 3.5, 3.0, 2.6, 2.2, 1.9, 1.6, 1.35, 1.1)
# The area (in vh², at 16:9) the kiosk's left column leaves the cloud under a long question, less what
# a flex layout wastes at row ends: measured with 100 terms of 40 characters at 1280×720.
KIOSK_CLOUD_AREA_VH2 = 3600
# A term's box in ems of its type: an average glyph is about .55em wide, the gap .6em, a line 1.25em.
_GLYPH_EM, _GAP_EM, _LINE_EM = 0.55, 0.6, 1.25


@dataclass(frozen=True)
class CloudLayout:
    terms: list[CloudTerm]  # in display order: the most frequent in the middle, the least at the ends
    density: int  # 1 (roomy) to len(DENSITY_VH) (packed: 100 terms of 40 characters)


@register.simple_tag
def cloud_layout(cloud: list[CloudTerm]) -> CloudLayout:
    middle_out: list[CloudTerm] = []
    for rank, term in enumerate(cloud):  # most frequent first
        if rank % 2:
            middle_out.append(term)
        else:
            middle_out.insert(0, term)
    return CloudLayout(terms=middle_out, density=_density(cloud))


def _density(cloud: list[CloudTerm]) -> int:
    """The largest type the cloud fits in: its terms' area in em² against the area the big screen has."""
    area = sum((_GLYPH_EM * len(term.text) + _GAP_EM) * _LINE_EM * SIZE_EMS[term.size - 1] ** 2 for term in cloud)
    if not area:
        return 1
    fitting_vh = math.sqrt(KIOSK_CLOUD_AREA_VH2 / area)
    return next((n for n, vh in enumerate(DENSITY_VH, start=1) if vh <= fitting_vh), len(DENSITY_VH))
