"""`sluice route set/show` and `sluice shadow diff` against a running router."""

from __future__ import annotations

import os
import subprocess

import httpx

from tests.integration.router.conftest import ADMIN, TOKEN, Stack, wait_for
from tests.support.procs import sluice_command


def sluice(*args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLUICE_ADMIN_TOKEN": token}
    return subprocess.run(
        [*sluice_command(), *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_route_set_show_and_a_refused_change(stack: Stack) -> None:
    ups = [f"--upstream={v}={url}" for v, url in stack.servers.items()]
    done = sluice(
        "route",
        "set",
        "churn",
        "--router-url",
        stack.router,
        *ups,
        "--stable",
        "v1",
        "--candidate",
        "v2",
        "--mode",
        "canary",
        "--weight",
        "30",
    )
    assert done.returncode == 0, done.stderr
    assert "weight     30% to the candidate" in done.stdout
    # without --upstream the current upstreams are kept
    grown = sluice(
        "route",
        "set",
        "churn",
        "--router-url",
        stack.router,
        "--stable",
        "v1",
        "--candidate",
        "v2",
        "--mode",
        "canary",
        "--weight",
        "50",
    )
    assert grown.returncode == 0, grown.stderr
    shown = sluice("route", "show", "churn", "--router-url", stack.router)
    assert "weight     50% to the candidate" in shown.stdout
    assert stack.servers["v2"] in shown.stdout
    refused = sluice("route", "set", "churn", "--router-url", stack.router, "--stable", "v9")
    assert refused.returncode == 1
    assert "stable version 'v9' has no upstream" in refused.stderr
    assert (
        "50% to the candidate"
        in sluice("route", "show", "churn", "--router-url", stack.router).stdout
    )


def test_shadow_diff_lists_disagreements(stack: Stack) -> None:
    stack.route(candidate="v2", mode="shadow")
    with httpx.Client(base_url=stack.router, timeout=10) as client:
        for customer in stack.customers(150, offset=1200):
            body = {"instances": [{"customer_id": customer}]}
            assert client.post("/v1/models/churn:predict", json=body).status_code == 200

        def kept() -> bool:
            doc = client.get("/admin/v1/shadow/churn/diffs", headers=ADMIN).json()
            return bool(doc["disagreements"])

        wait_for(kept, what="a disagreement")
    out = sluice("shadow", "diff", "churn", "--router-url", stack.router, "--limit", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "v1: " in lines[0]
    assert "v2: " in lines[0]
    assert lines[1].strip().startswith("inputs {")


def test_a_rotating_token_list_sends_its_first_token(stack: Stack) -> None:
    """``SLUICE_ADMIN_TOKEN=new,old`` on a client: the router (holding only the new one)
    gets the first, not the list."""
    stack.route()
    shown = sluice("route", "show", "churn", "--router-url", stack.router,
                   token=f"{TOKEN},retired-token")  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    refused = sluice("route", "show", "churn", "--router-url", stack.router,
                     token=f"retired-token,{TOKEN}")  # fmt: skip
    assert refused.returncode != 0 and "401" in refused.stderr, refused.stderr
