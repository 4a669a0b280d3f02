"""Packs ``conf/`` into the wheel as ``raiha/conf`` (the rest of the build is in pyproject.toml).

A source checkout (editable install) reads ``conf/`` where it is; a wheel has no checkout,
so ``raiha.utils.config.find_config_dir`` finds the copy inside the package.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithConf(build_py):
    """``build_py`` that also copies ``conf/`` to ``<build>/raiha/conf`` (not for editable installs)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        source = Path(__file__).resolve().parent / "conf"
        target = Path(self.build_lib) / "raiha" / "conf"
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildPyWithConf})
