from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import false_discovery_control

from sluice.drift_monitor.stats import Measure
from sluice.drift_monitor.verdict import Policy, adjust, decide, decide_together, next_streak


def test_benjamini_hochberg_matches_scipy() -> None:
    p = np.random.default_rng(1).uniform(0, 0.2, 30)
    assert adjust(p, "bh") == pytest.approx(false_discovery_control(p, method="bh"))


def test_bonferroni_and_missing_p_values() -> None:
    out = adjust(np.array([0.001, np.nan, 0.04, 0.5]), "bonferroni")
    assert out[[0, 2, 3]].tolist() == pytest.approx([0.003, 0.12, 1.0])
    assert np.isnan(out[1])
    assert adjust(np.array([np.nan]), "bh").tolist()[0] != 0


def test_a_tiny_effect_at_huge_n_is_not_drift_and_a_big_one_on_noise_is_not_either() -> None:
    measures = {
        "huge_n": {"ks": Measure(0.02, 0.02, 1e-30)},  # significant, negligible
        "noisy": {"ks": Measure(0.4, 0.4, 0.3)},  # large, not significant
        "real": {"ks": Measure(0.3, 0.3, 1e-8)},
    }
    out = decide("m", measures, Policy())
    assert [f for f, v in out.items() if v["drifted"]] == ["real"]
    assert out["huge_n"]["methods"]["ks"]["p_adjusted"] == pytest.approx(3e-30)


def test_holm_matches_its_definition_and_sits_between_bonferroni_and_bh() -> None:
    p = np.random.default_rng(2).uniform(0, 0.1, 12)
    ordered = np.sort(p)
    steps = [min(1.0, (12 - i) * ordered[i]) for i in range(12)]
    expected = np.maximum.accumulate(steps)
    holm = adjust(p, "holm")
    assert np.sort(holm) == pytest.approx(expected)
    assert np.all(holm <= adjust(p, "bonferroni") + 1e-12)
    assert np.all(holm >= adjust(p, "bh") - 1e-12)


def test_evidence_borrows_the_test_p_value_and_correction_is_across_features() -> None:
    measures = {
        f"f{i}": {"ks": Measure(0.2, 0.2, 0.02), "wasserstein": Measure(0.5, 0.5, None)}
        for i in range(5)
    }
    none = decide("m", measures, Policy(correction="none"))
    holm = decide("m", measures, Policy())
    assert none["f0"]["methods"]["wasserstein"]["drifted"] is True  # agrees with the verdict
    assert none["f0"]["flagged_by"] == ["ks"]
    assert holm["f0"]["methods"]["wasserstein"]["p_adjusted"] == pytest.approx(0.1)
    assert holm["f0"]["drifted"] is False
    assert holm["f0"]["methods"]["wasserstein"]["over_threshold"] is True


def test_psi_alone_never_flags_a_feature() -> None:
    """The issue: bystanders flagged on PSI alone (0.13-0.20) while KS stayed quiet."""
    quiet_ks = Measure(0.06, 0.06, 0.3)
    measures = {
        f"f{i}": {"ks": quiet_ks, "psi": Measure(0.2, 0.2, 1e-4), "wasserstein": quiet_ks}
        for i in range(4)
    }
    measures["shifted"] = {
        "ks": Measure(0.5, 0.5, 1e-30),
        "psi": Measure(1.5, 1.5, 1e-40),
        "wasserstein": Measure(0.9, 0.9, None),
    }
    out = decide("m", measures, Policy())
    assert [f for f, v in out.items() if v["drifted"]] == ["shifted"]
    assert out["f0"]["methods"]["psi"] | {"p_value": None} == {
        "statistic": 0.2, "effect": 0.2, "p_value": None, "p_adjusted": 1.0, "threshold": 0.1,
        "role": "evidence", "over_threshold": True, "drifted": False,
    }  # fmt: skip


def test_features_and_outputs_are_one_family() -> None:
    ks = {"ks": Measure(0.2, 0.2, 0.03)}
    alone = decide("m", {"a": ks}, Policy())
    together = decide_together("m", {"features": {"a": ks}, "prediction": {"score": ks}}, Policy())
    assert alone["a"]["drifted"] is True
    assert together["features"]["a"]["drifted"] is False  # 0.03 * 2 after Holm
    assert together["prediction"]["score"]["methods"]["ks"]["p_adjusted"] == pytest.approx(0.06)


def test_per_feature_overrides_and_ignored_features_leave_the_family() -> None:
    policy = Policy(overrides={"a": {"ks": 0.5}, "m/b": {"ks": 0.01}}, ignore=frozenset({"m/c"}))
    measures = {n: {"ks": Measure(0.3, 0.3, 0.02)} for n in "abc"}
    out = decide("m", measures, policy)
    assert (out["a"]["drifted"], out["b"]["drifted"], out["c"]["drifted"]) == (False, True, False)
    assert out["a"]["methods"]["ks"]["threshold"] == 0.5
    assert out["b"]["methods"]["ks"]["p_adjusted"] == pytest.approx(0.04)  # 2 tests, not 3
    assert out["c"]["methods"]["ks"]["p_adjusted"] is None
    assert decide("other", measures, policy)["b"]["methods"]["ks"]["threshold"] == 0.1


def test_streak_alerts_once_and_inconclusive_windows_do_not_break_it() -> None:
    s: dict = {}
    states = []
    for i, status in enumerate(["drift", "inconclusive", "drift", "drift", "no_reference"]):
        s = next_streak(s, status, i, needed=3)
        states.append((s["count"], s["alert"]))
    assert states == [(1, "none"), (1, "none"), (2, "none"), (3, "pending"), (3, "pending")]
    assert next_streak({**s, "alert": "sent"}, "drift", 9, 3)["alert"] == "sent"
    assert next_streak(s, "ok", 9, 3) == {"count": 0, "since": None, "alert": "none"}
