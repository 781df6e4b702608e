"""Mutation tests of the multi-tenancy lockdown rule (tree-policy
``tenancy``): the rule reads Flux's documented lockdown from one table,
``flux_policy.LOCKDOWN_FLAGS``, and every entry of that table is enforced.
For each flag, dropping its patch fails the cluster; for each controller a
flag must reach, a patch whose target leaves that controller out fails it
too, naming both."""

from __future__ import annotations

import re

import pytest

from harness.checks import flux_policy, tree_policy
from mutations.test_manifest_mutations import FLUX_SYSTEM, assert_fails_at, ctx, edit, failed, line_of, tree  # noqa: F401

FLAG_CONTROLLERS = [(flag, controller) for flag, controllers in flux_policy.LOCKDOWN_FLAGS.items()
                    for controller in controllers]


def _shown(flag: str) -> str:
    return f"`{flag}{'NAME' if flag.endswith('=') else ''}`"


def _patch_of(text: str, flag: str) -> tuple[str, str]:
    """The fixture's patch that adds ``flag``: (its target name, the value line)."""
    match = re.search(r"      name: (?P<name>\S+)\n    patch: \|-\n(?:      .*\n)*?        value: (?P<value>"
                      + re.escape(flag) + r"\S*)\n", text)
    assert match, f"the fixture's {FLUX_SYSTEM} has no patch adding {flag}"
    return match.group("name"), match.group("value")


def test_the_table_holds_every_documented_flag():
    """Flux's multi-tenancy lockdown page patches exactly these flags into
    these controllers; a table that lost one would stop enforcing it."""
    assert flux_policy.LOCKDOWN_FLAGS == {
        "--no-cross-namespace-refs=true": ("kustomize-controller", "helm-controller", "notification-controller",
                                           "image-reflector-controller", "image-automation-controller"),
        "--no-remote-bases=true": ("kustomize-controller",),
        "--default-service-account=": ("kustomize-controller", "helm-controller"),
    }


def test_the_unmutated_lockdown_passes(tree):
    assert not [f for f in failed(tree_policy.run(ctx(tree))) if "[tenancy]" in f]


@pytest.mark.parametrize("flag", list(flux_policy.LOCKDOWN_FLAGS))
def test_a_flag_left_out_fails(tree, flag):
    text = (tree / FLUX_SYSTEM).read_text()
    _, value = _patch_of(text, flag)
    edit(tree, FLUX_SYSTEM, f"        value: {value}\n", "        value: --log-level=info\n")
    assert_fails_at(tree_policy.run(ctx(tree)), FLUX_SYSTEM, line_of(tree, FLUX_SYSTEM, "patches:"), f"no patch adds {_shown(flag)} to")


@pytest.mark.parametrize(("flag", "controller"), FLAG_CONTROLLERS, ids=[f"{f}{c}" for f, c in FLAG_CONTROLLERS])
def test_a_controller_the_flag_does_not_reach_fails(tree, flag, controller):
    text = (tree / FLUX_SYSTEM).read_text()
    name, value = _patch_of(text, flag)
    others = [c for c in flux_policy.LOCKDOWN_FLAGS[flag] if c != controller]
    narrowed = f"({'|'.join(others)})" if others else "source-controller"
    edit(tree, FLUX_SYSTEM, f"      name: {name}\n    patch: |-\n      - op: add\n"
         f"        path: /spec/template/spec/containers/0/args/-\n        value: {value}\n",
         f"      name: {narrowed}\n    patch: |-\n      - op: add\n"
         f"        path: /spec/template/spec/containers/0/args/-\n        value: {value}\n")
    findings = tree_policy.run(ctx(tree))
    assert_fails_at(findings, FLUX_SYSTEM, line_of(tree, FLUX_SYSTEM, "patches:"), f"no patch adds {_shown(flag)} to {controller}")
