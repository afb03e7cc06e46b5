"""Only what pyproject.toml cannot say: the data directories at the repository root
(`gestures/`, `scripts_templates/`; ARCHITECTURE §1) are copied into the wheel as
`livetwin/_data/<name>`, where `livetwin.resources.data_dir` finds them. An editable
install reads them from the checkout instead."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_DIRS = ("gestures", "scripts_templates")


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        root = Path(__file__).resolve().parent
        for name in DATA_DIRS:
            target = Path(self.build_lib) / "livetwin" / "_data" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(root / name, target)


setup(cmdclass={"build_py": BuildPy})
