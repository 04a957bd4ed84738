"""The grounding check shared by the memory agent's fact extraction and the story bible."""

from __future__ import annotations

from memora.agents.extract import grounded as agent_grounded

from memora.memory.grounding import content_words, grounded, ungrounded_words


def test_content_words_leave_out_common_and_short_words() -> None:
    assert content_words("The baker of the town is Tom, 42 years old.") == {
        "baker", "town", "tom", "years", "old"
    }  # fmt: skip


def test_words_match_by_prefix_and_known_text_counts_as_said() -> None:
    assert ungrounded_words("Mara travelled to Brest.", "Mara travels to Brest soon.") == []
    assert ungrounded_words("Mara owns a castle.", "Mara walked.") == ["castle", "owns"]
    assert ungrounded_words("Mara owns a castle.", "Mara walked.", known="owns castles") == []


def test_two_thirds_of_the_content_words_must_come_from_the_source() -> None:
    source = "alpha bravo charlie delta"
    assert grounded("alpha bravo charlie delta echoes foxtrot", source)  # 4 of 6: exactly 2/3
    assert not grounded("alpha bravo charlie echoes foxtrot golfing", source)  # 3 of 6
    assert not grounded("the and of", source)  # nothing to ground
    assert grounded("alpha echoes", source, share=0.5)


def test_the_agent_keeps_its_own_common_words() -> None:
    said = "I moved to Lisbon last spring."
    assert agent_grounded("The user moved to Lisbon.", said)  # "user" is common to the agent
    assert not grounded("The user moved to Lisbon.", said, share=1.0)
    assert not agent_grounded("The user adopted a parrot named Kiwi.", said)
