"""The engine knows every sending application of every trust in a scenario."""

from __future__ import annotations

from shcr_sim.engine import pipeline
from shcr_sim.engine.trusts import trusts_from_scenario
from shcr_sim.feeds.scenario import load_scenario


def test_every_sending_application_of_every_trust_is_a_known_sender() -> None:
    sc = load_scenario(None)
    expected = {(app, t.ods) for t in sc.trusts
                for app in (t.sending_application, *t.sending_applications.values())}
    got = [(t.app, t.ods) for t in trusts_from_scenario(sc)]
    assert set(got) == expected
    assert len(got) == len(set(got))  # each sender once
    assert len(expected) > len(sc.trusts)  # the labs, radiology … not only the PAS
    flavours = {t.ods: t.flavour for t in sc.trusts}
    assert all(t.flavour == flavours[t.ods] for t in trusts_from_scenario(sc))


def test_one_trusts_from_scenario() -> None:
    assert not hasattr(pipeline, "trusts_from_scenario")  # engine/trusts.py is the one
