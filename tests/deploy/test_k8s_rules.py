"""The alert rules pass promtool (syntax and unit tests) and cover what an SRE is paged for."""

from __future__ import annotations

from typing import Any

import k8s_check

PAGED_FOR = {
    "ArgusCameraSilent", "ArgusCameraDown",  # a camera silent
    "ArgusConsumerLagGrowing",  # consumer lag growing
    "ArgusStageErrorRateHigh",  # stage error rate
    "ArgusTritonDown",  # Triton not ready
    "ArgusDroppedFramesHigh",  # dropped-frame ratio
    "ArgusAlertSinkFailing",  # alert sink failures
}


def test_rules_pass_promtool_and_every_alert_fires_in_a_test(rendered: dict[str, list[dict[str, Any]]],
                                                             promtool: str) -> None:
    report = k8s_check.Report()
    for overlay in k8s_check.OVERLAYS:
        assert [str(p) for p in k8s_check.check_rules(rendered[overlay], report=report)] == []
    assert (report.rules, report.alerts) == (15, 12)
    assert report.rule_tests == 10


def test_the_required_alerts_exist_with_a_severity(rendered: dict[str, list[dict[str, Any]]]) -> None:
    rules = [r for g in k8s_check.rule_groups(rendered["prod"]) for r in g["rules"]]
    severities = {r["alert"]: r["labels"]["severity"] for r in rules if "alert" in r}
    assert set(severities) >= PAGED_FOR
    assert {a for a, s in severities.items() if s == "critical"} >= {
        "ArgusCameraSilent", "ArgusCameraDown", "ArgusTritonDown", "ArgusAlertSinkFailing"}
