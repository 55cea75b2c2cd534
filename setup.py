"""Installs the startup hook `lm_eval_mlc.pth` into site-packages; everything else is in pyproject.

A wheel's data files land under the install scheme's `data` root, so the hook goes to the path
of `purelib` relative to it (`lib/python3.X/site-packages` on POSIX).
"""

import os
import sysconfig

from setuptools import setup
from setuptools.command.editable_wheel import editable_wheel

SITE_PACKAGES = os.path.relpath(sysconfig.get_path("purelib"), sysconfig.get_path("data"))


class EditableWheelWithHook(editable_wheel):
    """`pip install -e .` installs the hook too.

    setuptools' editable build asks the distribution for `has_data` (not `has_data_files`), so
    it silently skips data files; give it the method it looks for.
    """

    def run(self) -> None:
        self.distribution.has_data = self.distribution.has_data_files
        super().run()


setup(
    data_files=[(SITE_PACKAGES, ["lm_eval_mlc.pth"])],
    cmdclass={"editable_wheel": EditableWheelWithHook},
)
