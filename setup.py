"""Builds the Cython hot paths in zray/_fast/ at install time.

Generated .c/.cpp files are never committed: cythonize regenerates them from the .pyx sources.
"""
import glob

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "zray._fast." + path.split("/")[-1][: -len(".pyx")],
        [path],
        extra_compile_args=["-O3"],
    )
    for path in sorted(glob.glob("zray/_fast/*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False},
    )
)
