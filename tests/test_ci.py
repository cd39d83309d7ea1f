"""CI runs what the README tells a new user to run, and the browser tests get their browser."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests import espeak
from tests.browser import chromium
from tests.browser.chromium import INSTALL_COMMAND, ChromiumMissing, ensure_chromium

ROOT = Path(__file__).resolve().parent.parent


def _commands(section: str) -> list[str]:
    readme = (ROOT / "README.md").read_text()
    body = readme[readme.index(f"## {section}\n"):]
    body = body[:body.index("\n## ", 1)]
    return re.findall(r"```bash\n(.+?)\n```", body)


def test_ci_runs_the_readme_test_command_verbatim_and_the_install_command():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    full_suite, fast_tier = _commands("Tests")
    assert full_suite in ci_lines
    assert fast_tier == 'python -m pytest -q -m "not slow"'
    install = _commands("Install and run")[0]
    assert install.endswith(" && python app.py")
    assert install.removesuffix(" && python app.py") in ci_lines  # CI installs, it does not serve
    assert ci_lines.index(install.removesuffix(" && python app.py")) < ci_lines.index(full_suite)


def test_pytest_config_declares_the_fast_tier_marker():
    config = (ROOT / "pytest.ini").read_text()
    assert "slow:" in config and "--strict-markers" in config


def test_an_existing_chromium_is_used_as_is(tmp_path):
    binary = tmp_path / "chromium"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert ensure_chromium(binary, tmp_path / "logs") == binary
    assert not (tmp_path / "logs").exists()  # nothing installed


def test_a_missing_custom_chromium_is_never_installed_over(tmp_path):
    with pytest.raises(ChromiumMissing) as missing:
        ensure_chromium(tmp_path / "no-such-chromium", tmp_path / "logs")
    assert INSTALL_COMMAND in str(missing.value) and "VLMS_CHROMIUM" in str(missing.value)
    assert not (tmp_path / "logs").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root installs packages")
def test_a_missing_default_chromium_is_installed_with_apt_get(tmp_path, monkeypatch):
    """The control flow on a fresh machine, with a stand-in apt-get (the real one would install
    into /usr/bin, which this machine already has): update, then install both packages, logged."""
    binary, calls = tmp_path / "usr-bin-chromium", tmp_path / "calls"
    fake = tmp_path / "bin" / "apt-get"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho "apt says hi"\n'
                    f'[ "$1" = install ] && printf "#!/bin/sh\\n" > {binary} && chmod +x {binary}\nexit 0\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(chromium, "DEFAULT", binary)
    assert ensure_chromium(binary, tmp_path / "logs") == binary
    assert calls.read_text().splitlines() == ["update", "install -y chromium fonts-noto-color-emoji"]
    assert "apt says hi" in (tmp_path / "logs" / "apt-chromium.log").read_text()


def test_a_missing_custom_espeak_is_never_installed_over(tmp_path):
    with pytest.raises(espeak.EspeakMissing) as missing:
        espeak.ensure_espeak.__wrapped__("no-such-espeak", tmp_path / "logs")  # past the cache
    assert espeak.INSTALL_COMMAND in str(missing.value)
    assert not (tmp_path / "logs").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root installs packages")
def test_a_missing_espeak_is_installed_with_apt_get(tmp_path, monkeypatch):
    """The fresh-machine flow of the speech tests, with a stand-in apt-get on a PATH where
    espeak-ng is not: update, then install, logged, and the installed binary is what is used."""
    folder, calls = tmp_path / "bin", tmp_path / "calls"
    folder.mkdir()
    fake = folder / "apt-get"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho "apt says hi"\n'
                    f'[ "$1" = install ] && printf "#!/bin/sh\\n" > {folder}/espeak-ng && /bin/chmod +x {folder}/espeak-ng\n'
                    "exit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    assert espeak.ensure_espeak.__wrapped__(log_dir=tmp_path / "logs") == str(folder / "espeak-ng")
    assert calls.read_text().splitlines() == ["update", "install -y espeak-ng"]
    assert "apt says hi" in (tmp_path / "logs" / "apt-espeak-ng.log").read_text()
