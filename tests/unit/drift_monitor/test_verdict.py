from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import false_discovery_control

from sluice.drift_monitor.stats import Measure
from sluice.drift_monitor.verdict import Policy, adjust, decide, next_streak


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


def test_borrowed_p_values_and_correction_across_features() -> None:
    measures = {
        f"f{i}": {"ks": Measure(0.2, 0.2, 0.02), "wasserstein": Measure(0.5, 0.5, None)}
        for i in range(5)
    }
    none = decide("m", measures, Policy(correction="none"))
    bonf = decide("m", measures, Policy(correction="bonferroni"))
    assert none["f0"]["methods"]["wasserstein"]["drifted"] is True
    assert bonf["f0"]["methods"]["wasserstein"]["p_adjusted"] == pytest.approx(0.1)
    assert bonf["f0"]["drifted"] is False


def test_per_feature_overrides_and_ignored_features() -> None:
    policy = Policy(overrides={"a": {"psi": 0.5}, "m/b": {"psi": 0.01}}, ignore=frozenset({"m/c"}))
    measures = {n: {"psi": Measure(0.3, 0.3, 1e-6)} for n in "abc"}
    out = decide("m", measures, policy)
    assert (out["a"]["drifted"], out["b"]["drifted"], out["c"]["drifted"]) == (False, True, False)
    assert out["a"]["methods"]["psi"]["threshold"] == 0.5
    assert decide("other", measures, policy)["b"]["methods"]["psi"]["threshold"] == 0.1


def test_streak_alerts_once_and_inconclusive_windows_do_not_break_it() -> None:
    s: dict = {}
    states = []
    for i, status in enumerate(["drift", "inconclusive", "drift", "drift", "no_reference"]):
        s = next_streak(s, status, i, needed=3)
        states.append((s["count"], s["alert"]))
    assert states == [(1, "none"), (1, "none"), (2, "none"), (3, "pending"), (3, "pending")]
    assert next_streak({**s, "alert": "sent"}, "drift", 9, 3)["alert"] == "sent"
    assert next_streak(s, "ok", 9, 3) == {"count": 0, "since": None, "alert": "none"}
