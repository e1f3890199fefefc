"""Guard plugins: loading by dotted path and by entry point, options, names, and clear errors.

A package of sample plugin objects is written to a temporary folder on `sys.path`; entry points
come from `*.dist-info` folders written beside it, which importlib.metadata reads as it reads
installed distributions.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.config.loader import PolicyError, parse_policy
from gateway.guards import Decision, Guard, GuardContext, StreamingGuard, Verdict
from gateway.guards.plugins import ENTRY_POINT_GROUP, PluginConfig, load_guard
from gateway.guards.texts import request_slots

REPO = Path(__file__).resolve().parents[2]

ACME = '''
from pydantic import BaseModel, ConfigDict

from gateway.guards import Decision, Verdict


class Suffix:
    """Keyword options."""

    def __init__(self, suffix: str = "!", name: str = "suffix") -> None:
        self.suffix = suffix
        self.name = name

    async def check(self, ctx):
        for slot in ctx.slots:
            ctx.replace(slot, slot.text + self.suffix)
        return Decision(self.name, Verdict.MODIFY, "suffix")


class LimitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int
    name: str = "limit"


class Limit:
    """A pydantic config model."""

    config_model = LimitConfig

    def __init__(self, config: LimitConfig) -> None:
        self.limit = config.limit
        self.name = config.name

    async def check(self, ctx):
        if sum(len(slot.text) for slot in ctx.slots) > self.limit:
            return Decision.block(self.name, "too long")
        return Decision.allow(self.name)


class Nested:
    class Config(BaseModel):
        word: str

    def __init__(self, config) -> None:
        self.word = config.word
        self.name = "nested"

    async def check(self, ctx):
        return Decision.allow(self.name)


def make_suffix(suffix: str = "?") -> Suffix:
    return Suffix(suffix, name="made")


INSTANCE = Suffix(".", name="instance")


class Fixed:
    """No `name` option: the loader sets the attribute."""

    name = "fixed"

    async def check(self, ctx):
        return Decision.allow(self.name)


class Frozen:
    __slots__ = ()
    name = "frozen"

    async def check(self, ctx):
        return Decision.allow(self.name)


class SyncCheck:
    name = "sync"

    def check(self, ctx):
        return Decision.allow(self.name)


class Nameless:
    async def check(self, ctx):
        return Decision.allow("nameless")


class SyncStart:
    name = "sync-start"

    def start(self):
        pass

    async def check(self, ctx):
        return Decision.allow(self.name)


class Exploding:
    name = "exploding"

    def __init__(self) -> None:
        raise RuntimeError("no model file at /models/x")

    async def check(self, ctx):
        return Decision.allow(self.name)


NOT_CALLABLE = 42
'''


def write_dist(site: Path, name: str, entry_points: dict[str, str]) -> None:
    """A minimal installed distribution: METADATA and entry_points.txt in a .dist-info."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`acme_guards` (with a submodule, a module with a missing dependency and a syntax error)
    on sys.path."""
    site = tmp_path_factory.mktemp("site")
    package = site / "acme_guards"
    package.mkdir()
    (package / "__init__.py").write_text(ACME)
    (package / "sub.py").write_text("from acme_guards import Suffix as Again\n")
    (package / "needs_dep.py").write_text("import not_installed_anywhere_xyz\n")
    (package / "typo.py").write_text("def broken(:\n")
    (package / "lonely.py").write_text("# imported by no one before the test\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(site))
        yield site
    for module in [m for m in sys.modules if m.split(".")[0] == "acme_guards"]:
        del sys.modules[module]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder on sys.path for this test's distributions."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


async def run_check(guard: Guard, text: str) -> tuple[Decision, str]:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": text}]}
    decision = await guard.check(GuardContext("input", request_slots(body)))
    return decision, body["messages"][0]["content"]


def load_error(spec: str, options: dict[str, Any] | None = None, **kw: Any) -> str:
    with pytest.raises(ValueError) as caught:
        load_guard(spec, options, **kw)
    return str(caught.value)


# --- dotted paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec", ["acme_guards:Suffix", "acme_guards.Suffix", "acme_guards.sub:Again"]
)
async def test_dotted_path_builds_a_class_with_keyword_options(acme: Path, spec: str) -> None:
    guard = load_guard(spec, {"suffix": "!!"})
    assert guard.name == "suffix"
    assert await run_check(guard, "hi") == (Decision(guard.name, Verdict.MODIFY, "suffix"), "hi!!")


async def test_a_config_model_validates_the_options_into_one_config_object(acme: Path) -> None:
    guard = load_guard("acme_guards:Limit", {"limit": 3})
    assert (await run_check(guard, "four"))[0].blocked
    assert not (await run_check(guard, "ok"))[0].blocked
    # A pydantic `Config` inner class works the same way.
    assert load_guard("acme_guards:Nested", {"word": "x"}).name == "nested"


async def test_a_factory_function_and_a_guard_instance(acme: Path) -> None:
    made = load_guard("acme_guards:make_suffix", {"suffix": "?"})
    assert made.name == "made"
    assert (await run_check(made, "why"))[1] == "why?"
    instance = load_guard("acme_guards:INSTANCE")
    assert instance.name == "instance"
    assert "a guard instance, which takes no options (got suffix)" in load_error(
        "acme_guards:INSTANCE", {"suffix": "x"}
    )


def test_the_policy_name_reaches_the_guard(acme: Path) -> None:
    # Passed as an option where the guard takes one: keyword argument or config field.
    assert load_guard("acme_guards:Suffix", name="tail").name == "tail"
    assert load_guard("acme_guards:Limit", {"limit": 1}, name="short").name == "short"
    # Otherwise set as the attribute.
    assert load_guard("acme_guards:Fixed", name="policy-name").name == "policy-name"
    assert "cannot give the guard the name 'x'" in load_error("acme_guards:Frozen", name="x")
    assert load_guard("acme_guards:Frozen", name="frozen").name == "frozen"


def test_streaming_is_recognised_on_the_example_plugin() -> None:
    guard = load_guard("plugins.keyword_filter:KeywordFilterGuard", {"keywords": ["x"]})
    assert isinstance(guard, StreamingGuard)


# --- what goes wrong, said clearly -----------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nowhere.at_all:Guard", "no module named 'nowhere.at_all' (is the plugin installed"),
        ("acme_guards:Missing", "acme_guards has no attribute 'Missing'"),
        ("acme_guards:Limit.inner", "acme_guards.Limit has no attribute 'inner'"),
        ("acme_guards.sub", "acme_guards.sub is a module; name the guard in it"),
        ("acme_guards.lonely", "acme_guards.lonely is a module; name the guard in it"),
        ("acme_guards.needs_dep:X", "No module named 'not_installed_anywhere_xyz'"),
        ("acme_guards.typo:X", "importing 'acme_guards.typo' failed: SyntaxError"),
        ("acme guards:X", "not a valid dotted path"),
        ("  ", "plugin path is empty"),
        ("acme_guards:SyncCheck", "it needs an `async def check(self, ctx) -> Decision` method"),
        ("acme_guards:NOT_CALLABLE", "is a int, not a guard class, a factory function"),
        ("acme_guards:Nameless", "the Nameless guard has no `name` string"),
        ("acme_guards:SyncStart", "`start` of the SyncStart guard must be an async method"),
        ("acme_guards:Exploding", "building the guard failed: RuntimeError: no model file"),
        ("no_such_plugin", "no entry point of that name in group 'sluicegate.plugins'"),
    ],
)
def test_broken_plugins_are_value_errors_naming_the_spec(
    acme: Path, spec: str, message: str
) -> None:
    error = load_error(spec)
    assert error.startswith(f"plugin {spec.strip()!r}: " if spec.strip() else "plugin path")
    assert message in error
    if "needs_dep" in spec:
        assert "a dependency of the plugin is missing" in error


def test_options_the_guard_does_not_take(acme: Path) -> None:
    assert load_error("acme_guards:Suffix", {"sufix": "!"}) == (
        "plugin 'acme_guards:Suffix': bad options: got an unexpected keyword argument 'sufix' "
        "(it takes: suffix, name)"
    )
    assert load_error("acme_guards:Limit", {}) == (
        "plugin 'acme_guards:Limit': bad options: limit: Field required"
    )
    assert load_error("acme_guards:Limit", {"limit": "many", "extra": 1}) == (
        "plugin 'acme_guards:Limit': bad options: limit: Input should be a valid integer, "
        "unable to parse string as an integer; extra: Extra inputs are not permitted"
    )


# --- entry points ----------------------------------------------------------------------------


async def test_entry_point_names_load_their_target(acme: Path, site: Path) -> None:
    write_dist(
        site, "acme_plugins", {"acme": "acme_guards:Suffix", "acme.limit": "acme_guards:Limit"}
    )
    guard = load_guard("acme", {"suffix": "?"})
    assert (await run_check(guard, "hm"))[1] == "hm?"
    # An entry point's name may contain dots: it is looked up before the dotted path.
    assert load_guard("acme.limit", {"limit": 2}).name == "limit"


def test_entry_point_errors(acme: Path, site: Path) -> None:
    write_dist(site, "acme_plugins", {"acme": "acme_guards:Suffix", "bad": "acme_guards:Gone"})
    write_dist(site, "other_plugins", {"acme": "acme_guards:Limit"})
    error = load_error("bad")
    assert error.startswith("plugin 'bad': loading entry point 'acme_guards:Gone' failed")
    assert "several entry points in group 'sluicegate.plugins' have that name" in load_error("acme")
    assert "(acme_plugins)" in load_error("acme") and "(other_plugins)" in load_error("acme")
    missing = load_error("nope")
    assert "installed: acme, acme, bad" in missing and "package.module:Guard" in missing


async def test_the_example_plugin_loads_through_its_declared_entry_point(site: Path) -> None:
    """plugins/keyword_filter as `pip install` lays it out: the package under its own name and
    the entry point its pyproject.toml declares."""
    source = REPO / "plugins" / "keyword_filter"
    project = tomllib.loads((source / "pyproject.toml").read_text())
    entry_points = project["project"]["entry-points"][ENTRY_POINT_GROUP]
    [(package, folder)] = project["tool"]["setuptools"]["package-dir"].items()
    assert folder == "."
    shutil.copytree(source, site / package, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    write_dist(site, project["project"]["name"], entry_points)
    try:
        guard = load_guard("keyword_filter", {"keywords": ["nightjar"], "action": "redact"})
        assert type(guard).__module__ == f"{package}.guard"
        assert await run_check(guard, "say nightjar") == (
            Decision("keyword_filter", Verdict.MODIFY, "redact", categories={"keyword": 1}),
            "say [REDACTED]",
        )
    finally:
        for module in [m for m in sys.modules if m.split(".")[0] == package]:
            del sys.modules[module]


# --- the policy entry ------------------------------------------------------------------------


def test_plugin_config_checks_path_and_options_when_the_policy_loads(acme: Path) -> None:
    config = PluginConfig(path="acme_guards:Limit", options={"limit": 5})
    assert (config.type, config.name) == ("plugin", "plugin")
    with pytest.raises(ValidationError) as caught:
        PluginConfig(path="acme_guards:Missing")
    [error] = caught.value.errors()
    assert error["loc"] == ("path",) and "has no attribute 'Missing'" in error["msg"]
    with pytest.raises(ValidationError) as caught:
        PluginConfig(path="acme_guards:Limit")  # options left out: still checked
    [error] = caught.value.errors()
    assert error["loc"] == ("options",) and "limit: Field required" in error["msg"]
    with pytest.raises(ValidationError, match="wrong"):
        PluginConfig(path="acme_guards:Limit", options={"limit": 1}, wrong=1)  # type: ignore[call-arg]


def test_a_broken_plugin_is_a_policy_error_with_file_and_line(acme: Path) -> None:
    policy = textwrap.dedent(
        """\
        auth: none
        backends:
          up: {kind: openai, base_url: http://127.0.0.1:9}
        models:
          m: {backend: up}
        guards:
          input:
            - {type: validation}
            - type: plugin
              name: limit
              path: acme_guards:Limitt
        """
    )
    with pytest.raises(PolicyError) as caught:
        parse_policy(policy, "p.yaml", {})
    [problem] = [str(p) for p in caught.value.problems]
    assert problem.startswith("p.yaml:11: guards.input[1].path: plugin 'acme_guards:Limitt'")
    assert "has no attribute 'Limitt'" in problem
