"""Action ids: one module builds them and reads them back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from storybuild.actionids import ActionId, action_id, parse, split_quality, step_id

IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,12}", fullmatch=True)


def test_the_planners_ids_read_back() -> None:
    assert action_id("speech", "harbour-mara", line=0) == "speech/harbour-mara/0"
    assert parse("speech/harbour-mara/0") == ActionId("speech", "harbour-mara", line=0)
    assert action_id("keyframe", "s1", take=2, preview=True) == "preview/keyframe/s1/take2"
    assert parse("preview/keyframe/s1/take2") == ActionId("keyframe", "s1", take=2, preview=True)
    assert parse("film") == ActionId("film") and parse("preview/sound").quality == "preview"
    assert step_id("grade") == "step/grade" and parse("step/grade").owner == "grade"
    assert split_quality("preview/shot/a") == ("preview", "shot/a") and split_quality("shot/a") == ("full", "shot/a")


@given(kind=IDS, owner=st.one_of(st.just(""), IDS), line=st.one_of(st.none(), st.integers(0, 999)),
       take=st.one_of(st.none(), st.integers(1, 99)), preview=st.booleans())
def test_every_id_reads_back_as_it_was_built(kind: str, owner: str, line: int | None, take: int | None,
                                              preview: bool) -> None:
    if not owner:
        line = take = None
    if line is not None:
        take = None
    built = ActionId(kind, owner, line, take, preview)
    assert parse(str(built)) == built
